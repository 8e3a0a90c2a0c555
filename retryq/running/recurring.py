"""Recurring jobs the queue owns: the processor's step that enqueues each occurrence of a schedule once.

``process`` takes this step at its start, a worker every few seconds. For each schedule of the
configuration (``[schedules.NAME]``), the queue's state holds a record (key ``schedule:<name>``):
its expression and zone, when it was first seen, the last occurrence handled, its job and what was
done with it. From that record and the store's time, :func:`retryq.record.occurrences.due` says
which occurrence is due; the step then writes the occurrence's job and the new record in one step
of the store (a plan of :meth:`~retryq.stores.Store.add`), and only if the record is still the one
it decided from: of several processes and hosts at the same tick, one enqueues it, the others find
it done. Nothing here waits, sleeps or runs a workflow: the job runs as any job does.
"""

from __future__ import annotations

__all__ = ["RECURRING_EVERY", "Record", "Recurring", "ScheduleStatus", "schedule_statuses"]

import logging
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from ..record import lifecycle
from ..record.errors import InvalidInput
from ..record.models import Job, JobKey
from ..record.occurrences import Due, due, first_seen
from ..record.timeutil import format_duration, format_utc, parse_utc
from ..settings.config import Config, Schedule
from ..stores import Plan, PlanResult, StateDoc, Store, store_time

log = logging.getLogger("retryq")

#: A worker looks for due occurrences this often (seconds); `process` once, as it starts.
RECURRING_EVERY = 10.0
#: The wait between attempts of an occurrence's job when its workflow's backoff gives none: as `retryq schedule`'s.
RETRY_DELAY_MINUTES = 60
ABORT = PlanResult(abort=True)


def _unchanged(job: Job) -> Job:
    return job


@dataclass(frozen=True)
class Record:
    """What the queue records of a schedule (its state document), read back as it was written."""

    cron: str
    tz: str  # the zone's name as configured, or "local"
    since: datetime  # when it was first seen (less the due window): no occurrence before counts
    last: datetime | None = None  # the last occurrence handled
    job: str | None = None  # that occurrence's job: the one enqueued, or the open job that made it skip
    outcome: str | None = None  # enqueued, skipped (a job still open), missed (too late for catch_up = "none")
    reason: str | None = None
    at: datetime | None = None  # when that was decided

    @classmethod
    def of(cls, doc: object) -> Record | None:
        """The record of a state document; None for none, or for one it cannot read (the schedule starts afresh)."""
        if not isinstance(doc, Mapping):
            return None
        try:
            return cls(
                cron=_text(doc["cron"]),
                tz=_text(doc["tz"]),
                since=parse_utc(_text(doc["since"])),
                last=_moment(doc.get("last")),
                job=_text(doc.get("job")) if doc.get("job") is not None else None,
                outcome=_text(doc.get("outcome")) if doc.get("outcome") is not None else None,
                reason=_text(doc.get("reason")) if doc.get("reason") is not None else None,
                at=_moment(doc.get("at")),
            )
        except (KeyError, InvalidInput):
            return None

    def to_doc(self) -> StateDoc:
        times = {name: format_utc(value) for name in ("since", "last", "at") if (value := getattr(self, name))}
        given = {name: value for name in ("job", "outcome", "reason") if (value := getattr(self, name)) is not None}
        return {"cron": self.cron, "tz": self.tz, **times, **given}

    def fits(self, schedule: Schedule) -> bool:
        """Whether it was recorded for the expression and zone ``schedule`` has now."""
        return (self.cron, self.tz) == (schedule.cron, schedule.zone_name)


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"expected a string, not {value!r}")
    return value


def _moment(value: object) -> datetime | None:
    return None if value is None else parse_utc(_text(value))


def _settled(record: Record) -> Record:
    """``record`` as the store will give it back (times to the millisecond): what the next step compares with."""
    settled = Record.of(record.to_doc())
    assert settled is not None
    return settled


