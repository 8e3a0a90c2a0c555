"""Where jobs live: the storage interface, and the backends that implement it."""

from __future__ import annotations

from .base import ClaimRequest, Finding, InvalidJob, JobFilter, Mutation, PruneRule, Store
from .document import DocumentStore, MemoryStore
from .jsonfile import JsonFileStore

__all__ = [
    "ClaimRequest",
    "DocumentStore",
    "Finding",
    "InvalidJob",
    "JobFilter",
    "JsonFileStore",
    "MemoryStore",
    "Mutation",
    "PruneRule",
    "Store",
]
