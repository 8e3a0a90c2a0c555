"""The life of a job, as pure functions from one job state to the next.

Each function here is used as a store *mutation*: it receives the job as it is in the store at
that instant and returns the new job, or the same object when the change no longer applies
(for instance a result arriving for a claim that another process has since recovered).
Nothing here does I/O or reads the clock: ``now`` is always passed in.
"""

from __future__ import annotations

__all__ = [
    "DUE_WINDOW",
    "EX_TEMPFAIL",
    "cancel",
    "claim",
    "classify",
    "confirm_failure",
    "finish",
    "give_back",
    "holds",
    "new_job",
    "next_delay",
    "next_due",
    "on_duplicate",
    "record_pid",
    "recover",
    "release",
    "requeue",
    "unclaim",
    "withhold",
]

import functools
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from . import rules
from .backoff import Backoff, RetryState
from .limits import DUE_WINDOW
from .models import HISTORY_LIMIT, Attempt, Job, JobKey, JobStatus, Outcome, Owner, new_job_id
from .timeutil import to_utc


class AttemptSettings(Protocol):
    """What a job's workflow says about its attempts (:class:`retryq.WorkflowSettings` is one)."""

    @property
    def max_attempts(self) -> int: ...
    @property
    def no_retry_exit_codes(self) -> frozenset[int]: ...
    @property
    def timeout(self) -> timedelta: ...
    @property
    def backoff(self) -> Backoff: ...


class RunResult(Protocol):
    """How a run ended, as the runner tells it (:class:`retryq.running.runner.RunResult` is one)."""

    @property
    def started_at(self) -> datetime: ...
    @property
    def finished_at(self) -> datetime: ...
    @property
    def exit_code(self) -> int | None: ...
    @property
    def timed_out(self) -> bool: ...
    @property
    def stopped(self) -> bool: ...
    @property
    def output_tail(self) -> str: ...


#: sysexits' EX_TEMPFAIL: "still incomplete, try again later".
EX_TEMPFAIL = 75

_Mutation = Callable[[Job], Job]


def new_job(
    key: JobKey,
    *,
    delay_minutes: int,
    now: datetime,
    max_attempts: int,
    execute_at: datetime | None = None,
) -> Job:
    """A pending job for ``key``, due ``delay_minutes`` from ``now`` (or at ``execute_at``)."""
    now = to_utc(now)
    return Job(
        id=new_job_id(),
        workflow=key.workflow,
        client_id=key.client,
        date=key.date,
        scheduled_at=now,
        execute_at=to_utc(execute_at) if execute_at else now + timedelta(minutes=delay_minutes),
        delay_minutes=delay_minutes,
        max_attempts=max_attempts,
    )


def on_duplicate(delay_minutes: int) -> _Mutation:
    """What scheduling does to an open job of the same key: a pending one is left as it is;
    a running one records a follow-up, so its next attempt comes ``delay_minutes`` after the run."""

    def mutate(job: Job) -> Job:
        if job.status is JobStatus.RUNNING:
            return job.model_copy(update={"follow_up_minutes": delay_minutes})
        return job

    return mutate


def claim(*, owner: Owner, run_id: str, now: datetime, lease: timedelta, max_attempts: int = 3) -> _Mutation:
    """Mark a due job as running for ``owner`` until ``now + lease`` at the latest (:func:`rules.claimed`)."""
    return functools.partial(rules.claimed, owner=owner, run_id=run_id, now=now, lease=lease, max_attempts=max_attempts)


def record_pid(run_id: str, pid: int) -> _Mutation:
    """Remember the workflow's process group, so that a later recovery can make sure it is gone."""

    def mutate(job: Job) -> Job:
        if not holds(job, run_id):
            return job
        return job.model_copy(update={"workflow_pid": pid})

    return mutate


def classify(result: RunResult, job: Job, settings: AttemptSettings) -> Outcome:
    """Turn a run's exit into an outcome: the exit-code protocol (docs/concepts.md)."""
    if result.stopped:
        return Outcome.STOPPED
    if result.timed_out:
        return Outcome.TIMEOUT
    if result.exit_code in settings.no_retry_exit_codes:
        return Outcome.FATAL
    if result.exit_code == 0:
        return Outcome.INCOMPLETE if job.follow_up_minutes is not None else Outcome.SUCCEEDED
    if result.exit_code == EX_TEMPFAIL:
        return Outcome.INCOMPLETE
    return Outcome.FAILED


def next_delay(job: Job, settings: AttemptSettings) -> timedelta:
    """The wait before the attempt after ``job.attempt``: a follow-up's own delay, else the backoff."""
    if job.follow_up_minutes is not None:
        return timedelta(minutes=job.follow_up_minutes)
    seconds = settings.backoff(RetryState(job.attempt, base_delay=job.delay_minutes * 60.0))
    return timedelta(seconds=min(seconds, 30 * 86400))


