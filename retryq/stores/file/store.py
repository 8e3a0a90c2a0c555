"""The JSON file store: the queue is one file, changed only by atomic replacement under a file lock.

Every change reads the file, applies the change and writes the whole queue to a temporary file
in the same directory, fsyncs it and ``os.replace``s it over the old one, all while holding
``<queue file>.lock``. A crash at any instant leaves either the old file or the new one; a
reader never needs the lock. The file holds one job per line so that it stays readable with
``grep`` and ``jq`` and cheap to rewrite. State documents live beside it, in ``<queue file>.state.json``,
written under the same lock, with the queue as one commit (see :mod:`.sidecar`).
"""

from __future__ import annotations

__all__ = ["JsonFileStore"]

import logging
import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock, Timeout
from pydantic import ValidationError

from ...record.errors import ConfigError, LockTimeout, RetryqError, StoreIOError
from ...record.limits import LOCK_TIMEOUT
from ...record.models import Job
from ...record.text import plural
from .._atomic import new_file_owner, replace_file
from ..base import Finding, InvalidJob, JobFilter, Mutation, Plan, StateDoc
from ..document import DocumentStore, R, Transaction, _Write
from ..entry import _Entry, lines_of
from .archive import append_to_archive
from .layout import added, all_jobs_valid, every_job_of, layout, parse
from .sidecar import StateFile
from .voucher import vouch, vouched

if TYPE_CHECKING:
    from ...record.views import JobView

log = logging.getLogger("retryq")

NEW_FILE_MODE = 0o600
#: A temp file of the queue older than this, found under the lock, was left by a killed writer.
STALE_TEMP_AGE = 60.0
#: How many times a change is made again when its lock file was taken away meanwhile.
LOCK_LOST_RETRIES = 3


class _LockLost(Exception):
    """The lock file at the path is no longer the one this process holds: another writer may be in."""


