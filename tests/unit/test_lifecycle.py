"""The job's life as pure transitions: retry chains, the exit-code protocol, recovery, release."""

from __future__ import annotations

from datetime import timedelta

import pytest

from retryq.record import lifecycle
from retryq.record.backoff import exponential
from retryq.record.models import HISTORY_LIMIT, JobStatus, Outcome, Owner
from retryq.running.runner import RunResult
from retryq.settings.config import WorkflowSettings

from ..helpers import T0, make_job

SETTINGS = WorkflowSettings("default", command=("true",))
OWNER = Owner(host="h", pid=1)


def claimed(job=None, *, at=T0 + timedelta(hours=1), run_id="r1"):  # type: ignore[no-untyped-def]
    job = job or make_job()
    return lifecycle.claim(owner=OWNER, run_id=run_id, now=at, lease=timedelta(minutes=6))(job)


def result(code: int | None = 0, *, at=T0 + timedelta(hours=1), seconds: float = 30, **flags: bool) -> RunResult:  # type: ignore[no-untyped-def]
    return RunResult(
        started_at=at, finished_at=at + timedelta(seconds=seconds), exit_code=code, output_tail="out", **flags
    )


@pytest.mark.parametrize(
    ("code", "flags", "follow_up", "outcome"),
    [
        (0, {}, None, Outcome.SUCCEEDED),
        (0, {}, 30, Outcome.INCOMPLETE),
        (75, {}, None, Outcome.INCOMPLETE),
        (1, {}, None, Outcome.FAILED),
        (77, {}, None, Outcome.FATAL),
        (2, {}, None, Outcome.FATAL),
        (143, {"timed_out": True}, None, Outcome.TIMEOUT),
        (143, {"stopped": True}, None, Outcome.STOPPED),
    ],
)
def test_exit_code_protocol(code: int, flags: dict[str, bool], follow_up: int | None, outcome: Outcome) -> None:
    job = make_job(follow_up_minutes=follow_up)
    assert lifecycle.classify(result(code, **flags), job, SETTINGS) is outcome


def test_claim_marks_running_with_owner_and_lease() -> None:
    job = claimed()
    assert job.status is JobStatus.RUNNING
    assert (job.owner, job.run_id) == (OWNER, "r1")
    assert job.lease_until == T0 + timedelta(hours=1, minutes=6)


def test_success_completes() -> None:
    job = lifecycle.finish("r1", result(0), SETTINGS)(claimed())
    assert job.status is JobStatus.COMPLETED
    assert job.finished_at == T0 + timedelta(hours=1, seconds=30)
    assert (job.last_exit_code, job.last_error, job.owner, job.run_id, job.lease_until) == (0, None, None, None, None)
    [attempt] = job.history
    assert (attempt.attempt, attempt.outcome, attempt.exit_code, attempt.output_tail) == (
        1,
        Outcome.SUCCEEDED,
        0,
        "out",
    )


def test_the_hourly_chain_replays_hour_by_hour() -> None:
    """A persistent inconsistency: missing at 10:00 → retry 11:00 still missing → retry 12:00 resolved."""
    job = make_job()  # scheduled 10:00 with 60 minutes: due 11:00
    job = lifecycle.finish("r1", result(75, seconds=0), SETTINGS)(claimed(job, at=T0 + timedelta(hours=1)))
    assert (job.status, job.attempt, job.execute_at) == (JobStatus.PENDING, 2, T0 + timedelta(hours=2))
    assert job.last_error is not None
    assert job.last_error.startswith("exit 75: still incomplete")
    job = lifecycle.finish("r2", result(0, at=T0 + timedelta(hours=2)), SETTINGS)(
        claimed(job, at=T0 + timedelta(hours=2), run_id="r2")
    )
    assert (job.status, job.attempt) == (JobStatus.COMPLETED, 2)
    assert [a.outcome for a in job.history] == [Outcome.INCOMPLETE, Outcome.SUCCEEDED]


def test_attempts_run_out() -> None:
    job = make_job(max_attempts=2)
    job = lifecycle.finish("r1", result(75), SETTINGS)(claimed(job))
    job = lifecycle.finish("r2", result(75), SETTINGS)(claimed(job, run_id="r2"))
    assert (job.status, job.attempt, job.last_exit_code) == (JobStatus.FAILED, 2, 75)


