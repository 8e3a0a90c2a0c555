"""Where the time of the JSON queue goes: the top of a cProfile of one schedule, or of one `process` run.

Not a benchmark (nothing is paired, nothing is saved): the evidence behind the paragraphs of
docs/performance.md on what stands in the way of a schedule and of `process` on a large file.

- ``--schedule N``: a queue of N finished jobs; one untimed schedule through a new store (it
  reads the file and flushes it), then one profiled, a new store again, as each `retryq schedule`.
- ``--process N --due D``: a queue of N jobs, D of them due, whose workflow is `true`; one
  ``Processor.run`` at concurrency 1, profiled whole. Also counts the files opened under
  ``/proc`` (the scans of the processes' environments) and the fsyncs.

Prints the top entries by own time and by cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import os
import pstats
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from _common import describe_machine, finished_job, machine, write_queue
from bench_process import due_jobs, queue_for

from retryq import Config, JsonFileStore, Processor, RetryQueue


@contextmanager
def counted_calls() -> Iterator[Counter[str]]:
    """Count os.fsync calls and opens of files under /proc while the block runs."""
    counts: Counter[str] = Counter()
    real_open, real_fsync = os.open, os.fsync
    real_builtin_open = open

    def counting_os_open(path: object, *args: object, **kwargs: object) -> int:
        if str(path).startswith("/proc/"):
            counts["opens under /proc"] += 1
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    def counting_open(file: object, *args: object, **kwargs: object) -> object:
        if str(file).startswith("/proc/"):
            counts["opens under /proc"] += 1
        return real_builtin_open(file, *args, **kwargs)  # type: ignore[call-overload]

    def counting_fsync(fd: int) -> None:
        counts["fsyncs"] += 1
        real_fsync(fd)

    import builtins

    os.open, os.fsync, builtins.open = counting_os_open, counting_fsync, counting_open  # type: ignore[assignment]
    try:
        yield counts
    finally:
        os.open, os.fsync, builtins.open = real_open, real_fsync, real_builtin_open


def profiled(action: Callable[[], object], top: int) -> None:
    profile = cProfile.Profile()
    with counted_calls() as counts:
        profile.runcall(action)
    for order in ("tottime", "cumulative"):
        text = io.StringIO()
        pstats.Stats(profile, stream=text).strip_dirs().sort_stats(order).print_stats(top)
        print(f"\n### by {order}\n")
        print("\n".join(line for line in text.getvalue().splitlines() if line.strip()))
    print("\n" + ", ".join(f"{name}: {count:,}" for name, count in sorted(counts.items())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--schedule", type=int, metavar="N", help="profile one schedule on a queue of N jobs")
    what.add_argument("--process", type=int, metavar="N", help="profile one `process` run on a queue of N jobs")
    parser.add_argument("--due", type=int, default=1_000, help="due jobs among the N of --process [default: 1000]")
    parser.add_argument("--top", type=int, default=20, help="entries to print [default: 20]")
    args = parser.parse_args()
    logging.getLogger("retryq").setLevel(logging.WARNING)
    top = args.top
    print(f"machine: {describe_machine(machine())}")
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "queue.json"
        if args.schedule is not None:
            write_queue(path, [finished_job(n) for n in range(args.schedule)])
            RetryQueue(JsonFileStore(path), config=Config()).schedule("warmup", "2025-12-19", 60)
            print(f"\n## one schedule on {args.schedule:,} jobs ({path.stat().st_size / 1e6:.1f} MB)")
            profiled(lambda: RetryQueue(JsonFileStore(path), config=Config()).schedule("new", "2025-12-19", 60), top)
        else:
            due = min(args.due, args.process)
            write_queue(path, [finished_job(n) for n in range(args.process - due)] + due_jobs(due))
            queue = queue_for(path, ["true"])
            print(f"\n## process: {due:,} due jobs in a queue of {args.process:,}, workflow `true`, concurrency 1")
            profiled(lambda: Processor(queue.store, queue.config, prune=False).run(), top)


if __name__ == "__main__":
    main()
