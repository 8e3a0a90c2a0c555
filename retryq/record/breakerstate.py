"""A workflow's breaker state, as its state document holds it: recent failures, the open incident, a
pause, the incidents closed lately. The rules that change it are :mod:`retryq.record.incidents`'s.

The document lives beside the jobs under ``workflow:<name>`` (see :mod:`retryq.stores.base`),
shared by every process and host::

    {"failures": [{"job": "38aa6c22", "attempt": 1, "at": "2025-12-19T11:00:02.000Z", "seen": "exit 75"}],
     "incident": {"id": "api-20251219T110004Z", "openedAt": "…", "failures": 5, "seen": {"exit 75": 5}, …},
     "pause": {"since": "…", "until": null, "reason": "maintenance", "by": "ops@host1"},
     "closed": [… the last 20 incidents closed …]}
"""

from __future__ import annotations

__all__ = [
    "CLOSED_KEPT",
    "STATE_PREFIX",
    "BreakerSettings",
    "Failure",
    "Incident",
    "Pause",
    "Probe",
    "WorkflowState",
    "state_key",
]

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from .timeutil import format_utc, parse_utc

#: How many closed incidents a workflow's state keeps (the latest), for ``retryq incidents --all``.
CLOSED_KEPT = 20
#: The state documents of workflows are named ``workflow:<name>``.
STATE_PREFIX = "workflow:"


def state_key(workflow: str) -> str:
    """The key of ``workflow``'s state document."""
    return STATE_PREFIX + workflow


@dataclass(frozen=True)
class BreakerSettings:
    """A workflow's breaker: ``failures`` distinct jobs failing within ``window`` open an incident; one
    held job probes every ``probe_every``; an incident still open after ``max_open`` closes by itself."""

    failures: int
    window: timedelta
    probe_every: timedelta
    max_open: timedelta


@dataclass(frozen=True)
class Failure:
    """One job's latest failure in the window: its attempt (None for a report: none to give back), when
    it ended, what was seen, and whether its job waits for the verdict (its last attempt)."""

    job: str
    at: datetime
    seen: str
    attempt: int | None = None
    withheld: bool = False


@dataclass(frozen=True)
class Probe:
    """The probe in flight: granted ``at`` (``ticket`` names that claim), lost for good after ``until``
    (its lease); ``job`` once the claimant has said which; ``previous``: the probe time before it."""

    at: datetime
    until: datetime
    ticket: str
    job: str | None = None
    previous: datetime | None = None


@dataclass(frozen=True)
class Incident:
    """One upstream outage of one workflow, open until ``closed_at`` (``closed_by``: probe, resume,
    max_open, or off: its breaker was turned off)."""

    id: str
    workflow: str
    opened_at: datetime
    failures: int
    seen: Mapping[str, int] = field(default_factory=dict)
    probes: int = 0
    given_back: int = 0
    held: int = 0  # the most jobs seen held at once
    last_probe_at: datetime | None = None
    probe: Probe | None = None
    closed_at: datetime | None = None
    closed_by: str | None = None

    def saw(self, what: str) -> Incident:
        return replace(self, seen={**self.seen, what: self.seen.get(what, 0) + 1})

    def next_probe(self, settings: BreakerSettings) -> datetime:
        return (self.last_probe_at or self.opened_at) + settings.probe_every

    def to_json_dict(self, held: int | None = None) -> dict[str, Any]:
        """The incident as ``retryq incidents --json`` and the on_incident hook show it (``held``: the jobs it
        holds now, for an open one; else the most it held at once)."""
        return {
            "id": self.id,
            "workflow": self.workflow,
            "openedAt": _time(self.opened_at),
            "closedAt": _time(self.closed_at),
            "closedBy": self.closed_by,
            "failures": self.failures,
            "heldJobs": self.held if held is None else held,
            "probes": self.probes,
            "lastProbeAt": _time(self.last_probe_at),
            "seen": dict(self.seen),
            "givenBack": self.given_back,
        }


@dataclass(frozen=True)
class Pause:
    """A workflow held by hand since ``since``, until ``until`` (None: until resumed)."""

    since: datetime
    until: datetime | None = None
    reason: str | None = None
    by: str | None = None

    def holds(self, now: datetime) -> bool:
        return self.until is None or now < self.until


