"""Upstream incidents: the breaker's rules, pure functions of a workflow's state and ``now``.

When many jobs of one workflow fail within a short window, the upstream they fetch from is down:
that is one *incident*. While it is open the workflow's jobs are held (not started), one of them
runs now and then as a *probe*, and no attempt is burnt: the failures that opened it, and every
failed probe, are given back (:func:`retryq.record.lifecycle.give_back`). A probe that succeeds
closes it. A *pause* holds a workflow the same way, by hand, with no probe.

What the breaker remembers of a workflow is its state document
(:class:`~retryq.record.breakerstate.WorkflowState`). The rules here take it, what just happened
and ``now``, and return the new state and the job changes that go with it; the processor's plans
(:mod:`retryq.running.breaker`) apply them inside the store's steps.

**The rule for a failure on a job's last attempt.** A failure may turn out to be part of an
outage only once the window after it has passed. So, while the breaker counts, a retryable
failure of a job's last attempt does not end the job: it waits, pending at that attempt, until
``window`` after the failure. If an incident opens meanwhile, the attempt is given back like the
others; if not, the job ends ``failed`` then (as of the failure: its ``finishedAt`` is the
attempt's end), and only then does ``on_failure`` fire. No job ends ``failed``, and no hook fires,
because the upstream was down.
"""

from __future__ import annotations

__all__ = [
    "Closed",
    "Confirmed",
    "Event",
    "Evidence",
    "Finished",
    "Gate",
    "GivenBack",
    "Opened",
    "PauseEnded",
    "Verdict",
    "Withheld",
    "after_attempts",
    "evidence",
    "gate",
    "give_probe_back",
    "note_held",
    "note_probe",
    "pause",
    "reported_error",
    "resume",
    "seen_as",
]

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from . import lifecycle
from .breakerstate import CLOSED_KEPT, BreakerSettings, Failure, Incident, Pause, Probe, WorkflowState
from .models import Job, JobStatus, Outcome

#: How many recent ERROR reports a state remembers (for the runs that made them).
REPORTS_KEPT = 100

Mutation = Callable[[Job], Job]


class Evidence(enum.Enum):
    """What an attempt says of the upstream."""

    FAILURE = "failure"
    SUCCESS = "success"


def evidence(outcome: Outcome, exit_code: int | None, *, reported: bool = False) -> Evidence | None:
    """A failure is an attempt that ends retryable (exit 75 or another code not in ``no_retry_exit_codes``, a
    timeout, a crash or kill) or that reported ERROR (``reported``); exit 0 is a success, a follow-up asked
    for included; a fatal exit (retrying cannot help) and a stopped run say nothing of the upstream."""
    if outcome in (Outcome.FAILED, Outcome.TIMEOUT, Outcome.INTERRUPTED):
        return Evidence.FAILURE
    if outcome is Outcome.INCOMPLETE:
        return Evidence.FAILURE if exit_code != 0 or reported else Evidence.SUCCESS
    if outcome is Outcome.SUCCEEDED:
        return Evidence.FAILURE if reported else Evidence.SUCCESS
    return None


def seen_as(outcome: Outcome, exit_code: int | None, *, reported: bool = False) -> str:
    """How an incident lists a failure: ``exit 75``, ``timeout``, ``interrupted``, ``report ERROR``."""
    if reported:
        return "report ERROR"
    if outcome in (Outcome.TIMEOUT, Outcome.INTERRUPTED) or exit_code is None:
        return outcome.value
    return f"exit {exit_code}"


# -- what the rules return ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Opened:
    incident: Incident


@dataclass(frozen=True)
class Closed:
    incident: Incident  # closed_at and closed_by set


@dataclass(frozen=True)
class GivenBack:
    job: str
    attempt: int
    incident: str
    probe: bool = False


@dataclass(frozen=True)
class Withheld:
    job: str
    attempt: int
    until: datetime


@dataclass(frozen=True)
class Confirmed:
    job: str
    attempt: int


@dataclass(frozen=True)
class PauseEnded:
    pause: Pause


