"""retryq's Redis queue beside RQ and BullMQ for Python: one redis-server, one machine.

- Schedules: 4 processes × 1,000 schedules through the library, each process set up (imports,
  connection) before the clock starts: retryq on Redis (``RetryQueue(url).schedule``, in 60
  minutes), RQ (``Queue.enqueue_in``, in an hour, for its worker's scheduler) and BullMQ
  (``Queue.add`` with ``delay``, an hour). Each round runs the three once, the order rotated, each
  on a new namespace (a new queue name for the peers).
- Processing: 2,000 due jobs whose task starts `true` as a subprocess, concurrency 4: retryq's
  ``Processor`` (the library's, which `retryq process` runs), RQ's ``rq worker --burst`` in four
  processes (the jobs enqueued to run now: what its scheduler would have moved there), and
  BullMQ's ``Worker`` at concurrency 4. The queue is filled beforehand (untimed); rounds rotate.
- Round trips: counted by the client (each request written to a connection, a pipeline being
  one) for one schedule and per processed job, in this process, for the three alike; the server's
  own count of commands beside it.

The server is $RETRYQ_TEST_REDIS, else a throwaway redis-server with appendfsync always (the
setting that loses no acknowledged job; tests/redis_server.py). Run with ``make bench``, or
``python benchmarks/bench_redis.py --json benchmarks/results/redis.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from _common import (
    Goal,
    Group,
    ReadmeRow,
    Report,
    Row,
    Stats,
    arguments,
    clean_env,
    interleave,
    rows_from,
    timed,
    versions,
)

from retryq import Config, Job, Processor, RetryQueue, WorkflowSettings
from retryq.stores.redis import RedisStore

HERE = Path(__file__).resolve().parent
ROUNDS = 5
WORKERS, EACH = 4, 1_000
JOBS, CONCURRENCY = 2_000, 4
DATE = "2025-12-19"
AT_LEAST_RQ = Goal("ratio:rq", 1.0, "≥ 1 × RQ", at_least=True)
AT_LEAST_BULLMQ = Goal("ratio:bullmq", 1.0, "≥ 1 × BullMQ", at_least=True)


#: RQ's task, found by name in its work horse: start `true`, as retryq starts a workflow (a module of
#: our own would be imported again in each forked horse, and be timed).
TASK = "subprocess.run"
TRUE = ["true"]


# -- the server ---------------------------------------------------------------------------------


@contextlib.contextmanager
def server() -> Iterator[str]:
    given = os.environ.get("RETRYQ_TEST_REDIS")
    if given:
        yield given
        return
    sys.path.insert(0, str(HERE.parent / "tests"))
    import redis_server  # type: ignore[import-not-found]

    with tempfile.TemporaryDirectory(prefix="rq-bench-redis-") as name:
        url = redis_server.start(Path(name))
        try:
            yield url
        finally:
            redis_server.stop(Path(name))


def describe(url: str) -> str:
    import redis

    client = redis.Redis.from_url(url, decode_responses=True)
    info = client.info("server")
    settings = client.config_get("appendfsync") | client.config_get("appendonly")
    client.close()
    return f"{info['redis_version']} (appendonly {settings['appendonly']}, appendfsync {settings['appendfsync']})"


def clear(url: str, pattern: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=pattern, count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])
    client.close()


# -- one scheduling process ---------------------------------------------------------------------


def scheduler(kind: str, url: str, name: str) -> Callable[[str], object]:
    """What one process calls per schedule, set up (connected) before the clock starts."""
    if kind == "retryq":
        queue = RetryQueue(RedisStore(url, namespace=name), config=Config())
        queue.store.check()  # connects
        return lambda client: queue.schedule(client, DATE, 60)
    if kind == "rq":
        import redis
        from rq import Queue

        rq_queue = Queue(name, connection=redis.Redis.from_url(url))
        return lambda client: rq_queue.enqueue_in(timedelta(hours=1), TASK, TRUE, env={"CLIENT": client})
    if kind == "bullmq":
        from bullmq import Queue as BullQueue

        loop = asyncio.new_event_loop()
        bull = BullQueue(name, {"connection": url})
        loop.run_until_complete(bull.getJobCounts())  # connects
        return lambda client: loop.run_until_complete(
            bull.add("fetch", {"client": client, "date": DATE}, {"delay": 3_600_000})
        )
    raise SystemExit(f"unknown kind {kind!r}")


def worker_main(kind: str, url: str, name: str, worker: str, each: int) -> None:
    schedule = scheduler(kind, url, name)
    print("ready", flush=True)
    sys.stdin.readline()
    for number in range(each):
        schedule(f"w{worker}-{number}")
    os._exit(0)  # the peers' clients close lazily; nothing is left to flush: each call was acknowledged


def race(kind: str, url: str, name: str, each: int) -> float:
    """Seconds from ``go`` to the last exit of WORKERS processes of ``kind``, each scheduling ``each`` jobs."""
    processes = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", kind, url, name, str(worker), str(each)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=clean_env(),
            text=True,
        )
        for worker in range(WORKERS)
    ]
    for process in processes:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise SystemExit(f"a {kind} scheduler failed to start")
    start = time.perf_counter()
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.close()
    for process in processes:
        if process.wait() != 0:
            raise SystemExit(f"a {kind} scheduler exited {process.returncode}")
    return time.perf_counter() - start


def scheduled(kind: str, url: str, name: str) -> int:
    """How many schedules the queue holds (all of them, or some were lost)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        if kind == "retryq":
            return int(client.hlen(f"{{{name}}}:rec"))
        if kind == "rq":
            return int(client.zcard(f"rq:scheduled:{name}"))
        return int(client.zcard(f"bull:{name}:delayed"))
    finally:
        client.close()


