"""The PostgreSQL store (``pip install 'retryq[postgres]'``): one queue shared by several hosts."""

from __future__ import annotations

from .schema import SCHEMA_VERSION
from .store import PostgresStore

__all__ = ["SCHEMA_VERSION", "PostgresStore"]
