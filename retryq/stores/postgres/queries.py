"""How a job lives in a row (the columns queries need, the record kept as written), and the longer SQL."""

from __future__ import annotations

__all__ = [
    "CLAIM",
    "COLUMNS",
    "INSERT",
    "condition",
    "count",
    "decode",
    "dumps",
    "record_of",
    "values_of",
]

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Json, Jsonb

from ...record.models import Job, json_line
from ...record.timeutil import format_utc
from ..base import JobFilter, Tally

log = logging.getLogger("retryq")

dumps = json_line

# The columns a claim may change, and the record keys they stand for (laid over the record on reading).
_OVERLAY = (
    ("status", "status"),
    ("owner", "owner"),
    ("runId", "run_id"),
    ("startedAt", "started_at"),
    ("finishedAt", "finished_at"),
    ("leaseUntil", "lease_until"),
    ("workflowPid", "workflow_pid"),
    ("followUpMinutes", "follow_up_minutes"),
    ("maxAttempts", "max_attempts"),
)
COLUMNS = (
    "id, workflow, client_id, date, status, scheduled_at, execute_at, started_at, finished_at, lease_until, "
    "run_id, owner, workflow_pid, follow_up_minutes, max_attempts, record"
)

# A new row; a job whose id is there is left alone (the caller tells which by what it returns).
INSERT = (
    "INSERT INTO {schema}.jobs (id, workflow, client_id, date, status, scheduled_at, execute_at, started_at, "
    "finished_at, lease_until, run_id, owner, workflow_pid, follow_up_minutes, max_attempts, priority, record) "
    "VALUES (%(id)s, %(workflow)s, %(client_id)s, %(date)s, %(status)s, %(scheduled_at)s, %(execute_at)s, "
    "%(started_at)s, %(finished_at)s, %(lease_until)s, %(run_id)s, %(owner)s, %(workflow_pid)s, "
    "%(follow_up_minutes)s, %(max_attempts)s, %(priority)s, %(record)s) ON CONFLICT DO NOTHING"
)

# One statement: lock the first due jobs of each workflow in the claim order (up to its free slots) that no
# other transaction holds, keep the first `limit` of them, and mark them claimed: rules.choose and rules.claimed
# in SQL (the contract suite checks that they agree). The order is rules.claim_order's: the jobs due for longer
# than max_wait first, oldest due first (the index jobs_due serves them), then the others by priority, then due
# time (the index jobs_due_by_priority serves them); `rank` is an overdue job's OVERDUE_RANK, else its priority.
# Due times, the claim's start and its lease follow the server's clock, whatever the host's says.
CLAIM = """
WITH slots AS (
    SELECT * FROM unnest(%(workflows)s::text[], %(free)s::int[], %(leases)s::float8[], %(limits)s::int[])
        AS s(workflow, free, lease, max_attempts)
),
bounds AS (
    SELECT statement_timestamp() + %(ahead)s * interval '1 second' AS due_by,
        coalesce(statement_timestamp() - %(max_wait)s::float8 * interval '1 second', '-infinity') AS overdue_before
),
overdue AS (
    SELECT s.workflow, j.id, j.execute_at, j.position, %(overdue_rank)s AS rank
    FROM slots s CROSS JOIN bounds b CROSS JOIN LATERAL (
        SELECT id, execute_at, position FROM {schema}.jobs
        WHERE status = 'pending' AND workflow = s.workflow
            AND execute_at < b.overdue_before AND execute_at <= b.due_by
            AND NOT (id = ANY(%(exclude)s::text[]))
        ORDER BY execute_at, position
        LIMIT s.free
        FOR UPDATE SKIP LOCKED
    ) j
),
ranked AS (
    SELECT s.workflow, j.id, j.execute_at, j.position, j.priority AS rank
    FROM slots s CROSS JOIN bounds b CROSS JOIN LATERAL (
        SELECT id, execute_at, position, priority FROM {schema}.jobs
        WHERE status = 'pending' AND workflow = s.workflow
            AND execute_at >= b.overdue_before AND execute_at <= b.due_by
            AND NOT (id = ANY(%(exclude)s::text[]))
        ORDER BY priority DESC, execute_at, position
        LIMIT s.free - (SELECT count(*) FROM overdue o WHERE o.workflow = s.workflow)
        FOR UPDATE SKIP LOCKED
    ) j
),
picked AS (
    SELECT c.id, c.rank, c.execute_at, c.position, s.lease, s.max_attempts
    FROM (SELECT * FROM overdue UNION ALL SELECT * FROM ranked) c JOIN slots s USING (workflow)
    ORDER BY c.rank DESC, c.execute_at, c.position
    LIMIT %(limit)s
)
UPDATE {schema}.jobs AS job SET
    status = 'running',
    owner = %(owner)s,
    run_id = replace(gen_random_uuid()::text, '-', ''),
    started_at = statement_timestamp(),
    finished_at = NULL,
    lease_until = statement_timestamp() + picked.lease * interval '1 second',
    workflow_pid = NULL,
    follow_up_minutes = NULL,
    max_attempts = coalesce(job.max_attempts, picked.max_attempts)
FROM picked
WHERE job.id = picked.id
RETURNING picked.rank, job.position, """ + ", ".join(f"job.{column.strip()}" for column in COLUMNS.split(","))


