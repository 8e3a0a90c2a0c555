"""The BOAMP fetcher's tolerance rule and the fetcher's API: judge a fetch, schedule a retry when data is missing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from retryq import Config, MemoryStore, RetryQueue
from retryq.errors import InvalidInput
from retryq.inconsistency import FetchStatus, InconsistencyThresholds, assess
from retryq.models import JobStatus

from .helpers import T0


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
