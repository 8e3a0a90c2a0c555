"""A stored record of the whole-document stores (the JSON file, memory): the fields a scan compares,
read once, its line of JSON kept as it is, and its job validated only when an operation needs it."""

from __future__ import annotations

__all__: list[str] = []  # private to the stores

import json
import sys
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from datetime import datetime
from typing import Any, TypeVar

from pydantic import ValidationError

from ..record import rules
from ..record.errors import InvalidInput, QueueCorrupt
from ..record.models import DEFAULT_WORKFLOW, Job, JobKey, describe_validation_error, json_line
from ..record.text import printable
from ..record.timeutil import parse_utc
from .base import InvalidJob


class _Entry:
    """A stored record: what a scan needs, its line of JSON, and (on demand) its validated job."""

    __slots__ = ("_doc", "_due", "_job", "_line", "_priority", "_problem", "ended", "ident", "index", "key", "status")

    def __init__(self, index: int, *, doc: Any, line: bytes | None = None, job: Job | None = None) -> None:
        self.index = index  # position in the file when read, for messages
        fields: dict[str, Any] = doc if isinstance(doc, dict) else {}
        status, workflow = fields.get("status"), fields.get("workflow", DEFAULT_WORKFLOW)
        self.status = sys.intern(status) if isinstance(status, str) else status
        self.key = (
            sys.intern(workflow) if isinstance(workflow, str) else workflow,
            fields.get("clientId"),
            fields.get("date"),
        )
        ident = fields.get("id")
        self.ident: str | None = ident if isinstance(ident, str) else None
        ended = rules.ended_field(fields)
        self.ended: str | None = ended if isinstance(ended, str) else None
        self._line = line
        self._doc = None if line is not None else doc  # with its line kept, the object can be read again
        self._job = job
        self._problem: str | None = None
        self._due: datetime | bool | None = False  # executeAt once read (False: not yet)
        self._priority: int | None = None  # priority once read

    @classmethod
    def of(cls, job: Job) -> _Entry:
        return cls(-1, doc=job.to_json_dict(), job=job)

    @property
    def doc(self) -> Any:
        if self._doc is None:
            assert self._line is not None
            self._doc = json.loads(self._line)
        return self._doc

    def decoded(self) -> Job | None:
        """The validated job, or None when the record is not one (:meth:`problem` says why); decoded once."""
        if self._job is None and self._problem is None:
            doc = self.doc
            if not isinstance(doc, dict):
                self._problem = "not a JSON object"
                return None
            try:
                self._job = Job.model_validate(doc)
            except ValidationError as error:
                self._problem = describe_validation_error(error)
                return None
            if self._line is not None:
                self._doc = None  # the model holds the data now
        return self._job

    def invalid(self, location: str) -> InvalidJob | None:
        if self.decoded() is not None:
            return None
        doc = self.doc
        ident = (doc.get("id") or doc.get("clientId")) if isinstance(doc, dict) else None
        return InvalidJob(self.index + 1, printable(str(ident or "?")), self._problem or "invalid", location)

    def job(self, location: str) -> Job:
        job = self.decoded()
        if job is None:
            problem = self.invalid(location)
            raise QueueCorrupt(str(problem))
        return job

    def job_id(self) -> str | None:
        """The job's id; a record of the original scripts has none in the file and gets its derived one."""
        if self.ident is not None:
            return self.ident
        job = self.decoded()
        return None if job is None else job.id

    def line(self) -> bytes:
        """The record as one line of UTF-8 JSON, as the file holds it."""
        if self._line is None:
            try:
                self._line = json_line(self.doc).encode("utf-8")
            except UnicodeEncodeError:  # a record that is not a job, with half a character: kept as its escape
                self._line = json.dumps(self.doc).encode("ascii")
        return self._line

    @property
    def is_open(self) -> bool:
        return self.status in rules.OPEN_VALUES  # plain strings: a scan compares them for every job on every write

    def execute_at(self) -> datetime | None:
        """``executeAt`` read from the record itself, without validating it (None if unreadable); read
        once: an entry is never changed, and a claim looks at every pending one."""
        if self._job is not None:
            return self._job.execute_at
        if self._due is False:
            doc = self.doc
            text = doc.get("executeAt") if isinstance(doc, dict) else None
            try:
                self._due = parse_utc(text) if isinstance(text, str) else None
            except InvalidInput:
                self._due = None
        assert not isinstance(self._due, bool)
        return self._due

    def priority(self) -> int:
        """``priority`` read from the record itself, without validating it (0 when it has none, or not a
        number); read once, as ``executeAt``."""
        if self._job is not None:
            return self._job.priority
        if self._priority is None:
            doc = self.doc
            value = doc.get("priority", 0) if isinstance(doc, dict) else 0
            self._priority = value if isinstance(value, int) and not isinstance(value, bool) else 0
        return self._priority

    def ended_at(self) -> datetime | None:
        if self.ended is not None:
            with suppress(InvalidInput):
                return parse_utc(self.ended)
        job = self.decoded()
        return None if job is None else rules.ended_at(job)


def _positions(
    entries: list[_Entry], changes: Mapping[str, object], idents: list[str | None] | None = None
) -> list[int]:
    """Where the records of the jobs ``changes`` names are, in file order: their ids compared at C
    speed, so that a result costs a glance at each record, not a call (records of the original
    scripts, which have no id in the file, are asked for their derived one)."""
    if not changes:
        return []
    idents = [entry.ident for entry in entries] if idents is None else idents  # given: the ids of entries, in order
    found = []
    for ident in changes:
        at = -1
        with suppress(ValueError):
            while True:  # every record with that id (a hand edit may have copied one)
                at = idents.index(ident, at + 1)
                found.append(at)
    if None in idents:
        found += [at for at, entry in enumerate(entries) if entry.ident is None and entry.job_id() in changes]
    return sorted(found)


def lines_of(entries: list[_Entry]) -> list[bytes]:
    """Each record's line, as :meth:`_Entry.line` gives it: read from the slot where it is kept (a
    write lays out every record of the queue: a method call for each is a third of its time)."""
    return [line if (line := entry._line) is not None else entry.line() for entry in entries]


Tag = TypeVar("Tag")


def open_job_of(
    entries: Iterable[tuple[Tag, _Entry]], key: JobKey, on_open: Callable[[Job], Job | None]
) -> tuple[Tag, Job, Job] | None:
    """The first open job of ``key`` among ``entries`` (in file order, each with its place), and what
    ``on_open`` makes of it: ``(place, existing, updated)``; None when the key has no open job. Compared
    on the scanned fields: only that job is decoded. A record that is not a job holds no key."""
    for place, entry in entries:
        if not (entry.is_open and entry.key == key):
            continue
        existing = entry.decoded()
        if existing is None:
            continue  # not a job: left alone
        updated = on_open(existing)
        if updated is None:
            raise ValueError("on_open must return a job")
        return place, existing, updated
    return None