class JsonFileStore(DocumentStore):
    """Jobs in a JSON file (a top-level array), safe across processes and crashes.

    ``path`` may be a symbolic link: the file it points to is the queue, and its lock, archive and
    temp files live beside that file, so that writers through either name exclude each other.
    ``lock_timeout`` bounds the wait for the lock (seconds); past it, :class:`LockTimeout`. With
    ``archive`` on, pruned jobs are first appended to ``<file>.archive.jsonl``.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, lock_timeout: float = LOCK_TIMEOUT.total_seconds(), archive: bool = True
    ) -> None:
        self.location = str(path)  # the name the user gave, for messages
        self.path = Path(os.path.realpath(path))  # resolved once: a write replaces the file, never the link
        self.address = str(self.path)
        self.lock_path = Path(f"{self.path}.lock")
        # Messages name the lock as the user knows the queue, unless it is reached through a link.
        self.lock_name = f"{path}.lock" if os.path.abspath(path) == str(self.path) else str(self.lock_path)
        self.archive_path = Path(f"{self.path}.archive.jsonl") if archive else None
        self.state_file = StateFile(self.path, self.lock_name.removesuffix(".lock") + ".state.json")
        self.lock_timeout = lock_timeout
        # The lock file is kept (not unlinked on release, which races with the next holder's open),
        # and checked to still be the one at its path after acquiring it and before each rename.
        self._lock = FileLock(
            self.lock_path,
            timeout=lock_timeout,
            mode=NEW_FILE_MODE,
            poll_interval=0.005,  # a write holds the lock for milliseconds: don't idle
            preserve_lock_file=True,
            on_acquired=self._on_acquired,
        )
        self._held = threading.local()  # .file: (device, inode) of the lock file this thread holds
        # The bytes we last read or wrote, and their entries: when the file still holds exactly
        # those bytes, nothing needs to be parsed again, and unchanged jobs need no new JSON.
        self._cache: tuple[bytes, list[_Entry]] | None = None
        # Whether every record of those bytes is a valid job, as validating them whole found.
        self._verdict: tuple[bytes, bool] | None = None

    def __repr__(self) -> str:
        return f"JsonFileStore({self.location!r})"

    def environment(self) -> dict[str, str]:
        """The file's absolute path, as ``RETRYQ_QUEUE`` and (for scripts written before it) ``RETRYQ_QUEUE_FILE``."""
        return {"RETRYQ_QUEUE": str(self.path), "RETRYQ_QUEUE_FILE": str(self.path)}

    # -- reading -----------------------------------------------------------------------------

    def load(self, query: JobFilter | None = None) -> list[Job]:
        if query is not None and not query.selects_all:
            return super().load(query)  # record by record: only the records whose scanned fields match are validated
        jobs = self._every_job()
        return super().load() if jobs is None else jobs

    def load_views(self, query: JobFilter | None = None) -> list[JobView] | None:
        """Every job ``query`` matches as a read-only view, validated in one pass over the bytes without a
        model per job (see :mod:`retryq.record.views`); None when that pass cannot vouch for every
        record: read through :meth:`load` then, which says what is wrong."""
        from ...record.views import views_of  # only the commands that read a whole queue build its validator

        raw = self._read_bytes()
        if raw is None:
            return []
        if self._verdict is not None and self._verdict[0] is raw and not self._verdict[1]:
            return None
        views = views_of(raw)
        if views is None:
            return None
        self._verdict = (raw, True)  # what the views accept, the models do (invalid() has nothing to say)
        return views if query is None or query.selects_all else [view for view in views if query.matches(view)]

    def invalid(self) -> list[InvalidJob]:
        raw = self._read_bytes()
        if raw is None:
            return []
        if self._verdict is None or self._verdict[0] is not raw:
            # A file whose last writer knew every record valid says so (see .voucher); else, a slice at a time.
            self._verdict = (raw, vouched(self.path, raw) == "clean" or all_jobs_valid(raw))
        return [] if self._verdict[1] else super().invalid()

    def _every_job(self, raw: bytes | None = None) -> list[Job] | None:
        """Every record as a job, validated in one pass over the bytes (no JSON objects in between:
        what reading a large queue costs); None when a record is not a valid job, or the file is not
        a JSON array, which the record-by-record reading then reports precisely. Only the verdict
        is kept, not the jobs."""
        raw = self._read_bytes() if raw is None else raw
        if raw is None:
            return []
        if self._verdict is not None and self._verdict[0] is raw and not self._verdict[1]:
            return None
        try:
            jobs = every_job_of(raw)
        except ValidationError:
            self._verdict = (raw, False)
            return None
        self._verdict = (raw, True)
        return jobs

    def _read_bytes(self) -> bytes | None:
        """The file's bytes (None if there is no file yet); the copy already held, when they have not changed."""
        self._check_path()
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise StoreIOError(f"{self.location}: cannot read the queue file: {error.strerror}") from None
        for held in (self._cache, self._verdict):
            if held is not None and held[0] == raw:
                return held[0]  # one copy of a large file in memory, not two
        return raw

    def _read(self, raw: bytes | None = None) -> list[_Entry]:
        raw = self._read_bytes() if raw is None else raw
        if raw is None:
            return []
        cache = self._cache
        if cache is not None and cache[0] == raw:
            return list(cache[1])
        entries = parse(raw, self.location)
        self._cache = (raw, entries)
        return list(entries)

    def _read_state(self) -> dict[str, StateDoc]:
        return self.state_file.read()

    def _check_path(self) -> None:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            info = None
        except OSError as error:
            raise StoreIOError(f"{self.location}: cannot reach the queue file: {error.strerror}") from None
        if info is not None and stat.S_ISDIR(info.st_mode):
            raise StoreIOError(f"{self.location}: is a directory, not a queue file")
        if info is not None and not stat.S_ISREG(info.st_mode):
            # A FIFO or a device would block or never end when read.
            raise StoreIOError(f"{self.location}: is not a regular file")
        if info is not None and info.st_nlink > 1:
            raise ConfigError(
                f"{self.location}: has {info.st_nlink} hard links; each write replaces the file, which would "
                "split the queue between its names: keep one name (a symbolic link is fine)"
            )
        if not self.path.parent.is_dir():
            raise StoreIOError(f"{self.location}: directory {str(self.path.parent)!r} does not exist")

    @property
    def _archives(self) -> bool:
        return self.archive_path is not None

    @property
    def document_bytes(self) -> int | None:
        """The size of the file each change reads and rewrites whole (None before the first schedule)."""
        try:
            return self.path.stat().st_size
        except OSError:
            return None

    @property
    def document_marked(self) -> bool:
        """Whether the file carries the mark of a write that knew every record valid (see .voucher)."""
        return vouched(self.path, self.document_bytes) == "clean"

    @property
    def file_mode(self) -> int:
        """The queue file's permission bits (those a new one gets, before the first write): what a
        file showing its contents, as the dashboard does, should have too."""
        try:
            return stat.S_IMODE(self.path.stat().st_mode)
        except OSError:
            return NEW_FILE_MODE

    def load_archive(self) -> Iterator[Job]:
        """Archived jobs, the last copy of each id; a torn or foreign line is skipped with a warning."""
        if self.archive_path is None:
            return iter(())
        try:
            # Lines end at "\n" only: a job's text may hold U+2028 or U+0085, which splitlines() would cut at.
            lines = self.archive_path.read_text(encoding="utf-8").split("\n")
        except FileNotFoundError:
            return iter(())
        except (OSError, UnicodeDecodeError) as error:
            raise StoreIOError(f"{self.archive_path}: cannot read the archive: {error}") from None
        records = [line for line in lines if line.strip()]
        try:
            every = every_job_of(("[" + ",".join(records) + "]").encode("utf-8"))  # in one pass, as the queue
        except ValidationError:  # a torn or foreign line: line by line, to skip just that one
            every = []
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    every.append(Job.model_validate_json(line))
                except ValueError:
                    log.warning("%s: line %d is not a job; skipped", self.archive_path, number)
        jobs: dict[str, Job] = {}
        for job in every:
            jobs.pop(job.id, None)  # a crash between archiving and rewriting can archive a job twice
            jobs[job.id] = job
        return iter(jobs.values())

    def check(self) -> list[Finding]:
        """Whether the lock can be taken and the directory written (changing nothing), and what writers left."""
        findings = []
        stale = self._stale_temp_files()
        if stale:
            findings.append(
                Finding(
                    "warning",
                    f"queue: {plural(len(stale), 'temp file')} left by an interrupted write ({stale[0].name}…): "
                    "the next change of the queue removes them",
                )
            )
        if not self.path.exists():
            findings.append(Finding("ok", f"queue: {self.location} does not exist yet (the first schedule creates it)"))
        if self.state_file.exists():  # a queue that keeps no state has no state file, and no line here
            try:
                documents = self.state_file.read()
            except RetryqError as error:
                findings.append(Finding("problem", f"state: {error}"))
            else:
                findings.append(Finding("ok", f"state: {plural(len(documents), 'document')} in {self.state_file.name}"))
        directory = self.path.parent
        if not os.access(directory, os.W_OK):
            return [*findings, Finding("problem", f"queue: directory {str(directory)!r} is not writable by this user")]
        try:
            with self._locked(timeout=2.0):
                fd, probe = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".probe", dir=directory)
                os.close(fd)
                os.unlink(probe)
        except RetryqError as error:  # before OSError: a lock timeout is a TimeoutError too
            return [*findings, Finding("problem", f"queue: {error}")]
        except OSError as error:
            return [*findings, Finding("problem", f"queue: cannot write in its directory: {error.strerror or error}")]
        return [*findings, Finding("ok", f"queue: writable, and the lock {self.lock_name} can be taken")]

    # -- writing -----------------------------------------------------------------------------

    def add(self, job: Job, on_open: Mutation, *, plan: Plan | None = None) -> tuple[Job, bool]:
        transaction = self._adding(job, on_open, plan)
        if plan is not None:  # a plan may change any job: the records are read whole
            return self._transact(transaction)
        # Without one, only the records that may hold the job's key are read (see layout.added).
        return self._transact(transaction, quick=lambda raw: added(raw, job, on_open))

    def _transact(
        self, transaction: Transaction[R], *, quick: Callable[[bytes], tuple[R, bytes | None] | None] | None = None
    ) -> R:
        """Run ``transaction`` on the records under the lock and write what it returns; with ``quick``,
        first that on the file's bytes (returning the result and the new bytes), and ``transaction``
        only when it cannot decide (None)."""
        for _ in range(LOCK_LOST_RETRIES):
            with self._locked():
                self._remove_stale_temp_files()
                self.state_file.recover()  # a change a killed writer left half done: settled before reading
                raw = self._read_bytes()
                mark = vouched(self.path, raw)
                if raw is not None and mark == "clean" and not (self._verdict and self._verdict[0] is raw):
                    self._verdict = (raw, True)  # its last writer knew every record valid: so will this write
                # A file not vouched for is parsed whole: a line broken by hand is then found (see .voucher).
                done = None if quick is None or raw is None or mark is None else quick(raw)
                write: _Write | bytes | None
                if done is None:
                    result, write = transaction(self._read(raw))
                else:
                    result, write = done
                if write is None:
                    return result
                try:
                    if isinstance(write, bytes):
                        self._commit_bytes(write, raw)
                    else:
                        self._commit(write)
                except _LockLost:
                    # Someone removed or replaced the lock file while we held it: another writer may
                    # have come in. Nothing of ours was written; do the change again on what is there now.
                    log.warning("%s: the lock file was removed while held; making the change again", self.lock_name)
                    continue
                return result
        raise LockTimeout(
            f"{self.location}: the lock file {self.lock_name} was removed while held "
            f"{plural(LOCK_LOST_RETRIES, 'time')} in a row; is something deleting it?"
        )

    @contextmanager
    def _locked(self, timeout: float | None = None) -> Iterator[None]:
        self._check_path()
        wait = self.lock_timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        while True:
            try:
                self._lock.acquire(timeout=max(0.0, deadline - time.monotonic()))
            except Timeout:
                raise LockTimeout(
                    f"{self.location}: could not lock the queue within {wait:g}s "
                    f"(another retryq holds {self.lock_name})"
                ) from None
            except OSError as error:
                raise StoreIOError(
                    f"{self.lock_name}: cannot create or lock the lock file: {error.strerror or error}"
                ) from None
            if self._holds_the_lock_file():
                break
            self._lock.release()  # we locked a file no longer at its path: lock the one that is
        try:
            yield
        finally:
            self._held.file = None
            self._lock.release()

    def _on_acquired(self, fd: int) -> None:
        info = os.fstat(fd)
        self._held.file = (info.st_dev, info.st_ino)
        owner = new_file_owner(self.path)
        if owner is not None and (info.st_uid, info.st_gid) != owner:
            os.fchown(fd, *owner)  # root's lock file would stop the queue's owner from taking the lock

    def _holds_the_lock_file(self) -> bool:
        try:
            info = self.lock_path.stat()
        except FileNotFoundError:
            return False
        return getattr(self._held, "file", None) == (info.st_dev, info.st_ino)

    def _verify_lock(self) -> None:
        if not self._holds_the_lock_file():
            raise _LockLost

    def _commit(self, write: _Write) -> None:
        self._verify_lock()
        if write.removed and self.archive_path is not None:
            append_to_archive(self.archive_path, write.removed, owner_of=self.path)
        mode, owner = self.file_mode, new_file_owner(self.path)
        if write.entries is None:  # documents alone: one file, one rename
            assert write.state is not None
            self.state_file.write(write.state, mode=mode, owner=owner, before_replace=self._verify_lock)
            return
        raw = layout(lines_of(write.entries))
        # A write keeps the records it read and adds validated jobs: what was all valid stays so, and
        # the verdict moves to the new bytes rather than holding on to a copy of the old ones.
        verdict, base = self._verdict, self._cache
        still_valid = verdict is not None and verdict[1] and base is not None and verdict[0] is base[0]
        mark = partial(vouch, clean=still_valid)

        def replace_queue() -> None:
            try:
                replace_file(self.path, raw, mode=mode, owner=owner, before_replace=self._verify_lock, on_written=mark)
            except OSError as error:
                raise StoreIOError(f"{self.location}: cannot write the queue file: {error.strerror or error}") from None

        if write.state is None:
            replace_queue()
        else:
            self.state_file.write_with(
                write.state, raw, replace_queue, mode=mode, owner=owner, before_replace=self._verify_lock
            )
        self._verdict = (raw, True) if still_valid else None
        self._cache = (raw, write.entries)

    def _commit_bytes(self, raw: bytes, read: bytes | None) -> None:
        """Write the file's new bytes, made from ``read`` by adding or replacing valid jobs only."""
        self._verify_lock()
        verdict = self._verdict
        still_valid = verdict is not None and verdict[1] and verdict[0] is read
        try:
            replace_file(
                self.path,
                raw,
                mode=self.file_mode,
                owner=new_file_owner(self.path),
                before_replace=self._verify_lock,
                on_written=partial(vouch, clean=still_valid),  # the file read was vouched for, one valid job added
            )
        except OSError as error:
            raise StoreIOError(f"{self.location}: cannot write the queue file: {error.strerror or error}") from None
        self._verdict = (raw, True) if still_valid else None
        self._cache = None  # its records were not read: the next reading parses the new bytes

    def _stale_temp_files(self) -> list[Path]:
        cutoff = time.time() - STALE_TEMP_AGE
        found = []
        for candidate in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            with suppress(OSError):
                if candidate.stat().st_mtime < cutoff:
                    found.append(candidate)
        return sorted(found)

    def _remove_stale_temp_files(self) -> None:
        """Temp files of a writer killed mid-write: each a whole copy of the queue, and no writer but us is in."""
        for path in self._stale_temp_files():
            with suppress(FileNotFoundError):
                path.unlink()
                log.info("removed %s, left by an interrupted write", path)
