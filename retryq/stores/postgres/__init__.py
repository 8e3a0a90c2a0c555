"""The PostgreSQL store (``pip install 'retryq[postgres]'``): one queue shared by several hosts.

Its names are imported on first use: the backend (:mod:`.backend`) is importable without psycopg.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .schema import SCHEMA_VERSION
    from .store import PostgresStore

__all__ = ["SCHEMA_VERSION", "PostgresStore"]


def __getattr__(name: str) -> Any:
    if name == "PostgresStore":
        from .store import PostgresStore

        return PostgresStore
    if name == "SCHEMA_VERSION":
        from .schema import SCHEMA_VERSION

        return SCHEMA_VERSION
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
