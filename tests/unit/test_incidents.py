"""The breaker's rules as pure functions, with a fixed clock: failures counted, incidents opened and
closed, attempts given back, probes, pauses, and the verdict a last attempt waits for."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from retryq.record import incidents, lifecycle
from retryq.record.breakerstate import BreakerSettings, Failure, Pause, WorkflowState
from retryq.record.incidents import (
    Closed,
    Confirmed,
    Evidence,
    Finished,
    GivenBack,
    Opened,
    PauseEnded,
    Withheld,
    evidence,
)
from retryq.record.models import Job, JobStatus, Outcome, Owner
from retryq.running.runner import RunResult
from retryq.settings.config import WorkflowSettings
from retryq.stores.plans import encode

from ..helpers import T0, make_job

BREAKER = BreakerSettings(
    failures=5, window=timedelta(minutes=10), probe_every=timedelta(minutes=15), max_open=timedelta(hours=12)
)
ELEVEN = T0 + timedelta(hours=1)
LEASE = timedelta(minutes=6)
SETTINGS = WorkflowSettings("api", command=("fetch",), max_attempts=3)


def failed(
    job: str, *, at: datetime = ELEVEN, code: int | None = 75, outcome: Outcome = Outcome.INCOMPLETE, **more: object
) -> Finished:
    values: dict[str, object] = {
        "attempt": 1,
        "started_at": at - timedelta(seconds=30),
        "finished_at": at,
        "exit_code": code,
    }
    values.update(more)
    return Finished(job, outcome=outcome, **values)  # type: ignore[arg-type]


def succeeded(job: str, *, at: datetime = ELEVEN, **more: object) -> Finished:
    return failed(job, at=at, code=0, outcome=Outcome.SUCCEEDED, **more)


def after(
    state: WorkflowState, *finished: Finished, now: datetime = ELEVEN, settings: BreakerSettings | None = BREAKER
) -> incidents.Verdict:
    return incidents.after_attempts(state, finished, settings, workflow="api", now=now)


def gate(
    state: WorkflowState,
    now: datetime,
    *,
    claiming: bool = True,
    ticket: str = "t1",
    settings: BreakerSettings | None = BREAKER,
) -> incidents.Gate:
    return incidents.gate(state, settings, now=now, claiming=claiming, lease=LEASE, ticket=ticket)


def opened(count: int = 5, now: datetime = ELEVEN) -> WorkflowState:
    verdict = after(WorkflowState(), *(failed(f"j{n}", at=now) for n in range(count)), now=now)
    assert verdict.state.incident is not None
    return verdict.state


# -- what an attempt says of the upstream --------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "code", "reported", "expected"),
    [
        (Outcome.INCOMPLETE, 75, False, Evidence.FAILURE),
        (Outcome.FAILED, 1, False, Evidence.FAILURE),
        (Outcome.TIMEOUT, 143, False, Evidence.FAILURE),
        (Outcome.INTERRUPTED, None, False, Evidence.FAILURE),
        (Outcome.SUCCEEDED, 0, False, Evidence.SUCCESS),
        (Outcome.INCOMPLETE, 0, False, Evidence.SUCCESS),  # exit 0, a follow-up asked for: the upstream answered
        (Outcome.INCOMPLETE, 0, True, Evidence.FAILURE),  # …unless the run reported ERROR
        (Outcome.FATAL, 2, False, None),  # retrying cannot help: the job's own problem
        (Outcome.STOPPED, 143, False, None),
    ],
)
def test_what_counts_as_a_failure(
    outcome: Outcome, code: int | None, reported: bool, expected: Evidence | None
) -> None:
    assert evidence(outcome, code, reported=reported) is expected


# -- counting, and opening ---------------------------------------------------------------------------------


def test_failures_of_five_distinct_jobs_within_the_window_open_one_incident_and_give_every_attempt_back() -> None:
    state = WorkflowState()
    for n in range(4):
        verdict = after(state, failed(f"j{n}", at=ELEVEN + timedelta(minutes=n)), now=ELEVEN + timedelta(minutes=n))
        state = verdict.state
        assert state.incident is None
        assert verdict.changes == {}  # not their last attempt: nothing waits
    assert [each.job for each in state.failures] == ["j0", "j1", "j2", "j3"]
    state = after(state, failed("j1", at=ELEVEN + timedelta(minutes=4)), now=ELEVEN + timedelta(minutes=4)).state
    assert state.incident is None
    assert len(state.failures) == 4
    now = ELEVEN + timedelta(minutes=5)
    verdict = after(state, failed("j4", at=now, code=1, outcome=Outcome.FAILED), now=now)
    incident = verdict.state.incident
    assert incident is not None
    assert (incident.id, incident.opened_at, incident.failures, incident.given_back) == (
        "api-20251219T110500Z",
        now,
        5,
        5,
    )
    assert incident.seen == {"exit 75": 4, "exit 1": 1}
    assert verdict.state.failures == ()
    assert sorted(verdict.changes) == ["j0", "j1", "j2", "j3", "j4"]
    assert [type(event) for event in verdict.events] == [Opened, *[GivenBack] * 5]


def test_failures_older_than_the_window_no_longer_count_and_a_success_clears_the_count() -> None:
    state = after(WorkflowState(), *(failed(f"old{n}") for n in range(4))).state
    later = ELEVEN + timedelta(minutes=10)
    state = after(state, failed("new", at=later), now=later).state
    assert state.incident is None
    assert [each.job for each in state.failures] == ["new"]
    state = after(state, *(failed(f"n{n}", at=later) for n in range(3)), now=later).state
    state = after(state, succeeded("fine", at=later), now=later).state
    assert state.failures == ()
    assert after(state, *(failed(f"m{n}", at=later) for n in range(4)), now=later).state.incident is None


def test_without_a_breaker_nothing_is_counted() -> None:
    verdict = after(WorkflowState(), *(failed(f"j{n}") for n in range(9)), settings=None)
    assert verdict.state == WorkflowState()
    assert verdict.changes == {}


def test_the_mutations_of_an_opening_give_back_attempts_whatever_became_of_each_job() -> None:
    """The attempts that opened it: one pending for its next attempt, one that waited for its verdict, and
    the one of this very step that ended its job `failed` (its last attempt): none is left failed."""
    first = attempted(make_job(id="early", client_id="early", max_attempts=3), code=75, at=ELEVEN)
    assert (first.status, first.attempt) == (JobStatus.PENDING, 2)
    last = attempted(make_job(id="last", client_id="last", max_attempts=1), code=75, at=ELEVEN + timedelta(minutes=1))
    assert last.status is JobStatus.FAILED
    state = after(WorkflowState(), Finished.of(first) or failed("x")).state
    verdict = after(state, Finished.of(last) or failed("x"), now=ELEVEN + timedelta(minutes=1))
    assert verdict.events == (Withheld("last", 1, ELEVEN + timedelta(minutes=11)),)
    waiting = verdict.changes["last"](last)
    assert (waiting.status, waiting.attempt, waiting.execute_at) == (
        JobStatus.PENDING,
        1,
        ELEVEN + timedelta(minutes=11),
    )
    state = verdict.state
    for n in range(2):
        state = after(
            state, failed(f"other{n}", at=ELEVEN + timedelta(minutes=2)), now=ELEVEN + timedelta(minutes=2)
        ).state
    final = attempted(make_job(id="final", client_id="final", max_attempts=1), code=1, at=ELEVEN + timedelta(minutes=3))
    now = ELEVEN + timedelta(minutes=3)
    verdict = after(state, Finished.of(final) or failed("x"), now=now)
    assert verdict.state.incident is not None
    incident = verdict.state.incident.id
    for job in (first, waiting, final):
        back = verdict.changes[job.id](job)
        assert (back.status, back.attempt, back.execute_at, back.history[-1].incident) == (
            JobStatus.PENDING,
            1,
            now,
            incident,
        ), job.id


def attempted(job: Job, *, code: int, at: datetime) -> Job:
    running = lifecycle.claim(owner=Owner(host="h", pid=1), run_id="r", now=at - timedelta(seconds=30), lease=LEASE)(
        job
    )
    result = RunResult(started_at=at - timedelta(seconds=30), finished_at=at, exit_code=code, output_tail="")
    return lifecycle.finish("r", result, SETTINGS)(running)


# -- a last attempt waits for the verdict ---------------------------------------------------------------


def test_a_withheld_last_attempt_ends_failed_once_its_window_passed_with_no_incident() -> None:
    job = attempted(make_job(id="last", client_id="last", max_attempts=1), code=75, at=ELEVEN)
    verdict = after(WorkflowState(), Finished.of(job) or failed("x"))
    waiting = verdict.changes["last"](job)
    state = verdict.state
    assert gate(state, ELEVEN + timedelta(minutes=9)).changes == {}  # still within the window
    settled = gate(state, ELEVEN + timedelta(minutes=10))
    assert settled.events == (Confirmed("last", 1),)
    assert settled.state.failures == ()
    done = settled.changes["last"](waiting)
    assert (done.status, done.finished_at) == (JobStatus.FAILED, ELEVEN)


def test_a_success_confirms_the_withheld_failures_at_once() -> None:
    job = attempted(make_job(id="last", client_id="last", max_attempts=1), code=75, at=ELEVEN)
    state = after(WorkflowState(), Finished.of(job) or failed("x")).state
    verdict = after(state, succeeded("fine", at=ELEVEN + timedelta(minutes=1)), now=ELEVEN + timedelta(minutes=1))
    assert verdict.events == (Confirmed("last", 1),)
    assert "last" in verdict.changes


# -- an open incident: held, probed, closed ----------------------------------------------------------------


def test_an_open_incident_holds_then_lets_one_probe_through_every_probe_every() -> None:
    state = opened()
    assert gate(state, ELEVEN + timedelta(minutes=14)).slots == 0
    assert gate(state, ELEVEN + timedelta(minutes=15), claiming=False).slots == 0  # this claimant does not run it
    probing = gate(state, ELEVEN + timedelta(minutes=15))
    assert probing.slots == 1
    state = probing.state
    assert state.incident is not None
    assert state.incident.probe is not None
    assert (state.incident.probe.until, state.incident.last_probe_at) == (
        ELEVEN + timedelta(minutes=21),
        ELEVEN + timedelta(minutes=15),
    )
    assert gate(state, ELEVEN + timedelta(minutes=16), ticket="t2").slots == 0  # one probe at a time
    state = incidents.note_probe(state, "t1", "j3")
    assert state.incident is not None
    assert state.incident.probes == 1
    # The probe fails: given back, due now, and the next probe comes probe_every after this one.
    failed_at = ELEVEN + timedelta(minutes=16)
    verdict = after(
        state, failed("j3", at=failed_at, started_at=ELEVEN + timedelta(minutes=15), probe=True), now=failed_at
    )
    assert verdict.events == (GivenBack("j3", 1, "api-20251219T110000Z", probe=True),)
    state = verdict.state
    assert state.incident is not None
    assert state.incident.probe is None
    assert (state.incident.given_back, state.incident.seen) == (6, {"exit 75": 6})
    assert gate(state, ELEVEN + timedelta(minutes=29)).slots == 0
    assert gate(state, ELEVEN + timedelta(minutes=30)).slots == 1


def test_a_probe_that_succeeds_closes_the_incident() -> None:
    state = gate(opened(), ELEVEN + timedelta(minutes=15)).state
    state = incidents.note_probe(state, "t1", "j0")
    closing = ELEVEN + timedelta(minutes=16)
    verdict = after(
        state, succeeded("j0", at=closing, started_at=ELEVEN + timedelta(minutes=15), probe=True), now=closing
    )
    [event] = verdict.events
    assert isinstance(event, Closed)
    assert (event.incident.closed_at, event.incident.closed_by, event.incident.probes) == (closing, "probe", 1)
    assert verdict.state.incident is None
    assert verdict.state.closed == (event.incident,)
    assert gate(verdict.state, closing).slots is None


def test_a_success_of_a_run_started_before_the_incident_opened_does_not_close_it() -> None:
    state = opened()
    late = succeeded("early", at=ELEVEN + timedelta(minutes=1), started_at=ELEVEN - timedelta(minutes=1))
    assert after(state, late, now=ELEVEN + timedelta(minutes=1)).state.incident is not None
    straggler = failed("early", at=ELEVEN + timedelta(minutes=1), started_at=ELEVEN - timedelta(minutes=1))
    verdict = after(state, straggler, now=ELEVEN + timedelta(minutes=1))
    assert [type(event) for event in verdict.events] == [GivenBack]  # a failure during it is given back all the same


def test_a_probe_lost_with_its_process_is_forgotten_after_its_lease_and_the_next_one_comes_in_its_turn() -> None:
    state = gate(opened(), ELEVEN + timedelta(minutes=15)).state
    assert gate(state, ELEVEN + timedelta(minutes=20), ticket="t2").slots == 0
    lost = gate(state, ELEVEN + timedelta(minutes=21), ticket="t2")
    assert lost.state.incident is not None
    assert lost.state.incident.probe is None
    assert lost.slots == 0
    assert gate(lost.state, ELEVEN + timedelta(minutes=30), ticket="t2").slots == 1


def test_a_probe_slot_nobody_took_is_given_back() -> None:
    state = gate(opened(), ELEVEN + timedelta(minutes=15)).state
    assert incidents.give_probe_back(state, "other") == state
    state = incidents.give_probe_back(state, "t1")
    assert state.incident is not None
    assert (state.incident.probe, state.incident.last_probe_at) == (None, None)
    assert gate(state, ELEVEN + timedelta(minutes=15), ticket="t2").slots == 1


def test_an_incident_open_past_max_open_closes_and_the_breaker_stays_quiet_until_a_success() -> None:
    state = opened()
    late = ELEVEN + timedelta(hours=12)
    verdict = gate(state, late)
    [event] = verdict.events
    assert isinstance(event, Closed)
    assert event.incident.closed_by == "max_open"
    assert verdict.slots is None
    state = verdict.state
    assert state.quiet
    assert (
        after(state, *(failed(f"k{n}", at=late) for n in range(9)), now=late).state.incident is None
    )  # counted as usual
    state = after(state, succeeded("ok", at=late), now=late).state
    assert not state.quiet
    assert after(state, *(failed(f"k{n}", at=late) for n in range(5)), now=late).state.incident is not None


def test_an_incident_whose_breaker_was_turned_off_closes() -> None:
    verdict = gate(opened(), ELEVEN + timedelta(minutes=1), settings=None)
    assert [type(event) for event in verdict.events] == [Closed]
    assert verdict.slots is None


# -- reports of ERROR ---------------------------------------------------------------------------------------


def test_a_report_of_error_counts_and_so_does_the_run_that_made_it() -> None:
    state = WorkflowState()
    for n in range(4):
        state = incidents.reported_error(state, f"c{n}", BREAKER, workflow="api", now=ELEVEN).state
    assert [each.seen for each in state.failures] == ["report ERROR"] * 4
    verdict = incidents.reported_error(state, "c4", BREAKER, workflow="api", now=ELEVEN)
    assert verdict.state.incident is not None
    assert verdict.changes == {}  # a report burnt no attempt: nothing to give back
    # c4 reported from inside its run, which then exits 0 with a follow-up: a failure, given back.
    run = failed("c4", code=0, at=ELEVEN + timedelta(seconds=5), started_at=ELEVEN - timedelta(seconds=5))
    later = after(verdict.state, run, now=ELEVEN + timedelta(seconds=5))
    assert [type(event) for event in later.events] == [GivenBack]
    assert later.state.reports == {f"c{n}": ELEVEN for n in range(4)}


# -- pauses --------------------------------------------------------------------------------------------------


def test_a_pause_holds_sends_no_probe_and_ends_by_itself_or_with_resume() -> None:
    state = incidents.pause(
        opened(), now=ELEVEN, until=ELEVEN + timedelta(hours=1), reason="maintenance", by="ops"
    ).state
    assert gate(state, ELEVEN + timedelta(minutes=30)).slots == 0  # no probe while paused
    verdict = gate(state, ELEVEN + timedelta(hours=1))
    assert [type(event) for event in verdict.events] == [PauseEnded]
    assert verdict.slots == 1  # the incident, still open, probes again
    resumed = incidents.resume(state, now=ELEVEN + timedelta(minutes=5))
    assert [type(event) for event in resumed.events] == [PauseEnded, Closed]
    assert resumed.state.incident is None
    assert resumed.state.pause is None
    assert resumed.state.closed[-1].closed_by == "resume"
    assert gate(resumed.state, ELEVEN + timedelta(minutes=5)).slots is None
    forever = incidents.pause(WorkflowState(), now=ELEVEN, until=None, reason=None, by=None).state
    assert gate(forever, ELEVEN + timedelta(days=300)).slots == 0


# -- the document --------------------------------------------------------------------------------------------


def test_the_state_round_trips_through_its_json_document() -> None:
    state = gate(opened(), ELEVEN + timedelta(minutes=15)).state
    state = incidents.note_probe(state, "t1", "j1")
    state = incidents.pause(state, now=ELEVEN, until=None, reason="é maintenance", by="ops@host").state
    state = incidents.reported_error(state, "c9", BREAKER, workflow="api", now=ELEVEN).state
    state = incidents.resume(state, now=ELEVEN + timedelta(minutes=20)).state
    state = after(state, failed("w", attempt=3, ended=True), now=ELEVEN + timedelta(minutes=20)).state
    state = incidents.pause(state, now=ELEVEN, until=ELEVEN + timedelta(hours=2), reason=None, by=None).state
    doc = state.to_doc()
    assert doc is not None
    assert json.loads(encode(doc, "workflow:api")) == doc
    assert WorkflowState.of(doc) == state
    assert WorkflowState().to_doc() is None
    assert WorkflowState.of(None) == WorkflowState()


@pytest.mark.parametrize(
    "doc",
    [
        {"failures": [{"job": "a"}]},
        {"failures": "many"},
        {"incident": {"id": "x", "openedAt": "yesterday", "workflow": "api", "failures": 5}},
        {"pause": {"until": "2025-12-19T10:00:00.000Z"}},
        {"failures": [{"job": "a", "at": "2025-12-19T10:00:00.000Z", "seen": "x", "attempt": "2"}]},
    ],
)
def test_a_document_that_is_not_what_retryq_writes_is_refused(doc: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="not a workflow's breaker state") as raised:
        WorkflowState.of(doc)
    assert "Error" not in str(raised.value)  # said in the user's words, not Python's exception names


def test_held_by_says_what_holds_a_workflow() -> None:
    state = opened()
    assert state.held_by(ELEVEN) is state.incident
    paused = incidents.pause(state, now=ELEVEN, until=ELEVEN + timedelta(minutes=5), reason=None, by=None).state
    assert isinstance(paused.held_by(ELEVEN), Pause)
    assert paused.held_by(ELEVEN + timedelta(minutes=5)) is state.incident
    assert WorkflowState(failures=(Failure("a", ELEVEN, "exit 75", 1),)).held_by(ELEVEN) is None
