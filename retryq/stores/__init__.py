"""Where jobs live: the storage interface, the backends that implement it, and the one place that picks one.

A path means the JSON file store; a ``postgresql://`` URL the PostgreSQL store, a ``redis://``,
``rediss://`` or ``unix://`` URL the Redis store (each imported only then, so that the core install
needs neither driver).
"""

from __future__ import annotations

import os
from typing import Any

from .address import is_database_url
from .base import Claimant, ClaimRequest, Finding, Insertion, InvalidJob, JobFilter, Mutation, PruneRule, Store, Tally
from .document import DocumentStore, MemoryStore
from .file.store import JsonFileStore
from .redis.address import is_redis_url

__all__ = [
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
    "is_database_url",
    "open_store",
]


def open_store(
    address: str | os.PathLike[str],
    *,
    lock_timeout: float = 30.0,
    archive: bool = True,
    schema: str | None = None,
    **options: Any,
) -> Store:
    """The store at ``address``: a queue file (a path), or a PostgreSQL database (a URL).

    ``lock_timeout`` bounds the wait for the file's lock, or for a row or a connection of the
    database; ``archive`` keeps pruned jobs; ``schema`` puts a database queue's tables in a schema
    of its own. The other options go to the backend.
    """
    if is_redis_url(address):
        from .redis.store import RedisStore

        return RedisStore(os.fspath(address), lock_timeout=lock_timeout, archive=archive, namespace=schema, **options)
    if is_database_url(address):
        from .postgres import PostgresStore

        return PostgresStore(os.fspath(address), lock_timeout=lock_timeout, archive=archive, schema=schema, **options)
    if schema is not None:
        raise ValueError("a schema is for a PostgreSQL queue, not a file")
    return JsonFileStore(address, lock_timeout=lock_timeout, archive=archive, **options)
