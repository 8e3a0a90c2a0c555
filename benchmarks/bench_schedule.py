"""Cost of one schedule at queue sizes 100, 1,000 and 10,000, beside the floor of the same file.

The floor is what any JSON-file queue must do at least: read and parse the file, add a job,
serialize it back (json.dumps, C encoder), write, fsync, os.replace. retryq also takes the lock,
validates its input, checks for a duplicate and fsyncs the directory.

"cold" opens a new store for each schedule (as each `retryq schedule` process does: the file is
parsed from scratch); "warm" reuses one store (a long-running process whose file nobody else wrote).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from _common import best_median, finished_job, header, table, timed, write_queue

from retryq import Config, JsonFileStore, RetryQueue

SCHEDULES = {100: 200, 1_000: 100, 10_000: 20}


def floor_schedule(path: Path, number: int) -> None:
    data = json.loads(path.read_bytes())
    data.append({**finished_job(number), "status": "pending"})
    raw = json.dumps(data, ensure_ascii=False).encode()
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as handle:
        handle.write(raw)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def main() -> None:
    header("Library cost per schedule ÷ the raw floor of the same file")
    rows = []
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as directory:
        for size, count in SCHEDULES.items():
            jobs = [finished_job(n) for n in range(size)]
            path = Path(directory) / f"q{size}.json"

            def floor(path: Path = path, count: int = count, jobs: list[dict[str, object]] = jobs) -> float:
                path.write_text(json.dumps(jobs))
                return timed(lambda: [floor_schedule(path, 10**7 + n) for n in range(count)]) / count

            def cold(path: Path = path, count: int = count, jobs: list[dict[str, object]] = jobs) -> float:
                write_queue(path, jobs)

                def loop() -> None:
                    for n in range(count):
                        RetryQueue(JsonFileStore(path), config=Config()).schedule(f"new{n}", "2025-12-19", 60)

                return timed(loop) / count

            def warm(path: Path = path, count: int = count, jobs: list[dict[str, object]] = jobs) -> float:
                write_queue(path, jobs)
                queue = RetryQueue(JsonFileStore(path), config=Config())
                return timed(lambda: [queue.schedule(f"new{n}", "2025-12-19", 60) for n in range(count)]) / count

            f, c, w = best_median(floor, 5), best_median(cold, 5), best_median(warm, 5)
            rows.append(
                [f"{size:,}", f"{f * 1000:.2f}", f"{c * 1000:.2f}", f"{c / f:.2f}", f"{w * 1000:.2f}", f"{w / f:.2f}"]
            )
    table(["jobs in queue", "floor ms", "retryq cold ms", "cold ÷ floor", "retryq warm ms", "warm ÷ floor"], rows)
    print("\ntarget: ≤ 1.2 at every size")


if __name__ == "__main__":
    main()
