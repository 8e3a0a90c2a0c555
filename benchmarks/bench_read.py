"""Reading large queues: `list`, `list --json`, `stats` and `doctor` on 10,000 and 100,000 jobs, in A/B pairs.

The floor is what any Python tool pays to read the same file: `python -c "import typer, pydantic,
filelock, dateutil, json; json.load(open(FILE))"` (the dependencies a command loads, and the
file parsed into Python objects). Each command runs right before or right after its own run of
the floor (order alternating); ratios are per pair. Peak memory is each process's own maximum
resident set, read by a small launcher (``_common.launch``) rather than by this script, whose
children would inherit the peak it reached building the test queue; beside the floor's in the same pair.

The queue is what a busy queue looks like: nine in ten jobs finished (completed with one
attempt, or failed after three), one in ten pending, 500 clients.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from _common import (
    Goal,
    Group,
    ReadmeRow,
    Report,
    Stats,
    arguments,
    clean_env,
    finished_job,
    launch,
    paired,
    rows_from,
    scaled,
    versions,
    write_queue,
)

ROUNDS = 9
BIN = Path(sys.executable).parent
SIZES = (10_000, 100_000)
COMMANDS = {
    "list": ["list"],
    "list --json": ["list", "--json"],
    "stats": ["stats"],
    "doctor": ["doctor"],
}
#: The issue's goals: at 10,000 jobs ≤ 1.5 × the floor; at 100,000, ≤ 2 × and a peak ≤ 2 × the floor's.
GOALS = {10_000: 1.5, 100_000: 2.0}


def queue_jobs(count: int) -> list[dict[str, object]]:
    jobs = []
    for number in range(count):
        job = finished_job(number)
        job["clientId"] = f"client{number % 500}"
        job["date"] = f"2025-{(number // 500) % 12 + 1:02d}-{(number // 6000) % 28 + 1:02d}"
        if number % 10 == 9:
            job.update(status="pending", finishedAt=None, startedAt=None, lastExitCode=None, history=[])
            job["date"] = f"2026-{number % 12 + 1:02d}-{number % 28 + 1:02d}"
            job["clientId"] = f"open{number}"  # one open job per client and date, as the queue keeps
        elif number % 10 == 8:
            job.update(status="failed", attempt=3, lastExitCode=75, lastError="fetched 647/650")
        jobs.append(job)
    return jobs


def measured(argv: list[str], cwd: str, env: dict[str, str], peaks: list[float]) -> Callable[[], float]:
    """Run ``argv`` through the launcher; return its wall time, and append its own peak (MiB) to ``peaks``."""

    def once() -> float:
        run = launch(argv, env=env, cwd=cwd)
        if run.exit_code not in (0, 1):  # doctor exits 1 when it finds something to say
            raise SystemExit(f"{' '.join(argv)} exited {run.exit_code}: {run.stderr.strip()}")
        peaks.append(run.peak_mib)
        return run.seconds

    return once


def main() -> None:
    args = arguments(__doc__, ROUNDS)
    report = Report(
        "read",
        "Reading large queues: list, stats and doctor beside reading the file with json.load",
        versions=versions("typer", "pydantic", "pydantic-core", "filelock", "python-dateutil"),
    )
    report.header()
    env = clean_env()
    retryq = str(BIN / "retryq")
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "retryq.toml").write_text('[workflow]\ncommand = ["true"]\n')
        for size in SIZES:
            queue = Path(directory) / f"queue-{size}.json"
            write_queue(queue, queue_jobs(size))
            floor_code = f"import typer, pydantic, filelock, dateutil, json; json.load(open({str(queue)!r}))"
            peaks: dict[str, list[float]] = {name: [] for name in ["floor", *COMMANDS]}
            variants = {"floor": measured([sys.executable, "-c", floor_code], directory, env, peaks["floor"])}
            for name, command in COMMANDS.items():
                variants[name] = measured([retryq, "--queue", str(queue), *command], directory, env, peaks[name])
            rounds = args.rounds if size <= 10_000 else scaled(args.rounds, ROUNDS, 5)
            runs = paired("floor", variants, rounds, label=f"{size:,} jobs")
            goal = Goal("ratio:floor", GOALS[size], f"≤ {GOALS[size]:g} × floor")
            rows = rows_from(
                runs,
                {"floor": "floor: deps + json.load", **{name: f"retryq {name}" for name in COMMANDS}},
                goals=dict.fromkeys(COMMANDS, goal),
                scale=1000,
            )
            floor_peak = Stats.of(peaks["floor"])
            for row in rows:
                own = Stats.of(peaks[row.name])
                row.extras["peak memory"] = f"{own.median:.0f} MiB ({own.median / floor_peak.median:.2f} × floor)"
            mb = queue.stat().st_size / 1e6
            report.groups.append(
                Group(
                    f"jobs-{size}",
                    f"{size:,} jobs ({mb:.1f} MB)",
                    "ms",
                    rows,
                    f"{rounds} rounds of A/B pairs with the floor (order alternating); ratios per pair",
                    notes=[f"Peak memory of the floor: {floor_peak.median:.0f} MiB (median)."],
                )
            )
    for group in report.groups:
        report.print_group(group)
    floor = "deps + `json.load` of the same file"
    report.readme = [
        ReadmeRow(f"`retryq {name}`, {size:,} jobs", f"jobs-{size}", name, "floor", floor)
        for size in SIZES
        for name in ("list", "stats", "doctor")
    ]
    report.finish(args.json)


if __name__ == "__main__":
    main()
