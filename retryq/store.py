"""The storage interface every backend implements, and the in-memory backend.

A store keeps jobs and offers a handful of atomic operations; everything a queue does is
built from them. The operations take *mutations* (pure functions ``Job -> Job | None``) rather
than new values, so that a backend applies them to the job as it is at that instant, under
its own lock or transaction: the JSON file store runs them under a file lock, a database store
would run them in a transaction (and pick claims with ``SELECT … FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

__all__ = ["ClaimRequest", "MemoryStore", "Mutation", "Store"]

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from pydantic import ValidationError

from .errors import QueueCorrupt
from .models import Job, JobStatus, describe_validation_error

#: A change to one job: return the new job, the same job (no change), or None to remove it.
Mutation = Callable[[Job], "Job | None"]


@dataclass(frozen=True)
class ClaimRequest:
    """Which due jobs to claim: at most ``limit`` in all and ``slots[w]`` of workflow ``w``.

    Jobs of a workflow absent from ``slots`` are never claimed (their workflow is unknown
    to this process); they stay pending for a process that knows it.
    """

    now: datetime
    limit: int
    slots: Mapping[str, int] = field(default_factory=dict)


@runtime_checkable
class Store(Protocol):
    """Where jobs live. Each method is atomic with respect to every other process."""

    @property
    def location(self) -> str:
        """Where the jobs are, for messages (a path, a URL without password)."""

    def load(self) -> list[Job]:
        """Every job, in queue order, as one consistent snapshot."""

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

        Due means pending with ``executeAt <= request.now``; the oldest ``executeAt`` comes
        first. Doing both in one step lets a processor write the results of finished runs and
        claim the next jobs with a single write.
        """


class _Entry:
    """A job in a document store: its JSON object, and (lazily) its line and its model."""

    __slots__ = ("_job", "_line", "doc", "index")

    def __init__(self, doc: dict[str, Any], index: int, job: Job | None = None, line: str | None = None):
        self.doc = doc
        self.index = index  # position in the file when read, for error messages
        self._job = job
        self._line = line

    @classmethod
    def of(cls, job: Job) -> _Entry:
        return cls(job.to_json_dict(), -1, job)

    def job(self, location: str) -> Job:
        if self._job is None:
            try:
                self._job = Job.model_validate(self.doc)
            except ValidationError as error:
                ident = self.doc.get("id") or self.doc.get("clientId") or "?"
                raise QueueCorrupt(
                    f"{location}: job #{self.index + 1} ({ident}) is invalid: {describe_validation_error(error)}"
                ) from None
        return self._job

    def ident(self, location: str) -> str:
        """The job's id; a job written by the original scripts has none in the file and gets its derived one."""
        ident = self.doc.get("id")
        return ident if isinstance(ident, str) else self.job(location).id

    def line(self) -> str:
        if self._line is None:
            self._line = json.dumps(self.doc, ensure_ascii=False)
        return self._line

    @property
    def is_open(self) -> bool:
        return self.doc.get("status") in (JobStatus.PENDING.value, JobStatus.RUNNING.value)

    def has_key(self, key: tuple[str, str, str]) -> bool:
        # Compared on the raw object so that adding a job never decodes the whole queue.
        doc = self.doc
        return (doc.get("workflow", "default"), doc.get("clientId"), doc.get("date")) == key


class DocumentStore:
    """The store operations, for backends that read and rewrite all jobs at once (file, memory).

    Subclasses provide :meth:`_transaction`, which yields the current entries and a function
    that commits a new list of entries (plus the jobs it removes, for the archive).
    """

    location: str = "memory"

    def _transaction(
        self, timeout: float | None = None
    ) -> AbstractContextManager[tuple[list[_Entry], Callable[[list[_Entry], list[Job]], None]]]:
        raise NotImplementedError

    def _read(self) -> list[_Entry]:
        raise NotImplementedError

    def load_archive(self) -> Iterator[Job]:
        raise NotImplementedError

    def load(self) -> list[Job]:
        return [entry.job(self.location) for entry in self._read()]

    def add(self, job: Job, on_open: Mutation) -> tuple[Job, bool]:
        with self._transaction() as (current, commit):
            for position, entry in enumerate(current):
                if entry.is_open and entry.has_key(job.key):
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
        for entry in entries:
            mutation = changes.get(entry.ident(self.location))
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
        return kept, results, removed, changed

    def _due(self, entries: list[_Entry], request: ClaimRequest) -> list[int]:
        due: list[tuple[datetime, int]] = []
        for position, entry in enumerate(entries):
            if entry.doc.get("status") != JobStatus.PENDING.value:
                continue
            job = entry.job(self.location)
            if job.execute_at <= request.now and job.workflow in request.slots:
                due.append((job.execute_at, position))
        due.sort()
        slots = dict(request.slots)
        chosen: list[int] = []
        for _, position in due:
            if len(chosen) >= request.limit:
                break
            workflow = entries[position].job(self.location).workflow
            if slots[workflow] > 0:
                slots[workflow] -= 1
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
    def _transaction(
        self, timeout: float | None = None
    ) -> Iterator[tuple[list[_Entry], Callable[[list[_Entry], list[Job]], None]]]:
        def commit(entries: list[_Entry], removed: list[Job]) -> None:
            if self._archive is not None:
                self._archive.extend(removed)
            self._entries = entries

        with self._lock:
            yield list(self._entries), commit
