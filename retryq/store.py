"""The storage interface every backend implements, and the in-memory backend.

A store keeps jobs and offers a handful of atomic operations; everything a queue does is
built from them. The operations take *mutations* (pure functions ``Job -> Job | None``) rather
than new values, so that a backend applies them to the job as it is at that instant, under
its own lock or transaction: the JSON file store runs them under a file lock, a database store
would run them in a transaction (and pick claims with ``SELECT … FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

__all__ = ["ClaimRequest", "JobFilter", "MemoryStore", "Mutation", "PruneRule", "Store"]

import json
import sys
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from pydantic import ValidationError

from .errors import InvalidInput, OpenJobExists, QueueCorrupt
from .models import DEFAULT_WORKFLOW, Job, JobStatus, describe_validation_error, parse_statuses
from .timeutil import parse_utc

#: A change to one job: return the new job, the same job (no change), or None to remove it.
Mutation = Callable[[Job], "Job | None"]

# Plain strings: a scan compares them for every job on every write, where enum lookups add up.
_PENDING = JobStatus.PENDING.value
_OPEN = frozenset({JobStatus.PENDING.value, JobStatus.RUNNING.value})


@dataclass(frozen=True)
class JobFilter:
    """Which jobs a command means: each field that is set must match.

    ``since`` keeps jobs active at or after it: ended then (finished), else started, else
    scheduled — for a failed job, when it failed.
    """

    statuses: frozenset[JobStatus] | None = None
    workflow: str | None = None
    client: str | None = None
    date: str | None = None
    since: datetime | None = None

    @classmethod
    def of(
        cls,
        *,
        status: JobStatus | str | Iterable[JobStatus | str] | None = None,
        workflow: str | None = None,
        client: str | None = None,
        date: str | None = None,
        since: datetime | None = None,
    ) -> JobFilter:
        """A filter from loose arguments: status names, an aware ``since``."""
        if since is not None and since.tzinfo is None:
            raise InvalidInput("`since` must carry a time zone")
        return cls(parse_statuses(status), workflow, client, date, since)

    def matches(self, job: Job) -> bool:
        return (
            (self.statuses is None or job.status in self.statuses)
            and (self.workflow is None or job.workflow == self.workflow)
            and (self.client is None or job.client_id == self.client)
            and (self.date is None or job.date == self.date)
            and (self.since is None or (job.finished_at or job.started_at or job.scheduled_at) >= self.since)
        )


@dataclass(frozen=True)
class ClaimRequest:
    """Which due jobs to claim: at most ``limit`` in all and ``slots[w]`` of workflow ``w``.

    Due means pending with ``executeAt <= due_by``. Jobs of a workflow absent from ``slots`` are
    never claimed (their workflow is unknown to this process); they stay pending for a process
    that knows it. Jobs whose id is in ``exclude`` are not claimed either (a ``process`` run
    starts each job at most once).
    """

    due_by: datetime
    limit: int
    slots: Mapping[str, int] = field(default_factory=dict)
    exclude: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PruneRule:
    """Which finished jobs may go: those that ended before the cutoff of their workflow and status.

    ``cutoffs`` applies to every workflow not listed in ``by_workflow``. A job "ended" at its
    ``finishedAt`` (else ``startedAt``, else ``executeAt``, for files written by older tools).
    Pending and running jobs are never pruned.
    """

    cutoffs: Mapping[JobStatus, datetime]
    by_workflow: Mapping[str, Mapping[JobStatus, datetime]] = field(default_factory=dict)

    def expired(self, workflow: str, status: JobStatus, ended: datetime) -> bool:
        if not status.is_finished:
            return False
        cutoff = self.by_workflow.get(workflow, self.cutoffs).get(status)
        return cutoff is not None and ended < cutoff


@runtime_checkable
class Store(Protocol):
    """Where jobs live. Each method is atomic with respect to every other process."""

    @property
    def location(self) -> str:
        """Where the jobs are, for messages (a path, a URL without password)."""

    def load(self, statuses: Collection[JobStatus] | None = None) -> list[Job]:
        """The jobs (only those in ``statuses``, if given), in queue order, as one consistent snapshot."""

    def load_archive(self) -> Iterator[Job]:
        """Jobs removed by pruning, oldest first (empty when archiving is off)."""

    def add(self, job: Job, on_open: Mutation) -> tuple[Job, bool]:
        """Insert ``job`` unless an open (pending or running) job has the same key.

        If one has, ``on_open`` is applied to it instead and ``(that job, False)`` is returned;
        otherwise ``(job, True)``.
        """

    def update(self, changes: Mapping[str, Mutation]) -> dict[str, Job | None]:
        """Apply each mutation to the job with that id; return the results (ids not found are left out).

        A job removed (mutation returned None) is archived first when archiving is on.
        """

    def claim(
        self, request: ClaimRequest, mark: Mutation, changes: Mapping[str, Mutation] | None = None
    ) -> tuple[list[Job], dict[str, Job | None]]:
        """Apply ``changes`` as :meth:`update` does, then claim due jobs: ``mark`` each and return them.

        Due means pending with ``executeAt <= request.due_by``; the oldest ``executeAt`` comes
        first. Doing both in one step lets a processor write the results of finished runs and
        claim the next jobs with a single write.
        """

    def prune(self, rule: PruneRule, *, dry_run: bool = False) -> list[Job]:
        """Remove the finished jobs ``rule`` expires (archiving them first when archiving is on); return them.

        With ``dry_run``, return them and remove nothing.
        """


class _Entry:
    """A job in a document store: what a scan needs, its line of JSON, and (on demand) its model.

    A queue of 10,000 jobs is scanned on every write, but only the few jobs a write touches
    need their full object or their validated model: the rest stay as a line of text and a
    handful of fields, which keeps both the time and the memory of a write low.
    """

    __slots__ = ("_doc", "_job", "_line", "ended", "ident", "index", "key", "status")

    def __init__(self, index: int, *, doc: dict[str, Any], line: bytes | None = None, job: Job | None = None) -> None:
        self.index = index  # position in the file when read, for error messages
        status, workflow = doc.get("status"), doc.get("workflow", DEFAULT_WORKFLOW)
        self.status = sys.intern(status) if isinstance(status, str) else status
        self.key = (
            sys.intern(workflow) if isinstance(workflow, str) else workflow,
            doc.get("clientId"),
            doc.get("date"),
        )
        ident = doc.get("id")
        self.ident: str | None = ident if isinstance(ident, str) else None
        ended = doc.get("finishedAt") or doc.get("startedAt") or doc.get("executeAt")
        self.ended: str | None = ended if isinstance(ended, str) else None
        self._line = line
        self._doc = None if line is not None else doc  # with its line kept, the object can be read again
        self._job = job

    @classmethod
    def of(cls, job: Job) -> _Entry:
        return cls(-1, doc=job.to_json_dict(), job=job)

    @property
    def doc(self) -> dict[str, Any]:
        if self._doc is None:
            assert self._line is not None
            self._doc = json.loads(self._line)
        return self._doc

    def job(self, location: str) -> Job:
        if self._job is None:
            doc = self.doc
            try:
                self._job = Job.model_validate(doc)
            except ValidationError as error:
                ident = doc.get("id") or doc.get("clientId") or "?"
                raise QueueCorrupt(
                    f"{location}: job #{self.index + 1} ({ident}) is invalid: {describe_validation_error(error)}"
                ) from None
            if self._line is not None:
                self._doc = None  # the model holds the data now
        return self._job

    def job_id(self, location: str) -> str:
        """The job's id; a job written by the original scripts has none in the file and gets its derived one."""
        return self.ident if self.ident is not None else self.job(location).id

    def line(self) -> bytes:
        """The job as one line of UTF-8 JSON, as the file holds it."""
        if self._line is None:
            self._line = json.dumps(self.doc, ensure_ascii=False).encode("utf-8")
        return self._line

    @property
    def is_open(self) -> bool:
        return self.status in _OPEN

    def ended_at(self, location: str) -> datetime:
        if self.ended is not None:
            try:
                return parse_utc(self.ended)
            except InvalidInput:
                pass  # decoding the job says precisely what is wrong
        job = self.job(location)
        return job.finished_at or job.started_at or job.execute_at