def test_a_no_retry_exit_code_fails_at_once() -> None:
    job = lifecycle.finish("r1", result(77), SETTINGS)(claimed())
    assert (job.status, job.attempt) == (JobStatus.FAILED, 1)
    assert job.last_error is not None
    assert "not retried" in job.last_error


def test_a_timeout_is_an_attempt() -> None:
    job = lifecycle.finish("r1", result(143, timed_out=True), SETTINGS)(claimed())
    assert (job.status, job.attempt) == (JobStatus.PENDING, 2)
    assert job.history[-1].outcome is Outcome.TIMEOUT
    assert job.last_error is not None
    assert job.last_error.startswith("timed out after 300s")


def test_the_backoff_policy_sets_the_next_time() -> None:
    settings = WorkflowSettings("default", backoff=exponential(factor=2))
    job = make_job(max_attempts=4)  # 60 minutes
    times = []
    for number in range(3):
        at = job.execute_at
        job = lifecycle.finish(f"r{number}", result(1, at=at, seconds=0), settings)(
            claimed(job, at=at, run_id=f"r{number}")
        )
        times.append(job.execute_at - at)
    assert times == [timedelta(hours=1), timedelta(hours=2), timedelta(hours=4)]


# The next attempt counts from the due time of the last one, so that a chain stays on its cron ticks.
DUE = T0 + timedelta(hours=1, seconds=2)  # scheduled at 10:00:02 with 60 minutes


@pytest.mark.parametrize(
    ("started", "ran", "expected"),
    [
        # claimed by the 11:00:00 tick (within the due window), runs 3 s or 4 minutes: 12:00:02, on the 12:00 tick
        (T0 + timedelta(hours=1, seconds=0.3), timedelta(seconds=3), DUE + timedelta(hours=1)),
        (T0 + timedelta(hours=1, seconds=0.3), timedelta(minutes=4), DUE + timedelta(hours=1)),
        # claimed by the 11:05 tick (due 11:02): an hour after it started, less the window, on the 12:05 tick
        (T0 + timedelta(hours=1, minutes=5), timedelta(seconds=3), T0 + timedelta(hours=2, minutes=4)),
        # cron was down until 15:00: the source still gets its hour
        (T0 + timedelta(hours=5), timedelta(seconds=3), T0 + timedelta(hours=5, minutes=59)),
        # the run took longer than the wait: due at once (a later process run takes it)
        (T0 + timedelta(hours=1), timedelta(minutes=90), T0 + timedelta(hours=2, minutes=30)),
    ],
)
def test_the_next_attempt_is_due_a_wait_after_the_last_one_was_due(started, ran, expected) -> None:  # type: ignore[no-untyped-def]
    job = claimed(make_job(execute_at=DUE), at=started)
    job = lifecycle.finish("r1", result(75, at=started, seconds=ran.total_seconds()), SETTINGS)(job)
    assert (job.status, job.attempt, job.execute_at) == (JobStatus.PENDING, 2, expected)


def test_a_due_window_of_zero_counts_from_the_start_when_it_was_late() -> None:
    job = claimed(make_job(execute_at=T0), at=T0 + timedelta(seconds=0.3))
    job = lifecycle.finish("r1", result(75, at=T0), SETTINGS, due_window=timedelta(0))(job)
    assert job.execute_at == T0 + timedelta(hours=1, seconds=0.3)


def test_the_hourly_import_stays_on_the_hour_for_five_attempts() -> None:
    """04:00, 05:00, 06:00, 07:00, 08:00 whatever each run lasts (seed 001's schedule)."""
    job = make_job(execute_at=T0.replace(hour=4), max_attempts=5)
    due_times = []
    for number, minutes in enumerate([0.1, 3, 0.5, 7, 2]):
        due_times.append(job.execute_at)
        tick = job.execute_at.replace(second=0, microsecond=0) + timedelta(seconds=0.4)
        job = lifecycle.finish(f"r{number}", result(75, at=tick, seconds=minutes * 60), SETTINGS)(
            claimed(job, at=tick, run_id=f"r{number}")
        )
    assert [t.hour for t in due_times] == [4, 5, 6, 7, 8]
    assert {(t.minute, t.second) for t in due_times} == {(0, 0)}
    assert job.status is JobStatus.FAILED


