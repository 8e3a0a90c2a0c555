"""The BOAMP fetcher's tolerance rule and the fetcher's API: judge a fetch, schedule a retry when data is missing."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from retryq import Config, MemoryStore, RetryQueue, Store
from retryq.record import lifecycle
from retryq.record.backoff import exponential
from retryq.record.errors import InvalidInput
from retryq.record.inconsistency import Decision, DelayPolicy, FetchStatus, InconsistencyThresholds, assess
from retryq.record.models import Detection, Job, JobStatus, Owner
from retryq.record.timeutil import format_utc
from retryq.running.runner import RunResult

from ..helpers import T0, make_config


@pytest.mark.parametrize(
    ("total", "fetched", "status", "missing"),
    [
        (650, 650, FetchStatus.OK, 0),
        (650, 648, FetchStatus.DEGRADED, 2),  # 2 missing, 0.31 %: tolerated
        (650, 647, FetchStatus.DEGRADED, 3),  # scenario 1: at most 3 is tolerated
        (650, 646, FetchStatus.ERROR, 4),  # 4 missing and 0.62 %
        (1000, 996, FetchStatus.DEGRADED, 4),  # 4 missing but only 0.4 %: tolerated by the ratio
        (650, 600, FetchStatus.ERROR, 50),  # scenario 3
        (0, 0, FetchStatus.OK, 0),
        (650, 651, FetchStatus.OK, 0),  # more than announced is not missing data
    ],
)
def test_the_tolerance_rule(total: int, fetched: int, status: FetchStatus, missing: int) -> None:
    found = assess(total, fetched)
    assert (found.status, found.missing) == (status, missing)
    assert found.needs_retry is (missing > 0)


def test_the_ratio() -> None:
    assert assess(650, 648).ratio == pytest.approx(0.003077, abs=1e-6)


def test_thresholds_are_configurable() -> None:
    strict = InconsistencyThresholds(max_missing=0, max_ratio=0.0)
    assert assess(650, 649, strict).status is FetchStatus.ERROR
    lenient = InconsistencyThresholds(max_missing=100, max_ratio=0.0)
    assert assess(650, 600, lenient).status is FetchStatus.DEGRADED


@pytest.mark.parametrize(("total", "fetched"), [(-1, 0), (10, -1), (True, 1), ("650", 647), (1.5, 1)])
def test_bad_counts(total: object, fetched: object) -> None:
    with pytest.raises(InvalidInput, match="must be a whole number"):
        assess(total, fetched)  # type: ignore[arg-type]


@pytest.fixture
def queue() -> RetryQueue:
    return RetryQueue(MemoryStore(), config=Config())


def test_nothing_missing_schedules_nothing(queue: RetryQueue) -> None:
    report = queue.report_fetch("balthazar", "2025-12-19", total=650, fetched=650, now=T0)
    assert (report.assessment.status, report.retry) == (FetchStatus.OK, None)
    assert queue.jobs() == []


@pytest.mark.parametrize("fetched", [647, 600])
def test_missing_data_schedules_a_retry_in_60_minutes_whatever_the_status(queue: RetryQueue, fetched: int) -> None:
    report = queue.report_fetch("balthazar", "2025-12-19", total=650, fetched=fetched, now=T0)
    assert report.retry is not None
    assert report.retry.created
    [job] = queue.jobs()
    assert (job.client_id, job.date, job.execute_at, job.status) == (
        "balthazar",
        "2025-12-19",
        T0 + timedelta(minutes=60),
        JobStatus.PENDING,
    )
    assert report.delay_minutes == 60


def test_the_delay_comes_from_the_config_or_the_call(tmp_path: Path) -> None:
    config = Config(thresholds=InconsistencyThresholds(delay=45))
    queue = RetryQueue(MemoryStore(), config=config)
    queue.report_fetch("a", "2025-12-19", total=10, fetched=9, now=T0)
    queue.report_fetch("b", "2025-12-19", total=10, fetched=9, delay="2h", now=T0)
    assert [job.execute_at - T0 for job in queue.jobs()] == [timedelta(minutes=45), timedelta(hours=2)]


def test_a_second_report_adds_no_duplicate(queue: RetryQueue) -> None:
    queue.report_fetch("balthazar", "2025-12-19", total=650, fetched=647, now=T0)
    again = queue.report_fetch("balthazar", "2025-12-19", total=650, fetched=648, now=T0)
    assert again.retry is not None
    assert again.retry.outcome == "exists"
    assert len(queue.jobs()) == 1


def test_report_validates_client_and_date(queue: RetryQueue) -> None:
    with pytest.raises(InvalidInput):
        queue.report_fetch("-x", "2025-12-19", total=1, fetched=1)
    with pytest.raises(InvalidInput):
        queue.report_fetch("x", "2025-12-32", total=1, fetched=1)


# -- adaptive delays: the decision logged, recorded on the job, and the follow-ups of a run ------------------

BY_STATUS = DelayPolicy(by_status={FetchStatus.DEGRADED: 60, FetchStatus.ERROR: 20})
OWNER = Owner(host="h", pid=1)


def adaptive(store: Store | None = None, **settings: object) -> RetryQueue:
    """A queue whose `[report] delay` is 60 minutes for DEGRADED and 20 for ERROR."""
    config = make_config(["true"], thresholds=InconsistencyThresholds(delay=BY_STATUS), **settings)
    return RetryQueue(store or MemoryStore(), config=config)


def start_run(queue: RetryQueue, job: Job, at: datetime) -> Job:
    """Claim ``job`` as `process` would at ``at``: its workflow is running and may report from inside."""
    claim = lifecycle.claim(owner=OWNER, run_id=f"run-{job.attempt}", now=at, lease=timedelta(minutes=6))
    return queue.store.update({job.id: claim})[job.id]  # type: ignore[return-value]


def end_run(queue: RetryQueue, job: Job, at: datetime, exit_code: int = 0) -> Job:
    """Record the end of the run of ``job`` (started at ``at``, 30 seconds long)."""
    result = RunResult(started_at=at, finished_at=at + timedelta(seconds=30), exit_code=exit_code, output_tail="")
    finish = lifecycle.finish(f"run-{job.attempt}", result, queue.config.workflow(), due_window=timedelta(0))
    return queue.store.update({job.id: finish})[job.id]  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("fetched", "level", "line"),
    [
        (
            647,
            logging.WARNING,
            "DEGRADED: 3 of 650 missing (0.46%), tolerated (at most 3, or at most 0.50%); "
            "retry scheduled in 60 minutes (delay for DEGRADED): job {id}, due 2025-12-19T11:00:00.000Z, "
            "attempt 1 of 3",
        ),
        (
            600,
            logging.ERROR,
            "ERROR: 50 of 650 missing (7.69%), beyond the threshold (more than 3 and more than 0.50%); "
            "retry scheduled in 20 minutes (delay for ERROR): job {id}, due 2025-12-19T10:20:00.000Z, attempt 1 of 3",
        ),
    ],
)
def test_the_decision_is_in_the_one_logged_line(
    caplog: pytest.LogCaptureFixture, fetched: int, level: int, line: str
) -> None:
    queue = adaptive()
    with caplog.at_level(logging.INFO, logger="retryq"):
        report = queue.report_fetch("balthazar", "2025-12-19", total=650, fetched=fetched, now=T0)
    assert report.retry is not None
    [record] = caplog.records
    assert (record.levelno, record.getMessage()) == (level, line.format(id=report.retry.job.id))
    assert report.decision == Decision(report.delay_minutes or 0, f"delay for {report.assessment.status}")


def test_the_one_configured_delay_is_recorded_without_a_reason(queue: RetryQueue) -> None:
    report = queue.report_fetch("balthazar", "2025-12-19", total=650, fetched=647, now=T0)
    assert report.decision == Decision(60, "")
    [job] = queue.jobs()
    assert job.detection is not None
    assert (job.detection.status, job.detection.delay_minutes, job.detection.reason) == ("DEGRADED", 60, None)


def test_a_delay_given_by_the_caller_overrides_the_policy(caplog: pytest.LogCaptureFixture) -> None:
    queue = adaptive()
    with caplog.at_level(logging.INFO, logger="retryq"):
        report = queue.report_fetch("balthazar", "2025-12-19", total=650, fetched=600, delay="2h", now=T0)
    assert report.decision == Decision(120, "as asked")
    [job] = queue.jobs()
    assert job.execute_at == T0 + timedelta(hours=2)
    assert job.detection is not None
    assert (job.detection.delay_minutes, job.detection.reason) == (120, "as asked")
    assert "; retry scheduled in 120 minutes (as asked): job " in caplog.records[0].getMessage()


def test_a_follow_up_from_inside_a_run_is_spaced_by_the_workflow_backoff(caplog: pytest.LogCaptureFixture) -> None:
    """A chain whose source stays incomplete: each run reports ERROR again; the waits double after attempt 1."""
    queue = adaptive(backoff=exponential(factor=2), max_attempts=4)
    first = queue.report_fetch("balthazar", "2025-12-19", total=650, fetched=600, now=T0)
    assert first.retry is not None
    job, due = first.retry.job, T0 + timedelta(minutes=20)
    waits = []
    for attempt in (1, 2, 3):
        assert (job.attempt, job.execute_at) == (attempt, due)
        job = start_run(queue, job, due)
        with caplog.at_level(logging.INFO, logger="retryq"):
            caplog.clear()
            report = queue.report_fetch(
                "balthazar", "2025-12-19", total=650, fetched=610, now=due + timedelta(seconds=10)
            )
        assert report.retry is not None
        assert report.retry.outcome == "follow_up"
        waits.append((report.delay_minutes, report.decision))
        job = end_run(queue, job, due, exit_code=3)  # `retryq report` exits 3 for ERROR
        assert job.status is JobStatus.PENDING
        assert job.execute_at == report.next_due
        due = job.execute_at
    assert waits == [
        (20, Decision(20, "delay for ERROR")),  # after attempt 1: what an exit 75 would wait, the verdict's delay
        (40, Decision(40, "backoff after attempt 2 on the 20-minute delay for ERROR")),
        (80, Decision(80, "backoff after attempt 3 on the 20-minute delay for ERROR")),
    ]
    assert (
        caplog.records[0]
        .getMessage()
        .endswith(
            f"running now: attempt 4 of 4 will be due {format_utc(due)} at the earliest "
            f"(80 minutes after this one, backoff after attempt 3 on the 20-minute delay for ERROR; job {job.id})"
        )
    )
    assert job.detection is not None
    assert (job.detection.attempt, job.detection.delay_minutes) == (1, 20)  # the first verdict is kept


def test_a_chain_scheduled_without_report_records_its_first_verdict_at_a_follow_up() -> None:
    queue = adaptive()
    created = queue.schedule("balthazar", "2025-12-19", 0, now=T0)
    job = start_run(queue, created.job, T0)
    assert job.detection is None
    report = queue.report_fetch("balthazar", "2025-12-19", total=650, fetched=649, now=T0 + timedelta(seconds=5))
    assert report.retry is not None
    [job] = queue.jobs()
    assert (job.follow_up_minutes, job.detection) == (
        60,
        Detection(
            status="DEGRADED",
            total=650,
            missing=1,
            ratio=1 / 650,
            delay_minutes=60,
            reason="delay for DEGRADED",
            attempt=2,
        ),
    )