def schedules(url: str, rounds: int) -> Group:
    counts: dict[str, list[int]] = {}

    def run(kind: str, each: int) -> float:
        name = f"bench-{kind}-{uuid.uuid4().hex[:8]}"
        try:
            elapsed = race(kind, url, name, each)
            done, lost = counts.setdefault(kind, [0, 0])
            counts[kind] = [done + WORKERS * each, lost + WORKERS * each - scheduled(kind, url, name)]
        finally:
            clear(url, f"*{name}*")
        return WORKERS * each / elapsed

    kinds = ["retryq", "rq", "bullmq"]
    for kind in kinds:  # one schedule per process first: compiled modules and caches are then warm
        run(kind, 1)
    runs = interleave(
        {kind: (lambda kind=kind: run(kind, EACH)) for kind in kinds},  # type: ignore[misc]
        rounds,
        compare=[("retryq", "rq"), ("retryq", "bullmq")],
        warmup=0,
        label="schedules",
    )
    rows = rows_from(
        runs,
        {
            "retryq": "retryq, Redis (`RetryQueue.schedule`, in 60 minutes)",
            "rq": "RQ, `Queue.enqueue_in` (an hour)",
            "bullmq": "BullMQ for Python, `Queue.add` with `delay` (an hour)",
        },
        goals={"retryq": AT_LEAST_RQ},
    )
    for row in rows:
        done, lost = counts[row.name]
        row.extras["lost"] = f"{lost} of {done:,}"
    return Group(
        "schedules",
        f"{WORKERS} processes × {EACH:,} schedules through the library",
        "/s",
        rows,
        f"{rounds} rounds, each running the three once in rotated order on a new namespace or queue; "
        "ratios are of schedules per second within a round; `lost` counts the warm-up schedules too",
    )


# -- processing ---------------------------------------------------------------------------------


def process_config() -> Config:
    workflow = WorkflowSettings("default", command=("true",), command_origin="bench", concurrency=CONCURRENCY)
    return Config(workflows={"default": workflow}, concurrency=CONCURRENCY)


def due_jobs(count: int) -> list[Job]:
    from retryq.record.timeutil import utcnow

    now = utcnow() - timedelta(minutes=1)
    return [
        Job(id=uuid.uuid4().hex, client_id=f"due{number}", date=DATE, scheduled_at=now, execute_at=now, delay_minutes=1)
        for number in range(count)
    ]


def process_retryq(url: str) -> float:
    name = f"bench-process-{uuid.uuid4().hex[:8]}"
    try:
        store = RedisStore(url, namespace=name)
        store.insert(due_jobs(JOBS))
        queue = RetryQueue(store, config=process_config())
        reports = []
        elapsed = timed(lambda: reports.append(Processor(queue.store, queue.config, prune=False).run()))
        queue.close()
        if reports[0].succeeded != JOBS:
            raise SystemExit(f"retryq process: {reports[0]}")
    finally:
        clear(url, f"{{{name}}}:*")
    return JOBS / elapsed


def fill_rq(url: str, name: str, count: int = JOBS) -> None:
    import redis
    from rq import Queue

    queue = Queue(name, connection=redis.Redis.from_url(url))
    with queue.connection.pipeline() as pipe:
        for number in range(count):
            queue.enqueue(TASK, TRUE, env={"CLIENT": f"due{number}", "PATH": "/usr/bin:/bin"}, pipeline=pipe)
        pipe.execute()