def test_a_follow_up_sets_the_next_attempt_even_on_success() -> None:
    job = lifecycle.on_duplicate(30)(claimed())
    assert job.follow_up_minutes == 30
    job = lifecycle.finish("r1", result(0, seconds=0), SETTINGS)(job)
    assert (job.status, job.attempt, job.follow_up_minutes) == (JobStatus.PENDING, 2, None)
    assert job.execute_at == T0 + timedelta(hours=1, minutes=30)
    assert job.history[-1].outcome is Outcome.INCOMPLETE


def test_a_follow_up_after_the_last_attempt_fails_as_persistent() -> None:
    job = lifecycle.on_duplicate(30)(claimed(make_job(max_attempts=1)))
    job = lifecycle.finish("r1", result(0), SETTINGS)(job)
    assert job.status is JobStatus.FAILED


def test_on_duplicate_leaves_a_pending_job_alone() -> None:
    job = make_job()
    assert lifecycle.on_duplicate(5)(job) is job


def test_a_result_for_a_lost_claim_changes_nothing() -> None:
    job = claimed(run_id="someone-else")
    assert lifecycle.finish("r1", result(0), SETTINGS)(job) is job
    assert lifecycle.record_pid("r1", 42)(job) is job
    assert lifecycle.release("r1", T0)(job) is job


def test_record_pid() -> None:
    assert lifecycle.record_pid("r1", 4242)(claimed()).workflow_pid == 4242


def test_stopped_runs_go_back_without_counting() -> None:
    job = lifecycle.finish("r1", result(143, stopped=True), SETTINGS)(claimed())
    assert (job.status, job.attempt, job.execute_at, job.owner) == (JobStatus.PENDING, 1, T0 + timedelta(hours=1), None)
    assert job.history[-1].outcome is Outcome.STOPPED
    released = lifecycle.release("r1", T0)(claimed())
    assert (released.status, released.attempt, released.history) == (JobStatus.PENDING, 1, ())


def test_recovery_counts_the_interrupted_attempt() -> None:
    now = T0 + timedelta(hours=2)
    job = lifecycle.recover("r1", now, SETTINGS, "runner h:1 is gone")(claimed())
    assert (job.status, job.attempt, job.owner) == (JobStatus.PENDING, 2, None)
    assert job.execute_at == now  # due at 12:00 (11:00 + 60 minutes), found at 12:00: due now
    early = lifecycle.recover("r1", T0 + timedelta(hours=1, minutes=10), SETTINGS, "gone")(claimed())
    assert early.execute_at == T0 + timedelta(hours=2)
    entry = job.history[-1]
    assert (entry.outcome, entry.output_tail, entry.finished_at) == (Outcome.INTERRUPTED, "runner h:1 is gone", now)
    last = lifecycle.recover("r1", now, SETTINGS, "gone")(claimed(make_job(max_attempts=1)))
    assert last.status is JobStatus.FAILED


def test_recovery_of_a_job_claimed_again_changes_nothing() -> None:
    job = claimed(run_id="r2")
    assert lifecycle.recover("r1", T0, SETTINGS, "gone")(job) is job


def test_a_claim_whose_run_never_started_is_undone_without_counting_an_attempt() -> None:
    # A claim whose reply was lost: the job is pending again as it was, due when it was, same attempt.
    before = lifecycle.finish("r0", result(75), SETTINGS)(claimed(run_id="r0"))
    job = lifecycle.unclaim("r1")(claimed(before, at=before.execute_at, run_id="r1"))
    assert job.status is JobStatus.PENDING
    assert (job.attempt, job.execute_at, job.history) == (before.attempt, before.execute_at, before.history)
    assert (job.owner, job.run_id, job.lease_until, job.workflow_pid) == (None, None, None, None)
    assert job.started_at == before.history[-1].started_at  # the last attempt that did run
    assert lifecycle.unclaim("r1")(claimed(make_job(max_attempts=1))).started_at is None
    fresh = lifecycle.unclaim("r1")(claimed(make_job(max_attempts=1)))
    assert (fresh.status, fresh.attempt, fresh.history) == (JobStatus.PENDING, 1, ())


