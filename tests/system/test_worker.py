"""`retryq worker`: polling with backoff, and a graceful stop."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from retryq import JsonFileStore, Processor, RetryQueue
from retryq.record.models import JobStatus

from ..helpers import FakeWorkflow, make_config, write_script


def test_the_polling_backoff_grows_and_resets_after_a_job(tmp_path: Path, workflow: FakeWorkflow) -> None:
    queue = RetryQueue(JsonFileStore(tmp_path / ".retry-queue.json"), config=make_config(workflow.argv()))
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 9:
            queue.schedule("balthazar", "2025-12-19", 0)
        if len(sleeps) == 12:
            processor.request_stop(signal.SIGTERM)

    processor = Processor(queue.store, queue.config, sleep=sleep)
    report = processor.run(worker=True, handle_signals=False)
    assert sleeps == [2, 3, 4.5, 6.75, 10.125, 15.1875, 22.78125, 30, 30, 2, 3, 4.5]
    assert (report.succeeded, report.stopped_by) == (1, signal.SIGTERM)
    assert len(workflow.calls()) == 1


@pytest.mark.slow
def test_sigterm_stops_the_worker_and_gives_the_job_back(tmp_path: Path, retryq_bin: str) -> None:
    marker = tmp_path / "started"
    script = write_script(tmp_path / "long.sh", f"touch {marker}\nsleep 60\n")
    env = {**os.environ, "RETRYQ_COMMAND": str(script)}
    worker = subprocess.Popen([retryq_bin, "worker"], env=env, stdout=subprocess.PIPE, text=True)
    subprocess.run([retryq_bin, "schedule", "balthazar", "2025-12-19", "0"], env=env, check=True, capture_output=True)
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert time.monotonic() < deadline, "the worker never ran the job"
        time.sleep(0.05)
    worker.send_signal(signal.SIGTERM)
    output, _ = worker.communicate(timeout=30)
    assert worker.returncode == 143
    assert "worker started on .retry-queue.json" in output
    assert "worker stopped; summary: processed 0" in output
    [job] = JsonFileStore(tmp_path / ".retry-queue.json").load()
    assert (job.status, job.attempt) == (JobStatus.PENDING, 1)
