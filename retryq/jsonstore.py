"""The JSON file store: the queue is one file, changed only by atomic replacement under a file lock.

Every change reads the file, applies the change and writes the whole queue to a temporary file
in the same directory, fsyncs it and ``os.replace``s it over the old one, all while holding
``<queue file>.lock``. A crash at any instant leaves either the old file or the new one; a
reader never needs the lock. The file holds one job per line so that it stays readable with
``grep`` and ``jq`` and cheap to rewrite.
"""

from __future__ import annotations

__all__ = ["JsonFileStore"]

import json
import logging
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from json.scanner import make_scanner
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from ._atomic import replace_file
from .errors import LockTimeout, QueueCorrupt, StoreIOError
from .models import Job, JobStatus
from .store import Commit, DocumentStore, _Entry

log = logging.getLogger("retryq")

NEW_FILE_MODE = 0o600
_STATUSES = frozenset(status.value for status in JobStatus)
_SCANNER = make_scanner(json.JSONDecoder())  # type: ignore[arg-type]  # typeshed mistypes its argument


class JsonFileStore(DocumentStore):
    """Jobs in a JSON file (a top-level array), safe across processes and crashes.

    ``lock_timeout`` bounds the wait for the lock (seconds); past it, :class:`LockTimeout`.
    With ``archive`` on, pruned jobs are first appended to ``<file>.archive.jsonl``.
    """

    def __init__(self, path: str | os.PathLike[str], *, lock_timeout: float = 30.0, archive: bool = True) -> None:
        self.path = Path(path)
        self.location = str(path)
        self.lock_path = Path(f"{path}.lock")
        self.archive_path = Path(f"{path}.archive.jsonl") if archive else None
        self.lock_timeout = lock_timeout
        # A short poll keeps overlapping writers from idling: a write holds the lock for milliseconds.
        self._lock = FileLock(self.lock_path, timeout=lock_timeout, mode=NEW_FILE_MODE, poll_interval=0.005)
        # The bytes we last read or wrote, and their entries: when the file still holds exactly
        # those bytes, nothing needs to be parsed again, and unchanged jobs need no new JSON.
        self._cache: tuple[bytes, list[_Entry]] | None = None

    def __repr__(self) -> str:
        return f"JsonFileStore({self.location!r})"

    # -- reading -----------------------------------------------------------------------------

    def _read(self) -> list[_Entry]:
        self._check_path()
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as error:
            raise StoreIOError(f"{self.location}: cannot read the queue file: {error.strerror}") from None
        cache = self._cache
        if cache is not None and cache[0] == raw:
            return list(cache[1])
        entries = self._parse(raw)
        self._cache = (raw, entries)
        return list(entries)

    def _parse(self, raw: bytes) -> list[_Entry]:
        where = self.location
        entries = _parse_lines(raw)
        if entries is not None:
            return self._checked(entries)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise QueueCorrupt(f"{where}: not UTF-8 text (byte {error.start})") from None
        if not text.strip():
            raise QueueCorrupt(
                f"{where}: the file is empty; a queue file holds a JSON array (write [] to start afresh)"
            )
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise QueueCorrupt(
                f"{where}: not valid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
            ) from None
        if not isinstance(data, list):
            raise QueueCorrupt(f"{where}: expected a JSON array of jobs, found a JSON {_json_type(data)}")
        entries = []
        for index, doc in enumerate(data):
            if not isinstance(doc, dict):
                raise QueueCorrupt(f"{where}: job #{index + 1} is not a JSON object")
            entries.append(_Entry(index, doc=doc))
        return self._checked(entries)

    def _checked(self, entries: list[_Entry]) -> list[_Entry]:
        """Refuse a job whose status is unknown: it would be neither run nor pruned, silently."""
        for entry in entries:
            if entry.status not in _STATUSES:
                entry.job(self.location)  # raises QueueCorrupt, naming the job and the field
        return entries

    def _check_path(self) -> None:
        if self.path.is_dir():
            raise StoreIOError(f"{self.location}: is a directory, not a queue file")
        if self.path.exists() and not self.path.is_file():
            # A FIFO or a device would block or never end when read.
            raise StoreIOError(f"{self.location}: is not a regular file")
        if not self.path.parent.is_dir():
            raise StoreIOError(f"{self.location}: directory {str(self.path.parent)!r} does not exist")

    def load_archive(self) -> Iterator[Job]:
        """Archived jobs, the last copy of each id; a torn or foreign line is skipped with a warning."""
        if self.archive_path is None:
            return iter(())
        try:
            lines = self.archive_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return iter(())
        except (OSError, UnicodeDecodeError) as error:
            raise StoreIOError(f"{self.archive_path}: cannot read the archive: {error}") from None
        jobs: dict[str, Job] = {}
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                job = Job.model_validate_json(line)
            except ValueError:
                log.warning("%s: line %d is not a job; skipped", self.archive_path, number)
                continue
            jobs.pop(job.id, None)  # a crash between archiving and rewriting can archive a job twice
            jobs[job.id] = job
        return iter(jobs.values())

    def probe(self, timeout: float = 2.0) -> None:
        """Check that the lock can be taken and the directory written, changing nothing (for `doctor`)."""
        with self._transaction(timeout):
            try:
                fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".probe", dir=self.path.parent)
            except OSError as error:
                raise StoreIOError(f"{self.location}: cannot write in its directory: {error.strerror}") from None
            os.close(fd)
            os.unlink(tmp)

    # -- writing -----------------------------------------------------------------------------

    @contextmanager
    def _transaction(self, timeout: float | None = None) -> Iterator[tuple[list[_Entry], Commit]]:
        self._check_path()
        wait = self.lock_timeout if timeout is None else timeout
        try:
            self._lock.acquire(timeout=wait)
        except Timeout:
            raise LockTimeout(
                f"{self.location}: could not lock the queue within {wait:g}s (another retryq holds {self.lock_path})"
            ) from None
        except OSError as error:
            raise StoreIOError(f"{self.lock_path}: cannot create the lock file: {error.strerror}") from None
        try:

            def commit(entries: list[_Entry], removed: list[Job]) -> None:
                if removed and self.archive_path is not None:
                    self._append_archive(removed)
                raw = self._write(entries)
                self._cache = (raw, entries)

            yield self._read(), commit
        finally:
            self._lock.release()

    def _write(self, entries: list[_Entry]) -> bytes:
        raw = _layout([entry.line() for entry in entries])
        try:
            mode, owner = self._existing_mode_and_owner()
            replace_file(self.path, raw, mode=mode, owner=owner)
        except OSError as error:
            raise StoreIOError(f"{self.location}: cannot write the queue file: {error.strerror or error}") from None
        return raw

    def _existing_mode_and_owner(self) -> tuple[int, tuple[int, int] | None]:
        """Keep the mode (and, as root, the owner) of the file being replaced; a new file gets 0600."""
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return NEW_FILE_MODE, None
        mode = stat.S_IMODE(info.st_mode)
        owner = (info.st_uid, info.st_gid) if hasattr(os, "geteuid") and os.geteuid() == 0 else None
        return mode, owner

    def _append_archive(self, jobs: list[Job]) -> None:
        assert self.archive_path is not None
        data = "".join(json.dumps(job.to_json_dict(), ensure_ascii=False) + "\n" for job in jobs).encode("utf-8")
        try:
            fd = os.open(self.archive_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, NEW_FILE_MODE)
            try:
                _write_all(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as error:
            raise StoreIOError(f"{self.archive_path}: cannot append to the archive: {error.strerror}") from None


def _layout(lines: list[bytes]) -> bytes:
    """The file's bytes: ``[``, one job per line separated by commas, ``]``.

    Built with a single join, so that a 10,000-job queue is not copied twice in memory on every write.
    """
    if not lines:
        return b"[]\n"
    parts = [b"[\n"]
    for line in lines:
        parts.append(line)
        parts.append(b",\n")
    parts[-1] = b"\n]\n"
    return b"".join(parts)


def _parse_lines(raw: bytes) -> list[_Entry] | None:
    """Read a file in retryq's own layout (one job per line) job by job, keeping each line's bytes.

    Keeping the lines means a later write re-serializes only the jobs it changed, and the file
    is never held twice in memory as bytes and text. Anything else (a file written by other
    tools, or damaged) returns None and is parsed as a whole, which also gives the exact
    position of an error.
    """
    if not (raw.startswith(b"[\n") and raw.endswith(b"\n]\n")):
        return None
    lines = raw[2:-3].split(b"\n")
    last = len(lines) - 1
    entries = []
    scan = _SCANNER  # json's own C scanner, without json.loads' per-call encoding detection
    for index, chunk in enumerate(lines):
        if index < last:
            if not chunk.endswith(b","):
                return None  # not valid JSON: the whole-file parse says where
            line = chunk[:-1]
        else:
            line = chunk
        try:
            text = line.decode("utf-8")
            doc, end = scan(text, 0)
        except (ValueError, StopIteration):  # also UnicodeDecodeError
            return None
        if end != len(text) or not isinstance(doc, dict):
            return None
        entries.append(_Entry(index, doc=doc, line=line))
    return entries


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _json_type(value: Any) -> str:
    names = {dict: "object", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}
    return names.get(type(value), type(value).__name__)
