"""Where a job's time goes on PostgreSQL, retryq beside procrastinate: round trips, commits, WAL flushes, statements.

Not a benchmark (nothing is paired, nothing is saved): the evidence behind docs/performance.md's
paragraph on what limits retryq's PostgreSQL queue. On a throwaway cluster of its own, with
fsync on and ``pg_stat_statements`` loaded (track = all: procrastinate's SQL functions are
counted statement by statement), each scenario runs on a new schema, in this process:

- schedules: N schedules one after the other, ``RetryQueue.schedule`` / procrastinate's ``defer``;
- processing: N due jobs running `true`, concurrency 4, ``Processor.run`` / ``run_worker``;
- a command's connection: a new ``RetryQueue`` and its first schedule, as each `retryq schedule`.

Per job: wall time, round trips (the Query and Sync messages the client sends, read from
libpq's trace of every connection), transactions committed and WAL flushes (the server's own
counters), time spent executing statements on the server, and the statements that took it.
Then ``EXPLAIN ANALYZE`` of retryq's claim on a full queue and on a drained one, and a what-if:
``Processor.run`` without its scan of /proc after each run, beside procrastinate's worker.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import os
import re
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import psycopg
from _common import describe_machine, interleave, machine
from _pgserver import create_schema, describe, drop_schema, in_schema, new_schema, server, settings
from _procrastinate_queue import open_app
from _workers import DATE
from bench_postgres import fill_retryq, process_config
from psycopg import sql

from retryq import Config, Processor, RetryQueue
from retryq.stores.postgres.queries import CLAIM

#: The trace file of each connection (kept open: libpq writes to it) and how much of it was read.
_traces: list[tuple[Any, list[int]]] = []
_libc = ctypes.CDLL(None)


# -- counting -----------------------------------------------------------------------------------


def _trace(connection: Any) -> None:
    """Have libpq log every message of ``connection`` to a temp file (read back by round_trips)."""
    stream = tempfile.TemporaryFile()  # noqa: SIM115  (open as long as the connection, which libpq writes from)
    connection.pgconn.trace(stream.fileno())
    connection.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS | psycopg.pq.Trace.REGRESS_MODE)
    _traces.append((stream, [0]))


def trace_every_connection() -> None:
    """Trace each connection psycopg opens from now on, pools' and retryq's alike."""
    connect, connect_async = psycopg.Connection.connect.__func__, psycopg.AsyncConnection.connect.__func__  # type: ignore[attr-defined]

    def traced(cls: Any, *args: Any, **kwargs: Any) -> Any:
        connection = connect(cls, *args, **kwargs)
        _trace(connection)
        return connection

    async def traced_async(cls: Any, *args: Any, **kwargs: Any) -> Any:
        connection = await connect_async(cls, *args, **kwargs)
        _trace(connection)
        return connection

    psycopg.Connection.connect = classmethod(traced)  # type: ignore[assignment,method-assign]
    psycopg.AsyncConnection.connect = classmethod(traced_async)  # type: ignore[assignment,method-assign]
    psycopg.connect = psycopg.Connection.connect  # the module's name was bound at import


def round_trips() -> tuple[int, Counter[str]]:
    """Round trips since the last call (Query and Sync messages sent), and the simple queries among them."""
    _libc.fflush(None)  # libpq writes through C stdio buffers, closed connections' too
    total, simple = 0, Counter[str]()
    for stream, read in _traces:
        size = os.fstat(stream.fileno()).st_size
        text = os.pread(stream.fileno(), size - read[0], read[0]).decode(errors="replace")
        read[0] = size
        for line in text.splitlines():
            parts = line.split("\t")
            if len(parts) > 2 and parts[0] == "F" and parts[2] in {"Query", "Sync"}:
                total += 1
                if parts[2] == "Query":
                    simple[parts[3].strip()[:60]] += 1
    return total, simple


@contextlib.contextmanager
def counted(url: str, label: str, jobs: int) -> Iterator[None]:
    """Print what the block cost per job: wall time, round trips, commits, WAL flushes, server time, statements."""
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SELECT pg_stat_statements_reset()")
        before = _server_counters(admin)
    round_trips()
    start = time.perf_counter()
    yield
    wall = time.perf_counter() - start
    time.sleep(1.5)  # backends report their counters when their connection ends: let them
    trips, simple = round_trips()
    with psycopg.connect(url, autocommit=True) as admin:
        after = _server_counters(admin)
        statements = admin.execute(
            "SELECT calls, total_exec_time, toplevel, query FROM pg_stat_statements "
            "WHERE query NOT LIKE '%%pg_stat%%' ORDER BY total_exec_time DESC"
        ).fetchall()
    server_ms = sum(row[1] for row in statements if row[2])
    print(f"\n### {label} ({jobs:,} jobs)\n")
    print(f"- wall: {wall / jobs * 1000:.2f} ms per job")
    queries = ", ".join(f"{query} ×{count / jobs:.2f}" for query, count in simple.most_common(5))
    print(f"- round trips: {trips / jobs:.2f} per job (simple queries among them: {queries})")
    print(f"- transactions committed: {(after['commits'] - before['commits']) / jobs:.2f} per job")
    print(f"- WAL flushes (fsync of the log): {(after['syncs'] - before['syncs']) / jobs:.2f} per job")
    print(f"- executing statements on the server (top level): {server_ms / jobs:.3f} ms per job")
    print("\n| calls per job | mean ms | total ms per job | top level | statement |\n| --- | --- | --- | --- | --- |")
    for calls, total, toplevel, query in statements[:8]:
        text = re.sub(r"\s+", " ", query)[:110].replace("|", "\\|")
        level = "yes" if toplevel else "no"
        print(f"| {calls / jobs:.2f} | {total / calls:.3f} | {total / jobs:.3f} | {level} | `{text}` |")


def _server_counters(admin: psycopg.Connection[Any]) -> dict[str, int]:
    wal = admin.execute("SELECT wal_sync FROM pg_stat_wal").fetchone()
    commits = admin.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()").fetchone()
    return {"syncs": int(wal[0]) if wal else 0, "commits": int(commits[0]) if commits else 0}


# -- scenarios ----------------------------------------------------------------------------------


def in_new_schema(url: str, prefix: str, work: Callable[[str, str], None]) -> None:
    schema = new_schema(prefix)
    try:
        work(in_schema(url, schema), schema)
    finally:
        drop_schema(url, schema)


def schedules(url: str, jobs: int) -> None:
    def retryq(address: str, _: str) -> None:
        queue = RetryQueue(address, config=Config())
        queue.store.check()  # connected, tables made: the benchmark's workers start so
        with counted(url, "retryq: RetryQueue.schedule, one process", jobs):
            for number in range(jobs):
                queue.schedule(f"client{number}", DATE, 60)
            queue.close()

    def procrastinate(address: str, schema: str) -> None:
        create_schema(url, schema)
        app, task = open_app(address)
        app.open()
        app.schema_manager.apply_schema()
        with counted(url, "procrastinate: defer with schedule_in, one process", jobs):
            for number in range(jobs):
                task.configure(schedule_in={"seconds": 3600}).defer(client=f"client{number}", date=DATE)
            app.close()

    in_new_schema(url, "rq", retryq)
    in_new_schema(url, "pc", procrastinate)


def processing(url: str, jobs: int) -> None:
    def retryq(address: str, schema: str) -> None:
        fill_retryq(address, schema, jobs)
        queue = RetryQueue(address, config=process_config())
        with counted(url, "retryq: Processor.run, concurrency 4", jobs):
            report = Processor(queue.store, queue.config, prune=False).run()
            queue.close()
        assert report.succeeded == jobs, report

    def procrastinate(address: str, schema: str) -> None:
        create_schema(url, schema)
        app, task = open_app(address)
        app.open()
        app.schema_manager.apply_schema()
        task.batch_defer(*({"client": f"due{number}", "date": DATE} for number in range(jobs)))
        app.close()
        with counted(url, "procrastinate: run_worker, concurrency 4", jobs):
            app.run_worker(concurrency=4, wait=False, install_signal_handlers=False)

    in_new_schema(url, "rq", retryq)
    in_new_schema(url, "pc", procrastinate)


def command_connections(url: str, count: int) -> None:
    def retryq(address: str, _: str) -> None:
        RetryQueue(address, config=Config()).store.check()  # the tables exist, as on a queue in use
        with counted(url, "retryq: a new RetryQueue and its first schedule (what each `retryq schedule` does)", count):
            for number in range(count):
                queue = RetryQueue(address, config=Config())
                queue.schedule(f"client{number}", DATE, 60)
                queue.close()

    in_new_schema(url, "rq", retryq)


def without_scan(url: str, rounds: int) -> None:
    """Jobs per second of ``Processor.run``, as it is and without its scan of /proc after each run, and procrastinate's.

    A what-if, patched here and nowhere else: after each run, retryq reads the environment of
    every process of the host to stop what the run left behind (``platform.stop_leftovers``).
    """
    from bench_postgres import process_procrastinate, process_retryq

    from retryq.running import platform

    scan = platform.stop_leftovers

    def skipping() -> float:
        platform.stop_leftovers = lambda graces: dict.fromkeys(graces, 0)
        try:
            return process_retryq(url)
        finally:
            platform.stop_leftovers = scan

    runs = interleave(
        {
            "as it is": lambda: process_retryq(url),
            "no scan": skipping,
            "procrastinate": lambda: process_procrastinate(url),
        },
        rounds,
        compare=[("as it is", "procrastinate"), ("no scan", "procrastinate"), ("no scan", "as it is")],
        label="what-if",
    )
    print(f"\n### What if each run's end did not scan /proc ({rounds} rounds, rotated order)\n")
    print("| variant | median jobs/s | ÷ procrastinate | ÷ as it is |\n| --- | --- | --- | --- |")
    for name in ("as it is", "no scan", "procrastinate"):
        ratios = [
            f"{statistics.median(runs.ratios(name, base)):.2f}" if (name, base) in runs.partners else ""
            for base in ("procrastinate", "as it is")
        ]
        print(f"| {name} | {statistics.median(runs.samples[name]):.0f} | {ratios[0]} | {ratios[1]} |")
    print(f"\n(one scan of /proc with {sum(1 for entry in os.listdir('/proc') if entry.isdigit())} processes: ", end="")
    start = time.perf_counter()
    for _ in range(20):
        platform.processes_with_run_id("none")
    print(f"{(time.perf_counter() - start) / 20 * 1000:.2f} ms)")


def shown(plan: list[Any]) -> str:
    """A plan's lines, each cut at 160 characters (a list of a thousand ids reads no better whole)."""
    return "\n".join(row[0] if len(row[0]) <= 160 else row[0][:157] + "..." for row in plan)