Event = Opened | Closed | GivenBack | Withheld | Confirmed | PauseEnded


@dataclass(frozen=True)
class Verdict:
    """The new state, the job changes that go with it (by job id), and what happened."""

    state: WorkflowState
    changes: Mapping[str, Mutation] = field(default_factory=dict)
    events: tuple[Event, ...] = ()


@dataclass(frozen=True)
class Gate(Verdict):
    """A :class:`Verdict` for a claim, with the slots it leaves the workflow: None (as many as the claimant
    has), 0 (held) or 1 (one probe)."""

    slots: int | None = None


@dataclass(frozen=True)
class Finished:
    """An attempt that has just ended, as the breaker sees it: ``ended``, the job ended ``failed`` with it
    (its last attempt); ``probe``, its claimant let it through as a probe."""

    job: str
    attempt: int
    started_at: datetime
    finished_at: datetime
    outcome: Outcome
    exit_code: int | None = None
    ended: bool = False
    probe: bool = False

    @classmethod
    def of(cls, job: Job, *, probe: bool = False) -> Finished | None:
        """The attempt ``job``'s last change recorded (None when its history is empty)."""
        if not job.history:
            return None
        last = job.history[-1]
        ended = job.status is JobStatus.FAILED
        return cls(job.id, last.attempt, last.started_at, last.finished_at, last.outcome, last.exit_code, ended, probe)


# -- the rules ---------------------------------------------------------------------------------------


def after_attempts(
    state: WorkflowState,
    finished: Sequence[Finished],
    settings: BreakerSettings | None,
    *,
    workflow: str,
    now: datetime,
) -> Verdict:
    """What attempts just finished do to ``workflow``'s breaker, in their order.

    While an incident is open, a failure is given back (a probe's too), and a success of an attempt
    started since it opened (a probe) closes it. Otherwise, with a breaker, a success clears the
    count and a failure joins it: at ``settings.failures`` distinct jobs within ``window``, an incident
    opens and every failure counted is given back; below, a job whose last attempt failed waits for
    the verdict (see the module). Without a breaker only an incident left open is acted on.
    """
    verdict = _Draft(state, now, settings)
    for attempt in finished:
        verdict.attempt_ended(attempt, workflow)
    return verdict.done()


def reported_error(
    state: WorkflowState, job: str, settings: BreakerSettings | None, *, workflow: str, now: datetime
) -> Verdict:
    """A ``report`` of ERROR for ``job``'s chain: one failure for the count (there is no attempt to give
    back), remembered so that the run that made it, if any, ends as a failure."""
    reports = {key: at for key, at in state.reports.items() if at > now - timedelta(days=1)}
    reports[job] = now
    keep = sorted(reports, key=reports.__getitem__)[-REPORTS_KEPT:]
    draft = _Draft(replace(state, reports={key: reports[key] for key in keep}), now, settings)
    if state.incident is None and settings is not None and not state.quiet:
        draft.count(Failure(job, now, "report ERROR"), workflow)
    return draft.done()


def gate(
    state: WorkflowState,
    settings: BreakerSettings | None,
    *,
    now: datetime,
    claiming: bool,
    lease: timedelta,
    ticket: str,
    ahead: timedelta = timedelta(0),
) -> Gate:
    """What a claim may take of the workflow, decided in the claim's own step.

    First what time has settled: verdicts whose window has passed end their jobs ``failed`` (passed
    by ``now + ahead``, the claim's horizon: a job that waits for its verdict is due when its window
    ends, and a claim that takes what is due within ``ahead`` must find it ended, never run it again); an
    ended pause is lifted; an incident open past ``max_open`` closes (and the breaker stays quiet
    until a success), as does one whose breaker was turned off; a probe past its lease is lost.
    Then: paused, 0 slots; an incident open, 1 slot for a probe when one is due, none is in flight
    and the claimant runs the workflow (``claiming``: the probe holds ``until = now + lease``),
    else 0; otherwise no cap.
    """
    draft = _Draft(state, now, settings)
    draft.settle(ahead)
    current = draft.state
    if current.pause is not None:
        return draft.done(slots=0)
    incident = current.incident
    if incident is None:
        return draft.done()
    assert settings is not None  # settle() closed it otherwise
    if claiming and incident.probe is None and now >= incident.next_probe(settings):
        probe = Probe(now, now + lease, ticket, previous=incident.last_probe_at)
        draft.state = replace(current, incident=replace(incident, probe=probe, last_probe_at=now))
        return draft.done(slots=1)
    return draft.done(slots=0)


