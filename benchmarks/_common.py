"""Shared by the benchmark scripts: the machine, interleaved runs of named variants, one output format.

A benchmark runs named variants (callables returning one measurement) either interleaved
(every round runs each variant once, the order rotated from round to round) or in A/B pairs
with a baseline (each pair runs the baseline right before or right after the variant, the
order alternating). A ratio is taken within a round or a pair, never between medians of runs
made minutes apart: a busy neighbour then slows both sides of a ratio alike. The results print
as Markdown tables and save as JSON (``--json PATH``), which ``readme_table.py`` turns into
the table of docs/performance.md.

A new benchmark (of another backend, say) needs only this: callables by name, ``paired`` or
``interleave``, ``rows_from`` into a ``Group``, a ``Report`` with a ``ReadmeRow`` per line it
wants in docs/performance.md's table, ``report.finish(args.json)``, and its name in the Makefile's ``bench`` loop.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

#: Bumped when the JSON layout changes, so that readme_table.py can refuse results it cannot read.
FORMAT = 1


# -- the machine -------------------------------------------------------------------------------


def bench_directory() -> str:
    """Where the benchmarks put their files: $BENCH_DIR, else the temp directory (its file system matters)."""
    return os.environ.get("BENCH_DIR") or tempfile.gettempdir()


def machine() -> dict[str, Any]:
    """The CPU model, cores, kernel, file system of the bench directory and Python: what a figure depends on."""
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "kernel": f"{platform.system()} {platform.release()} {platform.machine()}",
        "filesystem": _filesystem(bench_directory()),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
    }


def versions(*distributions: str) -> dict[str, str]:
    """The installed versions of ``distributions``: a start-up figure depends on them as much as on the machine."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in distributions:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def describe_machine(info: Mapping[str, Any]) -> str:
    where = f"{info['cpu']}, {info['cores']} cores, {info['kernel']}, files on {info['filesystem']}"
    return f"{where}; Python {info['python']}"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _filesystem(directory: str) -> str:
    """The type of the file system holding ``directory`` (fsync costs nothing on tmpfs, a lot on a network disk)."""
    try:
        mounts = [line.split()[1:3] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return "an unknown file system"
    real = os.path.realpath(directory)
    best = ("", "unknown")
    for point, kind in mounts:
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best[0]):
            best = (point, kind)
    return best[1]


# -- measuring ---------------------------------------------------------------------------------


def timed(action: Callable[[], object]) -> float:
    """Seconds that ``action`` took."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


@dataclass(frozen=True)
class Stats:
    """Min, median and max of a set of samples."""

    runs: int
    min: float
    median: float
    max: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        return cls(len(samples), min(samples), statistics.median(samples), max(samples))

    def to_json(self) -> dict[str, float | int]:
        return {
            "runs": self.runs,
            "min": round(self.min, 6),
            "median": round(self.median, 6),
            "max": round(self.max, 6),
        }


@dataclass
class Runs:
    """The samples of each variant and, for each comparison, the baseline's sample of the same round or pair."""

    samples: dict[str, list[float]] = field(default_factory=dict)
    partners: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def stats(self, name: str) -> Stats:
        return Stats.of(self.samples[name])

    def ratios(self, name: str, baseline: str) -> list[float]:
        """The ratio of each of ``name``'s samples to its partner, the baseline's sample of the same round or pair."""
        return [value / base for value, base in zip(self.samples[name], self.partners[(name, baseline)], strict=True)]

    def differences(self, name: str, baseline: str) -> list[float]:
        return [value - base for value, base in zip(self.samples[name], self.partners[(name, baseline)], strict=True)]


def _progress(label: str, done: int, total: int) -> None:
    if sys.stderr.isatty():
        end = "\n" if done == total else ""
        print(f"\r  {label}: round {done}/{total}", end=end, file=sys.stderr, flush=True)


def interleave(
    variants: Mapping[str, Callable[[], float]],
    rounds: int,
    *,
    compare: Iterable[tuple[str, str]] = (),
    warmup: int = 1,
    label: str = "",
) -> Runs:
    """Run every variant once per round, the order rotated each round.

    Each (name, baseline) of ``compare`` keeps the baseline's sample of the same round beside
    each of the variant's, for ratios taken within a round. Use it when every variant is
    expensive (a batch of processes): each round costs one run of each.
    """
    names = list(variants)
    for _ in range(warmup):  # caches, compiled modules, the first file: not what is measured
        for name in names:
            variants[name]()
    pairs = list(compare)
    runs = Runs({name: [] for name in names}, {pair: [] for pair in pairs})
    for number in range(rounds):
        shift = number % len(names)
        values = {name: variants[name]() for name in names[shift:] + names[:shift]}
        for name, value in values.items():
            runs.samples[name].append(value)
        for name, baseline in pairs:
            runs.partners[(name, baseline)].append(values[baseline])
        _progress(label, number + 1, rounds)
    return runs


