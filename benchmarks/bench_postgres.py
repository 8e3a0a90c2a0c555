"""retryq's PostgreSQL queue beside procrastinate, huey and retryq's JSON file: one server, one machine.

- Schedules: 4 processes × 1,000 schedules through the library, each process set up (imports,
  connections) before the clock starts: retryq on PostgreSQL (``RetryQueue(url).schedule``, in
  60 minutes), procrastinate (``task.configure(schedule_in=…).defer(…)``, in an hour), huey's
  SqliteHuey (``task.schedule(delay=3600)``) and retryq on its JSON file. Each round runs the
  four once, the order rotated, each on a new schema or file.
- Processing: 2,000 due jobs whose workflow is `true`, concurrency 4: retryq's ``Processor``
  (the library's, which `retryq process` runs) beside procrastinate's worker
  (``run_worker(concurrency=4, wait=False)``) whose asynchronous task starts `true` the way
  retryq's runner does. A/B pairs, order alternating; each run on a new schema filled beforehand
  (untimed), connecting within the clock on both sides.
- `retryq schedule` as a command: on PostgreSQL (``--queue URL``) beside the JSON file
  (``--queue-file``), A/B pairs.

The server is $RETRYQ_TEST_POSTGRES, else a throwaway cluster with fsync on (see ``_pgserver.py``).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import psycopg
from _common import (
    Goal,
    Group,
    ReadmeRow,
    Report,
    arguments,
    bench_directory,
    clean_env,
    interleave,
    paired,
    rows_from,
    scaled,
    timed,
    versions,
)
from _pgserver import create_schema, describe, drop_schema, in_schema, new_schema, server, settings
from _workers import DATE, race
from bench_process import due_jobs
from psycopg import sql

from retryq import Config, Job, JsonFileStore, Processor, RetryQueue, WorkflowSettings
from retryq.stores.postgres.queries import values_of

try:
    from _huey_queue import open_queue
    from _procrastinate_queue import open_app
except ImportError:  # peers to compare with, not dependencies of retryq
    raise SystemExit(
        "procrastinate and huey are needed for this comparison: pip install procrastinate huey "
        "(`make bench` installs them)"
    ) from None

ROUNDS = 4  # four variants in rotated order: each runs once in each place
WORKERS, EACH = 4, 1_000
JOBS, CONCURRENCY = 2_000, 4
AT_LEAST_AS_FAST = Goal("ratio:procrastinate", 1.0, "≥ 1 × procrastinate", at_least=True)


# -- schedules ----------------------------------------------------------------------------------


class Queue:
    """One queue of one kind for one run: where the workers find it, how many clients it holds, how it goes."""

    def __init__(self, kind: str, url: str, directory: Path) -> None:
        self.kind = kind
        self.url = url
        self.schema = new_schema(kind.replace("-", "_"))
        self.directory = Path(tempfile.mkdtemp(dir=directory))
        if kind == "retryq-pg":
            self.address = in_schema(url, self.schema)
            queue = RetryQueue(self.address, config=Config())
            queue.store.check()  # creates the tables before four processes race to
            queue.close()
        elif kind == "procrastinate":
            self.address = in_schema(url, self.schema)
            create_schema(url, self.schema)
            app, _ = open_app(self.address)
            app.open()
            app.schema_manager.apply_schema()
            app.close()
        elif kind == "huey":
            self.address = str(self.directory / "huey.db")
            open_queue(self.address)[0].pending_count()  # creates the tables
        else:
            self.address = str(self.directory / ".retry-queue.json")

    def clients(self) -> int:
        """The distinct clients the queue holds (as many as were scheduled, or some were lost)."""
        if self.kind == "retryq":
            return len({job.client_id for job in JsonFileStore(self.address).load()})
        if self.kind == "huey":
            huey, _ = open_queue(self.address)
            return len({huey.serializer.deserialize(data).args[0] for data in huey.storage.enqueued_items()})
        query = (
            "SELECT count(DISTINCT client_id) FROM {}.jobs"
            if self.kind == "retryq-pg"
            else "SELECT count(DISTINCT args->>'client') FROM {}.procrastinate_jobs"
        )
        with psycopg.connect(self.url) as connection:
            found = connection.execute(sql.SQL(query).format(sql.Identifier(self.schema))).fetchone()
        return int(found[0]) if found else 0

    def remove(self) -> None:
        if self.kind in {"retryq-pg", "procrastinate"}:
            drop_schema(self.url, self.schema)
        shutil.rmtree(self.directory)


def schedules(url: str, directory: Path, rounds: int) -> Group:
    counts: dict[str, list[int]] = {}

    def run(kind: str, each: int) -> float:
        queue = Queue(kind, url, directory)
        try:
            elapsed = race(kind, queue.address, WORKERS, each, str(queue.directory), clean_env())
            scheduled, lost = counts.setdefault(kind, [0, 0])
            counts[kind] = [scheduled + WORKERS * each, lost + WORKERS * each - queue.clients()]
        finally:
            queue.remove()
        return WORKERS * each / elapsed

    kinds = ["retryq-pg", "procrastinate", "huey", "retryq"]
    for kind in kinds:  # one schedule per process first: compiled modules and caches are then warm
        run(kind, 1)
    runs = interleave(
        {kind: (lambda kind=kind: run(kind, EACH)) for kind in kinds},  # type: ignore[misc]
        rounds,
        compare=[("retryq-pg", "procrastinate"), ("retryq-pg", "huey"), ("retryq-pg", "retryq")],
        warmup=0,
        label="schedules",
    )
    rows = rows_from(
        runs,
        {
            "retryq-pg": "retryq, PostgreSQL",
            "procrastinate": "procrastinate, defer with schedule_in",
            "huey": "huey SqliteHuey, schedule with a delay",
            "retryq": "retryq, JSON file",
        },
        goals={"retryq-pg": AT_LEAST_AS_FAST},
    )
    for row in rows:
        scheduled, lost = counts[row.name]
        row.extras["lost"] = f"{lost} of {scheduled:,}"
    return Group(
        "schedules",
        f"{WORKERS} processes × {EACH:,} schedules through the library",
        "/s",
        rows,
        f"{rounds} rounds, each running the four queues once in rotated order on a new schema or file; "
        "ratios are of schedules per second within a round; `lost` counts the warm-up schedules too",
    )


# -- processing ---------------------------------------------------------------------------------


def process_config() -> Config:
    workflow = WorkflowSettings("default", command=("true",), command_origin="bench", concurrency=CONCURRENCY)
    return Config(workflows={"default": workflow}, concurrency=CONCURRENCY)


def fill_retryq(address: str, schema: str, count: int) -> None:
    """``count`` due jobs in a new retryq schema, in one transaction (the rows as its store writes them)."""
    queue = RetryQueue(address, config=process_config())
    queue.store.check()  # creates the tables
    queue.close()
    rows = [values_of(Job.model_validate(record)) for record in due_jobs(count)]
    columns = list(rows[0])
    insert = sql.SQL("INSERT INTO {}.jobs ({}) VALUES ({})").format(
        sql.Identifier(schema),
        sql.SQL(", ").join(map(sql.Identifier, columns)),
        sql.SQL(", ").join(map(sql.Placeholder, columns)),
    )
    with psycopg.connect(address) as connection, connection.cursor() as cursor:
        cursor.executemany(insert, rows)


def process_retryq(url: str) -> float:
    """Jobs per second of the library's Processor over a new schema of JOBS due jobs."""
    schema = new_schema("rq_process")
    address = in_schema(url, schema)
    try:
        fill_retryq(address, schema, JOBS)
        queue = RetryQueue(address, config=process_config())
        reports = []
        elapsed = timed(lambda: reports.append(Processor(queue.store, queue.config, prune=False).run()))
        queue.close()
        if reports[0].succeeded != JOBS:
            raise SystemExit(f"retryq process: {reports[0]}")
    finally:
        drop_schema(url, schema)
    return JOBS / elapsed


