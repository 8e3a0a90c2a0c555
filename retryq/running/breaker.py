"""The breaker in the processor: the plans its writes carry, and what it says and runs once they are written.

Each store write of a processor (the results that came in, and the claim for its free slots)
carries one plan over the state documents of the workflows it touches. Inside the store's step,
on the documents as they are then, the plan applies :mod:`retryq.record.incidents`: the attempts
just finished count toward an incident or are given back, what time settled is settled (a
verdict, a pause, ``max_open``), and each workflow the claim runs gets its slots: 0 while it is
held, 1 when a probe is due. Which job went through as the probe the plan cannot know (it decides
before the claim chooses): the processor does, from its claim, and this module notes it in the
document right after.

Pauses, incidents and probes are shared by every process and host through those documents; a
document that is not what retryq writes is started afresh (with a warning).
"""

from __future__ import annotations

__all__ = ["Breaker"]

import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ..record import incidents as rules
from ..record.breakerstate import Incident, Pause, WorkflowState, state_key
from ..record.errors import RetryqError
from ..record.models import Job, JobStatus, Outcome
from ..record.text import plural
from ..record.timeutil import format_duration, format_utc
from ..settings.config import Config
from ..stores import ClaimRequest, JobFilter, Mutation, Plan, PlanResult, StateDoc, Store
from ..stores.plans import then
from .notify import FailureHooks, IncidentHooks
from .pending import Change, Pending

if TYPE_CHECKING:
    from .summary import ProcessReport

log = logging.getLogger("retryq")


@dataclass
class _Run:
    """A run this processor claimed: its workflow, and whether the claim let it through as a probe."""

    workflow: str
    probe: bool = False


@dataclass
class _Step:
    """What the last call of a plan decided (the one applied, once the write returns)."""

    events: list[rules.Event] = field(default_factory=list)
    slots: dict[str, int] = field(default_factory=dict)
    states: dict[str, WorkflowState] = field(default_factory=dict)
    ticket: str = ""  # the claim's, for the probe it let through
    claiming: bool = False
    written: tuple[str, ...] = ()  # the runs whose last change the write carried


