"""The in-memory store: the whole-document machinery (:mod:`.document`) on a list and a dict, under one lock."""

from __future__ import annotations

__all__ = ["MemoryStore"]

import threading
from collections.abc import Iterable, Iterator

from ..record.models import Job
from .base import StateDoc
from .document import DocumentStore, R, Transaction
from .entry import _Entry


class MemoryStore(DocumentStore):
    """Jobs in memory, for tests and for embedding; thread-safe, gone with the process."""

    def __init__(self, jobs: Iterable[Job] = (), *, archive: bool = True) -> None:
        self.location = "memory"
        self._entries = [_Entry.of(job) for job in jobs]
        self._archive: list[Job] | None = [] if archive else None
        self._state: dict[str, StateDoc] = {}  # replaced whole by a write, never changed in place
        self._lock = threading.RLock()

    @property
    def _archives(self) -> bool:
        return self._archive is not None

    def _read(self) -> list[_Entry]:
        with self._lock:
            return list(self._entries)

    def _read_state(self) -> dict[str, StateDoc]:
        with self._lock:
            return self._state

    def load_archive(self) -> Iterator[Job]:
        with self._lock:
            return iter(list(self._archive or ()))

    def _transact(self, transaction: Transaction[R]) -> R:
        with self._lock:
            result, write = transaction(list(self._entries))
            if write is not None:
                if self._archive is not None:
                    self._archive.extend(write.removed)
                if write.entries is not None:
                    self._entries = write.entries
                if write.state is not None:
                    self._state = write.state
            return result