def explain_claim(url: str, jobs: int) -> None:
    """The plan and timing of retryq's claim statement on a queue of ``jobs`` due jobs, then once they are done."""

    def explain(address: str, schema: str) -> None:
        fill_retryq(address, schema, jobs)
        statement = sql.SQL("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + CLAIM).format(schema=sql.Identifier(schema))
        now = datetime.now(timezone.utc)
        values = {
            "workflows": ["default"],
            "free": [4],
            "leases": [3900.0],
            "limits": [3],
            "due_by": now,
            "limit": 4,
            "owner": psycopg.types.json.Jsonb({"host": "bench", "pid": 1}),
            "now": now,
        }
        with psycopg.connect(address) as connection:
            excluded = [f"{number:016x}" for number in range(1000)]  # what `process` sends once it ran 1,000 jobs
            for label, exclude in (("full queue", []), ("full queue, 1,000 ids excluded", excluded)):
                plan = connection.execute(statement, {**values, "exclude": exclude}).fetchall()
                connection.rollback()
                print(f"\n#### claim, {label}\n\n```\n{shown(plan)}\n```")
        queue = RetryQueue(address, config=process_config())
        Processor(queue.store, queue.config, prune=False).run()
        queue.close()
        with psycopg.connect(address) as connection:
            plan = connection.execute(statement, {**values, "exclude": []}).fetchall()
            connection.rollback()
        print(f"\n#### claim, after every job ran (dead entries left in the index)\n\n```\n{shown(plan)}\n```")

    in_new_schema(url, "rq", explain)


SCENARIOS = ["schedules", "processing", "command", "explain", "what-if"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500, help="jobs per scenario [default: 500]")
    parser.add_argument(
        "--only", choices=SCENARIOS, action="append", help="a scenario to run (repeatable) [default: all]"
    )
    args = parser.parse_args()
    chosen = set(args.only or SCENARIOS)
    logging.getLogger("retryq").setLevel(logging.WARNING)
    logging.getLogger("procrastinate").setLevel(logging.WARNING)
    options = ("-c shared_preload_libraries=pg_stat_statements", "-c pg_stat_statements.track=all")
    with server(*options, own=True) as url:
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        print(f"## Where a job's time goes on PostgreSQL\n\nmachine: {describe_machine(machine())}")
        print(f"server: PostgreSQL {describe(settings(url))}")
        trace_every_connection()
        if "schedules" in chosen:
            schedules(url, args.jobs)
        if "processing" in chosen:
            processing(url, args.jobs)
        if "command" in chosen:
            command_connections(url, 50)
        if "explain" in chosen:
            explain_claim(url, 2_000)
        if "what-if" in chosen:
            without_scan(url, 4)


if __name__ == "__main__":
    main()
