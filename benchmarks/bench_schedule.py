"""Cost of one schedule at queue sizes 100 to 100,000, in A/B pairs with the floor of the same file.

The floor (``_naive.py``) is what any JSON-file queue must do to add a job safely: take the
lock (filelock on ``<file>.lock``), read and parse the file, append, serialize (json.dumps, C
encoder), write a temp file, fsync it, ``os.replace`` it, fsync the directory. retryq does the
same and also validates its input, checks for a duplicate and keeps its job model. A second
floor skips the directory fsync, to show what that fsync costs; the raw rewrite
(``_naive.raw_rewrite``) parses nothing: locked, it reads the file, writes it back with one more
line, fsyncs and replaces it, the least any queue kept in one JSON file pays at that size.

``--profile N`` prints instead the top of a cProfile of one retryq schedule on N jobs.

Each measurement restores the queue to its size, makes one untimed schedule (it reads the
restored file and flushes it), then times one schedule. "retryq" opens a new store for each
schedule, as each `retryq schedule` process does; "retryq, same process" schedules twice
through one store, so the timed call finds the file unchanged since its own last write and
skips the parse: a long-running process gets that, a command never does.
"""

from __future__ import annotations

import itertools
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
    finished_job,
    paired,
    queue_bytes,
    rows_from,
    scaled,
    timed,
    versions,
)

from retryq import Config, JsonFileStore, RetryQueue

ROUNDS = 31
#: Rounds per size when the script runs at its default: fewer where one schedule costs more.
SIZES = {100: 41, 1_000: 31, 5_000: 21, 10_000: 15, 20_000: 9, 100_000: 5}
RAW_GOAL_SIZES = (10_000, 100_000)
RAW = "the raw rewrite: lock, read, write, fsync, replace, fsync directory; no parsing"


def variants(path: Path, base: bytes) -> dict[str, Callable[[], float]]:
    counter = iter(range(10**9))

    def restored(schedule: Callable[[str], object]) -> float:
        path.write_bytes(base)
        schedule(f"warmup{next(counter)}")
        return timed(lambda: schedule(f"new{next(counter)}"))

    def floor(directory_fsync: bool) -> Callable[[], float]:
        def schedule(client: str) -> None:
            _naive.schedule(path, _naive.pending_job(client, "2025-12-19"), directory_fsync=directory_fsync)

        return lambda: restored(schedule)

    def retryq_new_store() -> float:
        return restored(
            lambda client: RetryQueue(JsonFileStore(path), config=Config()).schedule(client, "2025-12-19", 60)
        )

    def retryq_same_store() -> float:
        queue = RetryQueue(JsonFileStore(path), config=Config())
        return restored(lambda client: queue.schedule(client, "2025-12-19", 60))

    def raw() -> float:
        return restored(lambda client: _naive.raw_rewrite(path, _naive.pending_job(client, "2025-12-19")))

    return {
        "floor": floor(directory_fsync=True),
        "floor without directory fsync": floor(directory_fsync=False),
        "raw rewrite": raw,
        "retryq": retryq_new_store,
        "retryq, same process": retryq_same_store,
    }


def crossing(curve: list[tuple[int, float]], limit: float) -> str:
    """Where the medians pass ``limit`` ms: the file size (MB) interpolated between the two sizes around it."""
    for (small, below), (large, above) in itertools.pairwise(curve):
        if below <= limit < above:
            size = small + (large - small) * (limit - below) / (above - below)
            around = f"{small / 1e6:.1f} MB: {below:.1f} ms, {large / 1e6:.1f} MB: {above:.1f} ms"
            return f"{size / 1e6:.1f} MB (between {around})"
    return "no size measured here"


def main() -> None:
    args = arguments(__doc__, ROUNDS)
    report = Report(
        "schedule", "Library cost per schedule beside the floor of the same file", versions=versions("filelock")
    )
    report.header()
    curve: list[tuple[int, float]] = []  # (file size in bytes, median ms of a schedule)
    with tempfile.TemporaryDirectory(dir=bench_directory()) as directory:
        for size, wanted in SIZES.items():
            rounds = scaled(args.rounds, ROUNDS, wanted)
            path = Path(directory) / f"q{size}.json"
            base = queue_bytes([finished_job(n) for n in range(size)])
            runs = paired("floor", variants(path, base), rounds, label=f"{size:,} jobs")
            goals = {"retryq": Goal("ratio:floor", 1.2, "≤ 1.2 × floor")} if size == 100 else {}
            if size in RAW_GOAL_SIZES:  # the goal: within 1.5 × the raw rewrite
                goals = {"retryq": Goal("ratio:raw rewrite", 1.5, "≤ 1.5 × raw rewrite")}
            group = Group(
                f"{size}",
                f"{size:,} jobs in the queue",
                "ms",
                rows_from(
                    runs,
                    {
                        "floor": "floor: lock, read, append, write, fsync file, replace, fsync directory",
                        "floor without directory fsync": "floor without the directory fsync",
                        "raw rewrite": "raw rewrite: lock, read, write, fsync, replace, fsync directory; no parsing",
                        "retryq": "retryq, a new store per schedule (as each command)",
                        "retryq, same process": "retryq, same process, file unchanged since its last write",
                    },
                    goals=goals,
                    scale=1000,
                ),
                f"{rounds} rounds; each round pairs every variant with its own run of the floor (order "
                "alternating); ratios are per pair, and ÷ raw rewrite per round",
            )
            for row in group.rows:
                if row.name.startswith("retryq"):
                    pairs = zip(runs.samples[row.name], runs.samples["raw rewrite"], strict=True)
                    row.ratios["raw rewrite"] = Stats.of([mine / raw for mine, raw in pairs])
            report.groups.append(group)
            report.print_group(group)
            path.unlink(missing_ok=True)
            curve.append((len(base), next(row for row in group.rows if row.name == "retryq").stats.median))
    for limit in (50, 100):
        report.notes.append(f"One schedule passes {limit} ms at about {crossing(curve, limit)}.")
    report.notes.append(
        "Each sample is one schedule, so a single slow fsync shows in the max; the medians and the "
        "median ratios are the figures to read."
    )
    floor = "the floor: lock, read, append, write, fsync file, replace, fsync directory"
    report.readme = [
        ReadmeRow("`schedule` in the library, 100 jobs (a new store per call)", "100", "retryq", "floor", floor),
        ReadmeRow("the same, 1,000 jobs", "1000", "retryq", "floor", "the same floor"),
        ReadmeRow("the same, 10,000 jobs", "10000", "retryq", "floor", "the same floor"),
        ReadmeRow("the same, 20,000 jobs", "20000", "retryq", "floor", "the same floor"),
        ReadmeRow("the same, 100,000 jobs", "100000", "retryq", "floor", "the same floor"),
        ReadmeRow("`schedule` in the library, 10,000 jobs", "10000", "retryq", "raw rewrite", RAW),
        ReadmeRow("the same, 100,000 jobs", "100000", "retryq", "raw rewrite", RAW),
        ReadmeRow(
            "the floor without its directory fsync, 100 jobs",
            "100",
            "floor without directory fsync",
            "floor",
            "the floor",
        ),
    ]
    report.finish(args.json)


if __name__ == "__main__":
    main()
