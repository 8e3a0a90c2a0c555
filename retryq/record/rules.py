"""The rules every store keeps, written once in plain Python: which jobs a claim takes and in what
order (priority, due time, and the bound that keeps priorities from starving a job), how caps
bound it, what a claim writes on a job, one open job per key, when a job ended, and which statuses
are open, finished or requeueable.

The stores that hold whole documents (the JSON file, memory) apply these functions as they are.
A backend whose engine decides in its own language (PostgreSQL's SQL, Redis' Lua) keeps its own statements:
the contract suite (:class:`retryq.testing.StoreContract`) runs it and these rules on the same
generated queues and checks that they agree.
"""

from __future__ import annotations

__all__ = [
    "CANCELLABLE_STATUSES",
    "FINISHED_STATUSES",
    "FINISHED_VALUES",
    "OPEN_STATUSES",
    "OPEN_VALUES",
    "OVERDUE_RANK",
    "REQUEUEABLE_STATUSES",
    "active_at",
    "choose",
    "claim_order",
    "claimed",
    "ended_at",
    "ended_field",
    "free_slots",
    "key_conflict",
    "opens_a_key",
    "overdue_cutoff",
]

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import OpenJobExists
from .limits import MAX_PRIORITY
from .models import DEFAULT_WORKFLOW, FINISHED_STATUSES, OPEN_STATUSES, Job, JobStatus, Owner

if TYPE_CHECKING:
    from .views import JobData

T = TypeVar("T")

# -- statuses --------------------------------------------------------------------------------------
# OPEN_STATUSES and FINISHED_STATUSES are defined beside the enum (JobStatus.is_open reads them).

#: What ``requeue`` may put back to pending.
REQUEUEABLE_STATUSES = frozenset({JobStatus.FAILED, JobStatus.CANCELLED})
#: What ``cancel`` may cancel (a running job is stopped by its supervisor, not cancelled).
CANCELLABLE_STATUSES = frozenset({JobStatus.PENDING})
#: The same sets as the strings a stored record holds: a scan compares them without decoding the job.
OPEN_VALUES = frozenset(status.value for status in OPEN_STATUSES)
FINISHED_VALUES = frozenset(status.value for status in FINISHED_STATUSES)
PENDING = JobStatus.PENDING.value
RUNNING = JobStatus.RUNNING.value

# -- when a job ended ------------------------------------------------------------------------------


def ended_at(job: Job) -> datetime:
    """When ``job`` ended: ``finishedAt``, else ``startedAt``, else ``executeAt`` (records of older
    tools lack the first two). What pruning compares with its cutoffs, and what lists show."""
    return job.finished_at or job.started_at or job.execute_at


def ended_field(record: Mapping[str, Any]) -> Any:
    """:func:`ended_at` read from a stored record's fields, undecoded (None when it has none)."""
    return record.get("finishedAt") or record.get("startedAt") or record.get("executeAt")


def active_at(job: JobData) -> datetime:
    """The last time ``job`` was active: when it ended or started, else when it was scheduled
    (``--since``: a job scheduled in the window counts, even if due after it)."""
    return job.finished_at or job.started_at or job.scheduled_at


# -- claims ----------------------------------------------------------------------------------------


def free_slots(slots: Mapping[str, int], caps: Mapping[str, int], running: Mapping[str, int]) -> dict[str, int]:
    """How many jobs of each workflow a claim may take: the claimant's free ``slots``, bounded by a
    store-wide cap (``caps[w]``, less what already runs in the whole store, ``running[w]``)."""
    free = dict(slots)
    for workflow, cap in caps.items():
        if workflow in free:
            free[workflow] = min(free[workflow], cap - running.get(workflow, 0))
    return free


#: Where a job that waited longer than ``max_wait`` ranks: above every priority (at most MAX_PRIORITY).
OVERDUE_RANK = MAX_PRIORITY + 1


def overdue_cutoff(now: datetime, max_wait: timedelta | None) -> datetime | None:
    """Before when a due job has waited longer than ``max_wait`` at ``now`` (None: no bound, priorities alone)."""
    return None if max_wait is None else now - max_wait


