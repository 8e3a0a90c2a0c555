"""State documents on PostgreSQL: one row of ``{schema}.state`` per document, changed in the step of the
jobs they go with.

A plan's documents are locked before anything else in its transaction (one lock order: state, then
jobs, then the caps' locks): by a transaction-level advisory lock per key, which serialises two
hosts on a key whether or not its row exists yet (a row lock could not: there is no row to lock
before the first write). A plan over every document (``keys`` None) takes the lock of the whole
state exclusively; a plan over some keys takes it shared, then theirs. Locks are taken in the
order of their numbers, so that two keys whose numbers collide cannot deadlock. The documents
are read after the locks are held, in a statement of their own (READ COMMITTED: a statement sees
what was committed when it began).
"""

from __future__ import annotations

__all__ = ["Aborted", "Documents", "begin", "planned", "snapshot_documents", "write_documents"]

import hashlib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from ...record.timeutil import to_utc
from ..base import Plan, StateDoc

Connection = psycopg.Connection[dict[str, Any]]
Compose = Callable[[str], sql.Composed]
R = TypeVar("R")

#: The lock of the whole state (shared by plans over some keys, exclusive for plans over all).
WHOLE = 0


@dataclass(frozen=True)
class Documents:
    """What a plan is given: the server's clock in its step, and the documents of its keys."""

    now: datetime
    docs: dict[str, StateDoc]


class Aborted(Exception):
    """A plan aborted: its transaction is rolled back, and the operation returns ``result``."""

    def __init__(self, result: Any) -> None:
        self.result = result


def planned(transact: Callable[[Callable[[Connection], R]], R], step: Callable[[Connection], R]) -> R:
    """``transact(step)``; a plan that aborts in it (:class:`Aborted`) rolls everything back and gives its result."""
    try:
        return transact(step)
    except Aborted as aborted:
        result: R = aborted.result
        return result


def begin(connection: Connection, schema: str, compose: Compose, plan: Plan | None) -> Documents | None:
    """Lock a plan's documents (first in its transaction: one lock order) and read them, with the clock."""
    if plan is None:
        return None
    _lock(connection, schema, plan.keys)
    return _read(connection, compose, plan.keys)


def _number(text: str) -> int:
    """A stable 32-bit lock number for ``text`` (never :data:`WHOLE` for a key)."""
    value = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=4).digest(), "big", signed=True)
    return value or 1


def _lock(connection: Connection, schema: str, keys: Collection[str] | None) -> None:
    """Take the advisory locks of ``keys`` (all documents: None) until the transaction ends."""
    numbers = [WHOLE] if keys is None else [WHOLE, *sorted({_number(key) for key in keys})]
    connection.execute(
        "SELECT count(CASE WHEN n = 0 AND %(some)s THEN pg_advisory_xact_lock_shared(%(space)s, 0) "
        "ELSE pg_advisory_xact_lock(%(space)s, n) END) FROM unnest(%(numbers)s::int4[]) AS n",
        {"some": keys is not None, "space": _number(f"retryq state {schema}"), "numbers": numbers},
    )


def _read(connection: Connection, compose: Compose, keys: Collection[str] | None) -> Documents:
    """The server's clock and the documents of ``keys`` (all: None) that exist, in one statement."""
    row = connection.execute(
        compose(
            "SELECT clock_timestamp() AS now, (SELECT coalesce(jsonb_object_agg(key, doc), '{{}}') "
            "FROM {schema}.state WHERE %(all)s OR key = ANY(%(keys)s)) AS docs"
        ),
        {"all": keys is None, "keys": sorted(keys or ())},
    ).fetchone()
    assert row is not None
    return Documents(to_utc(row["now"]), dict(row["docs"]))


def snapshot_documents(connection: Connection, compose: Compose, keys: Collection[str] | None) -> dict[str, StateDoc]:
    """The documents of ``keys`` (all: None) that exist, as one statement sees them (no lock)."""
    rows = connection.execute(
        compose("SELECT key, doc FROM {schema}.state WHERE %(all)s OR key = ANY(%(keys)s) ORDER BY key"),
        {"all": keys is None, "keys": sorted(keys or ())},
    ).fetchall()
    return {row["key"]: row["doc"] for row in rows}


def write_documents(connection: Connection, compose: Compose, texts: Mapping[str, str | None]) -> None:
    """Write each document (its JSON text; None deletes it), stamped with the server's clock."""
    written = [(key, text) for key, text in sorted(texts.items()) if text is not None]
    deleted = sorted(key for key, text in texts.items() if text is None)
    if written:
        with connection.cursor() as cursor:
            cursor.executemany(
                compose(
                    "INSERT INTO {schema}.state (key, doc, updated_at) VALUES (%s, %s::jsonb, clock_timestamp()) "
                    "ON CONFLICT (key) DO UPDATE SET doc = EXCLUDED.doc, updated_at = EXCLUDED.updated_at"
                ),
                written,
            )
    if deleted:
        connection.execute(compose("DELETE FROM {schema}.state WHERE key = ANY(%s)"), (deleted,))
