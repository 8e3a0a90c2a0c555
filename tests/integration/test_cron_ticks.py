"""A ``*/5`` cron replayed with freezegun: retries land on the ticks the seeds promise.

Each tick runs a real ``process`` with a real workflow process; the clock is frozen at the tick
(plus the fraction of a second cron and Python take to start), and moves on by the run's duration
when the workflow prints, so that the results are written as late as a slow run would write them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from freezegun import freeze_time
from freezegun.api import FrozenDateTimeFactory, StepTickTimeFactory

from retryq import JsonFileStore, RetryQueue
from retryq.record.backoff import fixed
from retryq.record.models import JobStatus

from ..helpers import FakeWorkflow, make_config, process

START_LATENCY = timedelta(
    seconds=0.4
)  # cron forks, Python starts, retryq imports: the claim comes a bit after the tick
DAY = datetime(2025, 12, 19, tzinfo=timezone.utc)


class _Advance(logging.Handler):
    """Moves the frozen clock on by the run's duration when the workflow prints its line."""

    def __init__(self, clock: FrozenDateTimeFactory | StepTickTimeFactory, duration: timedelta) -> None:
        super().__init__()
        self.clock, self.duration = clock, duration

    def emit(self, record: logging.LogRecord) -> None:
        self.clock.tick(self.duration)


@contextmanager
def runs_lasting(clock: FrozenDateTimeFactory | StepTickTimeFactory, duration: timedelta) -> Iterator[None]:
    output = logging.getLogger("retryq.output")
    handler, level = _Advance(clock, duration), output.level
    output.addHandler(handler)
    output.setLevel(logging.INFO)
    try:
        yield
    finally:
        output.removeHandler(handler)
        output.setLevel(level)


def replay_cron(
    queue: RetryQueue, workflow: FakeWorkflow, first: datetime, last: datetime, durations: Sequence[timedelta]
) -> list[datetime]:
    """Run `process` at every 5-minute tick from ``first`` to ``last``; return the ticks at which the workflow ran."""
    ran, tick, runs = [], first, 0
    while tick <= last:
        with freeze_time(tick + START_LATENCY) as clock, runs_lasting(clock, durations[min(runs, len(durations) - 1)]):
            process(queue, prune=False)
        if len(workflow.calls()) > runs:
            assert len(workflow.calls()) == runs + 1, "one process run started the same job twice"
            runs += 1
            ran.append(tick)
        tick += timedelta(minutes=5)
    return ran


def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return DAY.replace(hour=hour, minute=minute, second=second)


def test_seed_000_a_persistent_inconsistency_is_retried_at_11_00_and_12_00(
    tmp_path: Path, workflow: FakeWorkflow
) -> None:
    """Detected at 10:00:02, retried an hour later at the 11:00 tick, still missing, resolved at the 12:00 tick."""
    queue = RetryQueue(JsonFileStore(tmp_path / ".retry-queue.json"), config=make_config(workflow.argv()))
    workflow.exits(75, 0)
    with freeze_time(at(10, 0, 2)):
        queue.schedule("balthazar", "2025-12-19", 60)
    ran = replay_cron(queue, workflow, at(10, 5), at(13), [timedelta(seconds=20), timedelta(minutes=3)])
    assert ran == [at(11), at(12)]
    [job] = queue.jobs()
    assert (job.status, job.attempt) == (JobStatus.COMPLETED, 2)


def test_seed_001_hourly_attempts_from_04_00_to_08_00_whatever_each_run_lasts(
    tmp_path: Path, workflow: FakeWorkflow
) -> None:
    queue = RetryQueue(
        JsonFileStore(tmp_path / ".retry-queue.json"),
        config=make_config(workflow.argv(), max_attempts=5, backoff=fixed(3600)),
    )
    workflow.exits(75, 75, 75, 75, 75)
    with freeze_time(at(3, 55)):
        queue.schedule("assurance", "2025-12-22", 60, at=at(4))
    durations = [timedelta(seconds=5), timedelta(minutes=3), timedelta(seconds=30), timedelta(minutes=4), timedelta(1)]
    ran = replay_cron(queue, workflow, at(4), at(10), durations)
    assert ran == [at(4), at(5), at(6), at(7), at(8)]
    [job] = queue.jobs()
    assert (job.status, job.attempt) == (JobStatus.FAILED, 5)
    assert [a.finished_at - a.started_at for a in job.history] == durations  # the runs did last that long


def test_seed_001_stops_at_the_first_success(tmp_path: Path, workflow: FakeWorkflow) -> None:
    queue = RetryQueue(
        JsonFileStore(tmp_path / ".retry-queue.json"),
        config=make_config(workflow.argv(), max_attempts=5, backoff=fixed(3600)),
    )
    workflow.exits(75, 75, 0)
    with freeze_time(at(3, 55)):
        queue.schedule("assurance", "2025-12-22", 60, at=at(4))
    ran = replay_cron(queue, workflow, at(4), at(10), [timedelta(minutes=2)])
    assert ran == [at(4), at(5), at(6)]
    assert queue.jobs()[0].status is JobStatus.COMPLETED


def test_a_one_minute_cron_runs_each_retry_on_its_minute(tmp_path: Path, workflow: FakeWorkflow) -> None:
    queue = RetryQueue(JsonFileStore(tmp_path / ".retry-queue.json"), config=make_config(workflow.argv()))
    workflow.exits(75, 75, 0)
    with freeze_time(at(10, 0, 30)):
        queue.schedule("balthazar", "2025-12-19", 1)  # due 10:01:30: the 10:01 tick takes it (window of 1 minute)
    ran, tick = [], at(10, 1)
    while tick <= at(10, 10):
        with freeze_time(tick + START_LATENCY):
            before = len(workflow.calls())
            process(queue, prune=False)
            if len(workflow.calls()) > before:
                ran.append(tick)
        tick += timedelta(minutes=1)
    assert ran == [at(10, 1), at(10, 2), at(10, 3)]


@pytest.mark.parametrize("window", [timedelta(0), timedelta(seconds=30)])
def test_the_due_window_can_be_narrowed(tmp_path: Path, workflow: FakeWorkflow, window: timedelta) -> None:
    queue = RetryQueue(
        JsonFileStore(tmp_path / ".retry-queue.json"), config=make_config(workflow.argv(), due_window=window)
    )
    with freeze_time(at(10, 0, 45)):
        queue.schedule("balthazar", "2025-12-19", 60)  # due 11:00:45
    with freeze_time(at(11) + START_LATENCY):
        process(queue, prune=False)
    assert workflow.calls() == []  # 45 s after the tick is beyond the window
    with freeze_time(at(11, 5) + START_LATENCY):
        process(queue, prune=False)
    assert len(workflow.calls()) == 1


def test_a_job_with_no_delay_runs_once_per_process_run(tmp_path: Path, workflow: FakeWorkflow) -> None:
    """`schedule C D 0` used to burn every attempt within one process run (three failures in two seconds)."""
    queue = RetryQueue(JsonFileStore(tmp_path / ".retry-queue.json"), config=make_config(workflow.argv()))
    workflow.exits(1, 1, 1)
    queue.schedule("balthazar", "2025-12-19", 0)
    report = process(queue, prune=False)
    assert (len(workflow.calls()), report.retrying) == (1, 1)
    [job] = queue.jobs()
    assert (job.status, job.attempt) == (JobStatus.PENDING, 2)