def paired(
    baseline: str,
    variants: Mapping[str, Callable[[], float]],
    rounds: int,
    *,
    warmup: int = 1,
    label: str = "",
) -> Runs:
    """Run A/B pairs: each round, each variant right before or right after its own run of ``baseline``.

    The order within a pair alternates, so that neither side always runs first. The baseline's
    samples are those of all its pairs. Use it when the variants are cheap beside the noise.
    """
    others = [name for name in variants if name != baseline]
    if not others:
        raise ValueError(f"nothing to pair with {baseline!r}")
    for _ in range(warmup):
        for name in [baseline, *others]:
            variants[name]()
    runs = Runs({name: [] for name in [baseline, *others]}, {(name, baseline): [] for name in others})
    base = variants[baseline]
    for number in range(rounds):
        shift = number % len(others)
        for position, name in enumerate(others[shift:] + others[:shift]):
            if (number + position) % 2 == 0:
                before = base()
                value = variants[name]()
            else:
                value = variants[name]()
                before = base()
            runs.samples[name].append(value)
            runs.samples[baseline].append(before)
            runs.partners[(name, baseline)].append(before)
        _progress(label, number + 1, rounds)
    return runs


# -- reporting ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Goal:
    """A target on one metric of a row: ``value``, ``ratio:<baseline>`` or ``derived:<name>``, at most ``limit``.

    With ``at_least``, the median must reach ``limit`` instead (a throughput, a ratio of throughputs).
    """

    metric: str
    limit: float
    text: str
    at_least: bool = False


@dataclass
class Row:
    """One variant's line in a table: its measurement, its ratios to baselines, and what derives from them."""

    name: str
    label: str
    stats: Stats
    ratios: dict[str, Stats] = field(default_factory=dict)
    derived: dict[str, tuple[str, Stats]] = field(default_factory=dict)  # name -> (unit, stats)
    extras: dict[str, str] = field(default_factory=dict)  # printed as they are, e.g. jobs lost
    goal: Goal | None = None
    samples: list[float] = field(default_factory=list)

    def metric(self, name: str) -> Stats:
        kind, _, key = name.partition(":")
        if kind == "ratio":
            return self.ratios[key]
        if kind == "derived":
            return self.derived[key][1]
        return self.stats

    def goal_met(self) -> bool | None:
        if self.goal is None:
            return None
        median = self.metric(self.goal.metric).median
        return median >= self.goal.limit if self.goal.at_least else median <= self.goal.limit


@dataclass
class Group:
    """A table: rows measured together, in one unit, with their notes."""

    name: str
    title: str
    unit: str
    rows: list[Row]
    method: str
    notes: list[str] = field(default_factory=list)


def rows_from(
    runs: Runs,
    labels: Mapping[str, str],
    *,
    goals: Mapping[str, Goal] | None = None,
    scale: float = 1.0,
) -> list[Row]:
    """Rows for the variants named in ``labels``, in that order, their samples multiplied by ``scale`` (s → ms)."""
    rows = []
    for name, label in labels.items():
        samples = [value * scale for value in runs.samples[name]]
        ratios = {
            baseline: Stats.of(runs.ratios(name, baseline)) for variant, baseline in runs.partners if variant == name
        }
        rows.append(Row(name, label, Stats.of(samples), ratios, goal=(goals or {}).get(name), samples=samples))
    return rows


@dataclass(frozen=True)
class ReadmeRow:
    """A line of the table of docs/performance.md: a row of a group, beside one of its baselines (or none)."""

    what: str
    group: str
    row: str
    versus: str | None = None
    versus_text: str | None = None  # how the table names what it is compared with [default: the baseline's label]


