"""The PostgreSQL store: one queue shared by several hosts, claimed with ``FOR UPDATE SKIP LOCKED``.

Each job is a row: the columns a query needs, and the record as the JSON file would hold it
(``json``, kept as written: unknown keys and their order survive). A claim is one statement that
changes only the claim's columns; on reading, those columns are laid over the record. Every
other change is a mutation applied in Python to the job read ``FOR UPDATE``, in one transaction.
One open job per key is a partial unique index. State documents are rows of their own, locked first
in the transaction of the jobs they go with (:mod:`.state`). Connections lost are retried a few times with
backoff (the in-process toolkit); past that, :class:`~retryq.record.errors.StoreUnavailable` (exit 75).
"""

from __future__ import annotations

__all__ = ["PostgresStore"]

import logging
import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.types.json import Json, Jsonb

from ...record import rules
from ...record.errors import LockTimeout, OpenJobExists, StoreUnavailable
from ...record.limits import LOCK_TIMEOUT
from ...record.models import Job, JobStatus
from ...record.timeutil import to_utc, utcnow
from ..address import display_url
from ..base import ClaimRequest, Finding, Insertion, InvalidJob, JobFilter, Mutation, Plan, PruneRule, StateDoc, Tally
from ..plans import Decision, capped, checked_keys, decide
from .address import parse
from .checks import durability
from .connection import Database, first_line
from .queries import CLAIM, COLUMNS, INSERT, condition, count, decode, dumps, record_of, values_of
from .state import Aborted, begin, planned, snapshot_documents, write_documents

log = logging.getLogger("retryq")
R = TypeVar("R")

RACE = "a change would open a second job for one workflow, client and date"
Connection = psycopg.Connection[dict[str, Any]]