def process_procrastinate(url: str) -> float:
    """Jobs per second of procrastinate's worker over a new schema of JOBS jobs to do now."""
    schema = new_schema("pc_process")
    address = in_schema(url, schema)
    try:
        create_schema(url, schema)
        app, task = open_app(address)
        app.open()
        app.schema_manager.apply_schema()
        task.batch_defer(*({"client": f"due{number}", "date": DATE} for number in range(JOBS)))
        app.close()
        elapsed = timed(lambda: app.run_worker(concurrency=CONCURRENCY, wait=False, install_signal_handlers=False))
        with psycopg.connect(url) as connection:
            done = connection.execute(
                sql.SQL("SELECT count(*) FROM {}.procrastinate_jobs WHERE status = 'succeeded'").format(
                    sql.Identifier(schema)
                )
            ).fetchone()
        if not done or done[0] != JOBS:
            raise SystemExit(f"procrastinate: {done[0] if done else 0} of {JOBS} jobs succeeded")
    finally:
        drop_schema(url, schema)
    return JOBS / elapsed


def processing(url: str, rounds: int) -> Group:
    runs = paired(
        "procrastinate",
        {"procrastinate": lambda: process_procrastinate(url), "retryq-pg": lambda: process_retryq(url)},
        rounds,
        label="processing",
    )
    rows = rows_from(
        runs,
        {
            "retryq-pg": f"retryq Processor (library), PostgreSQL, concurrency {CONCURRENCY}",
            "procrastinate": f"procrastinate worker, async task starting `true`, concurrency {CONCURRENCY}",
        },
        goals={"retryq-pg": AT_LEAST_AS_FAST},
    )
    return Group(
        "processing",
        f"{JOBS:,} due jobs running `true`, concurrency {CONCURRENCY}: claim, run, complete",
        "/s",
        rows,
        f"{rounds} A/B pairs, order alternating, each run on a new schema filled beforehand (untimed); "
        "ratios are of jobs per second within a pair",
    )


