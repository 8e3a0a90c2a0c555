"""4 processes scheduling into one queue at the same time: retryq beside a naive locked JSON queue and huey.

- Library path: each process opens its queue, then schedules 500 jobs through the library.
  The naive peer (``_naive.py``) reads the whole file, appends and writes it back under a
  filelock, with retryq's fsyncs (file and directory) and atomic replace. huey's peer
  (``_huey_queue.py``) schedules a task with a delay into a SqliteHuey on a temp file.
- Command path: each process starts one command per schedule, 25 each: `retryq schedule`,
  ``python _naive.py`` and ``python _huey_queue.py`` (the same code as a script), so that every
  schedule pays its process start-up.

Each round runs the three queues once, the order rotated from round to round; the ratios are
taken within a round. Each run starts from an empty queue, and its clock starts once all four
processes are set up. Lost = scheduled − distinct jobs found afterwards (must be 0).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from _common import (
    Group,
    ReadmeRow,
    Report,
    arguments,
    bench_directory,
    clean_env,
    interleave,
    rows_from,
    scaled,
    versions,
)
from _workers import race

from retryq import JsonFileStore

try:
    from _huey_queue import open_queue
except ImportError:  # huey is a peer to compare with, not a dependency of retryq
    raise SystemExit("huey is needed for this comparison: pip install huey (`make bench` installs it)") from None

ROUNDS = 5
WORKERS = 4
EACH = {"library": 500, "command": 25}


def clients_in(kind: str, path: Path) -> set[str]:
    """The distinct clients the queue holds after a run."""
    if kind.startswith("retryq"):
        return {job.client_id for job in JsonFileStore(path).load()}
    if kind.startswith("naive"):
        return {job["clientId"] for job in json.loads(path.read_bytes())}
    huey, _ = open_queue(str(path))
    # Read the raw messages: deserializing tasks needs them registered under the writer's module name.
    return {huey.serializer.deserialize(data).args[0] for data in huey.storage.enqueued_items()}


def run(kind: str, directory: Path, each: int, counts: dict[str, list[int]]) -> float:
    """Schedules per second of WORKERS processes of ``kind`` on a new queue; adds [scheduled, lost] to ``counts``."""
    with tempfile.TemporaryDirectory(dir=directory) as name:
        path = Path(name) / ("huey.db" if kind.startswith("huey") else ".retry-queue.json")
        if kind.startswith("huey"):
            open_queue(str(path))[0].pending_count()  # creates the tables before four processes race to
        elapsed = race(kind, str(path), WORKERS, each, name, clean_env())
        scheduled, lost = counts.setdefault(kind, [0, 0])
        counts[kind] = [scheduled + WORKERS * each, lost + WORKERS * each - len(clients_in(kind, path))]
    return WORKERS * each / elapsed


def measure(path_kind: str, rounds: int, directory: Path) -> tuple[Group, int]:
    each = EACH[path_kind]
    suffix = "" if path_kind == "library" else "-cli"
    names = {"retryq": f"retryq{suffix}", "naive": f"naive{suffix}", "huey": f"huey{suffix}"}
    counts: dict[str, list[int]] = {}

    def variant(kind: str) -> Callable[[], float]:
        return lambda: run(kind, directory, each, counts)

    for kind in names.values():  # one schedule per process first: compiled modules and caches are then warm
        run(kind, directory, 1, counts)
    runs = interleave(
        {name: variant(name) for name in names.values()},
        rounds,
        compare=[(names["retryq"], names["naive"]), (names["retryq"], names["huey"])],
        warmup=0,
        label=path_kind,
    )
    how = "through the library" if path_kind == "library" else "one command per schedule"
    labels = {
        names["retryq"]: f"retryq, {how}",
        names["naive"]: f"naive locked JSON queue, {how}",
        names["huey"]: f"huey SqliteHuey, {how}",
    }
    rows = rows_from(runs, labels)
    for row in rows:
        scheduled, lost = counts[row.name]
        row.extras["lost"] = f"{lost} of {scheduled:,}"
    title = f"{WORKERS} processes × {each} schedules, {how}"
    method = (
        f"{rounds} rounds, each running the three queues once in rotated order; ratios are of schedules "
        "per second within a round"
    )
    return Group(path_kind, title, "/s", rows, method), sum(lost for _, lost in counts.values())


def main() -> None:
    args = arguments(__doc__, ROUNDS)
    report = Report(
        "concurrent",
        "Concurrent schedules: retryq beside a naive locked JSON queue and huey",
        versions=versions("huey", "filelock"),
    )
    report.header()
    directory = Path(bench_directory())
    total_lost = 0
    for path_kind, rounds in (("library", args.rounds), ("command", scaled(args.rounds, ROUNDS, 3))):
        group, lost = measure(path_kind, rounds, directory)
        total_lost += lost
        report.groups.append(group)
        report.print_group(group)
    report.notes.append(
        "The naive queue neither validates nor checks for duplicates; huey writes a pickled task "
        "into SQLite instead of rewriting a file. `lost` counts the warm-up schedules too."
    )
    report.readme = [
        ReadmeRow("4 processes × 500 schedules through the library", "library", "retryq", "naive", "the naive queue"),
        ReadmeRow("the same", "library", "retryq", "huey", "huey's SqliteHuey"),
        ReadmeRow(
            "4 processes × 25 `retryq schedule` commands", "command", "retryq-cli", "naive-cli", "naive, as a script"
        ),
        ReadmeRow("the same", "command", "retryq-cli", "huey-cli", "huey, as a script"),
    ]
    report.finish(args.json)
    if total_lost:
        raise SystemExit(f"{total_lost} jobs were lost")


if __name__ == "__main__":
    main()