class Recurring:
    """Enqueues the due occurrences of ``config``'s schedules (those of the workflows in ``only``, if given)."""

    def __init__(
        self,
        store: Store,
        config: Config,
        *,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float] = time.monotonic,
        only: Collection[str] | None = None,
    ) -> None:
        self.store, self.config, self.clock, self.monotonic = store, config, clock, monotonic
        self.schedules = [each for each in config.schedules.values() if only is None or each.workflow in only]
        self._looked_at = -float("inf")
        self._unreadable: set[str] = set()

    def _record(self, schedule: Schedule, doc: StateDoc | None) -> Record | None:
        """The schedule's record; one it cannot read is said (once) and the schedule starts afresh."""
        record = Record.of(doc)
        if record is None and doc is not None and schedule.state_key not in self._unreadable:
            self._unreadable.add(schedule.state_key)
            log.warning("state document %s is not a schedule's record; started afresh", schedule.state_key)
        return record

    def periodic(self) -> list[Job]:
        """A worker's look, every :data:`RECURRING_EVERY` seconds."""
        if self.monotonic() - self._looked_at < RECURRING_EVERY:
            return []
        return self.enqueue()

    def enqueue(self) -> list[Job]:
        """Handle the occurrence of each schedule that is due now; return the jobs enqueued."""
        self._looked_at = self.monotonic()
        if not self.schedules:
            return []
        now, _ = store_time(self.store, self.clock())  # the store's clock where it has one: every host reads the same
        docs = self.store.state([each.state_key for each in self.schedules])
        enqueued = []
        for schedule in self.schedules:
            job = self._handle(schedule, self._record(schedule, docs.get(schedule.state_key)), now)
            if job is not None:
                enqueued.append(job)
        return enqueued

    def _handle(self, schedule: Schedule, record: Record | None, now: datetime) -> Job | None:
        if record is None or not record.fits(schedule):
            record = self._start(schedule, record, now)
        rule = schedule.rule()
        found = due(
            rule, now=now, since=record.since, last=record.last, catch_up=schedule.catch_up, grace=schedule.grace
        )
        if found is None:
            return None
        if not found.on_time:
            self._missed(schedule, record, found, now)
            return None
        if record.job is not None and self._previous_still_open(schedule, record, found, now):
            return None
        return self._add(schedule, record, found, now)

    def _start(self, schedule: Schedule, record: Record | None, now: datetime) -> Record:
        """Record a schedule seen for the first time, or whose expression or zone changed: it counts from now on."""
        fresh = Record(cron=schedule.cron, tz=schedule.zone_name, since=first_seen(now, self.config.due_window))
        if record is not None:  # the last occurrence handled stays: its job may still be open
            fresh = replace(fresh, last=record.last, job=record.job, outcome=record.outcome, reason=record.reason)
        fresh = _settled(fresh)
        result: dict[str, Record | None] = {}

        def decide(docs: Mapping[str, StateDoc], _: datetime | None, __: Mapping[str, Job | None]) -> PlanResult:
            current = Record.of(docs.get(schedule.state_key))
            if current is not None and current.fits(schedule):
                result.update(found=current, written=None)  # another process got there first
                return ABORT
            result.update(found=fresh, written=fresh)
            return PlanResult(writes={schedule.state_key: fresh.to_doc()})

        self.store.update({}, plan=Plan([schedule.state_key], decide))
        if result.get("written") is not None:
            upcoming = schedule.rule().after(fresh.since)  # one within the due window counts
            if record is None:
                log.info("schedule %s: first seen; next occurrence %s", schedule.name, _shown(upcoming))
            else:
                log.warning(
                    "schedule %s: its cron or tz changed (was %r in %s); it starts afresh, next occurrence %s",
                    schedule.name,
                    record.cron,
                    record.tz,
                    _shown(upcoming),
                )
        found = result.get("found")
        assert found is not None
        return found

    def _missed(self, schedule: Schedule, record: Record, found: Due, now: datetime) -> None:
        late = format_duration(now - found.occurrence)
        reason = f"found {late} after it, later than its grace ({format_duration(schedule.grace)})"
        missed = _settled(replace(record, last=found.occurrence, outcome="missed", reason=reason, at=now))
        if self._write_if_unchanged(schedule, record, missed):
            log.warning(
                'schedule %s: occurrence %s missed: %s; catch_up = "none" skips it',
                schedule.name,
                format_utc(found.occurrence),
                reason,
            )

    def _write_if_unchanged(self, schedule: Schedule, record: Record, new: Record) -> bool:
        """Write ``new`` if the record is still ``record``; whether it was written."""
        written: list[bool] = []

        def decide(docs: Mapping[str, StateDoc], _: datetime | None, __: Mapping[str, Job | None]) -> PlanResult:
            written[:] = [Record.of(docs.get(schedule.state_key)) == record]
            return PlanResult(writes={schedule.state_key: new.to_doc()}) if written[0] else ABORT

        self.store.update({}, plan=Plan([schedule.state_key], decide))
        return written == [True]

    def _previous_still_open(self, schedule: Schedule, record: Record, found: Due, now: datetime) -> bool:
        """No pile-up: when the job of the last occurrence is still open, this one is skipped (recorded so, once).

        The job and the record are read in one step (the job is locked with it where the store locks rows):
        a job that ends meanwhile lets the occurrence through. True when the occurrence is not to be added
        (skipped here, or handled by another process).
        """
        assert record.job is not None
        verdict: dict[str, Any] = {}

        def decide(docs: Mapping[str, StateDoc], _: datetime | None, jobs: Mapping[str, Job | None]) -> PlanResult:
            if Record.of(docs.get(schedule.state_key)) != record:
                verdict.update(stop=True, previous=None)  # handled by another process meanwhile
                return ABORT
            previous = jobs.get(record.job or "")
            if previous is None or not previous.status.is_open:
                verdict.update(stop=False, previous=None)
                return PlanResult()
            reason = f"job {previous.id} of the previous occurrence is still {previous.status.value}"
            skipped = replace(record, last=found.occurrence, outcome="skipped", reason=reason, at=now)
            verdict.update(stop=True, previous=previous, reason=reason)
            return PlanResult(writes={schedule.state_key: _settled(skipped).to_doc()})

        self.store.update({record.job: _unchanged}, plan=Plan([schedule.state_key], decide))
        if verdict.get("previous") is not None:
            log.warning(
                "schedule %s: occurrence %s skipped: %s",
                schedule.name,
                format_utc(found.occurrence),
                verdict["reason"],
                extra={"job": verdict["previous"]},
            )
        return bool(verdict.get("stop"))

    def _add(self, schedule: Schedule, record: Record, found: Due, now: datetime) -> Job | None:
        """Enqueue the occurrence's job and record it, in one step; None when another process did it first."""
        job = self._job(schedule, found, now)
        outcome: dict[str, Any] = {}

        def decide(docs: Mapping[str, StateDoc], _: datetime | None, jobs: Mapping[str, Job | None]) -> PlanResult:
            if Record.of(docs.get(schedule.state_key)) != record:
                outcome.clear()
                return ABORT  # another process enqueued it (or decided otherwise) since this one looked
            [(ident, held)] = jobs.items()
            reason = None if ident == job.id else f"job {ident} of its client and date is already open"
            new = replace(
                record,
                last=found.occurrence,
                job=ident,
                outcome="enqueued" if reason is None else "skipped",
                reason=reason,
                at=now,
            )
            outcome.update(job=held, reason=reason)
            return PlanResult(writes={schedule.state_key: _settled(new).to_doc()})

        stored, created = self.store.add(job, _unchanged, plan=Plan([schedule.state_key], decide))
        if not outcome:
            return None
        occurrence = format_utc(found.occurrence)
        if not created:
            log.warning("schedule %s: occurrence %s skipped: %s", schedule.name, occurrence, outcome["reason"])
            return None
        log.info(
            "schedule %s: occurrence %s enqueued as job %s", schedule.name, occurrence, stored.id, extra={"job": stored}
        )
        return stored

    def _job(self, schedule: Schedule, found: Due, now: datetime) -> Job:
        """The occurrence's job: due now, for the schedule's client and the occurrence's date in its zone."""
        settings = self.config.settings_of(schedule.workflow)
        key = JobKey.of(schedule.client_id, schedule.rule().date_of(found.occurrence), schedule.workflow)
        job = lifecycle.new_job(
            key, delay_minutes=RETRY_DELAY_MINUTES, now=now, max_attempts=settings.max_attempts, execute_at=now
        )
        priority = settings.priority if schedule.priority is None else schedule.priority
        return job.model_copy(update={"priority": priority}) if priority else job


