"""The PostgreSQL server of the benchmarks: $RETRYQ_TEST_POSTGRES, else a throwaway cluster with fsync on.

The throwaway cluster is the tests' (``tests/postgres_cluster.py``: loopback only, run by the
``postgres`` user when started as root), restarted with ``fsync=on``: the tests' cluster turns
fsync off to run fast, but a figure measured so would leave out the flush at each commit that a
real server makes, and that every peer compared here makes (huey's SQLite and retryq's JSON file
fsync too). Each measurement works in schemas of its own, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import psycopg
from _common import bench_directory
from psycopg import sql

from tests import postgres_cluster as cluster


@contextlib.contextmanager
def server(*options: str, own: bool = False) -> Iterator[str]:
    """The URL of the server to measure on: $RETRYQ_TEST_POSTGRES, or a throwaway cluster stopped afterwards.

    ``options`` (``-c name=value``) are given to the throwaway cluster; ``own`` asks for one
    even when $RETRYQ_TEST_POSTGRES is set (to load an extension there, say).
    """
    given = None if own else os.environ.get("RETRYQ_TEST_POSTGRES")
    if given:
        yield given
        return
    directory = Path(tempfile.mkdtemp(prefix="retryq-bench-pg-", dir=bench_directory()))
    try:
        try:
            url = cluster.start(directory)
            _restart_with_fsync(directory, url, options)
        except RuntimeError as error:
            raise SystemExit(f"cannot start a PostgreSQL server for the benchmark: {error}") from None
        yield url
    finally:
        cluster.stop(directory)
        shutil.rmtree(directory, ignore_errors=True)


def _restart_with_fsync(directory: Path, url: str, extra: tuple[str, ...]) -> None:
    """Restart the cluster with the options it was started with, fsync on instead of off, and ``extra``.

    Options given on the server's command line outrank ``ALTER SYSTEM``, so only a restart can
    turn fsync back on.
    """
    cluster.stop(directory)
    port = psycopg.conninfo.conninfo_to_dict(url)["port"]
    options = " ".join(
        [f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={directory} -c fsync=on", *extra]
    )
    pg_ctl = cluster.binary("pg_ctl") or "pg_ctl"
    log = str(directory / "server.log")
    cluster._run(
        cluster._as_owner([pg_ctl, "-D", str(directory / "data"), "-o", options, "-l", log, "-w", "start"], directory)
    )


def settings(url: str) -> dict[str, str]:
    """The server's version and what a commit costs on it: fsync, synchronous_commit, wal_sync_method."""
    with psycopg.connect(url, autocommit=True) as connection:
        found = {
            name: str(connection.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()[0])  # type: ignore[index]
            for name in ("server_version", "fsync", "synchronous_commit", "wal_sync_method")
        }
    found["server_version"] = found["server_version"].split()[0]
    return found


def describe(found: dict[str, str]) -> str:
    return (
        f"{found['server_version']} (fsync {found['fsync']}, synchronous_commit {found['synchronous_commit']}, "
        f"wal_sync_method {found['wal_sync_method']})"
    )


def in_schema(url: str, schema: str) -> str:
    """``url`` with ``search_path`` set to ``schema`` (retryq and procrastinate both keep their tables there)."""
    if "options=" in url:
        raise SystemExit("the server's URL sets options= already; give one without it")
    return f"{url}{'&' if '?' in url else '?'}options={quote(f'-csearch_path={schema}')}"


def new_schema(prefix: str) -> str:
    """A schema name no earlier run used."""
    return f"bench_{prefix}_{uuid.uuid4().hex[:8]}"


def drop_schema(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def create_schema(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
