"""Priorities in the library: schedule, report_fetch and defer give them; a workflow's configuration, the default."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from retryq import Config, MemoryStore, RetryQueue, WorkflowSettings, defer, retry
from retryq.record.errors import InvalidInput
from retryq.stores import Claimant, ClaimRequest

from ..helpers import T0


def queue(priority: int = 0) -> RetryQueue:
    workflows = {"default": WorkflowSettings("default"), "urgent": WorkflowSettings("urgent", priority=priority)}
    return RetryQueue(MemoryStore(), config=Config(workflows=workflows))


def test_schedule_takes_a_priority_else_the_workflows() -> None:
    jobs = queue(priority=40)
    assert jobs.schedule("a", "2025-12-19", 60, now=T0).job.priority == 0
    assert jobs.schedule("b", "2025-12-19", 60, priority=-7, now=T0).job.priority == -7
    assert jobs.schedule("c", "2025-12-19", 60, workflow="urgent", now=T0).job.priority == 40
    assert jobs.schedule("d", "2025-12-19", 60, workflow="urgent", priority=0, now=T0).job.priority == 0
    # A pending job of the key is there already: nothing is added, it keeps its own.
    again = jobs.schedule("b", "2025-12-19", 60, priority=99, now=T0)
    assert (again.outcome, again.job.priority) == ("exists", -7)


@pytest.mark.parametrize("bad", [101, -101, 1.5, "5", True])
def test_a_priority_out_of_bounds_is_refused(bad: Any) -> None:
    with pytest.raises(InvalidInput, match="priority must be a whole number from -100 to 100"):
        queue().schedule("a", "2025-12-19", 60, priority=bad, now=T0)
    with pytest.raises(InvalidInput, match="priority must be a whole number"):
        defer(queue(), "a", "2025-12-19", priority=bad)


def test_report_fetch_schedules_its_retry_with_the_priority() -> None:
    jobs = queue()
    report = jobs.report_fetch("a", "2025-12-19", total=10, fetched=2, priority=12, now=T0)
    assert report.retry is not None
    assert report.retry.job.priority == 12


def test_defer_hands_the_work_over_with_its_priority() -> None:
    jobs = queue()

    @retry(max_attempts=1, sleep=lambda _: None, on_exhausted=defer(jobs, "a", "2025-12-19", priority=30))
    def fetch() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        fetch()
    [job] = jobs.jobs()
    assert job.priority == 30


def test_claims_take_the_higher_priority_first_until_a_job_waited_longer_than_max_wait() -> None:
    jobs = queue()
    jobs.schedule("low", "2025-12-19", at=T0 - timedelta(hours=2), now=T0 - timedelta(hours=3))
    jobs.schedule("high", "2025-12-19", priority=50, at=T0 - timedelta(minutes=1), now=T0 - timedelta(hours=3))

    def first(max_wait: timedelta | None) -> str:
        from retryq.record.models import Owner

        claimant = Claimant(Owner(host="h", pid=1), T0, {"default": timedelta(minutes=5)}, {"default": 3})
        request = ClaimRequest(due_by=T0, limit=1, claimant=claimant, slots={"default": 1}, max_wait=max_wait)
        [claimed] = MemoryStore(jobs.jobs()).claim(request)[0]
        return claimed.client_id

    assert first(None) == "high"
    assert first(timedelta(hours=3)) == "high"
    assert first(timedelta(hours=1)) == "low"  # due for two hours: more than max_wait


def test_due_lists_jobs_in_the_order_claims_take_them() -> None:
    """What `process --dry-run` shows: overdue (past max_wait) first, then by priority, then by due time."""
    jobs = queue()
    jobs.schedule("old-low", "2025-12-19", 0, now=T0)  # due at T0: two hours late at T0 + 2h
    jobs.schedule("low", "2025-12-19", 0, now=T0 + timedelta(minutes=90))
    jobs.schedule("high", "2025-12-19", 0, priority=9, now=T0 + timedelta(minutes=100))
    jobs.schedule("mid", "2025-12-19", 0, priority=3, now=T0 + timedelta(minutes=80))
    jobs.schedule("later", "2025-12-19", 0, priority=100, now=T0 + timedelta(hours=3))  # not due yet
    due = jobs.due(T0 + timedelta(hours=2))
    assert [job.client_id for job in due] == ["old-low", "high", "mid", "low"]
