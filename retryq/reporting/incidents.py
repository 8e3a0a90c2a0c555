"""Upstream incidents and pauses as readers see them: ``retryq incidents``, ``list``, ``stats``, ``doctor``,
the metrics and the dashboard all read them here, from the workflows' state documents and the jobs."""

from __future__ import annotations

__all__ = [
    "IncidentStats",
    "Reading",
    "findings",
    "held_gauges",
    "held_jobs",
    "held_workflows",
    "incident_stats",
    "incidents",
    "pause_json",
    "read_states",
    "upstream_stats",
]

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..record.views import JobData

from ..record.breakerstate import STATE_PREFIX, Incident, Pause, WorkflowState
from ..record.errors import RetryqError
from ..record.models import JobStatus
from ..record.text import plural
from ..record.timeutil import format_utc
from ..settings.config import Config
from ..stores import Finding, JobFilter, Store

log = logging.getLogger("retryq")


@dataclass(frozen=True)
class Reading:
    """The workflows' breaker states, by workflow, and the documents that could not be read (key: why)."""

    states: Mapping[str, WorkflowState] = field(default_factory=dict)
    unreadable: Mapping[str, str] = field(default_factory=dict)

    def holders(self, now: datetime) -> dict[str, Pause | Incident]:
        """What holds each held workflow at ``now``: its pause, else its open incident."""
        found = {name: state.held_by(now) for name, state in self.states.items()}
        return {name: holder for name, holder in found.items() if holder is not None}


def read_states(store: Store) -> Reading:
    """Every workflow's breaker state the store keeps (a document retryq cannot read is named, not fatal)."""
    states: dict[str, WorkflowState] = {}
    unreadable: dict[str, str] = {}
    for key, doc in store.state().items():
        if not key.startswith(STATE_PREFIX):
            continue
        try:
            states[key[len(STATE_PREFIX) :]] = WorkflowState.of(doc)
        except ValueError as error:
            unreadable[key] = str(error)
    return Reading(states, unreadable)


def held_jobs(store: Store, workflows: Iterable[str], now: datetime) -> dict[str, int]:
    """How many pending jobs of each of ``workflows`` are due (and so held, when the workflow is)."""
    counts = {}
    for name in workflows:
        pending = store.load(JobFilter.of(status=JobStatus.PENDING, workflow=name))
        counts[name] = sum(1 for job in pending if job.execute_at <= now)
    return counts


def incidents(store: Store, config: Config, *, now: datetime, closed: bool = False) -> list[Incident]:
    """The open incidents, each with the jobs it holds now as ``held``, and with ``closed`` those kept since
    closed (a workflow keeps its last 20); in the order they opened."""
    reading = read_states(store)
    opened = [state.incident for state in reading.states.values() if state.incident is not None]
    counts = held_jobs(store, [each.workflow for each in opened], now)
    found = [replace(each, held=counts.get(each.workflow, 0)) for each in opened]
    if closed:
        found += [each for state in reading.states.values() for each in state.closed]
    return sorted(found, key=lambda each: (each.opened_at, each.workflow))


def held_gauges(store: Store, now: datetime) -> dict[str, tuple[int, int, int]]:
    """For each workflow that is held: whether an incident is open (0 or 1), whether it is paused, and its due
    jobs, for the metrics; none when the state cannot be read."""
    try:
        reading = read_states(store)
    except RetryqError:
        return {}
    holders = reading.holders(now)
    counts = held_jobs(store, holders, now)
    gauges = {}
    for name in holders:
        state = reading.states[name]
        paused = state.pause is not None and state.pause.holds(now)
        gauges[name] = (int(state.incident is not None), int(paused), counts[name])
    return gauges


def held_workflows(store: Store, now: datetime) -> set[str]:
    """The workflows held at ``now`` (an open incident, a pause); none when the state cannot be read."""
    try:
        return set(read_states(store).holders(now))
    except RetryqError:
        return set()


def findings(store: Store, config: Config, *, now: datetime) -> list[Finding]:
    """What ``doctor`` says of incidents and pauses: each held workflow (a warning: its retries wait), and
    each state document it cannot read (a problem). A state file that cannot be read is the store's to name."""
    try:
        reading = read_states(store)
    except RetryqError:
        return []
    found = [
        Finding("problem", f"state document {key}: {why}; `retryq resume` its workflow starts it afresh")
        for key, why in reading.unreadable.items()
    ]
    holders = reading.holders(now)
    counts = held_jobs(store, holders, now)
    for name, holder in sorted(holders.items()):
        jobs = plural(counts.get(name, 0), "job")
        if isinstance(holder, Pause):
            found.append(
                Finding(
                    "warning",
                    f"workflow {name} is paused {describe_pause(holder)}: {jobs} due wait; `retryq resume {name}`",
                )
            )
            continue
        settings = config.settings_of(name).breaker
        probe = f", next probe {format_utc(holder.next_probe(settings))}" if settings is not None else ""
        found.append(
            Finding(
                "warning",
                f"workflow {name}: upstream incident {holder.id} open since {format_utc(holder.opened_at)} "
                f"({jobs} held, {plural(holder.given_back, 'attempt')} given back{probe}); "
                f"`retryq resume {name}` once the upstream is back",
            )
        )
    return found


