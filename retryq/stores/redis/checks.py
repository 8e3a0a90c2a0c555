"""What ``doctor`` learns from a Redis queue's server: is it there, and what may it lose.

Redis keeps only what its persistence keeps: with ``appendonly yes`` and ``appendfsync always`` an
acknowledged job survives a crash of the server; with ``everysec``, the last second may be lost;
without the append-only file, everything since the last snapshot. An evicting memory policy may
drop jobs outright. (A host whose clock is off the server's is told by ``process`` and ``doctor``
for every server backend alike, from :meth:`RedisStore.server_now`.)
"""

from __future__ import annotations

__all__ = ["findings", "persistence"]

import logging
from typing import Any

from ...record.text import plural
from ..base import Finding
from .connection import Connection

log = logging.getLogger("retryq")


def persistence(settings: dict[str, str]) -> Finding:
    """What the server's persistence settings promise about acknowledged jobs."""
    aof, fsync = settings.get("appendonly", "no"), settings.get("appendfsync", "everysec")
    if aof == "yes" and fsync == "always":
        return Finding("ok", "queue: appendonly yes, appendfsync always: no acknowledged job is lost if Redis crashes")
    if aof == "yes" and fsync == "everysec":
        return Finding(
            "warning",
            "queue: appendfsync everysec: a crash of Redis may lose up to a second of acknowledged changes "
            "(appendfsync always loses none)",
        )
    if aof == "yes":
        return Finding(
            "warning",
            f"queue: appendfsync {fsync}: the system decides when changes reach the disk; a crash of the machine "
            "may lose acknowledged jobs (appendfsync always loses none)",
        )
    snapshots = settings.get("save", "")
    since = "since the last snapshot" if snapshots.strip() else "(no snapshots either)"
    return Finding(
        "warning",
        f"queue: appendonly no: a restart of Redis loses every change {since}; "
        "set appendonly yes and appendfsync always",
    )


def findings(db: Connection, prefix: str) -> list[Finding]:
    """The server's side of ``doctor``: reachable, its persistence, its memory policy."""

    def facts(client: Any) -> tuple[dict[str, Any], int, str | None]:
        info = client.info("server")
        count = client.hlen(f"{prefix}:rec")
        return info, count, client.get(f"{prefix}:version")

    info, count, version = db.run(facts)
    found = [
        Finding(
            "ok",
            f"queue: Redis {info.get('redis_version', '?')} reachable, keys {prefix}:*, "
            f"{plural(count, 'job')}, layout version {version or '(none yet)'}",
        )
    ]
    try:
        settings: dict[str, str] = db.run(
            lambda client: {
                str(name): str(value)
                for pattern in ("appendonly", "appendfsync", "save", "maxmemory-policy")
                for name, value in client.config_get(pattern).items()
            }
        )
    except Exception as error:  # CONFIG disabled or renamed (managed services): say so, do not fail
        found.append(
            Finding(
                "warning",
                f"queue: cannot tell whether Redis keeps acknowledged jobs (CONFIG GET refused: {db.said(error)}); "
                "make sure it runs with appendonly yes and appendfsync always",
            )
        )
    else:
        found.append(persistence(settings))
        policy = settings.get("maxmemory-policy", "noeviction")
        if policy != "noeviction":
            found.append(
                Finding(
                    "problem",
                    f"queue: maxmemory-policy {policy}: Redis may evict jobs when memory runs short; "
                    "set maxmemory-policy noeviction",
                )
            )
    return found