def process_rq(url: str) -> float:
    name = f"bench-rqp-{uuid.uuid4().hex[:8]}"
    try:
        fill_rq(url, name)
        env = clean_env()
        rq = str(Path(sys.executable).with_name("rq"))
        argv = [rq, "worker", "--burst", "--quiet", "--url", url, name]

        def work() -> None:
            workers = [subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL) for _ in range(CONCURRENCY)]
            if any(worker.wait() != 0 for worker in workers):
                raise SystemExit("an rq worker failed")

        elapsed = timed(work)
        import redis

        client = redis.Redis.from_url(url)
        done = client.zcard(f"rq:finished:{name}")
        client.close()
        if done != JOBS:
            raise SystemExit(f"rq: {done} of {JOBS} jobs finished")
    finally:
        clear(url, f"rq:*{name}*")
    return JOBS / elapsed


async def run_bullmq(url: str, name: str, count: int) -> float:
    from bullmq import Queue as BullQueue
    from bullmq import Worker

    queue = BullQueue(name, {"connection": url})
    await queue.addBulk([{"name": "fetch", "data": {"client": f"due{n}", "date": DATE}} for n in range(count)])
    finished = asyncio.Event()
    done = 0

    async def process(job: Any, token: str) -> None:
        child = await asyncio.create_subprocess_exec("true")
        await child.wait()

    def completed(*_: Any) -> None:
        nonlocal done
        done += 1
        if done >= count:
            finished.set()

    start = time.perf_counter()
    worker = Worker(name, process, {"connection": url, "concurrency": CONCURRENCY})
    worker.on("completed", completed)
    await asyncio.wait_for(finished.wait(), timeout=600)
    elapsed = time.perf_counter() - start
    await worker.close()
    await queue.obliterate({"force": True})
    await queue.close()
    return elapsed


def process_bullmq(url: str) -> float:
    name = f"bench-bullp-{uuid.uuid4().hex[:8]}"
    try:
        elapsed = asyncio.run(run_bullmq(url, name, JOBS))
    finally:
        clear(url, f"bull:{name}:*")
    return JOBS / elapsed


def processing(url: str, rounds: int) -> Group:
    runs = interleave(
        {"retryq": lambda: process_retryq(url), "rq": lambda: process_rq(url), "bullmq": lambda: process_bullmq(url)},
        rounds,
        compare=[("retryq", "rq"), ("retryq", "bullmq")],
        label="processing",
    )
    rows = rows_from(
        runs,
        {
            "retryq": f"retryq Processor (library), Redis, concurrency {CONCURRENCY}",
            "rq": f"RQ, {CONCURRENCY} × `rq worker --burst`, a task starting `true`",
            "bullmq": f"BullMQ for Python `Worker`, concurrency {CONCURRENCY}, a task starting `true`",
        },
        goals={"retryq": AT_LEAST_RQ},
    )
    return Group(
        "processing",
        f"{JOBS:,} due jobs running `true`, concurrency {CONCURRENCY}: claim, run, complete",
        "/s",
        rows,
        f"{rounds} rounds, the three in rotated order, each on a new queue filled beforehand (untimed); "
        "ratios are of jobs per second within a round",
    )


# -- round trips ----------------------------------------------------------------------------------


