"""Where jobs live: the storage interface, the backends that implement it, and the one place that picks one.

:func:`open_store` asks the registry (:mod:`.registry`) which backend an address names: a path is
the JSON file store; a URL's scheme names a server's backend, imported only then (the core install
never needs a driver it does not use). The stores are the ground floor: they import only
:mod:`retryq.record`.
"""

from __future__ import annotations

from .base import (
    Claimant,
    ClaimRequest,
    Finding,
    Insertion,
    InvalidJob,
    JobFilter,
    Mutation,
    PruneRule,
    Store,
    Tally,
    read_jobs,
)
from .document import DocumentStore, MemoryStore
from .file.store import JsonFileStore
from .registry import Backend, backend_for, display_address, known_schemes, open_store

__all__ = [
    "Backend",
    "ClaimRequest",
    "Claimant",
    "DocumentStore",
    "Finding",
    "Insertion",
    "InvalidJob",
    "JobFilter",
    "JsonFileStore",
    "MemoryStore",
    "Mutation",
    "PruneRule",
    "Store",
    "Tally",
    "backend_for",
    "display_address",
    "known_schemes",
    "open_store",
    "read_jobs",
]
