"""`retryq process`: overhead per job, parallel runs, peak memory.

- 1,000 due jobs whose workflow is `true`, beside the cost of starting `true` 1,000 times the
  same way (own session, output piped): what retryq adds per job (claims, result writes, logging).
- 64 jobs that each sleep 1 s, concurrency 8: the ideal is 8 s.
- Peak resident memory of a `retryq process` subprocess on a 10,000-job queue (100 due).
"""

from __future__ import annotations

import logging
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import finished_job, header, table, timed, write_queue

from retryq import Config, JsonFileStore, RetryQueue, WorkflowSettings

JOBS = 1_000


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


def per_job_overhead(directory: Path) -> list[list[str]]:
    rows = []
    for concurrency in (1, 4):
        path = directory / f"overhead{concurrency}.json"
        write_queue(path, due_jobs(JOBS))
        queue = queue_for(path, ["true"], concurrency)
        floor = spawn_true(JOBS)
        report = None

        def run(queue: RetryQueue = queue) -> None:
            nonlocal report
            report = queue.process(prune=False)

        total = timed(run)
        assert report is not None
        assert report.succeeded == JOBS, report
        rows.append([str(concurrency), f"{total:.2f}", f"{floor:.2f}", f"{(total - floor) / JOBS * 1000:.2f}"])
    return rows


def sleepers(directory: Path) -> float:
    path = directory / "sleepers.json"
    write_queue(path, due_jobs(64))
    queue = queue_for(path, ["sleep", "1"], concurrency=8)
    return timed(lambda: queue.process(prune=False))


def peak_memory(directory: Path) -> float:
    path = directory / "big.json"
    write_queue(path, [finished_job(n) for n in range(9_900)] + due_jobs(100))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETRYQ_")}
    env.update(RETRYQ_COMMAND="true", RETRYQ_QUEUE_FILE=str(path))
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(
        [str(Path(sys.executable).with_name("retryq")), "process", "--no-prune", "--quiet"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux: the largest child so far
    assert peak >= before
    return peak / 1024


def main() -> None:
    logging.getLogger("retryq").setLevel(logging.WARNING)
    header("retryq process")
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as name:
        directory = Path(name)
        rows = per_job_overhead(directory)
        print(f"{JOBS:,} due jobs, workflow `true`:\n")
        table(["concurrency", "retryq process s", "starting `true` s", "overhead per job ms"], rows)
        print("\ntarget: ≤ 3 ms per job beyond the cost of starting `true`\n")
        wall = sleepers(directory)
        headers = ["64 jobs × `sleep 1`, concurrency 8", "wall time s", "ideal s"]
        table(headers, [["retryq process", f"{wall:.2f}", "8.00"]])
        print("\ntarget: ≤ 8.5 s\n")
        memory = peak_memory(directory)
        table(["`retryq process` on 10,000 jobs (100 due)", "peak RSS MiB"], [["retryq process", f"{memory:.1f}"]])
        print("\ntarget: ≤ 80 MB")


if __name__ == "__main__":
    main()