@dataclass(frozen=True)
class WorkflowState:
    """A workflow's state document, read. ``quiet``: an incident closed by ``max_open``; no new one opens
    until a job of the workflow succeeds. ``reports``: recent ERROR reports, by job."""

    failures: tuple[Failure, ...] = ()
    incident: Incident | None = None
    pause: Pause | None = None
    closed: tuple[Incident, ...] = ()
    quiet: bool = False
    reports: Mapping[str, datetime] = field(default_factory=dict)

    @classmethod
    def of(cls, doc: Mapping[str, Any] | None) -> WorkflowState:
        """The state a document holds (an empty one for None); ValueError if it is not what retryq writes."""
        if not doc:
            return cls()
        try:
            return cls(
                failures=tuple(_failure(item) for item in doc.get("failures", [])),
                incident=_incident(doc["incident"]) if doc.get("incident") else None,
                pause=_pause(doc["pause"]) if doc.get("pause") else None,
                closed=tuple(_incident(item) for item in doc.get("closed", [])),
                quiet=bool(doc.get("quiet", False)),
                reports={str(job): parse_utc(at) for job, at in dict(doc.get("reports", {})).items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            missing = f"the key {error} is missing" if isinstance(error, KeyError) else "a value is of the wrong kind"
            raise ValueError(f"not a workflow's breaker state ({missing})") from None

    def to_doc(self) -> dict[str, Any] | None:
        """The document (None when there is nothing to keep: no document at all)."""
        doc: dict[str, Any] = {}
        if self.failures:
            doc["failures"] = [_failure_doc(item) for item in self.failures]
        if self.incident is not None:
            doc["incident"] = _incident_doc(self.incident)
        if self.pause is not None:
            pause = self.pause
            doc["pause"] = _drop_none(
                {"since": _time(pause.since), "until": _time(pause.until), "reason": pause.reason, "by": pause.by}
            )
        if self.closed:
            doc["closed"] = [_incident_doc(item) for item in self.closed]
        if self.quiet:
            doc["quiet"] = True
        if self.reports:
            doc["reports"] = {job: _time(at) for job, at in self.reports.items()}
        return doc or None

    def held_by(self, now: datetime) -> Pause | Incident | None:
        """What holds the workflow at ``now``: its pause, else its open incident, else nothing."""
        if self.pause is not None and self.pause.holds(now):
            return self.pause
        return self.incident


# -- reading and writing the document ----------------------------------------------------------------


def _time(value: datetime | None) -> str | None:
    return None if value is None else format_utc(value)


def _maybe_time(value: object) -> datetime | None:
    return None if value is None else parse_utc(str(value))


def _drop_none(doc: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in doc.items() if value is not None}


def _failure(item: Mapping[str, Any]) -> Failure:
    attempt = item.get("attempt")
    if attempt is not None and (isinstance(attempt, bool) or not isinstance(attempt, int)):
        raise ValueError(f"attempt {attempt!r}")
    return Failure(str(item["job"]), parse_utc(item["at"]), str(item["seen"]), attempt, bool(item.get("withheld")))


def _failure_doc(item: Failure) -> dict[str, Any]:
    doc: dict[str, Any] = {"job": item.job, "at": _time(item.at), "seen": item.seen}
    if item.attempt is not None:
        doc["attempt"] = item.attempt
    if item.withheld:
        doc["withheld"] = True
    return doc


def _incident(item: Mapping[str, Any]) -> Incident:
    probe = item.get("probe")
    return Incident(
        id=str(item["id"]),
        workflow=str(item["workflow"]),
        opened_at=parse_utc(item["openedAt"]),
        failures=int(item["failures"]),
        seen={str(key): int(count) for key, count in dict(item.get("seen", {})).items()},
        probes=int(item.get("probes", 0)),
        given_back=int(item.get("givenBack", 0)),
        held=int(item.get("held", 0)),
        last_probe_at=_maybe_time(item.get("lastProbeAt")),
        probe=None
        if not probe
        else Probe(
            parse_utc(probe["at"]),
            parse_utc(probe["until"]),
            str(probe["ticket"]),
            None if probe.get("job") is None else str(probe["job"]),
            _maybe_time(probe.get("previous")),
        ),
        closed_at=_maybe_time(item.get("closedAt")),
        closed_by=None if item.get("closedBy") is None else str(item["closedBy"]),
    )


def _incident_doc(item: Incident) -> dict[str, Any]:
    probe = item.probe
    return _drop_none(
        {
            "id": item.id,
            "workflow": item.workflow,
            "openedAt": _time(item.opened_at),
            "failures": item.failures,
            "seen": dict(item.seen),
            "probes": item.probes,
            "givenBack": item.given_back,
            "held": item.held,
            "lastProbeAt": _time(item.last_probe_at),
            "probe": None
            if probe is None
            else _drop_none(
                {
                    "at": _time(probe.at),
                    "until": _time(probe.until),
                    "ticket": probe.ticket,
                    "job": probe.job,
                    "previous": _time(probe.previous),
                }
            ),
            "closedAt": _time(item.closed_at),
            "closedBy": item.closed_by,
        }
    )


def _pause(item: Mapping[str, Any]) -> Pause:
    reason, by = item.get("reason"), item.get("by")
    return Pause(
        parse_utc(item["since"]),
        _maybe_time(item.get("until")),
        None if reason is None else str(reason),
        None if by is None else str(by),
    )