@dataclass
class Report:
    """Everything one benchmark script measured: printed as tables, saved as JSON."""

    benchmark: str
    title: str
    groups: list[Group] = field(default_factory=list)
    readme: list[ReadmeRow] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=machine)
    date: str = field(default_factory=lambda: datetime.date.today().isoformat())

    def header(self) -> None:
        print(f"\n## {self.title}\n\nmachine: {describe_machine(self.machine)}")
        if self.versions:
            print("versions: " + ", ".join(f"{name} {version}" for name, version in self.versions.items()))

    def print_group(self, group: Group) -> None:
        print(f"\n### {group.title}\n\n{group.method}\n")
        print_group(group)
        for note in group.notes:
            print(f"\n{note}")

    def finish(self, json_path: str | None) -> None:
        """Print the report's own notes and save it as JSON if asked."""
        for note in self.notes:
            print(f"\n{note}")
        if json_path:
            path = Path(json_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            text = json.dumps(self.to_json(), indent=1, ensure_ascii=False)
            # One line per list of samples: the file stays short enough to read and diff.
            text = re.sub(r"\[\s+([-0-9.e,\s]+?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
            path.write_text(text + "\n")
            print(f"\n(saved to {path})")

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "benchmark": self.benchmark,
            "title": self.title,
            "date": self.date,
            "machine": self.machine,
            "versions": self.versions,
            "notes": self.notes,
            "groups": [
                {
                    "name": group.name,
                    "title": group.title,
                    "unit": group.unit,
                    "method": group.method,
                    "notes": group.notes,
                    "rows": [_row_json(row) for row in group.rows],
                }
                for group in self.groups
            ],
            "readme": [
                {key: value for key, value in vars(entry).items() if value is not None} for entry in self.readme
            ],
        }


def _row_json(row: Row) -> dict[str, Any]:
    data: dict[str, Any] = {"name": row.name, "label": row.label, **row.stats.to_json()}
    data["ratios"] = {baseline: stats.to_json() for baseline, stats in row.ratios.items()}
    data["derived"] = {name: {"unit": unit, **stats.to_json()} for name, (unit, stats) in row.derived.items()}
    data["extras"] = row.extras
    if row.goal is not None:
        goal = {key: value for key, value in vars(row.goal).items() if key != "at_least" or value}
        data["goal"] = {**goal, "met": row.goal_met()}
    data["samples"] = [round(value, 6) for value in row.samples]
    return data


# -- formatting (shared with readme_table.py) -------------------------------------------------


def fmt(value: float, unit: str) -> str:
    """A value with its unit and three significant figures or so."""
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit == "×":
        return f"{value:.2f}"
    digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2
    return f"{value:,.{digits}f} {unit}"


def fmt_range(stats: Mapping[str, float] | Stats, unit: str) -> str:
    """``median (min–max)``."""
    values = stats.to_json() if isinstance(stats, Stats) else stats
    low, mid, high = values["min"], values["median"], values["max"]
    if unit == "×":
        digits = 3 if mid < 0.1 else 2  # 0.007 × is not 0.01 ×
        return f"{mid:.{digits}f} ({low:.{digits}f}–{high:.{digits}f})"
    return f"{fmt(mid, unit)} ({fmt(low, unit).removesuffix(' ' + unit)}–{fmt(high, unit)})"


def print_group(group: Group) -> None:
    baselines = list(dict.fromkeys(baseline for row in group.rows for baseline in row.ratios))
    derived = list(dict.fromkeys(name for row in group.rows for name in row.derived))
    extras = list(dict.fromkeys(name for row in group.rows for name in row.extras))
    with_goal = any(row.goal is not None for row in group.rows)
    headers = [
        "variant",
        "runs",
        f"median {group.unit}",
        "min",
        "max",
        *(f"÷ {baseline}, median (min–max)" for baseline in baselines),
        *derived,
        *extras,
        *(["goal"] if with_goal else []),
    ]
    cells = []
    for row in group.rows:
        line = [
            row.label,
            str(row.stats.runs),
            fmt(row.stats.median, group.unit),
            fmt(row.stats.min, group.unit),
            fmt(row.stats.max, group.unit),
        ]
        line += [fmt_range(row.ratios[b], "×") if b in row.ratios else "" for b in baselines]
        line += [fmt_range(row.derived[d][1], row.derived[d][0]) if d in row.derived else "" for d in derived]
        line += [row.extras.get(name, "") for name in extras]
        if with_goal:
            line.append("" if row.goal is None else f"{row.goal.text}: {'met' if row.goal_met() else 'MISSED'}")
        cells.append(line)
    table(headers, cells)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A Markdown table, columns padded to their widest cell."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("| " + " | ".join("-" * w for w in widths) + " |")
    for row in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def header(title: str) -> None:
    """The title and the machine, for scripts that print their own tables."""
    print(f"\n## {title}\n\nmachine: {describe_machine(machine())}\n")


def arguments(description: str | None, default_rounds: int) -> argparse.Namespace:
    """``--json PATH`` to save the results, ``--rounds N`` to trade precision for time."""
    parser = argparse.ArgumentParser(description=(description or "").strip().splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="also save the results as JSON (for readme_table.py)")
    parser.add_argument(
        "--rounds", type=int, default=default_rounds, help=f"rounds of each measurement [default: {default_rounds}]"
    )
    return parser.parse_args()


def scaled(rounds: int, default: int, wanted: int) -> int:
    """``wanted`` rounds when the script runs at its default, proportionally fewer or more otherwise."""
    return max(3, round(wanted * rounds / default))


#: Started by a benchmark, it starts the measured command, waits for it and prints its peak resident set
#: (KiB) and wall time (s). A child inherits the high-water mark of the process that forks it (Linux
#: records the old memory map's peak at exec), so a measured command must not be the benchmark's own
#: child: the benchmark may hold a whole test queue in memory, the launcher only a bare interpreter
#: (about 10 MiB, below any command measured). Its wall time starts after its own start-up.
LAUNCHER = """
import os, sys, time
devnull = [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)]
started = time.perf_counter()
pid = os.posix_spawnp(sys.argv[1], sys.argv[1:], os.environ, file_actions=devnull)
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss, time.perf_counter() - started)
sys.exit(os.waitstatus_to_exitcode(status))
"""


@dataclass(frozen=True)
class Launched:
    """One run of a command through :data:`LAUNCHER`: its wall time, its own peak memory, its exit code."""

    seconds: float
    peak_kib: int
    exit_code: int
    stderr: str

    @property
    def peak_mib(self) -> float:
        return self.peak_kib / 1024

    @property
    def peak_mb(self) -> float:
        return self.peak_kib * 1024 / 1e6


def launch(argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | None = None) -> Launched:
    """Run ``argv`` (its output discarded) through the small launcher; its peak memory is its own."""
    done = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *argv], check=False, env=env, cwd=cwd, capture_output=True, text=True
    )
    try:
        peak, seconds = done.stdout.split()
    except ValueError:
        raise SystemExit(f"{' '.join(argv)}: the launcher failed: {done.stderr.strip()}") from None
    return Launched(float(seconds), int(peak), done.returncode, done.stderr)


