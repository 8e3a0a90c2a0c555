"""A fetch's verdict as the queue file records it on the retry's job."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from retryq import JsonFileStore

from ..helpers import T0
from ..unit.test_inconsistency import adaptive


def test_the_first_verdict_is_recorded_on_the_job_in_the_file(tmp_path: Path) -> None:
    queue = adaptive(JsonFileStore(tmp_path / "q.json"))
    report = queue.report_fetch("balthazar", "2025-12-19", total=650, fetched=600, now=T0)
    assert report.retry is not None
    [stored] = json.loads((tmp_path / "q.json").read_text())
    assert stored["detection"] == {
        "status": "ERROR",
        "total": 650,
        "missing": 50,
        "ratio": 50 / 650,
        "delayMinutes": 20,
        "reason": "delay for ERROR",
        "attempt": 1,
    }
    assert (stored["delayMinutes"], stored["executeAt"]) == (20, "2025-12-19T10:20:00.000Z")
    [job] = queue.jobs()
    assert job.detection == report.retry.job.detection
    assert job.detection is not None
    assert job.detection.status == "ERROR"
    # A later report while the retry is pending changes nothing: the chain keeps its first verdict.
    again = queue.report_fetch("balthazar", "2025-12-19", total=650, fetched=648, now=T0 + timedelta(minutes=5))
    assert again.retry is not None
    assert again.retry.outcome == "exists"
    assert queue.jobs() == [job]