def test_undoing_a_claim_applies_only_to_that_claim() -> None:
    job = claimed(run_id="r2")
    assert lifecycle.unclaim("r1")(job) is job
    done = lifecycle.finish("r2", result(0), SETTINGS)(job)
    assert lifecycle.unclaim("r2")(done) is done


def test_history_is_capped() -> None:
    job = make_job(max_attempts=50, delay_minutes=0)
    for number in range(HISTORY_LIMIT + 5):
        job = lifecycle.finish(f"r{number}", result(1), SETTINGS)(claimed(job, run_id=f"r{number}"))
    assert len(job.history) == HISTORY_LIMIT
    assert job.history[-1].attempt == HISTORY_LIMIT + 5


def test_cancel_and_requeue() -> None:
    now = T0 + timedelta(days=1)
    cancelled = lifecycle.cancel(now)(make_job())
    assert (cancelled.status, cancelled.finished_at) == (JobStatus.CANCELLED, now)
    running = claimed()
    assert lifecycle.cancel(now)(running) is running
    failed = make_job(status=JobStatus.FAILED, attempt=3, finished_at=now)
    again = lifecycle.requeue(now, now + timedelta(minutes=5))(failed)
    assert (again.status, again.attempt, again.execute_at, again.finished_at) == (
        JobStatus.PENDING,
        1,
        now + timedelta(minutes=5),
        None,
    )
    pending = make_job()
    assert lifecycle.requeue(now, now)(pending) is pending


# -- attempts given back for an upstream incident, and failures held back for the breaker's verdict --

LIMITED = WorkflowSettings("default", command=("true",), max_attempts=2)
ELEVEN = T0 + timedelta(hours=1)


def failed_once(job=None, *, code: int = 75, run_id: str = "r1", at=ELEVEN, settings=LIMITED):  # type: ignore[no-untyped-def]
    job = job or make_job(max_attempts=2)
    return lifecycle.finish(run_id, result(code, at=at), settings)(claimed(job, at=at, run_id=run_id))


def test_a_failed_attempt_given_back_is_pending_at_the_same_attempt_due_at_once_and_keeps_its_entry() -> None:
    job = failed_once()  # attempt 1 failed: attempt 2 scheduled an hour later
    assert (job.status, job.attempt, job.execute_at) == (JobStatus.PENDING, 2, T0 + timedelta(hours=2))
    ended = job.history[-1].finished_at
    now = ELEVEN + timedelta(minutes=2)
    back = lifecycle.give_back(1, ended, "api-1", now)(job)
    assert (back.status, back.attempt, back.execute_at, back.finished_at) == (JobStatus.PENDING, 1, now, None)
    [entry] = back.history
    assert (entry.attempt, entry.outcome, entry.exit_code, entry.incident) == (1, Outcome.INCOMPLETE, 75, "api-1")
    assert lifecycle.give_back(1, ended, "api-2", now)(back) is back  # once only
    # Attempt 1 runs again, fails again: attempt 2 is the next, as if the first had never counted.
    again = failed_once(back, run_id="r2", at=now + timedelta(hours=1))
    assert (again.status, again.attempt, [each.incident for each in again.history]) == (
        JobStatus.PENDING,
        2,
        ["api-1", None],
    )


def test_a_last_attempt_that_ended_failed_is_given_back_only_in_the_step_that_wrote_it() -> None:
    job = failed_once(failed_once(), run_id="r2", at=T0 + timedelta(hours=2))
    assert (job.status, job.attempt) == (JobStatus.FAILED, 2)
    ended, now = job.history[-1].finished_at, T0 + timedelta(hours=2, minutes=1)
    assert lifecycle.give_back(2, ended, "api-1", now)(job) is job  # a failed job is not reopened later
    back = lifecycle.give_back(2, ended, "api-1", now, reopen=True)(job)
    assert (back.status, back.attempt, back.finished_at, back.history[-1].incident) == (
        JobStatus.PENDING,
        2,
        None,
        "api-1",
    )


