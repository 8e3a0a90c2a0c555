"""The tables of a PostgreSQL queue, versioned: created on first use, upgraded by retryq itself."""

from __future__ import annotations

__all__ = ["SCHEMA_VERSION", "migrate"]

import logging
from typing import Any

import psycopg
from psycopg import sql

from ...record.errors import ConfigError

log = logging.getLogger("retryq")

SCHEMA_VERSION = 3

MIGRATIONS = {
    1: """
    CREATE TABLE {schema}.jobs (
        position bigserial UNIQUE,
        id text PRIMARY KEY,
        workflow text NOT NULL,
        client_id text NOT NULL,
        date text NOT NULL,
        status text NOT NULL,
        scheduled_at timestamptz NOT NULL,
        execute_at timestamptz NOT NULL,
        started_at timestamptz,
        finished_at timestamptz,
        lease_until timestamptz,
        run_id text,
        owner jsonb,
        workflow_pid integer,
        follow_up_minutes integer,
        max_attempts integer,
        record json NOT NULL
    );
    CREATE UNIQUE INDEX jobs_one_open_per_key ON {schema}.jobs (workflow, client_id, date)
        WHERE status IN ('pending', 'running');
    CREATE INDEX jobs_due ON {schema}.jobs (workflow, execute_at, position) WHERE status = 'pending';
    CREATE TABLE {schema}.archive (
        position bigserial UNIQUE,
        id text PRIMARY KEY,
        archived_at timestamptz NOT NULL DEFAULT now(),
        record json NOT NULL
    );
    """,
    # The state documents beside the jobs (see state.py): what features keep across runs and hosts.
    2: """
    CREATE TABLE {schema}.state (
        key text PRIMARY KEY,
        doc jsonb NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
    );
    """,
    # Priorities: a column the claim orders by (every row written before has priority 0, as its record says by
    # lacking the key), and the index that serves the claim order (rules.claim_order) within a workflow.
    3: """
    ALTER TABLE {schema}.jobs ADD COLUMN priority smallint NOT NULL DEFAULT 0;
    CREATE INDEX jobs_due_by_priority ON {schema}.jobs (workflow, priority DESC, execute_at, position)
        WHERE status = 'pending';
    """,
}


def migrate(connection: psycopg.Connection[Any], schema: str, location: str) -> None:
    """Create or upgrade ``schema``; hosts starting at once wait for each other on an advisory lock.

    A schema already at this version (every connection but the first) costs one read, no lock
    and no write.
    """
    names = {"schema": sql.Identifier(schema)}

    def run(text: str, values: tuple[Any, ...] = ()) -> Any:
        return connection.execute(sql.SQL(text).format(**names), values)

    with connection.transaction():
        if connection.execute(
            "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = 'meta'", (schema,)
        ).fetchone():
            found = run("SELECT value FROM {schema}.meta WHERE key = 'version'").fetchone()
            if found and int(found["value"] if isinstance(found, dict) else found[0]) == SCHEMA_VERSION:
                return
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"retryq schema {schema}",))
        # Made only when missing: a role without CREATE on the database may be given a schema of its own.
        if not connection.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone():
            run("CREATE SCHEMA IF NOT EXISTS {schema}")
        run("CREATE TABLE IF NOT EXISTS {schema}.meta (key text PRIMARY KEY, value text)")
        found = run("SELECT value FROM {schema}.meta WHERE key = 'version'").fetchone()
        version = int(found["value"] if isinstance(found, dict) else found[0]) if found else 0
        if version > SCHEMA_VERSION:
            raise ConfigError(
                f"{location}: schema {schema} is at version {version}, newer than this retryq "
                f"({SCHEMA_VERSION}): upgrade retryq on this host"
            )
        for number in range(version + 1, SCHEMA_VERSION + 1):
            for statement in filter(str.strip, MIGRATIONS[number].split(";")):
                run(statement)
            log.info("%s: schema %s upgraded to version %d", location, schema, number)
        run(
            "INSERT INTO {schema}.meta VALUES ('version', %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            (str(SCHEMA_VERSION),),
        )