class PostgresStore:
    """Jobs in a PostgreSQL database, safe across hosts, processes and restarts of the server.

    ``url`` is a libpq URL (``postgresql://user@host/db``; libpq's variables such as ``PGHOST``,
    ``PGPASSWORD`` or ``PGSERVICE`` fill in what it leaves out). The tables live in ``schema``
    (default ``retryq``, or the first schema of ``options=-csearch_path=…`` in the URL); they are
    created, and upgraded, on first use. ``lock_timeout`` bounds the wait for a row lock.
    """

    def __init__(
        self,
        url: str,
        *,
        lock_timeout: float = LOCK_TIMEOUT.total_seconds(),
        archive: bool = True,
        schema: str | None = None,
        connect_attempts: int = 5,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self.location = display_url(url)
        checked = parse(url, schema)  # a ConfigError (exit 78) for what no connection attempt could mend
        self.address, self.schema = checked.url, checked.schema
        self.lock_timeout = lock_timeout
        self.archive = archive
        self.channel = f"retryq_{self.schema}"
        self._names = {"schema": sql.Identifier(self.schema)}
        self._db = Database(
            self.address,
            self.location,
            self.schema,
            lock_timeout=lock_timeout,
            connect_attempts=connect_attempts,
            sleep=sleep,
        )
        self._transact = self._db.transact

    def __repr__(self) -> str:
        return f"PostgresStore({self.location!r}, schema={self.schema!r})"

    def _sql(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(**self._names)

    def close(self) -> None:
        self._db.close()

    def environment(self) -> dict[str, str]:
        """The URL (its password with it: prefer ``~/.pgpass`` or ``PGPASSWORD``) and the schema."""
        return {"RETRYQ_QUEUE": self.address, "RETRYQ_NAMESPACE": self.schema}

    # -- reading -----------------------------------------------------------------------------

    def load(self, query: JobFilter | None = None) -> list[Job]:
        where, values = condition(query)
        rows = self._transact(
            lambda c: c.execute(
                self._sql(f"SELECT {COLUMNS} FROM {{schema}}.jobs WHERE {where} ORDER BY position"), values
            ).fetchall()
        )
        jobs = (decode(row) for row in rows)
        return [job for job in jobs if job is not None and (query is None or query.matches(job))]

    def find(self, prefix: str, limit: int = 6) -> list[Job]:
        rows = self._transact(
            lambda c: c.execute(
                self._sql(f"SELECT {COLUMNS} FROM {{schema}}.jobs WHERE starts_with(id, %s) ORDER BY id LIMIT %s"),
                (prefix, limit),
            ).fetchall()
        )
        return [job for job in map(decode, rows) if job is not None]

    def invalid(self) -> list[InvalidJob]:
        """Rows whose record is not a valid job (written by hand: retryq writes only valid jobs)."""
        rows = self._transact(
            lambda c: c.execute(
                self._sql(f"SELECT position, {COLUMNS} FROM {{schema}}.jobs ORDER BY position")
            ).fetchall()
        )
        found = []
        for number, row in enumerate(rows, 1):
            try:
                Job.model_validate(record_of(row))
            except ValueError as error:
                found.append(InvalidJob(number, row["id"], first_line(error), self.location))
        return found

    def load_archive(self) -> Iterator[Job]:
        if not self.archive:
            return iter(())
        rows = self._transact(
            lambda c: c.execute(self._sql("SELECT record FROM {schema}.archive ORDER BY position")).fetchall()
        )
        return iter([Job.model_validate(row["record"]) for row in rows])

    def tally(self) -> Tally:
        return self._transact(lambda connection: count(connection, self._sql))

    def state(self, keys: Collection[str] | None = None) -> dict[str, StateDoc]:
        wanted = checked_keys(keys)
        return self._transact(lambda connection: snapshot_documents(connection, self._sql, wanted))

    def check(self) -> list[Finding]:
        try:
            version, settings = self._transact(
                lambda c: (
                    c.execute(self._sql("SELECT value FROM {schema}.meta WHERE key = 'version'")).fetchone(),
                    durability(c),
                )
            )
        except (StoreUnavailable, LockTimeout) as error:
            return [Finding("problem", f"queue: {error}")]
        number = version["value"] if version else "?"
        return [Finding("ok", f"queue: database reachable, schema {self.schema} at version {number}"), *settings]

    # -- writing -----------------------------------------------------------------------------

    def add(self, job: Job, on_open: Mutation, *, plan: Plan | None = None) -> tuple[Job, bool]:
        def add(connection: Connection) -> tuple[Job, bool]:
            documents = begin(connection, self.schema, self._sql, plan)
            outcome, created, holder = insert(connection)
            if plan is None or documents is None:
                return outcome, created
            decision = decide(plan, documents.docs, documents.now, {outcome.id: outcome})
            if decision.abort:  # the open job as it is (ours, when an earlier try's commit went through)
                raise Aborted((holder or job, holder is not None and holder.id == job.id))
            results = self._finish(connection, decision)
            return results.get(outcome.id) or outcome, created

        def insert(connection: Connection) -> tuple[Job, bool, Job | None]:
            """The job as the add leaves it, whether it was added, and the open job of its key it found."""
            while True:
                inserted = connection.execute(self._sql(INSERT + " RETURNING id"), values_of(job)).fetchone()
                if inserted is not None:
                    self._notify_if_due(connection, [job])
                    return job, True, None
                existing = connection.execute(
                    self._sql(
                        f"SELECT {COLUMNS} FROM {{schema}}.jobs WHERE workflow = %s AND client_id = %s AND date = %s "
                        "AND status IN ('pending', 'running') FOR UPDATE"
                    ),
                    job.key,
                ).fetchone()
                if existing is None:
                    continue  # the open job ended meanwhile: add again
                found = decode(existing)
                assert found is not None
                if found.id == job.id:  # our own insert, whose commit's outcome an earlier try lost
                    return found, True, found
                updated = on_open(found)
                if updated is None:
                    raise ValueError("on_open must return a job")
                if updated is not found:
                    self._write(connection, [updated])
                return updated, False, found

        return planned(self._transact, add)

    def insert(self, jobs: Sequence[Job], archived: Sequence[Job] = (), *, dry_run: bool = False) -> Insertion:
        def insert(connection: psycopg.Connection[dict[str, Any]]) -> Insertion:
            # Inserts wait for each other, so that what one reports added is what it added.
            connection.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"retryq insert {self.schema}",))
            present = self._ids(connection, "jobs", [job.id for job in jobs])
            new = [job for job in jobs if job.id not in present]
            kept = self._ids(connection, "archive", [job.id for job in archived]) if self.archive else set()
            new_archived = [job for job in archived if job.id not in kept] if self.archive else []
            opened = [job for job in new if job.status in rules.OPEN_STATUSES]
            if opened and (conflict := self._open_job_exists(connection, opened)) is not None:
                raise conflict
            if not dry_run:
                try:
                    with connection.transaction(), connection.cursor() as cursor:
                        cursor.executemany(self._sql(INSERT), [values_of(job) for job in new])
                except psycopg.errors.UniqueViolation:  # an open job added since the check
                    raise self._open_job_exists(connection, opened) or OpenJobExists(RACE) from None
                self._archive_rows(connection, new_archived, replace=False)
                self._notify_if_due(connection, new)
            return Insertion(tuple(job.id for job in new), tuple(job.id for job in new_archived))

        return self._transact(insert)

    def update(self, changes: Mapping[str, Mutation], *, plan: Plan | None = None) -> dict[str, Job | None]:
        if not changes and plan is None:
            return {}

        def update(connection: Connection) -> dict[str, Job | None]:
            documents = begin(connection, self.schema, self._sql, plan)
            results = self._apply(connection, changes) if changes else {}
            if plan is not None and documents is not None:
                decision = decide(plan, documents.docs, documents.now, results)
                if decision.abort:
                    raise Aborted({})
                results.update(self._finish(connection, decision))
            return results

        return planned(self._transact, update)

    def claim(
        self, request: ClaimRequest, changes: Mapping[str, Mutation] | None = None, *, plan: Plan | None = None
    ) -> tuple[list[Job], dict[str, Job | None]]:
        def claim(connection: Connection) -> tuple[list[Job], dict[str, Job | None]]:
            documents = begin(connection, self.schema, self._sql, plan)
            results = self._apply(connection, changes) if changes else {}
            decision = None
            if plan is not None and documents is not None:
                decision = decide(plan, documents.docs, documents.now, results)
                if decision.abort:
                    raise Aborted(([], {}))
                if decision.mutations:
                    results.update(self._apply(connection, decision.mutations))
            claimed = self._claim(connection, request, capped(request.slots, decision.slots if decision else None))
            if decision is not None:
                write_documents(connection, self._sql, decision.texts)  # last: after the jobs they go with
            return claimed, results

        return planned(self._transact, claim)

    def _claim(self, connection: Connection, request: ClaimRequest, slots: Mapping[str, int]) -> list[Job]:
        """Claim due jobs for ``request`` with these free ``slots`` (the claimant's, capped by a plan)."""
        free = dict(slots)
        if request.caps:
            # Counted and claimed under a lock per capped workflow: two hosts never both see room.
            for workflow in sorted(request.caps):
                connection.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"retryq cap {self.schema} {workflow}",)
                )
            running = connection.execute(
                self._sql(
                    "SELECT workflow, count(*) AS n FROM {schema}.jobs WHERE status = 'running' "
                    "AND workflow = ANY(%s) GROUP BY workflow"
                ),
                (list(request.caps),),
            ).fetchall()
            busy = Counter({row["workflow"]: row["n"] for row in running})
            for workflow, cap in request.caps.items():
                if workflow in free:
                    free[workflow] = min(free[workflow], cap - busy[workflow])
        workflows = [name for name, room in free.items() if room > 0]
        if request.limit <= 0 or not workflows:
            return []
        claimant = request.claimant
        rows = connection.execute(
            self._sql(CLAIM),
            {
                "workflows": workflows,
                "free": [free[name] for name in workflows],
                "leases": [claimant.leases[name].total_seconds() for name in workflows],
                "limits": [claimant.max_attempts[name] for name in workflows],
                "ahead": request.ahead.total_seconds(),
                "exclude": list(request.exclude),
                "limit": request.limit,
                "owner": Jsonb(claimant.owner.to_json_dict()),
                "max_wait": None if request.max_wait is None else request.max_wait.total_seconds(),
                "overdue_rank": rules.OVERDUE_RANK,
            },
        ).fetchall()
        rows.sort(key=lambda row: (-row["rank"], row["execute_at"], row["position"]))  # rules.claim_order
        claimed = [decode(row) for row in rows]
        return [job for job in claimed if job is not None]

    def prune(self, rule: PruneRule, *, dry_run: bool = False) -> list[Job]:
        def prune(connection: psycopg.Connection[dict[str, Any]]) -> list[Job]:
            rows = connection.execute(
                self._sql(
                    f"SELECT {COLUMNS} FROM {{schema}}.jobs WHERE status = ANY(%s) ORDER BY position"
                    + ("" if dry_run else " FOR UPDATE SKIP LOCKED")
                ),
                (sorted(rules.FINISHED_VALUES),),
            ).fetchall()
            doomed = []
            for row in rows:
                job = decode(row)
                if job is not None and rule.expired(job.workflow, job.status, rules.ended_at(job)):
                    doomed.append(job)
            if doomed and not dry_run:
                self._remove(connection, doomed)
            return doomed

        return self._transact(prune)

    def server_now(self) -> datetime:
        """The server's clock, which judges due times, claims and leases whatever each host's says."""
        row = self._transact(lambda c: c.execute("SELECT clock_timestamp() AS now").fetchone())
        assert row is not None
        return to_utc(row["now"])

    def wait_for_work(self, seconds: float, stop: threading.Event) -> None:
        """Wait for a schedule's NOTIFY (a job due now), ``stop``, or ``seconds``."""
        self._db.wait(self.channel, seconds, stop)

    # -- the parts of a transaction ------------------------------------------------------------

    def _finish(self, connection: Connection, decision: Decision) -> dict[str, Job | None]:
        """Apply a plan's mutations and write its documents; the mutations' results."""
        results = self._apply(connection, decision.mutations) if decision.mutations else {}
        write_documents(connection, self._sql, decision.texts)
        return results

    def _apply(
        self, connection: psycopg.Connection[dict[str, Any]], changes: Mapping[str, Mutation]
    ) -> dict[str, Job | None]:
        rows = connection.execute(
            self._sql(f"SELECT {COLUMNS} FROM {{schema}}.jobs WHERE id = ANY(%s) ORDER BY position FOR UPDATE"),
            (list(changes),),
        ).fetchall()
        results: dict[str, Job | None] = {}
        removed: list[Job] = []
        changed: list[Job] = []
        for row in rows:
            job = decode(row)
            if job is None:
                continue  # not a valid job: never changed
            new = changes[job.id](job)
            results[job.id] = new
            if new is None:
                removed.append(job)
            elif new is not job:
                changed.append(new)
        if removed:
            self._remove(connection, removed)
        # The index of open keys is checked row by row: the jobs a change closes are written before
        # those it opens, so that closing one job and reopening another of its key is not a clash.
        changed.sort(key=lambda job: job.status in rules.OPEN_STATUSES)
        if changed and not any(job.status in rules.OPEN_STATUSES for job in changed):
            self._write(connection, changed)  # results, mostly: no key can clash, no savepoint needed
        elif changed:
            try:
                with connection.transaction():  # a savepoint: a key conflict leaves the transaction usable
                    self._write(connection, changed)
            except psycopg.errors.UniqueViolation:
                raise self._open_job_exists(connection, changed) or OpenJobExists(RACE) from None
            self._notify_if_due(connection, changed)
        return results

    def _write(self, connection: psycopg.Connection[dict[str, Any]], jobs: list[Job]) -> None:
        with connection.cursor() as cursor:
            cursor.executemany(
                self._sql(
                    "UPDATE {schema}.jobs SET status = %(status)s, scheduled_at = %(scheduled_at)s, "
                    "execute_at = %(execute_at)s, started_at = %(started_at)s, finished_at = %(finished_at)s, "
                    "lease_until = %(lease_until)s, run_id = %(run_id)s, owner = %(owner)s, "
                    "workflow_pid = %(workflow_pid)s, follow_up_minutes = %(follow_up_minutes)s, "
                    "max_attempts = %(max_attempts)s, priority = %(priority)s, record = %(record)s WHERE id = %(id)s"
                ),
                [values_of(job) for job in jobs],
            )

    def _remove(self, connection: psycopg.Connection[dict[str, Any]], jobs: list[Job]) -> None:
        """Remove jobs; with archiving on, they move to the archive in the same transaction."""
        if self.archive:
            self._archive_rows(connection, jobs, replace=True)
        connection.execute(self._sql("DELETE FROM {schema}.jobs WHERE id = ANY(%s)"), ([job.id for job in jobs],))

    def _archive_rows(self, connection: psycopg.Connection[dict[str, Any]], jobs: list[Job], *, replace: bool) -> None:
        """Archive jobs; a job archived before is replaced by this copy (or, without ``replace``, kept)."""
        on_conflict = "DO UPDATE SET record = EXCLUDED.record, archived_at = now()" if replace else "DO NOTHING"
        with connection.cursor() as cursor:
            cursor.executemany(
                self._sql(
                    f"INSERT INTO {{schema}}.archive (id, record) VALUES (%s, %s) ON CONFLICT (id) {on_conflict}"
                ),
                [(job.id, Json(job.to_json_dict(), dumps=dumps)) for job in jobs],
            )

    def _ids(self, connection: psycopg.Connection[dict[str, Any]], table: str, ids: list[str]) -> set[str]:
        """Which of ``ids`` the table holds."""
        if not ids:
            return set()
        rows = connection.execute(self._sql(f"SELECT id FROM {{schema}}.{table} WHERE id = ANY(%s)"), (ids,))
        return {row["id"] for row in rows}

    def _open_job_exists(
        self, connection: psycopg.Connection[dict[str, Any]], changed: list[Job]
    ) -> OpenJobExists | None:
        """The error naming an open job of the queue that holds the key of an open job of ``changed``, if any."""
        for job in changed:
            holder = connection.execute(
                self._sql(
                    "SELECT id FROM {schema}.jobs WHERE workflow = %s AND client_id = %s AND date = %s "
                    "AND status IN ('pending', 'running') AND id <> %s"
                ),
                (*job.key, job.id),
            ).fetchone()
            if holder is not None and (conflict := rules.key_conflict(job, [holder["id"]])) is not None:
                return conflict
        return None

    def _notify_if_due(self, connection: psycopg.Connection[dict[str, Any]], jobs: list[Job]) -> None:
        """Wake idle workers (LISTEN) when a job is due now; one sent at commit, whatever the number."""
        now = utcnow()
        if any(job.status is JobStatus.PENDING and job.execute_at <= now for job in jobs):
            connection.execute("SELECT pg_notify(%s, 'due')", (self.channel,))
