"""One process of bench_concurrent: ``python _workers.py KIND PATH WORKER EACH``.

It sets itself up (imports, opening the queue), prints ``ready``, waits for a line on stdin,
then schedules EACH jobs: through the library for ``retryq``, ``naive`` and ``huey``, or by
starting one command per schedule for ``retryq-cli``, ``naive-cli`` and ``huey-cli``. The
parent times from its ``go`` to the last exit, so that no process's own start-up is counted
on the library path.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATE = "2025-12-19"


def library(kind: str, path: str) -> Callable[[str], object]:
    if kind == "retryq":
        from retryq import Config, RetryQueue

        queue = RetryQueue(path, config=Config())
        return lambda client: queue.schedule(client, DATE, 60)
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
