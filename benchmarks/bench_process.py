"""`retryq process`: overhead per job, parallel runs, peak memory, each beside its floor.

- 1,000 due jobs whose workflow is `true`, in A/B pairs with starting `true` 1,000 times the
  same way (own session, output piped): what retryq adds per job (claims, result writes with
  their fsyncs, logging), at concurrency 1 and 4; and at concurrency 1 with the same 1,000 due
  jobs after 9,000 finished ones, to show whether that overhead grows with the queue; beside it,
  the raw rewrite of that 10,000-job file 1,000 times (``_naive.raw_rewrite``: locked, read, one
  line added, written, fsynced, renamed, no parsing), the least a queue kept in one file pays for
  a write per job at that size.
- 64 jobs that each sleep 1 s, concurrency 8: the ideal is 8 s.
- Peak resident memory of a `retryq process` subprocess on a 10,000-job queue (100 due), in
  pairs with a Python that imports retryq's dependencies and loads the same file with json.load.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import _naive
from _common import (
    Goal,
    Group,
    ReadmeRow,
    Report,
    Stats,
    arguments,
    bench_directory,
    clean_env,
    finished_job,
    interleave,
    launch,
    paired,
    rows_from,
    scaled,
    timed,
    write_queue,
)

from retryq import Config, JsonFileStore, Processor, RetryQueue, WorkflowSettings

ROUNDS = 5
JOBS = 1_000
#: The size of the queue that shows whether the overhead per job grows with the queue (JOBS due in it).
LARGE = 10_000
SLEEPERS, SLEEP_CONCURRENCY, IDEAL = 64, 8, 8.0
JSON_FLOOR = "import json, sys, typer, pydantic, filelock, dateutil; json.loads(open(sys.argv[1], 'rb').read())"


def due_jobs(count: int, prefix: str = "due") -> list[dict[str, object]]:
    return [
        {
            **finished_job(n),
            "clientId": f"{prefix}{n}",
            "status": "pending",
            "history": [],
            "startedAt": None,
            "finishedAt": None,
            "lastExitCode": None,
            "executeAt": "2025-12-19T11:00:00.000Z",
        }
        for n in range(count)
    ]


def queue_for(path: Path, command: list[str], concurrency: int = 1) -> RetryQueue:
    workflow = WorkflowSettings("default", command=tuple(command), command_origin="bench", concurrency=concurrency)
    return RetryQueue(JsonFileStore(path), config=Config(workflows={"default": workflow}, concurrency=concurrency))


def spawn_true(count: int) -> float:
    """Seconds to start and reap `true` ``count`` times, one after the other, as the runner starts a workflow."""

    def loop() -> None:
        for _ in range(count):
            process = subprocess.Popen(
                ["true"],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            process.communicate()

    return timed(loop)


def process_run(
    directory: Path, command: list[str], count: int, concurrency: int, *, finished: int = 0
) -> Callable[[], float]:
    """A callable that fills a new queue with ``count`` due jobs after ``finished`` finished ones (untimed)
    and times one `process` over it."""
    path = directory / f"process{concurrency}-{command[0]}-{finished}.json"
    done = [finished_job(n) for n in range(finished)]

    def once() -> float:
        write_queue(path, [*done, *due_jobs(count)])
        queue = queue_for(path, command, concurrency)
        reports = []
        elapsed = timed(lambda: reports.append(Processor(queue.store, queue.config, prune=False).run()))
        if reports[0].succeeded != count:
            raise SystemExit(f"process: {reports[0]}")
        return elapsed

    return once


def raw_rewrites(directory: Path, count: int, *, finished: int) -> Callable[[], float]:
    """A callable that writes the queue ``process_run`` starts from (untimed) and times ``count`` raw
    rewrites of it, one after the other."""
    path = directory / f"rewrites-{finished}.json"
    jobs = [*(finished_job(n) for n in range(finished)), *due_jobs(count)]

    def once() -> float:
        write_queue(path, jobs)

        def rewrites() -> None:
            for n in range(count):
                _naive.raw_rewrite(path, _naive.pending_job(f"rewrite{n}", "2025-12-19"))

        return timed(rewrites)

    return once


def peak_rss(argv: list[str], env: dict[str, str]) -> float:
    """Peak resident memory of one run of ``argv``, in MB (10⁶ bytes), measured through the launcher."""
    run = launch(argv, env=env)
    if run.exit_code != 0:
        raise SystemExit(f"{argv} exited {run.exit_code}: {run.stderr.strip()}")
    return run.peak_mb


def overhead(directory: Path, rounds: int) -> Group:
    runs = paired(
        "true",
        {
            "true": lambda: spawn_true(JOBS),
            "concurrency 1": process_run(directory, ["true"], JOBS, 1),
            "concurrency 4": process_run(directory, ["true"], JOBS, 4),
            "concurrency 1, 10,000-job queue": process_run(directory, ["true"], JOBS, 1, finished=LARGE - JOBS),
            "raw rewrites, 10,000-job file": raw_rewrites(directory, JOBS, finished=LARGE - JOBS),
        },
        rounds,
        label="overhead",
    )
    target = Goal("derived:overhead per job", 2.0, "≤ 2 ms per job")
    rows = rows_from(
        runs,
        {
            "true": f"starting `true` {JOBS:,} times",
            "concurrency 1": f"retryq process, {JOBS:,} due jobs running `true`, concurrency 1",
            "concurrency 4": f"retryq process, {JOBS:,} due jobs running `true`, concurrency 4",
            "concurrency 1, 10,000-job queue": f"the same, concurrency 1, among {LARGE - JOBS:,} finished jobs",
            "raw rewrites, 10,000-job file": f"the raw rewrite of that {LARGE:,}-job file, {JOBS:,} times",
        },
        goals={"concurrency 1": target, "concurrency 4": target, "concurrency 1, 10,000-job queue": target},
    )
    for row in rows[1:]:
        if row.name.startswith("raw"):
            row.derived["per rewrite"] = ("ms", Stats.of([seconds / JOBS * 1000 for seconds in runs.samples[row.name]]))
            continue
        per_job = [difference / JOBS * 1000 for difference in runs.differences(row.name, "true")]
        row.derived["overhead per job"] = ("ms", Stats.of(per_job))
    return Group(
        "overhead",
        f"{JOBS:,} due jobs, workflow `true`",
        "s",
        rows,
        f"{rounds} rounds; each round pairs every `process` with its own run of the floor (order alternating); "
        "the overhead per job is (process − floor) ÷ jobs, per pair",
    )


def sleepers(directory: Path, rounds: int) -> Group:
    name = f"{SLEEPERS} × sleep 1"
    runs = interleave({name: process_run(directory, ["sleep", "1"], SLEEPERS, SLEEP_CONCURRENCY)}, rounds, warmup=0)
    rows = rows_from(
        runs,
        {name: f"retryq process, {SLEEPERS} jobs × `sleep 1`, concurrency {SLEEP_CONCURRENCY}"},
        goals={name: Goal("value", 8.5, "≤ 8.5 s")},
    )
    rows[0].derived["÷ ideal"] = ("×", Stats.of([value / IDEAL for value in runs.samples[name]]))
    return Group("sleepers", "Parallel runs", "s", rows, f"{rounds} runs; the ideal is {IDEAL:.0f} s")


def memory(directory: Path, rounds: int) -> Group:
    path = directory / "big.json"
    write_queue(path, [finished_job(n) for n in range(9_900)] + due_jobs(100))
    env = clean_env()
    env.update(RETRYQ_COMMAND="true", RETRYQ_QUEUE_FILE=str(path))
    retryq = str(Path(sys.executable).with_name("retryq"))

    def process() -> float:
        write_queue(path, [finished_job(n) for n in range(9_900)] + due_jobs(100))
        return peak_rss([retryq, "process", "--no-prune", "--quiet"], env)

    runs = paired(
        "json.load",
        {"json.load": lambda: peak_rss([sys.executable, "-c", JSON_FLOOR, str(path)], env), "retryq process": process},
        rounds,
        label="memory",
    )
    rows = rows_from(
        runs,
        {
            "json.load": "Python importing retryq's dependencies, then json.loads of the file",
            "retryq process": "retryq process --no-prune",
        },
        goals={"retryq process": Goal("value", 80.0, "≤ 80 MB")},
    )
    return Group(
        "memory",
        "Peak memory on a 10,000-job queue (100 due)",
        "MB",
        rows,
        f"{rounds} rounds of A/B pairs; peak RSS of each process from its own rusage",
    )


def main() -> None:
    args = arguments(__doc__, ROUNDS)
    logging.getLogger("retryq").setLevel(logging.WARNING)
    report = Report("process", "retryq process: overhead per job, parallel runs, peak memory")
    report.header()
    with tempfile.TemporaryDirectory(dir=bench_directory()) as name:
        directory = Path(name)
        for group in (
            overhead(directory, args.rounds),
            sleepers(directory, scaled(args.rounds, ROUNDS, 3)),
            memory(directory, args.rounds),
        ):
            report.groups.append(group)
            report.print_group(group)
    report.readme = [
        ReadmeRow("`process`, 1,000 due jobs running `true`, concurrency 1", "overhead", "concurrency 1", "true"),
        ReadmeRow("the same, concurrency 4", "overhead", "concurrency 4", "true"),
        ReadmeRow(
            "the same, concurrency 1, in a 10,000-job queue (9,000 finished)",
            "overhead",
            "concurrency 1, 10,000-job queue",
            "true",
        ),
        ReadmeRow(
            "the raw rewrite of that 10,000-job file, 1,000 times (no parsing)",
            "overhead",
            "raw rewrites, 10,000-job file",
            "true",
        ),
        ReadmeRow(
            "`process`, 64 jobs that each sleep 1 s, concurrency 8",
            "sleepers",
            f"{SLEEPERS} × sleep 1",
            versus_text="the ideal: 8 s",
        ),
        ReadmeRow("peak memory of `process` on a 10,000-job queue (100 due)", "memory", "retryq process", "json.load"),
    ]
    report.finish(args.json)


if __name__ == "__main__":
    main()