def claim_order(
    execute_at: datetime, position: int, priority: int, overdue_before: datetime | None
) -> tuple[int, datetime, int]:
    """The order in which a claim takes due jobs, as one sort key (smallest first).

    1. A job due before ``overdue_before`` (it has waited longer than ``max_wait``: see
       :func:`overdue_cutoff`) comes first, whatever its priority: the oldest ``executeAt`` first.
    2. Then the others: the highest ``priority`` first, then the oldest ``executeAt``.
    3. Ties in queue order (``position``).

    So a job due for longer than ``max_wait`` is taken before every job of a higher priority that
    became due after it, and no priority starves a job for longer than ``max_wait`` plus the time
    the jobs ahead of it take. PostgreSQL's claim statement and Redis' claim script sort by the same
    key (``OVERDUE_RANK`` as the rank of an overdue job), and the contract suite checks that they agree.
    """
    overdue = overdue_before is not None and execute_at < overdue_before
    return (-(OVERDUE_RANK if overdue else priority), execute_at, position)


def choose(
    candidates: Iterable[tuple[datetime | None, int, object, str, str | None, T]],
    *,
    due_by: datetime,
    free: Mapping[str, int],
    limit: int,
    exclude: Collection[str] = (),
    accept: Callable[[T], bool] | None = None,
    priority: Callable[[T], int] | None = None,
    overdue_before: datetime | None = None,
) -> list[T]:
    """The jobs a claim takes, in the order it takes them.

    ``candidates`` are ``(executeAt, position in the queue, status, workflow, id, item)``. A claim
    takes a job that is pending, of a workflow the claimant runs (a key of ``free``), not in
    ``exclude`` (a ``process`` run starts each job once) and due (``executeAt <= due_by``), in
    :func:`claim_order` (``priority(item)`` gives an item's priority, 0 without it); each workflow
    up to its ``free`` slots, ``limit`` in all. ``accept`` may turn an item down (a record that is
    not a valid job): it takes no slot.
    """
    due = [
        (claim_order(candidate[0], candidate[1], priority(candidate[5]) if priority else 0, overdue_before), candidate)
        for candidate in candidates
        if candidate[2] == PENDING
        and candidate[3] in free
        and candidate[0] is not None
        and candidate[0] <= due_by
        and not (exclude and candidate[4] in exclude)
    ]
    # (executeAt, position) is unique to each candidate: the keys sort without comparing the rest.
    due.sort(key=lambda pair: pair[0])
    room = dict(free)
    chosen: list[T] = []
    for _, (_, _, _, workflow, _, item) in due:
        if len(chosen) >= limit:
            break
        if room[workflow] > 0 and (accept is None or accept(item)):
            room[workflow] -= 1
            chosen.append(item)
    return chosen


def claimed(job: Job, *, owner: Owner, run_id: str, now: datetime, lease: timedelta, max_attempts: int) -> Job:
    """What a claim writes on a due job: running for ``owner`` until ``now + lease`` at the latest.

    A job without a limit of its own (written by the original scripts) takes ``max_attempts``,
    the workflow's, from then on.
    """
    return job.model_copy(
        update={
            "status": JobStatus.RUNNING,
            "max_attempts": job.max_attempts or max_attempts,
            "owner": owner,
            "run_id": run_id,
            "started_at": now,
            "finished_at": None,
            "lease_until": now + lease,
            "workflow_pid": None,
            "follow_up_minutes": None,
        }
    )


# -- one open job per workflow, client and date ----------------------------------------------------


def opens_a_key(before: Job | None, after: Job) -> bool:
    """Whether a write of ``after`` (replacing ``before``, None for a new job) opens a key that another
    open job could hold: ``after`` is open, and ``before`` was not, or was for another key."""
    return after.status.is_open and (before is None or not before.status.is_open or before.key != after.key)


def key_conflict(job: Job, holders: Sequence[str]) -> OpenJobExists | None:
    """The error of a write that would open ``job`` beside the open jobs ``holders`` of its key (None if none)."""
    others = [ident for ident in holders if ident != job.id]
    if not others or not job.status.is_open:
        return None
    where = f" (workflow {job.workflow})" if job.workflow != DEFAULT_WORKFLOW else ""
    return OpenJobExists(f"job {others[0]} is already open for {job.client_id} {job.date}{where}", (job.id, *others))