def clean_env() -> dict[str, str]:
    """The environment without RETRYQ_* (the user's queue and config stay out) and with bytecode caching on."""
    return {k: v for k, v in os.environ.items() if not k.startswith("RETRYQ_") and k != "PYTHONDONTWRITEBYTECODE"}


# -- jobs ----------------------------------------------------------------------------------------


def finished_job(number: int) -> dict[str, object]:
    """A completed job as retryq writes it, with one attempt in its history."""
    return {
        "clientId": f"client{number}",
        "date": "2025-12-19",
        "scheduledAt": "2025-12-19T10:00:00.000Z",
        "executeAt": "2025-12-19T11:00:00.000Z",
        "delayMinutes": 60,
        "status": "completed",
        "id": uuid.uuid4().hex[:16],
        "workflow": "default",
        "attempt": 1,
        "maxAttempts": 3,
        "startedAt": "2025-12-19T11:00:00.000Z",
        "finishedAt": "2025-12-19T11:00:02.000Z",
        "lastExitCode": 0,
        "lastError": None,
        "leaseUntil": None,
        "owner": None,
        "runId": None,
        "workflowPid": None,
        "followUpMinutes": None,
        "history": [
            {
                "attempt": 1,
                "startedAt": "2025-12-19T11:00:00.000Z",
                "finishedAt": "2025-12-19T11:00:02.000Z",
                "outcome": "succeeded",
                "exitCode": 0,
                "outputTail": "fetched 650 of 650 notices",
            }
        ],
    }


def queue_bytes(jobs: Sequence[dict[str, object]]) -> bytes:
    """Jobs in retryq's own layout, one per line."""
    body = ",\n".join(json.dumps(job, ensure_ascii=False) for job in jobs)
    return (f"[\n{body}\n]\n" if jobs else "[]\n").encode()


def write_queue(path: Path, jobs: Sequence[dict[str, object]]) -> None:
    """Write jobs in retryq's own layout, one per line."""
    path.write_bytes(queue_bytes(jobs))