def _shown(moment: datetime | None) -> str:
    return "none within 50 years" if moment is None else format_utc(moment)


# -- what `retryq schedules`, doctor, the dashboard and the metrics show ------------------------------


@dataclass(frozen=True)
class ScheduleStatus:
    """A schedule as the queue sees it now: its next occurrence, and what became of the last one."""

    schedule: Schedule
    next: datetime | None
    record: Record | None
    job: Job | None  # the last occurrence's job, while the queue keeps it

    @property
    def last_outcome(self) -> str:
        """The status of the last occurrence's job (pending … failed), else ``skipped`` or ``missed``;
        ``none`` before any."""
        if self.record is None or self.record.outcome is None:
            return "none"
        if self.record.outcome == "enqueued":
            return self.job.status.value if self.job is not None else "gone"
        return self.record.outcome

    def to_json_dict(self) -> dict[str, Any]:
        schedule, record = self.schedule, self.record
        return {
            "name": schedule.name,
            "cron": schedule.cron,
            "tz": schedule.zone_name,
            "workflow": schedule.workflow,
            "client": schedule.client_id,
            "catchUp": schedule.catch_up,
            "priority": schedule.priority,
            "next": None if self.next is None else format_utc(self.next),
            "last": None if record is None or record.last is None else format_utc(record.last),
            "lastOutcome": self.last_outcome,
            "reason": None if record is None else record.reason,
            "job": None if record is None else record.job,
            "status": None if self.job is None else self.job.status.value,
            "since": None if record is None else format_utc(record.since),
        }


def schedule_statuses(config: Config, store: Store, *, now: datetime) -> list[ScheduleStatus]:
    """Each configured schedule, in name order, with what the queue recorded of it (reading only)."""
    schedules = sorted(config.schedules.values(), key=lambda each: each.name)
    if not schedules:
        return []
    docs = store.state([each.state_key for each in schedules])
    found = []
    for schedule in schedules:
        record = Record.of(docs.get(schedule.state_key))
        job = _job_of(store, record.job) if record is not None and record.job else None
        start = now if record is None else max(now, record.since)
        found.append(ScheduleStatus(schedule, schedule.rule().after(start), record, job))
    return found


def _job_of(store: Store, ident: str) -> Job | None:
    return next((job for job in store.find(ident, limit=1) if job.id == ident), None)