@dataclass(frozen=True)
class IncidentStats:
    """What ``stats`` says of incidents: how many, the open ones, the jobs they and pauses hold, the attempts
    given back, and the chains that overlapped an incident."""

    incidents: int
    open: tuple[Incident, ...]
    closed: tuple[Incident, ...]  # those kept (a workflow keeps its last 20), in the order they opened
    paused: Mapping[str, Pause]
    held: int
    given_back: int
    overlapped: int

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "count": self.incidents,
            "open": [each.to_json_dict() for each in self.open],
            "closed": [each.to_json_dict() for each in self.closed],
            "paused": {name: pause_json(pause) for name, pause in self.paused.items()},
            "jobsHeld": self.held,
            "attemptsGivenBack": self.given_back,
            "chainsOverlapped": self.overlapped,
        }

    def lines(self) -> list[str]:
        """Lines for ``stats``: none at all where no incident, pause or attempt given back was ever seen."""
        if not (self.incidents or self.paused or self.given_back):
            return []
        lines = [
            f"upstream incidents: {self.incidents} ({len(self.open)} open); attempts given back: {self.given_back}; "
            f"chains that overlapped one: {self.overlapped}"
        ]
        lines += [
            f"open incident {each.id}: workflow {each.workflow} since {format_utc(each.opened_at)}, "
            f"{plural(each.held, 'job')} held"
            for each in self.open
        ]
        lines += [f"paused: workflow {name} {describe_pause(pause)}" for name, pause in self.paused.items()]
        return lines


def incident_stats(
    reading: Reading, chains: Sequence[JobData], held: Mapping[str, int], *, now: datetime, workflow: str | None = None
) -> IncidentStats:
    """The incidents of ``reading`` (of ``workflow`` only, if given) against ``chains`` (the chains ``stats``
    counts); ``held``: the due jobs of each held workflow."""
    states = {name: state for name, state in reading.states.items() if workflow is None or name == workflow}
    every = [each for state in states.values() for each in (*state.closed, *filter(None, [state.incident]))]
    opened = tuple(
        replace(state.incident, held=held.get(name, 0)) for name, state in states.items() if state.incident is not None
    )
    paused = {name: state.pause for name, state in states.items() if state.pause is not None and state.pause.holds(now)}
    spans: dict[str, list[tuple[datetime, datetime]]] = {}
    for each in every:
        spans.setdefault(each.workflow, []).append((each.opened_at, each.closed_at or now))
    overlapped = sum(1 for job in chains if any(_overlaps(job, span, now) for span in spans.get(job.workflow, ())))
    return IncidentStats(
        incidents=len(every),
        open=opened,
        closed=tuple(sorted((each for each in every if each.closed_at is not None), key=lambda each: each.opened_at)),
        paused=paused,
        held=sum(count for name, count in held.items() if name in {*paused, *(each.workflow for each in opened)}),
        given_back=sum(1 for job in chains for entry in job.history if entry.incident is not None),
        overlapped=overlapped,
    )


def upstream_stats(
    store: Store,
    jobs: Sequence[JobData],
    *,
    now: datetime,
    since: timedelta | None = None,
    client: str | None = None,
    workflow: str | None = None,
) -> IncidentStats:
    """:func:`incident_stats` of the store, against the chains of ``jobs`` the filters keep (as ``stats`` counts
    them); nothing when the state cannot be read (``doctor`` says why)."""
    from .stats import select_chains

    try:
        reading = read_states(store)
    except RetryqError:
        reading = Reading()
    chains = select_chains(jobs, now=now, since=since, client=client, workflow=workflow)
    held = held_jobs(store, reading.holders(now), now)
    return incident_stats(reading, chains, held, now=now, workflow=workflow)


def describe_pause(pause: Pause) -> str:
    """``until 12:00 (by ops@host1: maintenance)``, as a line shows a pause."""
    until = "until resumed" if pause.until is None else f"until {format_utc(pause.until)}"
    who = ", ".join(part for part in (f"by {pause.by}" if pause.by else "", pause.reason or "") if part)
    return f"{until} (since {format_utc(pause.since)}{'; ' + who if who else ''})"


def pause_json(pause: Pause) -> dict[str, Any]:
    """A pause as JSON shows it."""
    return {
        "since": format_utc(pause.since),
        "until": None if pause.until is None else format_utc(pause.until),
        "reason": pause.reason,
        "by": pause.by,
    }


def _overlaps(job: JobData, span: tuple[datetime, datetime], now: datetime) -> bool:
    ended = job.finished_at if job.status.is_finished and job.finished_at else now
    return job.scheduled_at <= span[1] and span[0] <= ended
