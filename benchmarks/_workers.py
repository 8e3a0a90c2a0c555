"""One process of bench_concurrent: ``python _workers.py KIND PATH WORKER EACH``.

It sets itself up (imports, opening the queue), prints ``ready``, waits for a line on stdin,
then schedules EACH jobs: through the library for ``retryq``, ``naive`` and ``huey``, or by
starting one command per schedule for ``retryq-cli``, ``naive-cli`` and ``huey-cli``. For
``retryq-pg`` and ``procrastinate`` (bench_postgres), PATH is a PostgreSQL URL whose
``search_path`` names the schema, and the connection is made before ``ready``. The parent times
from its ``go`` to the last exit, so that no process's own start-up is counted on the library
path.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATE = "2025-12-19"


def library(kind: str, path: str) -> Callable[[str], object]:
    if kind in {"retryq", "retryq-pg"}:
        from retryq import Config, RetryQueue

        queue = RetryQueue(path, config=Config())
        if kind == "retryq-pg":
            queue.store.check()  # connects (a file queue has nothing to open)
        return lambda client: queue.schedule(client, DATE, 60)
    if kind == "procrastinate":
        from _procrastinate_queue import open_app

        app, task = open_app(path)
        app.open()  # its pool of connections
        # configure() computes the time from now, as retryq's schedule does at each call.
        return lambda client: task.configure(schedule_in={"seconds": 3600}).defer(client=client, date=DATE)
    if kind == "naive":
        import _naive

        return lambda client: _naive.schedule(path, _naive.pending_job(client, DATE))
    if kind == "huey":
        from _huey_queue import open_queue

        _, task = open_queue(path)
        return lambda client: task.schedule(args=(client, DATE), delay=3600)
    raise SystemExit(f"unknown kind {kind!r}")


def command(kind: str, path: str) -> Callable[[str], object]:
    python = sys.executable
    retryq = str(Path(python).with_name("retryq"))
    argvs: dict[str, Callable[[str], list[str]]] = {
        "retryq-cli": lambda client: [retryq, "schedule", client, DATE, "60", "--queue-file", path],
        "naive-cli": lambda client: [python, str(HERE / "_naive.py"), path, client, DATE],
        "huey-cli": lambda client: [python, str(HERE / "_huey_queue.py"), path, client, DATE],
    }
    if kind not in argvs:
        raise SystemExit(f"unknown kind {kind!r}")
    argv = argvs[kind]

    def run(client: str) -> None:
        subprocess.run(argv(client), check=True, stdout=subprocess.DEVNULL)

    return run


def race(kind: str, path: str, workers: int, each: int, cwd: str, env: dict[str, str]) -> float:
    """Seconds from ``go`` to the last exit of ``workers`` processes of ``kind``, each scheduling ``each`` jobs."""
    processes = [
        subprocess.Popen(
            [sys.executable, str(HERE / "_workers.py"), kind, path, str(worker), str(each)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=cwd,
            env=env,
            text=True,
        )
        for worker in range(workers)
    ]
    for process in processes:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise SystemExit(f"a {kind} worker failed to start")
    start = time.perf_counter()
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.close()
    for process in processes:
        if process.wait() != 0:
            raise SystemExit(f"a {kind} worker exited {process.returncode}")
    return time.perf_counter() - start


def main() -> None:
    kind, path, worker, each = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    schedule = command(kind, path) if kind.endswith("-cli") else library(kind, path)
    print("ready", flush=True)
    sys.stdin.readline()
    for number in range(each):
        schedule(f"w{worker}-{number}")


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