def values_of(job: Job) -> dict[str, Any]:
    """The columns of a job and its record, as written by every change but a claim."""
    record = job.to_json_dict()
    return {
        "id": job.id,
        "workflow": job.workflow,
        "client_id": job.client_id,
        "date": job.date,
        "status": job.status.value,
        "scheduled_at": job.scheduled_at,
        "execute_at": job.execute_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "lease_until": job.lease_until,
        "run_id": job.run_id,
        "owner": None if job.owner is None else Jsonb(record["owner"]),
        "workflow_pid": job.workflow_pid,
        "follow_up_minutes": job.follow_up_minutes,
        "max_attempts": job.max_attempts,
        "priority": job.priority,
        "record": Json(record, dumps=dumps),
    }


def record_of(row: Mapping[str, Any]) -> dict[str, Any]:
    """The record with the claim's columns laid over it (keys a record lacks are added only when set)."""
    record = dict(row["record"])
    for key, column in _OVERLAY:
        value = row[column]
        if isinstance(value, datetime):
            value = format_utc(value)
        if key in record or value is not None:
            record[key] = value
    return record


def decode(row: Mapping[str, Any]) -> Job | None:
    try:
        return Job.model_validate(record_of(row))
    except ValueError:
        log.warning("job %s of the database is not a valid job; skipped (see retryq doctor)", row["id"])
        return None


def condition(query: JobFilter | None) -> tuple[str, dict[str, Any]]:
    """The SQL condition of a filter (``since`` is checked on the jobs themselves)."""
    if query is None:
        return "true", {}
    parts, values = ["true"], {}
    if query.statuses is not None:
        parts.append("status = ANY(%(statuses)s)")
        values["statuses"] = [status.value for status in query.statuses]
    for name, column in (("workflow", "workflow"), ("client", "client_id"), ("date", "date")):
        if getattr(query, name) is not None:
            parts.append(f"{column} = %({name})s")
            values[name] = getattr(query, name)
    return " AND ".join(parts), values


def count(connection: psycopg.Connection[dict[str, Any]], compose: Callable[[str], sql.Composed]) -> Tally:
    """What metrics count (see :class:`~retryq.stores.Tally`), counted by the server."""
    tally = Tally()
    for row in connection.execute(
        compose("SELECT workflow, status, count(*) AS n FROM {schema}.jobs GROUP BY workflow, status")
    ):
        tally.jobs[(row["workflow"], row["status"])] = row["n"]
    for row in connection.execute(
        compose(
            "SELECT workflow, min(scheduled_at) AS oldest, min(execute_at) AS due FROM {schema}.jobs "
            "WHERE status = 'pending' GROUP BY workflow"
        )
    ):
        tally.oldest_scheduled[row["workflow"]] = row["oldest"]
        tally.earliest_due[row["workflow"]] = row["due"]
    # The history of every job the queue has known: its live rows, and the archive's others.
    known = (
        "SELECT workflow, status, record FROM {schema}.jobs UNION ALL "
        "SELECT coalesce(record->>'workflow', 'default'), record->>'status', record FROM {schema}.archive a "
        "WHERE NOT EXISTS (SELECT 1 FROM {schema}.jobs j WHERE j.id = a.id)"
    )
    for row in connection.execute(
        compose(
            f"SELECT k.workflow, h->>'outcome' AS outcome, count(*) AS n FROM ({known}) k, "
            "json_array_elements(coalesce(k.record->'history', '[]'::json)) h GROUP BY 1, 2"
        )
    ):
        tally.attempts[(row["workflow"], row["outcome"])] = row["n"]
    for row in connection.execute(
        compose(
            f"SELECT workflow, status, coalesce((record->>'attempt')::int, 1) AS attempt, count(*) AS n "
            f"FROM ({known}) k WHERE status IN ('completed', 'failed') GROUP BY 1, 2, 3"
        )
    ):
        if row["status"] == "completed":
            tally.resolutions[(row["workflow"], row["attempt"])] += row["n"]
        else:
            tally.failures[row["workflow"]] += row["n"]
    return tally
