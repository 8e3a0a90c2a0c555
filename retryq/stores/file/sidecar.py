"""The state documents of a queue file: ``<queue>.state.json`` beside it, changed only under the queue's lock.

The queue file stays what it always was, the array of jobs; the state lives in a file of its own
(a JSON object: ``{"retryqState": 1, "documents": {key: document, ...}}``), written only when a
document changes, so that a queue nobody keeps state for never gets one.

**Two files, one commit.** A write that changes jobs and documents together must land whole or not
at all, and no filesystem replaces two files at once. Replacing them one after the other would
leave, after a crash in between, either jobs without the record that goes with them (a recurring
job enqueued whose occurrence is not recorded: enqueued again) or a record without its jobs (an
occurrence recorded whose job is lost). Neither is acceptable, so such a write goes through a
journal, ``<queue>.state.next.json``, which holds the new documents and the SHA-256 of the queue
file they go with:

1. the journal is written (temp file, fsync, rename, directory fsync);
2. the queue file is replaced (the same way): **this rename is the commit**;
3. the journal is renamed over the state file.

A crash before 2 leaves a journal whose digest is not the queue's: the write never happened, and
the journal is dropped. A crash after 2 leaves a journal whose digest is the queue's: the write
happened, and the journal is the state (readers take it; the next writer renames it into place).
The next writer settles either case under the lock before it reads anything. A write that changes
documents alone replaces the state file in one rename.

A missing state file is an empty state: no document yet. A state file that cannot be read is
:class:`~retryq.record.errors.QueueCorrupt` (exit 65), in one line; the jobs are never touched by it,
and writes that carry no plan go on.
"""

from __future__ import annotations

__all__ = ["StateFile"]

import contextlib
import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

from ...record.errors import QueueCorrupt, StoreIOError
from .._atomic import rename_durably, replace_file
from ..base import StateDoc
from ..plans import encode

log = logging.getLogger("retryq")

FORMAT = 1


class StateFile:
    """The state file of the queue file at ``queue`` (a resolved path); ``name`` is how messages call it."""

    def __init__(self, queue: Path, name: str) -> None:
        self.queue = queue
        self.path = Path(f"{queue}.state.json")
        self.journal = Path(f"{queue}.state.next.json")
        self.name = name

    def exists(self) -> bool:
        return self.path.exists() or self.journal.exists()

    def read(self) -> dict[str, StateDoc]:
        """The documents as committed: the journal's when the queue already holds what it goes with."""
        pending = self._load(self.journal, quiet=True)
        if pending is not None and pending[1] is not None and pending[1] == self._queue_digest():
            return pending[0]
        current = self._load(self.path)
        return {} if current is None else current[0]

    def recover(self) -> None:
        """Settle what a writer killed between the journal and the state file left (under the lock)."""
        if not self.journal.exists():
            return  # the usual case: one stat
        pending = self._load(self.journal, quiet=True)
        if pending is not None and pending[1] is not None and pending[1] == self._queue_digest():
            self._settle()
            log.info("%s: finished the change a stopped writer had committed", self.name)
        else:
            with contextlib.suppress(FileNotFoundError):
                self.journal.unlink()
            log.info("%s: dropped the change a stopped writer had not committed", self.name)

    def write(
        self,
        docs: dict[str, StateDoc],
        *,
        mode: int,
        owner: tuple[int, int] | None,
        before_replace: Callable[[], None],
    ) -> None:
        """Replace the state file (a change of documents alone)."""
        self._replace(self.path, docs, None, mode=mode, owner=owner, before_replace=before_replace)

    def write_with(
        self,
        docs: dict[str, StateDoc],
        queue: bytes,
        replace_queue: Callable[[], None],
        *,
        mode: int,
        owner: tuple[int, int] | None,
        before_replace: Callable[[], None],
    ) -> None:
        """Write ``docs`` with the queue's new bytes ``queue`` as one commit (see the module): the journal,
        then ``replace_queue()``, then the state file."""
        self._replace(self.journal, docs, _digest(queue), mode=mode, owner=owner, before_replace=before_replace)
        replace_queue()  # the commit: from here on the journal is the state
        try:
            self._settle()
        except OSError as error:  # committed all the same: readers take the journal, the next writer settles it
            log.warning("%s: cannot rename the state journal yet (%s); the next change does", self.name, error)

    def _settle(self) -> None:
        rename_durably(self.journal, self.path)

    def _replace(
        self,
        path: Path,
        docs: dict[str, StateDoc],
        digest: str | None,
        *,
        mode: int,
        owner: tuple[int, int] | None,
        before_replace: Callable[[], None] | None,
    ) -> None:
        head = f'{{"retryqState": {FORMAT}, ' + (f'"queue": "{digest}", ' if digest else "") + '"documents": {'
        lines = [f"\n  {json.dumps(key, ensure_ascii=False)}: {encode(doc, key)}" for key, doc in sorted(docs.items())]
        data = (head + ",".join(lines) + ("\n" if lines else "") + "}}\n").encode("utf-8")
        try:
            replace_file(path, data, mode=mode, owner=owner, before_replace=before_replace)
        except OSError as error:
            raise StoreIOError(f"{self.name}: cannot write the state file: {error.strerror or error}") from None

    def _load(self, path: Path, *, quiet: bool = False) -> tuple[dict[str, StateDoc], str | None] | None:
        """The documents and queue digest of a state file or journal; None if there is none (or, ``quiet``,
        if it cannot be read: a journal that is not whole was never committed)."""
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            if quiet:
                return None
            raise StoreIOError(f"{self.name}: cannot read the state file: {error.strerror}") from None
        try:
            return _parse(raw)
        except ValueError as error:
            if quiet:
                return None
            raise QueueCorrupt(
                f"{self.name}: not a state file: {error} (the jobs are intact; move it aside to start the state afresh)"
            ) from None

    def _queue_digest(self) -> str | None:
        try:
            return _digest(self.queue.read_bytes())
        except OSError:
            return None


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _parse(raw: bytes) -> tuple[dict[str, StateDoc], str | None]:
    """ValueError (JSONDecodeError, UnicodeDecodeError are ones) when ``raw`` is not a state file."""
    data = json.loads(raw)
    if not isinstance(data, dict) or "documents" not in data:
        raise ValueError("expected a JSON object with the key 'documents'")
    version = data.get("retryqState")
    if isinstance(version, int) and version > FORMAT:
        raise ValueError(f"format {version}, newer than this retryq reads ({FORMAT}): upgrade retryq on this host")
    if version != FORMAT:
        raise ValueError(f'expected "retryqState": {FORMAT}, found {json.dumps(version)}')
    documents, digest = data["documents"], data.get("queue")
    if not isinstance(documents, dict) or not all(isinstance(doc, dict) for doc in documents.values()):
        raise ValueError("'documents' must be a JSON object of JSON objects")
    return documents, digest if isinstance(digest, str) else None