class RoundTrips:
    """Requests written by redis-py's connections (sync and asyncio) in this process; a pipeline is one."""

    def __init__(self) -> None:
        import redis.asyncio.connection as async_connection
        import redis.connection as sync_connection

        self.count = 0
        targets = [(sync_connection.AbstractConnection, "send_packed_command")]
        targets.append((async_connection.AbstractConnection, "send_packed_command"))
        for owner, attribute in targets:
            original = getattr(owner, attribute)
            setattr(owner, attribute, self._counted(original, asynchronous=owner is targets[1][0]))

    def _counted(self, original: Any, *, asynchronous: bool) -> Any:
        if asynchronous:

            async def counted_async(connection: Any, *args: Any, **kwargs: Any) -> Any:
                self.count += 1
                return await original(connection, *args, **kwargs)

            return counted_async

        def counted(connection: Any, *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return original(connection, *args, **kwargs)

        return counted

    def during(self, action: Callable[[], object]) -> int:
        before = self.count
        action()
        return self.count - before


def measured(url: str, counter: RoundTrips, action: Callable[[], object]) -> tuple[int, int]:
    """The round trips this process made during ``action``, and the commands the server ran meanwhile."""
    import redis

    client = redis.Redis.from_url(url)
    before = int(client.info("stats")["total_commands_processed"])
    trips = counter.during(action)
    after = int(client.info("stats")["total_commands_processed"])
    client.close()
    return trips, after - before - 1  # not the INFO itself


def schedule_costs(url: str, counter: RoundTrips, kind: str, count: int) -> tuple[float, float]:
    """Round trips and server commands per schedule, over ``count`` schedules after a warm-up."""
    name = f"bench-trips-{kind}-{uuid.uuid4().hex[:8]}"
    schedule = scheduler(kind, url, name)
    schedule("warm")  # loads scripts, opens connections: once per process, not per schedule
    trips, commands = measured(url, counter, lambda: [schedule(f"c{n}") for n in range(count)])
    clear(url, f"*{name}*")
    return trips / count, commands / count


def process_costs(url: str, counter: RoundTrips, kind: str, count: int) -> tuple[float, float]:
    """Round trips and server commands per processed job, over ``count`` due jobs filled beforehand."""
    name = f"bench-trips-{kind}-{uuid.uuid4().hex[:8]}"
    if kind == "retryq":
        store = RedisStore(url, namespace=name)
        store.insert(due_jobs(count))
        trips, commands = measured(url, counter, lambda: Processor(store, process_config(), prune=False).run())
        store.close()
    elif kind == "rq":
        import redis
        from rq import SimpleWorker

        fill_rq(url, name, count)
        worker = SimpleWorker([name], connection=redis.Redis.from_url(url))
        trips, commands = measured(url, counter, lambda: worker.work(burst=True, logging_level="WARNING"))
    else:  # the bulk add is counted too: one round trip for them all
        trips, commands = measured(url, counter, lambda: asyncio.run(run_bullmq(url, name, count)))
    clear(url, f"*{name}*")
    return trips / count, commands / count


def round_trips(url: str) -> Group:
    """Round trips per schedule and per processed job, and the server's commands beside them."""
    counter = RoundTrips()
    count = 200
    labels = {"retryq": "retryq, Redis", "rq": "RQ", "bullmq": "BullMQ for Python"}
    rows = []
    for kind, label in labels.items():
        trips, commands = schedule_costs(url, counter, kind, count)
        job_trips, job_commands = process_costs(url, counter, kind, count)
        row = Row(kind, label, Stats.of([trips]), samples=[trips])
        row.extras["server commands per schedule"] = f"{commands:.1f}"
        row.extras["round trips per processed job"] = f"{job_trips:.2f}"
        row.extras["server commands per processed job"] = f"{job_commands:.1f}"
        rows.append(row)
    return Group(
        "round trips",
        "Round trips to Redis per schedule (the value), and per processed job",
        "",
        rows,
        "counted by the client in this process (each request written to a connection; a pipeline or a script "
        f"call is one) over {count} schedules after a warm-up, and over {count} due jobs processed at "
        f"concurrency {CONCURRENCY} (RQ: its SimpleWorker in this process, the work its forking worker does); "
        "the server's count of the commands it ran beside them (the calls inside a script included)",
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        kind, url, name, worker, each = sys.argv[2:7]
        sys.path.insert(0, str(HERE))
        worker_main(kind, url, name, worker, int(each))
        return
    args = arguments(__doc__, ROUNDS)
    logging.getLogger("retryq").setLevel(logging.WARNING)
    logging.getLogger("rq").setLevel(logging.WARNING)
    with server() as url:
        report = Report(
            "redis",
            "retryq on Redis beside RQ and BullMQ for Python",
            versions={"Redis": describe(url), **versions("redis", "rq", "bullmq")},
        )
        report.header()
        measures: list[Callable[[], Group]] = [
            lambda: schedules(url, args.rounds),
            lambda: processing(url, args.rounds),
            lambda: round_trips(url),
        ]
        for measure in measures:
            group = measure()
            report.groups.append(group)
            report.print_group(group)
    report.readme = [
        ReadmeRow(
            "retryq on Redis: 4 processes × 1,000 schedules through the library",
            "schedules",
            "retryq",
            "rq",
            "RQ (`enqueue_in`), same server",
        ),
        ReadmeRow("the same", "schedules", "retryq", "bullmq", "BullMQ for Python (`Queue.add` with `delay`)"),
        ReadmeRow(
            "retryq on Redis: `Processor`, 2,000 due jobs running `true`, concurrency 4",
            "processing",
            "retryq",
            "rq",
            "RQ, 4 × `rq worker --burst`, a task starting `true`",
        ),
        ReadmeRow("the same", "processing", "retryq", "bullmq", "BullMQ's `Worker`, concurrency 4"),
    ]
    report.finish(args.json)
    lost = sum(int(row.extras["lost"].split()[0]) for row in report.groups[0].rows)
    if lost:
        raise SystemExit(f"{lost} jobs were lost")


if __name__ == "__main__":
    main()