class Breaker:
    """Plans a processor's writes with the breaker's rules, and acts on what they decided."""

    def __init__(self, store: Store, config: Config, *, clock: Callable[[], datetime]) -> None:
        self.store, self.config, self.clock = store, config, clock
        self.failure_hooks = FailureHooks(config, queue=store.environment())
        self.incident_hooks = IncidentHooks(config, queue=store.environment())
        self.held: dict[str, WorkflowState] = {}  # what the last claim held, and the state that held it
        self._runs: dict[str, _Run] = {}  # run id -> what this processor claimed
        self._step = _Step()
        self._warned: set[str] = set()

    # -- plans ---------------------------------------------------------------------------------------

    def plan(self, batch: Mapping[str, Pending], request: ClaimRequest | None) -> Plan | None:
        """The plan of a processor's write: ``batch`` (its changes), and the claim ``request`` if it claims."""
        self._step = _Step()
        results: dict[str, str] = {}  # job id -> workflow, for the results the breaker counts
        for job_id, pending in batch.items():
            run = self._runs.get(pending.run_id)
            if run is None or pending.change is Change.RECORD_PID:
                continue
            if run.probe or self.config.settings_of(run.workflow).breaker is not None:
                results[job_id] = run.workflow
        done = tuple(pending.run_id for pending in batch.values() if pending.change is not Change.RECORD_PID)
        workflows = set(results.values()) | set(request.slots if request is not None else ())
        workflows = {name for name in workflows if name in self.config.workflows}
        if not workflows:
            self.forget(done)
            return None

        def finished(jobs: Mapping[str, Job | None], now: datetime) -> dict[str, list[rules.Finished]]:
            found: defaultdict[str, list[rules.Finished]] = defaultdict(list)
            for job_id, workflow in results.items():
                pending, job = batch[job_id], jobs.get(job_id)
                if job is None or not pending.held:
                    continue
                probe = self._runs[pending.run_id].probe
                if pending.change is Change.FINISH:
                    attempt = rules.Finished.of(job, probe=probe)
                else:  # given back untouched: nothing was tried (a probe's slot is free again)
                    attempt = rules.Finished(job_id, job.attempt, now, now, Outcome.STOPPED, probe=probe)
                if attempt is not None:
                    found[workflow].append(attempt)
            return found

        fallback = request.claimant.now if request is not None else self.clock()
        return self._plan(workflows, finished, request, fallback, done)

    def recovery_plan(self, recovered: Collection[str], workflows: Iterable[str]) -> Plan | None:
        """The plan of a recovery's write: the jobs ``recovered`` (ids, known once its mutations ran) ended
        an attempt as interrupted, which the breaker counts like any failure (a probe's is given back)."""
        self._step = _Step()
        names = {name for name in workflows if name in self.config.workflows}
        if not names:
            return None

        def finished(jobs: Mapping[str, Job | None], now: datetime) -> dict[str, list[rules.Finished]]:
            found: defaultdict[str, list[rules.Finished]] = defaultdict(list)
            for job_id in recovered:
                job = jobs.get(job_id)
                attempt = None if job is None else rules.Finished.of(job)
                if job is not None and attempt is not None:
                    found[job.workflow].append(attempt)
            return found

        return self._plan(names, finished, None, self.clock())

    def _plan(
        self,
        workflows: Collection[str],
        finished: Callable[[Mapping[str, Job | None], datetime], Mapping[str, list[rules.Finished]]],
        request: ClaimRequest | None,
        fallback: datetime,
        done: tuple[str, ...] = (),
    ) -> Plan:
        ticket = uuid.uuid4().hex  # the same for every call of this plan: the store may make its step again

        def decide(docs: Mapping[str, StateDoc], now: datetime | None, jobs: Mapping[str, Job | None]) -> PlanResult:
            now = now or fallback  # a file or memory has no clock of its own: the caller's is the one there is
            step = _Step(ticket=ticket, claiming=request is not None, written=done)
            ended = finished(jobs, now)
            writes: dict[str, StateDoc | None] = {}
            mutations: dict[str, Mutation] = {}
            for workflow in sorted(workflows):
                key = state_key(workflow)
                state = self._read(docs.get(key), key)
                settings = self.config.settings_of(workflow).breaker
                verdict = rules.after_attempts(state, ended.get(workflow, ()), settings, workflow=workflow, now=now)
                claiming = request is not None and workflow in request.slots
                lease = request.claimant.leases[workflow] if request is not None and claiming else timedelta(0)
                ahead = request.ahead if request is not None else timedelta(0)
                gate = rules.gate(
                    verdict.state, settings, now=now, claiming=claiming, lease=lease, ticket=ticket, ahead=ahead
                )
                for job_id, change in [*verdict.changes.items(), *gate.changes.items()]:
                    mutations[job_id] = then(mutations.get(job_id), change)
                step.events += [*verdict.events, *gate.events]
                step.states[workflow] = gate.state
                if claiming and gate.slots is not None:
                    step.slots[workflow] = gate.slots
                new = gate.state.to_doc()
                if new != docs.get(key):
                    writes[key] = new
            self._step = step
            return PlanResult(writes=writes, mutations=mutations, slots=step.slots)

        return Plan([state_key(name) for name in workflows], decide)

    def _read(self, doc: StateDoc | None, key: str) -> WorkflowState:
        try:
            return WorkflowState.of(doc)
        except ValueError as error:
            if key not in self._warned:
                self._warned.add(key)
                log.warning("state document %s: %s; started afresh", key, error)
            return WorkflowState()

    # -- once a write is done --------------------------------------------------------------------------

    def written(
        self, batch: Collection[str], claimed: Iterable[Job], results: Mapping[str, Job | None], report: ProcessReport
    ) -> None:
        """The write that carried the last plan returned (``batch``: the ids of the jobs it changed for this
        processor): say what its plan decided, note the probe it let through."""
        step, self._step = self._step, _Step()
        self.forget(step.written)
        self._act(step, results, report, own=batch)
        probes: dict[str, Job] = {}
        for job in claimed:
            assert job.run_id is not None
            probe = step.slots.get(job.workflow) == 1 and job.workflow in self._probing(step)
            self._runs[job.run_id] = _Run(job.workflow, probe)
            if probe:
                probes[job.workflow] = job
                log.info("probe: incident %s still open?", self._incident_id(step, job.workflow), extra={"job": job})
        unused = [name for name in self._probing(step) if name not in probes]
        if probes or unused:
            try:
                self._note_probes(probes, unused, step.ticket)
            except RetryqError as error:  # the claims are written: their runs start all the same
                log.warning("the probe could not be noted (%s); it is forgotten once its lease is over", error)
        if step.claiming:
            self.held = {name: step.states[name] for name, room in step.slots.items() if room == 0}

    def recovered(self, report: ProcessReport) -> None:
        """A recovery's write returned: say what its plan decided."""
        step, self._step = self._step, _Step()
        self._act(step, {}, report)

    def forget(self, run_ids: Iterable[str]) -> None:
        """These runs' last change is written."""
        for run_id in run_ids:
            self._runs.pop(run_id, None)

    def announce(self, job: Job, shown: Job, report: ProcessReport) -> bool:
        """Say what became of a result the breaker changed (given back, or waiting for its verdict); False if none."""
        if job.status is not JobStatus.PENDING or not job.history:
            return False
        last = job.history[-1]
        if last.incident is not None and last.attempt == job.attempt:
            report.retrying += 1  # rescheduled, its attempt not counted
            report.given_back += 1
            log.info(
                "%s; attempt #%d given back (incident %s): held until the upstream is back",
                _first_line(job.last_error),
                last.attempt,
                last.incident,
                extra={"job": shown},
            )
            return True
        if last.attempt == job.attempt and last.outcome is not Outcome.STOPPED:
            report.retrying += 1
            log.info(
                "%s; its last attempt: it ends failed at %s unless an incident opens and gives it back",
                _first_line(job.last_error),
                format_utc(job.execute_at),
                extra={"job": shown},
            )
            return True
        return False

    def conclude(self, report: ProcessReport) -> None:
        """The run is over: one line for what it held and why; wait for the hooks it started."""
        try:
            self._say_held(report)
        except RetryqError as error:  # the run is done: what it held is only told
            log.warning("could not count the jobs held: %s", error)
        self.failure_hooks.wait()
        self.incident_hooks.wait()

    def _say_held(self, report: ProcessReport) -> None:
        now = self.clock()
        held = {}
        for name in self.held:
            pending = self.store.load(JobFilter.of(status=JobStatus.PENDING, workflow=name))
            held[name] = sum(1 for job in pending if job.execute_at <= now)
        if held:
            report.held.update(held)
            log.info("held: %s", "; ".join(self._why(name, self.held[name], count) for name, count in held.items()))
            counted = {name: count for name, count in held.items() if isinstance(self.held[name].incident, Incident)}
            if counted:
                self._note_held(counted)

    # -- the parts -------------------------------------------------------------------------------------

    def _act(
        self, step: _Step, results: Mapping[str, Job | None], report: ProcessReport, own: Collection[str] = ()
    ) -> None:
        for event in step.events:
            job = results.get(getattr(event, "job", ""))
            if isinstance(event, rules.Opened):
                incident = event.incident
                seen = ", ".join(f"{what} ×{count}" for what, count in incident.seen.items())
                settings = self.config.settings_of(incident.workflow).breaker
                every = format_duration(settings.probe_every) if settings else "?"
                log.warning(
                    "incident %s opened: %s of workflow %s failed (%s); its retries are held, one probe every %s",
                    incident.id,
                    plural(incident.failures, "job"),
                    incident.workflow,
                    seen,
                    every,
                )
                self.incident_hooks.notify(incident, "opened")
            elif isinstance(event, rules.Closed):
                self._closed(event.incident)
            elif isinstance(event, rules.GivenBack) and job is not None and event.job not in own:
                report.given_back += 1
                log.info("attempt #%d given back (incident %s)", event.attempt, event.incident, extra={"job": job})
            elif isinstance(event, rules.Confirmed) and job is not None and job.status is JobStatus.FAILED:
                report.failed += 1
                log.warning(
                    "%s; failed after %s (no incident opened within the window)",
                    _first_line(job.last_error),
                    plural(job.attempt, "attempt"),
                    extra={"job": job},
                )
                self.failure_hooks.notify(job)
            elif isinstance(event, rules.PauseEnded):
                log.info("pause of a workflow ended (it was until %s)", _when(event.pause.until))

    def _closed(self, incident: Incident) -> None:
        assert incident.closed_at is not None
        took = format_duration(incident.closed_at - incident.opened_at)
        if incident.closed_by == "max_open":
            log.warning(
                "incident %s closed after %s (max_open): jobs of workflow %s run and count as usual; "
                "no new incident opens until one succeeds",
                incident.id,
                took,
                incident.workflow,
            )
        else:
            how = {"probe": "a probe succeeded", "resume": "resumed", "off": "its breaker is off"}
            log.warning(
                "incident %s closed after %s: %s; workflow %s runs again (%s given back)",
                incident.id,
                took,
                how.get(incident.closed_by or "", incident.closed_by),
                incident.workflow,
                plural(incident.given_back, "attempt"),
            )
        self.incident_hooks.notify(incident, "closed")

    def _probing(self, step: _Step) -> list[str]:
        """The workflows the step let one probe through."""
        return [
            name
            for name, room in step.slots.items()
            if room == 1 and (incident := step.states[name].incident) is not None and incident.probe is not None
        ]

    def _note_probes(self, probes: Mapping[str, Job], unused: Collection[str], ticket: str) -> None:
        def decide(docs: Mapping[str, StateDoc], now: datetime | None, jobs: Mapping[str, Job | None]) -> PlanResult:
            writes: dict[str, StateDoc | None] = {}
            for name in [*probes, *unused]:
                key = state_key(name)
                state = self._read(docs.get(key), key)
                if name in probes:
                    state = rules.note_probe(state, ticket, probes[name].id)
                else:
                    state = rules.give_probe_back(state, ticket)
                writes[key] = state.to_doc()
            return PlanResult(writes=writes)

        self.store.update({}, plan=Plan([state_key(name) for name in [*probes, *unused]], decide))

    def _note_held(self, held: Mapping[str, int]) -> None:
        def decide(docs: Mapping[str, StateDoc], now: datetime | None, jobs: Mapping[str, Job | None]) -> PlanResult:
            writes: dict[str, StateDoc | None] = {}
            for name, count in held.items():
                key = state_key(name)
                state = self._read(docs.get(key), key)
                new = rules.note_held(state, count)
                if new is not state:
                    writes[key] = new.to_doc()
            return PlanResult(writes=writes)

        self.store.update({}, plan=Plan([state_key(name) for name in held], decide))

    def _why(self, name: str, state: WorkflowState, count: int) -> str:
        holder = state.held_by(self.clock()) or state.pause or state.incident
        jobs = plural(count, "job")
        if isinstance(holder, Pause):
            reason = f": {holder.reason}" if holder.reason else ""
            return f"workflow {name} paused until {_when(holder.until)}{reason} ({jobs} due)"
        if isinstance(holder, Incident):
            settings = self.config.settings_of(name).breaker
            probe = f", next probe {format_utc(holder.next_probe(settings))}" if settings else ""
            return (
                f"workflow {name}, incident {holder.id} open since {format_utc(holder.opened_at)}{probe} ({jobs} due)"
            )
        return f"workflow {name} ({jobs} due)"

    @staticmethod
    def _incident_id(step: _Step, workflow: str) -> str:
        incident = step.states[workflow].incident
        return incident.id if incident is not None else "?"


def _when(moment: datetime | None) -> str:
    return "resumed" if moment is None else format_utc(moment)


def _first_line(text: str | None) -> str:
    return (text or "").split("\n", 1)[0]
