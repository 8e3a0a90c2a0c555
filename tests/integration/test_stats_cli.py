"""`retryq stats` on a queue file, through the command line."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from typer.testing import CliRunner

from retryq import JsonFileStore
from retryq.record.models import JobStatus

from ..helpers import invoke
from ..unit.test_stats import chain, minutes


def test_stats_json_prints_the_breakdowns(cli: CliRunner) -> None:
    JsonFileStore(Path(".retry-queue.json")).add(
        chain("a", JobStatus.COMPLETED, scheduled_at=datetime.now().astimezone(), took=minutes(61)), lambda job: job
    )
    data = json.loads(invoke(cli, "stats", "--json").stdout)
    assert (data["chains"], data["resolvedByAttempt"]) == (1, {"1": {"count": 1, "percent": 100.0}})
    assert sum(day["chains"] for day in data["byDay"]) == 1
    assert data["byClient"]["balthazar"]["delaySeconds"]["mean"] == 3660.0
    assert data["delayHistogram"][-1] == {"fromSeconds": 3600.0, "toSeconds": 4200.0, "count": 1}