Commit = Callable[[list[_Entry], list[Job]], None]


class DocumentStore:
    """The store operations, for backends that read and rewrite all jobs at once (file, memory).

    Subclasses provide :meth:`_transaction`, which yields the current entries and a function
    that commits a new list of entries (plus the jobs it removes, for the archive).
    """

    location: str = "memory"

    def _transaction(self, timeout: float | None = None) -> AbstractContextManager[tuple[list[_Entry], Commit]]:
        raise NotImplementedError

    def _read(self) -> list[_Entry]:
        raise NotImplementedError

    def load_archive(self) -> Iterator[Job]:
        raise NotImplementedError

    def load(self, statuses: Collection[JobStatus] | None = None) -> list[Job]:
        wanted = None if statuses is None else {JobStatus(status).value for status in statuses}
        return [entry.job(self.location) for entry in self._read() if wanted is None or entry.status in wanted]

    def add(self, job: Job, on_open: Mutation) -> tuple[Job, bool]:
        with self._transaction() as (current, commit):
            for position, entry in enumerate(current):
                # Compared on the scanned fields: adding a job never decodes the whole queue.
                if entry.is_open and entry.key == job.key:
                    existing = entry.job(self.location)
                    updated = on_open(existing)
                    if updated is None:
                        raise ValueError("on_open must return a job")
                    if updated is not existing:
                        entries = current.copy()
                        entries[position] = _Entry.of(updated)
                        commit(entries, [])
                    return updated, False
            commit([*current, _Entry.of(job)], [])
            return job, True

    def update(self, changes: Mapping[str, Mutation]) -> dict[str, Job | None]:
        if not changes:
            return {}
        with self._transaction() as (current, commit):
            entries, results, removed, changed = self._apply(current, changes)
            if changed:
                commit(entries, removed)
            return results

    def claim(
        self, request: ClaimRequest, mark: Mutation, changes: Mapping[str, Mutation] | None = None
    ) -> tuple[list[Job], dict[str, Job | None]]:
        with self._transaction() as (current, commit):
            entries, results, removed, changed = self._apply(current, changes or {})
            claimed: list[Job] = []
            for position in self._due(entries, request):
                new = mark(entries[position].job(self.location))
                if new is None:
                    raise ValueError("mark must return a job")
                entries[position] = _Entry.of(new)
                claimed.append(new)
                changed = True
            if changed:
                commit(entries, removed)
            return claimed, results

    def prune(self, rule: PruneRule, *, dry_run: bool = False) -> list[Job]:
        def expired(entry: _Entry) -> bool:
            try:
                status = JobStatus(entry.status)
            except ValueError:
                return False  # not a known status: decoding the job would say so; pruning leaves it
            return rule.expired(entry.key[0], status, entry.ended_at(self.location))

        if dry_run:
            return [entry.job(self.location) for entry in self._read() if expired(entry)]
        with self._transaction() as (current, commit):
            verdicts = [expired(entry) for entry in current]
            removed = [entry.job(self.location) for entry, gone in zip(current, verdicts, strict=True) if gone]
            if removed:
                commit([entry for entry, gone in zip(current, verdicts, strict=True) if not gone], removed)
            return removed

    def _apply(
        self, entries: list[_Entry], changes: Mapping[str, Mutation]
    ) -> tuple[list[_Entry], dict[str, Job | None], list[Job], bool]:
        """Apply mutations; return the new entries, the results, the removed jobs, and whether anything changed."""
        results: dict[str, Job | None] = {}
        removed: list[Job] = []
        if not changes:
            return entries.copy(), results, removed, False
        changed = False
        kept: list[_Entry] = []
        opened: list[Job] = []
        location = self.location
        for entry in entries:
            ident = entry.ident
            mutation = changes.get(ident if ident is not None else entry.job_id(location))
            if mutation is None:
                kept.append(entry)
                continue
            job = entry.job(self.location)
            new = mutation(job)
            results[job.id] = new
            if new is None:
                removed.append(job)
                changed = True
            elif new is job:
                kept.append(entry)
            else:
                kept.append(_Entry.of(new))
                changed = True
                if new.status.is_open and (not job.status.is_open or new.key != job.key):
                    opened.append(new)
        if opened:
            self._check_one_open_per_key(kept, opened)
        return kept, results, removed, changed

    def _check_one_open_per_key(self, entries: list[_Entry], opened: list[Job]) -> None:
        """Refuse a write that reopens a job beside another open job of the same key (nothing is written)."""
        wanted = {job.key for job in opened}
        holders: dict[tuple[object, ...], list[str]] = {}
        for entry in entries:
            if entry.is_open and entry.key in wanted:
                holders.setdefault(entry.key, []).append(entry.job_id(self.location))
        for job in opened:
            others = [ident for ident in holders.get(job.key, []) if ident != job.id]
            if others:
                workflow, client, date = job.key
                raise OpenJobExists(
                    f"job {others[0]} is already open for {client} {date}"
                    + (f" (workflow {workflow})" if workflow != DEFAULT_WORKFLOW else ""),
                    (job.id, *others),
                )

    def _due(self, entries: list[_Entry], request: ClaimRequest) -> list[int]:
        due: list[tuple[datetime, int]] = []
        due_by, slots, exclude, location = request.due_by, request.slots, request.exclude, self.location
        for position, entry in enumerate(entries):
            if entry.status != _PENDING or entry.key[0] not in slots:
                continue
            if exclude and entry.job_id(location) in exclude:
                continue
            execute_at = entry.job(location).execute_at
            if execute_at <= due_by:
                due.append((execute_at, position))
        due.sort()
        free = dict(slots)
        chosen: list[int] = []
        for _, position in due:
            if len(chosen) >= request.limit:
                break
            workflow = entries[position].key[0]
            if free[workflow] > 0:
                free[workflow] -= 1
                chosen.append(position)
        return chosen


class MemoryStore(DocumentStore):
    """Jobs in memory, for tests and for embedding; thread-safe, gone with the process."""

    def __init__(self, jobs: Iterable[Job] = (), *, archive: bool = True) -> None:
        self.location = "memory"
        self._entries = [_Entry.of(job) for job in jobs]
        self._archive: list[Job] | None = [] if archive else None
        self._lock = threading.RLock()

    def _read(self) -> list[_Entry]:
        with self._lock:
            return list(self._entries)

    def load_archive(self) -> Iterator[Job]:
        with self._lock:
            return iter(list(self._archive or ()))

    @contextmanager
    def _transaction(self, timeout: float | None = None) -> Iterator[tuple[list[_Entry], Commit]]:
        def commit(entries: list[_Entry], removed: list[Job]) -> None:
            if self._archive is not None:
                self._archive.extend(removed)
            self._entries = entries

        with self._lock:
            yield list(self._entries), commit