def next_due(job: Job, wait: timedelta, *, now: datetime, due_window: timedelta = DUE_WINDOW) -> datetime:
    """When the attempt after the running ``job.attempt`` is due: ``wait`` after this attempt was due.

    Counting from the due time rather than from the end of the run keeps a chain on the cron ticks it
    started on (11:00, 12:00, 13:00) however long each run takes. An attempt that started late (cron
    was down, the machine off) counts from its start, less ``due_window`` so that the next one still
    falls on a tick, and the source gets its full wait. Never before ``now``.
    """
    anchor = job.execute_at
    if job.started_at is not None:
        anchor = max(anchor, job.started_at - due_window)
    return max(to_utc(anchor + wait), to_utc(now))


def finish(
    run_id: str, result: RunResult, settings: AttemptSettings, *, due_window: timedelta = DUE_WINDOW
) -> _Mutation:
    """Record a run's result: completed, back to pending for the next attempt, or failed for good."""

    def mutate(job: Job) -> Job:
        if not holds(job, run_id):
            return job
        outcome = classify(result, job, settings)
        if outcome is Outcome.STOPPED:
            return _release(job, result.finished_at, result)
        entry = Attempt(
            attempt=job.attempt,
            started_at=result.started_at,
            finished_at=result.finished_at,
            outcome=outcome,
            exit_code=result.exit_code,
            output_tail=result.output_tail or None,
        )
        error = None
        if outcome is not Outcome.SUCCEEDED:
            error = _describe(outcome, result, settings) + (f"\n{result.output_tail}" if result.output_tail else "")
        return _after_attempt(
            job,
            entry,
            outcome,
            result.finished_at,
            settings,
            due_window,
            last_exit_code=result.exit_code,
            last_error=error,
        )

    return mutate


def recover(
    run_id: str | None,
    now: datetime,
    settings: AttemptSettings,
    reason: str,
    *,
    due_window: timedelta = DUE_WINDOW,
) -> _Mutation:
    """Close an attempt whose runner is gone: it counts, so a job that kills its runner cannot loop."""

    def mutate(job: Job) -> Job:
        if job.status is not JobStatus.RUNNING or job.run_id != run_id:
            return job
        entry = Attempt(
            attempt=job.attempt,
            started_at=job.started_at or now,
            finished_at=now,
            outcome=Outcome.INTERRUPTED,
            output_tail=reason,
        )
        return _after_attempt(
            job, entry, Outcome.INTERRUPTED, now, settings, due_window, last_exit_code=None, last_error=reason
        )

    return mutate


def release(run_id: str, now: datetime) -> _Mutation:
    """Give a claimed job back untouched (retryq is stopping, or the run could not start)."""

    def mutate(job: Job) -> Job:
        if not holds(job, run_id):
            return job
        return _release(job, now, None)

    return mutate


def unclaim(run_id: str) -> _Mutation:
    """Undo a claim whose run never started (its claimant never heard of it: the reply to its commit
    was lost): the job is pending again as before the claim, due when it was, no attempt counted."""

    def mutate(job: Job) -> Job:
        if not holds(job, run_id):
            return job
        last_start = job.history[-1].started_at if job.history else None
        return job.model_copy(update={"status": JobStatus.PENDING, "started_at": last_start, **_unclaimed()})

    return mutate


def cancel(now: datetime) -> _Mutation:
    """Cancel a pending job; other states are left as they are (the caller says why)."""

    def mutate(job: Job) -> Job:
        if job.status is not JobStatus.PENDING:
            return job
        return job.model_copy(update={"status": JobStatus.CANCELLED, "finished_at": now, "lease_until": None})

    return mutate


def requeue(now: datetime, execute_at: datetime, max_attempts: int | None = None) -> _Mutation:
    """Give a failed or cancelled job a fresh chain of attempts, due at ``execute_at``."""

    def mutate(job: Job) -> Job:
        if job.status not in rules.REQUEUEABLE_STATUSES:
            return job
        return job.model_copy(
            update={
                "status": JobStatus.PENDING,
                "attempt": 1,
                "max_attempts": max_attempts or job.max_attempts,
                "execute_at": execute_at,
                "scheduled_at": now,
                "finished_at": None,
                "follow_up_minutes": None,
            }
        )

    return mutate


# -- upstream incidents (the breaker's rules: retryq.record.incidents) -----------------------------


def give_back(attempt: int, finished_at: datetime, incident: str, now: datetime, *, reopen: bool = False) -> _Mutation:
    """Give back attempt ``attempt`` (the one that ended at ``finished_at``) for upstream incident ``incident``.

    The job is pending again at that attempt number (not counted toward ``max_attempts``), due at
    once (``now``), so that it runs as soon as its workflow is released; the attempt stays in its
    history, its outcome kept, marked with the incident's id. It applies to a job that waits for
    its next attempt (not started yet), or that waits at that very attempt for the breaker's
    verdict (:func:`withhold`); with ``reopen``, also to a job this attempt has just ended
    ``failed`` (only in the step that wrote it: then no other job of its key can be open). A job
    that ran again since, or ended another way, or whose attempt was given back already, is left
    as it is.
    """

    def mutate(job: Job) -> Job:
        index = _attempt_entry(job, attempt, finished_at)
        if index is None:
            return job
        if job.status is JobStatus.PENDING:
            if job.attempt not in (attempt, attempt + 1):
                return job
        elif not (reopen and job.status is JobStatus.FAILED and job.attempt == attempt):
            return job
        history = list(job.history)
        history[index] = history[index].model_copy(update={"incident": incident})
        return job.model_copy(
            update={
                "status": JobStatus.PENDING,
                "attempt": attempt,
                "execute_at": now,
                "finished_at": None,
                "history": tuple(history),
            }
        )

    return mutate