def note_probe(state: WorkflowState, ticket: str, job: str) -> WorkflowState:
    """The claim ``ticket`` let ``job`` through as the probe."""
    incident = state.incident
    if incident is None or incident.probe is None or incident.probe.ticket != ticket:
        return state
    return replace(
        state, incident=replace(incident, probe=replace(incident.probe, job=job), probes=incident.probes + 1)
    )


def give_probe_back(state: WorkflowState, ticket: str) -> WorkflowState:
    """The claim ``ticket`` took no job under its probe slot: the next claim may probe at once."""
    incident = state.incident
    if incident is None or incident.probe is None or incident.probe.ticket != ticket:
        return state
    return replace(state, incident=replace(incident, probe=None, last_probe_at=incident.probe.previous))


def note_held(state: WorkflowState, held: int) -> WorkflowState:
    """``held`` jobs were seen held by the open incident."""
    incident = state.incident
    if incident is None or held <= incident.held:
        return state
    return replace(state, incident=replace(incident, held=held))


def pause(
    state: WorkflowState, *, now: datetime, until: datetime | None, reason: str | None, by: str | None
) -> Verdict:
    """Hold the workflow by hand (until ``until``, or until resumed); a pause given again replaces it."""
    return Verdict(replace(state, pause=Pause(now, until, reason, by)))


def resume(state: WorkflowState, *, now: datetime) -> Verdict:
    """Lift the pause and close the open incident (the upstream is back, says the operator)."""
    draft = _Draft(replace(state, pause=None, quiet=False), now, None)
    if state.pause is not None:
        draft.events.append(PauseEnded(state.pause))
    draft.close("resume")
    return draft.done()


# -- the work behind the rules -----------------------------------------------------------------------


