"""PostgreSQL as a backend: ``postgresql://`` and ``postgres://`` addresses, its driver, its schema.

This module imports nothing of psycopg: an address is shown, and a missing driver reported, on an
install without it.
"""

from __future__ import annotations

__all__ = ["BACKEND", "PostgresBackend"]

from typing import TYPE_CHECKING, Any

from ..registry import Backend

if TYPE_CHECKING:
    from .store import PostgresStore


class PostgresBackend(Backend):
    """Jobs in PostgreSQL (``pip install 'retryq[postgres]'``); the namespace is the tables' schema."""

    name = "postgres"
    extra = "postgres"

    def open(
        self, address: str, *, lock_timeout: float, archive: bool, namespace: str | None, **options: Any
    ) -> PostgresStore:
        try:
            import psycopg  # noqa: F401  (the driver: imported here, where its absence can be said plainly)
        except ImportError as error:
            raise self.driver_missing(address, error, "psycopg") from None
        from .store import PostgresStore

        return PostgresStore(address, lock_timeout=lock_timeout, archive=archive, schema=namespace, **options)


BACKEND = PostgresBackend()