def withhold(attempt: int, finished_at: datetime, until: datetime) -> _Mutation:
    """Hold back the end of a job that its last attempt has just ended ``failed`` while the breaker counts.

    The failure may yet turn out to be an upstream outage's (an incident that opens before ``until``
    gives the attempt back); until then the job is pending at that attempt, due ``until``, and
    :func:`confirm_failure` ends it ``failed`` once nothing gave it back.
    """

    def mutate(job: Job) -> Job:
        if job.status is not JobStatus.FAILED or job.attempt != attempt:
            return job
        index = _attempt_entry(job, attempt, finished_at)
        if index is None or job.history[index].outcome is Outcome.FATAL:
            return job
        return job.model_copy(update={"status": JobStatus.PENDING, "execute_at": until, "finished_at": None})

    return mutate


def confirm_failure(attempt: int, finished_at: datetime) -> _Mutation:
    """End ``failed`` a job :func:`withhold` held back, when its failure turned out to be its own: as it
    would have ended then (``finishedAt`` the attempt's end). Any other job is left as it is."""

    def mutate(job: Job) -> Job:
        if job.status is not JobStatus.PENDING or job.attempt != attempt:
            return job
        index = _attempt_entry(job, attempt, finished_at)
        if index is None:
            return job
        return job.model_copy(update={"status": JobStatus.FAILED, "finished_at": job.history[index].finished_at})

    return mutate


def _attempt_entry(job: Job, attempt: int, finished_at: datetime) -> int | None:
    """Where attempt ``attempt`` ended at ``finished_at`` is in ``job``'s history, if it is the last thing the
    job did (only stopped runs after it, which count for nothing), was not given back, and belongs to
    this chain (the job was not requeued since); else None."""
    for index in range(len(job.history) - 1, -1, -1):
        entry = job.history[index]
        if entry.outcome is Outcome.STOPPED:
            continue
        mine = entry.attempt == attempt and entry.finished_at == finished_at and entry.incident is None
        return index if mine and job.scheduled_at <= entry.started_at else None
    return None


# -- helpers -----------------------------------------------------------------------------------


def holds(job: Job, run_id: str) -> bool:
    """Whether run ``run_id`` still holds ``job``: only then do its results, pid and release apply."""
    return job.status is JobStatus.RUNNING and job.run_id == run_id


def _unclaimed() -> dict[str, object]:
    return {"owner": None, "run_id": None, "lease_until": None, "workflow_pid": None, "follow_up_minutes": None}


def _release(job: Job, now: datetime, result: RunResult | None) -> Job:
    history = job.history
    if result is not None:
        stopped = Attempt(
            attempt=job.attempt,
            started_at=result.started_at,
            finished_at=now,
            outcome=Outcome.STOPPED,
            exit_code=result.exit_code,
            output_tail=result.output_tail or None,
        )
        history = (*history, stopped)[-HISTORY_LIMIT:]
    return job.model_copy(update={"status": JobStatus.PENDING, "history": history, **_unclaimed()})


def _after_attempt(
    job: Job,
    entry: Attempt,
    outcome: Outcome,
    now: datetime,
    settings: AttemptSettings,
    due_window: timedelta,
    *,
    last_exit_code: int | None,
    last_error: str | None,
) -> Job:
    history = (*job.history, entry)[-HISTORY_LIMIT:]
    common = {"history": history, "last_exit_code": last_exit_code, "last_error": last_error, **_unclaimed()}
    if outcome is Outcome.SUCCEEDED:
        return job.model_copy(update={"status": JobStatus.COMPLETED, "finished_at": now, **common})
    if outcome is Outcome.FATAL or job.attempt >= (job.max_attempts or settings.max_attempts):
        return job.model_copy(update={"status": JobStatus.FAILED, "finished_at": now, **common})
    return job.model_copy(
        update={
            "status": JobStatus.PENDING,
            "attempt": job.attempt + 1,
            "execute_at": next_due(job, next_delay(job, settings), now=now, due_window=due_window),
            "finished_at": None,
            **common,
        }
    )


def _describe(outcome: Outcome, result: RunResult, settings: AttemptSettings) -> str:
    if outcome is Outcome.TIMEOUT:
        return f"timed out after {settings.timeout.total_seconds():g}s (exit {result.exit_code})"
    if outcome is Outcome.INCOMPLETE and result.exit_code == 0:
        return "exit 0 with a follow-up retry requested"
    if outcome is Outcome.INCOMPLETE:
        return f"exit {result.exit_code}: still incomplete"
    if outcome is Outcome.FATAL:
        return f"exit {result.exit_code}: not retried (listed in no_retry_exit_codes)"
    return f"exit {result.exit_code}"
