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
    Plan,
    PlanResult,
    PruneRule,
    StateDoc,
    Store,
    Tally,
    read_jobs,
    store_time,
)
from .document import DocumentStore
from .file.store import JsonFileStore
from .memory import MemoryStore
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
    "Plan",
    "PlanResult",
    "PruneRule",
    "StateDoc",
    "Store",
    "Tally",
    "backend_for",
    "display_address",
    "known_schemes",
    "open_store",
    "read_jobs",
    "store_time",
]
