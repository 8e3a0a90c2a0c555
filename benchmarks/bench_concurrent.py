"""4 processes scheduling 500 jobs each into one queue file at the same time: the rate, and what was lost."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from _common import header, table

from retryq import JsonFileStore

WORKERS, EACH = 4, 500

SCHEDULER = textwrap.dedent(
    """
    import sys
    from retryq import Config, RetryQueue
    queue = RetryQueue(sys.argv[1], config=Config())
    for number in range(int(sys.argv[3])):
        queue.schedule(f"w{sys.argv[2]}-{number}", "2025-12-19", 60)
    """
)


def main() -> None:
    header(f"{WORKERS} processes × {EACH} concurrent schedules")
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as directory:
        path = Path(directory) / ".retry-queue.json"
        start = time.perf_counter()
        processes = [
            subprocess.Popen([sys.executable, "-c", SCHEDULER, str(path), str(worker), str(EACH)])
            for worker in range(WORKERS)
        ]
        for process in processes:
            process.wait()
        elapsed = time.perf_counter() - start
        jobs = JsonFileStore(path).load()
        lost = WORKERS * EACH - len({job.client_id for job in jobs})
    table(
        ["schedules", "wall time s", "schedules per s", "lost"],
        [[f"{WORKERS * EACH:,}", f"{elapsed:.2f}", f"{WORKERS * EACH / elapsed:.0f}", str(lost)]],
    )
    print("\n(each schedule is a locked read-modify-write with fsync; the queue grows to 2,000 jobs)")


if __name__ == "__main__":
    main()
