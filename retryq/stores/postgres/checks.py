"""What ``doctor`` should know about a PostgreSQL queue besides its jobs: whether the server keeps
what it acknowledged."""

from __future__ import annotations

__all__ = ["durability"]

from typing import Any

import psycopg

from ..base import Finding

#: The server settings without which an acknowledged job can be lost, and what each risks when off.
_DURABLE = {
    "fsync": "a crash of the server's machine can lose or corrupt acknowledged jobs",
    "synchronous_commit": "a crash of the server can lose the last acknowledged jobs (under a second's worth)",
    "full_page_writes": "a crash of the server's machine can corrupt the tables",
}


def durability(connection: psycopg.Connection[dict[str, Any]]) -> list[Finding]:
    """A warning for each setting of the server that lets it lose jobs it acknowledged."""
    rows = connection.execute(
        "SELECT name, setting FROM pg_settings WHERE name = ANY(%s) ORDER BY name", (list(_DURABLE),)
    ).fetchall()
    return [
        Finding("warning", f"queue: the server runs with {row['name']} = {row['setting']}: {_DURABLE[row['name']]}")
        for row in rows
        if row["setting"] == "off"
    ]
