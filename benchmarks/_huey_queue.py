"""huey's SqliteHuey as a peer: a task scheduled with a delay, from a library call or as a command.

As a command: ``python _huey_queue.py DATABASE CLIENT DATE``. SQLite in WAL mode with
``synchronous=FULL`` (huey sets neither; both are the defaults of the SQLite that Python ships
with here) fsyncs the write-ahead log at every commit: each schedule is durable, as retryq's are.
"""

from __future__ import annotations

import sys
from typing import Any

from huey import SqliteHuey


def open_queue(path: str) -> tuple[Any, Any]:
    """The huey instance on ``path`` and its one task, named so that any process can read it back."""
    huey = SqliteHuey("bench", filename=path)

    @huey.task(name="fetch")
    def fetch(client: str, date: str) -> None:
        """What a retry would run; the benchmark never runs it."""

    return huey, fetch


if __name__ == "__main__":
    _, task = open_queue(sys.argv[1])
    task.schedule(args=(sys.argv[2], sys.argv[3]), delay=3600)