@pytest.mark.parametrize(
    "later",
    [
        "it ran again since",
        "it completed",
        "it is running",
        "the time is another attempt's",
        "it was requeued",
    ],
)
def test_giving_back_leaves_a_job_that_moved_on_as_it_is(later: str) -> None:
    job = failed_once()
    ended, now = job.history[-1].finished_at, ELEVEN + timedelta(minutes=2)
    moved = {
        "it ran again since": lambda: failed_once(job, run_id="r2", at=T0 + timedelta(hours=2), settings=SETTINGS),
        "it completed": lambda: lifecycle.finish("r2", result(0, at=T0 + timedelta(hours=2)), LIMITED)(
            claimed(job, at=T0 + timedelta(hours=2), run_id="r2")
        ),
        "it is running": lambda: claimed(job, at=T0 + timedelta(hours=2), run_id="r2"),
        "the time is another attempt's": lambda: job,
        "it was requeued": lambda: lifecycle.requeue(now, now)(
            lifecycle.finish("r2", result(75, at=T0 + timedelta(hours=2)), LIMITED)(
                claimed(job, at=T0 + timedelta(hours=2), run_id="r2")
            )
        ),
    }[later]()
    when = ended + timedelta(seconds=1) if later == "the time is another attempt's" else ended
    attempt = 2 if later == "it was requeued" else 1
    assert lifecycle.give_back(attempt, when, "api-1", now)(moved) is moved


def test_a_stopped_run_after_the_attempt_does_not_hide_it() -> None:
    job = failed_once()
    ended = job.history[-1].finished_at
    stopped = lifecycle.finish("r2", result(143, at=T0 + timedelta(hours=2), stopped=True), LIMITED)(
        claimed(job, at=T0 + timedelta(hours=2), run_id="r2")
    )
    assert (stopped.status, stopped.history[-1].outcome) == (JobStatus.PENDING, Outcome.STOPPED)
    back = lifecycle.give_back(1, ended, "api-1", T0 + timedelta(hours=2))(stopped)
    assert (back.attempt, [each.incident for each in back.history]) == (1, ["api-1", None])


def test_a_last_attempt_withheld_waits_for_the_verdict_then_ends_failed_as_it_would_have() -> None:
    job = failed_once(failed_once(), run_id="r2", at=T0 + timedelta(hours=2))
    ended = job.history[-1].finished_at
    until = ended + timedelta(minutes=10)
    held = lifecycle.withhold(2, ended, until)(job)
    assert (held.status, held.attempt, held.execute_at, held.finished_at) == (JobStatus.PENDING, 2, until, None)
    assert lifecycle.withhold(2, ended, until)(held) is held
    done = lifecycle.confirm_failure(2, ended)(held)
    assert (done.status, done.attempt, done.finished_at, done.history) == (JobStatus.FAILED, 2, ended, job.history)
    assert lifecycle.confirm_failure(2, ended)(done) is done
    # …or an incident opened meanwhile: the attempt is given back instead, and the verdict has nothing to end.
    back = lifecycle.give_back(2, ended, "api-1", until - timedelta(minutes=1))(held)
    assert (back.status, back.attempt, back.history[-1].incident) == (JobStatus.PENDING, 2, "api-1")
    assert lifecycle.confirm_failure(2, ended)(back) is back


def test_a_fatal_exit_is_never_withheld_and_a_cancelled_job_is_never_confirmed() -> None:
    fatal = failed_once(code=2)
    assert fatal.status is JobStatus.FAILED
    assert lifecycle.withhold(1, fatal.history[-1].finished_at, ELEVEN + timedelta(hours=1))(fatal) is fatal
    job = failed_once(failed_once(), run_id="r2", at=T0 + timedelta(hours=2))
    ended = job.history[-1].finished_at
    cancelled = lifecycle.cancel(ended)(lifecycle.withhold(2, ended, ended + timedelta(minutes=10))(job))
    assert lifecycle.confirm_failure(2, ended)(cancelled) is cancelled