class _Draft:
    """A verdict being made: the state so far, the job changes and the events."""

    def __init__(self, state: WorkflowState, now: datetime, settings: BreakerSettings | None) -> None:
        self.state, self.now, self.settings = state, now, settings
        self.changes: dict[str, Mutation] = {}
        self.events: list[Event] = []

    def done(self, **extra: Any) -> Gate:
        return Gate(self.state, dict(self.changes), tuple(self.events), **extra)

    def attempt_ended(self, attempt: Finished, workflow: str) -> None:
        state = self.state
        reported = attempt.job in state.reports and state.reports[attempt.job] >= attempt.started_at
        if reported:
            self.state = state = replace(state, reports={k: v for k, v in state.reports.items() if k != attempt.job})
        kind = evidence(attempt.outcome, attempt.exit_code, reported=reported)
        seen = seen_as(attempt.outcome, attempt.exit_code, reported=reported)
        incident = state.incident
        if incident is not None:
            probe = incident.probe
            is_probe = attempt.probe or (probe is not None and probe.job == attempt.job)
            if is_probe and probe is not None and probe.job in (None, attempt.job):
                incident = replace(incident, probe=None)
                self.state = replace(state, incident=incident)
            if kind is Evidence.SUCCESS and (is_probe or attempt.started_at >= incident.opened_at):
                self.close("probe")
            elif kind is Evidence.FAILURE and attempt.attempt:
                self.give_back(attempt, incident.saw(seen), probe=is_probe)
            return
        if self.settings is None:
            return
        if kind is Evidence.SUCCESS:
            self.forget(self.state.failures)
            self.state = replace(self.state, failures=(), quiet=False)
        elif kind is Evidence.FAILURE and not self.state.quiet:
            self.count(Failure(attempt.job, attempt.finished_at, seen, attempt.attempt, attempt.ended), workflow)

    def count(self, failure: Failure, workflow: str) -> None:
        """One more failure in the window: the incident opens at ``failures`` distinct jobs, else the job
        of a last attempt waits for the verdict."""
        assert self.settings is not None
        window = self.settings.window
        recent = [each for each in self.state.failures if each.at > self.now - window and each.job != failure.job]
        self.forget([each for each in self.state.failures if each.at <= self.now - window])
        counted = [*recent, failure]
        if len(counted) < self.settings.failures:
            self.state = replace(self.state, failures=tuple(counted))
            if failure.withheld and failure.attempt is not None:
                until = failure.at + window
                self.changes[failure.job] = lifecycle.withhold(failure.attempt, failure.at, until)
                self.events.append(Withheld(failure.job, failure.attempt, until))
            return
        incident = Incident(
            id=self._new_id(workflow),
            workflow=workflow,
            opened_at=self.now,
            failures=len(counted),
        )
        for each in counted:
            incident = incident.saw(each.seen)
        self.state = replace(self.state, failures=(), incident=incident)
        self.events.append(Opened(incident))
        for each in counted:
            if each.attempt is not None:
                # The failure of this very step may have ended its job `failed`: reopened in the same step.
                ended = each is failure and each.withheld
                self.give_back(Finished(each.job, each.attempt, each.at, each.at, Outcome.FAILED, ended=ended))

    def give_back(self, attempt: Finished, incident: Incident | None = None, *, probe: bool = False) -> None:
        """Give ``attempt`` back for the open incident (``incident``: as it is now, if changed meanwhile)."""
        incident = incident or self.state.incident
        assert incident is not None
        mutation = lifecycle.give_back(
            attempt.attempt, attempt.finished_at, incident.id, self.now, reopen=attempt.ended
        )
        self.changes[attempt.job] = mutation
        self.state = replace(self.state, incident=replace(incident, given_back=incident.given_back + 1))
        self.events.append(GivenBack(attempt.job, attempt.attempt, incident.id, probe))

    def forget(self, failures: Sequence[Failure]) -> None:
        """These failures will open no incident: the jobs that waited for the verdict end ``failed``."""
        for each in failures:
            if each.withheld and each.attempt is not None:
                self.changes[each.job] = lifecycle.confirm_failure(each.attempt, each.at)
                self.events.append(Confirmed(each.job, each.attempt))

    def close(self, how: str) -> None:
        incident = self.state.incident
        if incident is None:
            return
        closed = replace(incident, probe=None, closed_at=self.now, closed_by=how)
        self.state = replace(self.state, incident=None, failures=(), closed=(*self.state.closed, closed)[-CLOSED_KEPT:])
        self.events.append(Closed(closed))

    def settle(self, ahead: timedelta = timedelta(0)) -> None:
        """What time alone decides (see :func:`gate`); a verdict is given ``ahead`` of its time."""
        state, now, settings = self.state, self.now, self.settings
        expired = [
            each
            for each in state.failures
            if settings is None
            or each.at <= now - settings.window
            or (each.withheld and each.at <= now + ahead - settings.window)
        ]
        if expired:
            self.forget(expired)
            self.state = state = replace(state, failures=tuple(e for e in state.failures if e not in expired))
        if state.pause is not None and not state.pause.holds(now):
            self.events.append(PauseEnded(state.pause))
            self.state = state = replace(state, pause=None)
        incident = state.incident
        if incident is None:
            return
        if settings is None:
            self.close("off")
        elif now - incident.opened_at >= settings.max_open:
            self.close("max_open")
            self.state = replace(self.state, quiet=True)
        elif incident.probe is not None and incident.probe.until <= now:
            self.state = replace(state, incident=replace(incident, probe=None))

    def _new_id(self, workflow: str) -> str:
        base = f"{workflow}-{self.now:%Y%m%dT%H%M%SZ}"
        taken = {each.id for each in self.state.closed}
        number, ident = 1, base
        while ident in taken:
            number += 1
            ident = f"{base}-{number}"
        return ident
