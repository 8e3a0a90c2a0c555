"""The rules every store keeps, as pure functions: due order, caps, the claim's effect, one open job per key."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from retryq.record import lifecycle, rules
from retryq.record.errors import OpenJobExists
from retryq.record.models import JobStatus, Owner

from ..helpers import T0, make_job

OWNER = Owner(host="h", pid=1)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def pending(minutes: int, position: int, workflow: str = "default", ident: str | None = None) -> tuple[Any, ...]:
    """A candidate: a pending job due ``minutes`` after T0, at ``position`` in the queue; the item is its id."""
    name = ident or f"j{position}"
    return (at(minutes), position, "pending", workflow, name, name)


def test_the_oldest_due_comes_first_and_ties_go_by_queue_order() -> None:
    candidates = [pending(5, 0), pending(1, 1), pending(5, 2), pending(0, 4), pending(0, 3)]
    assert rules.choose(candidates, due_by=at(10), free={"default": 10}, limit=10) == ["j3", "j4", "j1", "j0", "j2"]


def test_each_workflow_takes_its_free_slots_and_the_limit_bounds_all() -> None:
    candidates = [pending(n, n, "ftp" if n % 2 else "default") for n in range(8)]
    due = at(60)
    assert rules.choose(candidates, due_by=due, free={"default": 1, "ftp": 5}, limit=3) == ["j0", "j1", "j3"]
    assert rules.choose(candidates, due_by=due, free={"default": 1}, limit=10) == ["j0"]  # no slots: never claimed
    assert rules.choose(candidates, due_by=due, free={"default": 5}, limit=0) == []
    assert rules.choose(candidates, due_by=due, free={"default": -2, "ftp": 1}, limit=5) == ["j1"]  # a cap took all


def test_a_job_turned_down_takes_no_slot() -> None:
    candidates = [pending(0, 0, ident="broken"), pending(1, 1, ident="fine")]
    chosen = rules.choose(candidates, due_by=at(5), free={"default": 1}, limit=5, accept=lambda item: item != "broken")
    assert chosen == ["fine"]


def test_a_cap_bounds_the_free_slots_by_what_runs_in_the_whole_store() -> None:
    free = rules.free_slots({"default": 4, "ftp": 2}, {"default": 3, "api": 1}, {"default": 2, "api": 5})
    assert free == {"default": 1, "ftp": 2}
    assert rules.free_slots({"default": 4}, {"default": 1}, {"default": 3}) == {"default": -2}  # none free


@pytest.mark.parametrize(
    ("candidate", "taken"),
    [
        ((at(0), 0, "pending", "default", "a", "a"), True),  # due exactly now
        ((at(1), 0, "pending", "default", "a", "a"), False),  # not yet
        ((None, 0, "pending", "default", "a", "a"), False),  # a record whose executeAt cannot be read
        ((at(-5), 0, "running", "default", "a", "a"), False),
        ((at(-5), 0, "failed", "default", "a", "a"), False),
        ((at(-5), 0, "pending", "unknown", "a", "a"), False),  # a workflow the claimant does not run
        ((at(-5), 0, "pending", "default", "done", "done"), False),  # run once by this process already
    ],
)
def test_what_a_claim_may_take(candidate: tuple[Any, ...], taken: bool) -> None:
    chosen = rules.choose([candidate], due_by=T0, free={"default": 5}, limit=5, exclude=frozenset({"done"}))
    assert bool(chosen) is taken


def test_a_claim_marks_the_job_running_for_its_owner_until_its_lease_ends() -> None:
    job = make_job(max_attempts=None, follow_up_minutes=30, workflow_pid=12)
    claimed = rules.claimed(job, owner=OWNER, run_id="r1", now=T0, lease=timedelta(minutes=6), max_attempts=4)
    assert claimed.status is JobStatus.RUNNING
    assert (claimed.owner, claimed.run_id, claimed.started_at, claimed.lease_until) == (
        OWNER,
        "r1",
        T0,
        T0 + timedelta(minutes=6),
    )
    assert (claimed.max_attempts, claimed.follow_up_minutes, claimed.workflow_pid, claimed.finished_at) == (
        4,
        None,
        None,
        None,
    )
    own_limit = make_job(max_attempts=2)
    assert (
        rules.claimed(own_limit, owner=OWNER, run_id="r", now=T0, lease=timedelta(1), max_attempts=4).max_attempts == 2
    )
    assert lifecycle.claim(owner=OWNER, run_id="r1", now=T0, lease=timedelta(minutes=6), max_attempts=4)(job) == claimed


def test_when_a_job_ended() -> None:
    assert rules.ended_at(make_job(finished_at=at(9), started_at=at(8))) == at(9)
    assert rules.ended_at(make_job(started_at=at(8))) == at(8)
    assert rules.ended_at(make_job(execute_at=at(7))) == at(7)  # a record of the original scripts
    assert rules.ended_field({"finishedAt": "x", "startedAt": "y"}) == "x"
    assert rules.ended_field({"executeAt": "z"}) == "z"
    assert rules.ended_field({}) is None
    assert rules.active_at(make_job(scheduled_at=at(1), execute_at=at(60))) == at(1)


def test_the_status_sets() -> None:
    assert {"pending", "running"} == rules.OPEN_VALUES
    assert {"completed", "failed", "cancelled"} == rules.FINISHED_VALUES
    assert {JobStatus.FAILED, JobStatus.CANCELLED} == rules.REQUEUEABLE_STATUSES
    assert {JobStatus.PENDING} == rules.CANCELLABLE_STATUSES
    assert rules.OPEN_STATUSES.isdisjoint(rules.FINISHED_STATUSES)


def test_opening_a_key() -> None:
    pending, failed = make_job(), make_job(status=JobStatus.FAILED)
    assert rules.opens_a_key(None, pending)
    assert rules.opens_a_key(failed, pending)  # a requeue
    assert not rules.opens_a_key(pending, pending.model_copy(update={"status": JobStatus.RUNNING}))  # a claim
    assert rules.opens_a_key(pending, pending.model_copy(update={"client_id": "other"}))
    assert not rules.opens_a_key(pending, failed)


def test_a_key_held_by_another_open_job_is_a_conflict_naming_both() -> None:
    job = make_job(id="new", workflow="ftp")
    conflict = rules.key_conflict(job, ["new", "held"])
    assert isinstance(conflict, OpenJobExists)
    assert str(conflict) == "job held is already open for balthazar 2025-12-19 (workflow ftp)"
    assert conflict.job_ids == ("new", "held")
    assert rules.key_conflict(job, ["new"]) is None
    assert rules.key_conflict(make_job(status=JobStatus.FAILED), ["held"]) is None


# -- priorities, and the bound that keeps them from starving a job ----------------------------------


def ranked(minutes: int, position: int, priority: int) -> tuple[Any, ...]:
    """A pending candidate of the default workflow with a priority; the item is its (id, priority)."""
    return (at(minutes), position, "pending", "default", f"j{position}", (f"j{position}", priority))


def ids(chosen: list[tuple[str, int]]) -> list[str]:
    return [ident for ident, _ in chosen]


def by_priority(item: tuple[str, int]) -> int:
    return item[1]


def test_higher_priorities_come_first_then_the_oldest_due_then_queue_order() -> None:
    candidates = [ranked(0, 0, 0), ranked(5, 1, 10), ranked(1, 2, 10), ranked(-5, 3, -3), ranked(1, 4, 10)]
    chosen = rules.choose(candidates, due_by=at(10), free={"default": 10}, limit=10, priority=by_priority)
    assert ids(chosen) == ["j2", "j4", "j1", "j0", "j3"]
    # Without priorities (every job at 0, or no priority given), the due order alone.
    unranked = rules.choose(candidates, due_by=at(10), free={"default": 10}, limit=10)
    assert ids(unranked) == ["j3", "j0", "j2", "j4", "j1"]


def test_a_job_due_longer_than_max_wait_goes_before_higher_priorities_that_became_due_after_it() -> None:
    now = at(60)
    candidates = [
        ranked(0, 0, -50),  # due for 60 minutes: longer than max_wait
        ranked(10, 1, 100),  # due for 50 minutes: within max_wait, the highest priority
        ranked(-30, 2, 100),  # due for 90 minutes, high priority: waited longer too, and longer than j0
        ranked(5, 3, 0),  # due for 55 minutes: longer than max_wait
        ranked(59, 4, 0),
    ]
    chosen = rules.choose(
        candidates,
        due_by=now,
        free={"default": 10},
        limit=10,
        priority=by_priority,
        overdue_before=rules.overdue_cutoff(now, timedelta(minutes=52)),
    )
    # Those that waited too long, oldest due first whatever their priority; then by priority.
    assert ids(chosen) == ["j2", "j0", "j3", "j1", "j4"]
    assert ids(chosen[:2]) == ["j2", "j0"]
    assert rules.overdue_cutoff(now, None) is None  # no bound: priorities alone


def test_the_bound_is_strict_a_job_due_exactly_max_wait_ago_has_not_waited_longer() -> None:
    now = at(60)
    candidates = [ranked(0, 0, 0), ranked(30, 1, 5)]
    cutoff = rules.overdue_cutoff(now, timedelta(minutes=60))
    chosen = rules.choose(
        candidates, due_by=now, free={"default": 2}, limit=2, priority=by_priority, overdue_before=cutoff
    )
    assert ids(chosen) == ["j1", "j0"]


def test_the_order_of_a_claim_is_one_key() -> None:
    cutoff = at(0)
    assert rules.claim_order(at(-1), 3, -100, cutoff) < rules.claim_order(at(-2), 4, 100, at(-3))
    assert rules.claim_order(at(-1), 3, -100, cutoff) < rules.claim_order(at(5), 0, 100, cutoff)
    assert rules.claim_order(at(5), 1, 7, None) < rules.claim_order(at(1), 0, 6, None)
    assert rules.claim_order(at(1), 1, 7, None) < rules.claim_order(at(5), 0, 7, None)