# -- the command --------------------------------------------------------------------------------


def commands(url: str, directory: Path, rounds: int) -> Group:
    schema = new_schema("rq_cli")
    address = in_schema(url, schema)
    retryq = str(Path(sys.executable).with_name("retryq"))
    numbers = iter(range(1_000_000))

    def schedule(*queue: str) -> Callable[[], float]:
        def once() -> float:
            argv = [retryq, "schedule", f"client{next(numbers)}", DATE, "60", *queue]
            return timed(lambda: subprocess.run(argv, check=True, cwd=directory, env=clean_env(), capture_output=True))

        return once

    try:
        runs = paired(
            "json",
            {
                "json": schedule("--queue-file", str(directory / ".retry-queue.json")),
                "postgres": schedule("--queue", address),
            },
            rounds,
            label="commands",
        )
    finally:
        drop_schema(url, schema)
    rows = rows_from(
        runs,
        {"postgres": "`retryq schedule --queue postgresql://…`", "json": "`retryq schedule --queue-file …`"},
        scale=1000,
    )
    return Group(
        "commands",
        "`retryq schedule` as a command",
        "ms",
        rows,
        f"{rounds} A/B pairs, order alternating; wall time of the whole command",
    )


def main() -> None:
    args = arguments(__doc__, ROUNDS)
    logging.getLogger("retryq").setLevel(logging.WARNING)
    logging.getLogger("procrastinate").setLevel(logging.WARNING)
    with server() as url, tempfile.TemporaryDirectory(dir=bench_directory()) as name:
        found = settings(url)
        report = Report(
            "postgres",
            "retryq on PostgreSQL beside procrastinate, huey and its JSON file",
            versions={"PostgreSQL": describe(found), **versions("procrastinate", "psycopg", "huey")},
        )
        report.header()
        directory = Path(name)
        for group in (
            schedules(url, directory, args.rounds),
            processing(url, args.rounds),
            commands(url, directory, scaled(args.rounds, ROUNDS, 12)),
        ):
            report.groups.append(group)
            report.print_group(group)
    report.readme = [
        ReadmeRow(
            "retryq on PostgreSQL: 4 processes × 1,000 schedules through the library",
            "schedules",
            "retryq-pg",
            "procrastinate",
            "procrastinate (`defer` with `schedule_in`), same server",
        ),
        ReadmeRow("the same", "schedules", "retryq-pg", "huey", "huey's SqliteHuey"),
        ReadmeRow("the same", "schedules", "retryq-pg", "retryq", "retryq on its JSON file"),
        ReadmeRow(
            "retryq on PostgreSQL: `Processor`, 2,000 due jobs running `true`, concurrency 4",
            "processing",
            "retryq-pg",
            "procrastinate",
            "procrastinate's worker, concurrency 4, a task starting `true`",
        ),
        ReadmeRow(
            "`retryq schedule --queue postgresql://…`",
            "commands",
            "postgres",
            "json",
            "`retryq schedule --queue-file …`",
        ),
    ]
    report.finish(args.json)
    lost = sum(int(row.extras["lost"].split()[0]) for row in report.groups[0].rows)
    if lost:
        raise SystemExit(f"{lost} jobs were lost")


if __name__ == "__main__":
    main()
