"""Queue metrics in the Prometheus text format (0.0.4), for node_exporter's textfile collector.

After each ``retryq process``, render the queue and write it into the collector's directory::

    text = render_metrics(store.tally(), now=now, report=report)
    write_metrics("/var/lib/node_exporter/textfile/retryq.prom", text)

Every value is computed afresh from the jobs at ``now``; nothing is kept between runs. The
``_total`` counters therefore only stay monotonic while pruned jobs are kept in the archive:
without it (or after a ``requeue``), a counter can go down, which Prometheus reads as a reset.
"""

from __future__ import annotations

__all__ = ["parse_metrics", "render_metrics", "write_metrics"]

import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..record.errors import StoreIOError
from ..record.models import JobStatus, Outcome
from ..stores._atomic import new_file_owner, replace_file

if TYPE_CHECKING:
    # Only for the annotations: the report is what a process run did; a schedule's status, what the queue recorded.
    from ..running.recurring import ScheduleStatus
    from ..running.summary import ProcessReport
    from ..stores import Tally

#: The mode of the metrics file: node_exporter usually runs as another user and must read it.
METRICS_FILE_MODE = 0o644

_SampleKey = tuple[str, frozenset[tuple[str, str]]]


@dataclass
class _Family:
    name: str
    kind: str  # "gauge" or "counter"
    text: str  # the HELP line
    labels: tuple[str, ...]
    samples: dict[tuple[str, ...], float] = field(default_factory=dict)

    def add(self, values: tuple[str, ...], amount: float = 1.0) -> None:
        self.samples[values] = self.samples.get(values, 0.0) + amount

    def keep_max(self, values: tuple[str, ...], value: float) -> None:
        self.samples[values] = max(self.samples.get(values, 0.0), value)

    def lines(self) -> list[str]:
        out = [f"# HELP {self.name} {_escape_help(self.text)}", f"# TYPE {self.name} {self.kind}"]
        for values in sorted(self.samples, key=_sort_key):
            labels = ",".join(
                f'{name}="{_escape_label(value)}"' for name, value in zip(self.labels, values, strict=True)
            )
            selector = f"{self.name}{{{labels}}}" if labels else self.name
            out.append(f"{selector} {_format_value(self.samples[values])}")
        return out


def render_metrics(
    tally: Tally,
    *,
    now: datetime,
    report: ProcessReport | None = None,
    workflows: Iterable[str] = (),
    held: Mapping[str, tuple[int, int, int]] | None = None,
    schedules: Iterable[ScheduleStatus] = (),
) -> str:
    """Render the queue's metrics from what the store counted (:meth:`~retryq.stores.Store.tally`).

    Gauges and counters get a zero sample for every status, outcome and workflow known (those of
    the jobs, plus ``workflows``, meant for the configured ones), so that alerts see a series from
    the start rather than none. Families with no sample at all are left out: the text is empty for
    an empty queue without a report. ``held``: for each held workflow, its open incidents (0 or 1), whether
    it is paused and its jobs due (see :func:`~retryq.reporting.incidents.held_gauges`); left out when None.
    ``schedules`` (see :func:`retryq.running.recurring.schedule_statuses`)
    give each schedule's next occurrence and the outcome of its last one.
    """
    names = sorted(
        {
            *workflows,
            *(workflow for workflow, _ in tally.jobs),
            *(workflow for workflow, _ in tally.attempts),
            *(workflow for workflow, _ in tally.resolutions),
            *tally.failures,
        }
    )

    families = [*_job_families(tally, now, names), *_history_families(tally, names), *_schedule_families(schedules)]
    if held is not None:
        families += _held_families(held, sorted({*names, *held}))
    if report is not None:
        families += _report_families(report)
    lines = [line for family in sorted(families, key=lambda f: f.name) if family.samples for line in family.lines()]
    return "".join(f"{line}\n" for line in lines)


def _job_families(tally: Tally, now: datetime, names: list[str]) -> list[_Family]:
    """The queue as it is: jobs by status, the oldest pending job's age, the most overdue one's lateness."""
    jobs = _Family("retryq_jobs", "gauge", "Jobs in the queue file, by status.", ("status", "workflow"))
    oldest = _Family(
        "retryq_oldest_pending_age_seconds",
        "gauge",
        "Time since the oldest pending job was scheduled; 0 when none is pending.",
        ("workflow",),
    )
    overdue = _Family(
        "retryq_overdue_seconds",
        "gauge",
        "How long past its executeAt the most overdue pending job is; 0 when none is. "
        "A value that keeps growing means retryq process is not running.",
        ("workflow",),
    )
    for name in names:
        for status in JobStatus:
            jobs.add((status.value, name), 0.0)
        oldest.add((name,), 0.0)
        overdue.add((name,), 0.0)
    for (workflow, state), count in tally.jobs.items():
        jobs.add((state, workflow), count)
    # Clamped at 0: a timestamp written by a host whose clock runs ahead is not "negative age".
    for workflow, scheduled in tally.oldest_scheduled.items():
        oldest.keep_max((workflow,), max(0.0, (now - scheduled).total_seconds()))
    for workflow, due in tally.earliest_due.items():
        overdue.keep_max((workflow,), max(0.0, (now - due).total_seconds()))
    return [jobs, oldest, overdue]


def _history_families(tally: Tally, names: list[str]) -> list[_Family]:
    """What the histories count, queue and archive: attempts by outcome, resolutions by attempt, failures."""
    attempts = _Family(
        "retryq_attempts_total",
        "counter",
        "Attempts in the job histories (the last 10 of each job), queue and archive, by outcome.",
        ("workflow", "outcome"),
    )
    resolutions = _Family(
        "retryq_resolutions_total",
        "counter",
        "Jobs completed, queue and archive, by the attempt that succeeded.",
        ("workflow", "attempt"),
    )
    failures = _Family("retryq_failures_total", "counter", "Jobs that ended failed, queue and archive.", ("workflow",))
    for name in names:
        for outcome in Outcome:
            attempts.add((name, outcome.value), 0.0)
        failures.add((name,), 0.0)
    for (workflow, ending), count in tally.attempts.items():
        attempts.add((workflow, ending), count)
    for (workflow, attempt), count in tally.resolutions.items():
        resolutions.add((workflow, str(attempt)), count)
    for workflow, count in tally.failures.items():
        failures.add((workflow,), count)
    return [attempts, resolutions, failures]


def _held_families(held: Mapping[str, tuple[int, int, int]], names: list[str]) -> list[_Family]:
    """Upstream incidents and pauses: what holds each workflow, and how many of its due jobs wait."""
    incidents = _Family(
        "retryq_incidents_open", "gauge", "Open upstream incidents: 1 while one holds the workflow.", ("workflow",)
    )
    paused = _Family("retryq_workflow_paused", "gauge", "1 while the workflow is paused (retryq pause).", ("workflow",))
    jobs = _Family(
        "retryq_held_jobs",
        "gauge",
        "Due jobs held by an open upstream incident or a pause, waiting to be released.",
        ("workflow",),
    )
    for name in names:
        opened, stopped, count = held.get(name, (0, 0, 0))
        incidents.add((name,), float(opened))
        paused.add((name,), float(stopped))
        jobs.add((name,), float(count))
    return [incidents, paused, jobs]


#: What the last occurrence of a schedule became: its job's status, else why it has none of its own.
SCHEDULE_OUTCOMES = ("none", *(status.value for status in JobStatus), "skipped", "missed", "gone")


def _schedule_families(schedules: Iterable[ScheduleStatus]) -> list[_Family]:
    """Each schedule's next occurrence, last occurrence, and that occurrence's outcome (one sample at 1)."""
    upcoming = _Family(
        "retryq_schedule_next_occurrence_timestamp_seconds",
        "gauge",
        "When the schedule's next occurrence comes, in Unix time.",
        ("schedule",),
    )
    last = _Family(
        "retryq_schedule_last_occurrence_timestamp_seconds",
        "gauge",
        "The last occurrence of the schedule the queue handled, in Unix time.",
        ("schedule",),
    )
    outcome = _Family(
        "retryq_schedule_last_outcome",
        "gauge",
        "1 for what the schedule's last occurrence became: its job's status, skipped (the job before was still "
        "open), missed (too late for catch_up = none), gone (its job was pruned) or none (no occurrence yet).",
        ("schedule", "outcome"),
    )
    for status in schedules:
        name = status.schedule.name
        if status.next is not None:
            upcoming.add((name,), status.next.timestamp())
        if status.record is not None and status.record.last is not None:
            last.add((name,), status.record.last.timestamp())
        for each in SCHEDULE_OUTCOMES:
            outcome.add((name, each), float(each == status.last_outcome))
    return [upcoming, last, outcome]


def _report_families(report: ProcessReport) -> list[_Family]:
    invalid = _Family(
        "retryq_invalid_jobs",
        "gauge",
        "Records of the queue that are not valid jobs: never run nor pruned until a human fixes or removes them.",
        (),
    )
    invalid.add((), float(len(report.invalid)))
    run = _Family("retryq_last_run_jobs", "gauge", "Jobs handled by the last process run, by result.", ("result",))
    for result, count in (
        ("succeeded", report.succeeded),
        ("rescheduled", report.retrying),
        ("failed", report.failed),
        ("recovered", report.recovered),
        ("released", report.released),
        ("pruned", report.pruned),
    ):
        run.add((result,), float(count))
    stamp = _Family(
        "retryq_last_run_timestamp_seconds", "gauge", "When the last process run finished, in Unix time.", ()
    )
    duration = _Family("retryq_last_run_duration_seconds", "gauge", "How long the last process run took.", ())
    # A report still in progress has no end: its time and duration are left out rather than guessed.
    if report.finished_at is not None:
        stamp.add((), report.finished_at.timestamp())
        duration.add((), (report.finished_at - report.started_at).total_seconds())
    return [run, stamp, duration, invalid]


def write_metrics(path: str | os.PathLike[str], text: str) -> None:
    """Replace the file at ``path`` with ``text`` atomically, readable by everyone (0644).

    The text is written to a hidden ``.tmp`` file in the same directory, then renamed: the
    collector reads only ``*.prom`` files, so it never sees a half-written one.
    """
    target = Path(path)
    try:
        # Not durable: a rename lost in a crash only leaves the previous metrics, and the next run writes them again.
        replace_file(target, text.encode("utf-8"), mode=METRICS_FILE_MODE, owner=new_file_owner(target), durable=False)
    except OSError as error:
        raise StoreIOError(f"{target}: cannot write the metrics file: {error.strerror or error}") from None


_SAMPLE = re.compile(r"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?[ \t]+(?P<value>\S+)(?:[ \t]+-?\d+)?")
_LABEL = re.compile(r'[ \t]*(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)[ \t]*=[ \t]*"(?P<value>(?:[^"\\\n]|\\.)*)"[ \t]*(?:,|$)')
_UNESCAPE = {"n": "\n", "\\": "\\", '"': '"'}


def parse_metrics(text: str) -> dict[_SampleKey, float]:
    """Read the samples of a text exposition: ``(name, frozenset of (label, value))`` to value.

    Comments (``# HELP``, ``# TYPE``) are skipped and a sample's timestamp is ignored; a line that
    is not a sample, or a sample given twice, raises ``ValueError``.
    """
    samples: dict[_SampleKey, float] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _SAMPLE.fullmatch(line.strip())
        if match is None:
            raise ValueError(f"line {number}: not a sample: {line!r}")
        try:
            labels = _parse_labels(match["labels"] or "")
            value = float(match["value"])
        except ValueError as error:
            raise ValueError(f"line {number}: {error}: {line!r}") from None
        key = (match["name"], labels)
        if key in samples:
            raise ValueError(f"line {number}: sample given twice: {line!r}")
        samples[key] = value
    return samples


def _parse_labels(text: str) -> frozenset[tuple[str, str]]:
    labels: dict[str, str] = {}
    position = 0
    while text[position:].strip():
        match = _LABEL.match(text, position)
        if match is None:
            raise ValueError(f"bad labels at {text[position:]!r}")
        if match["name"] in labels:
            raise ValueError(f"label {match['name']!r} given twice")
        labels[match["name"]] = re.sub(r"\\(.)", lambda m: _UNESCAPE.get(m[1], m[0]), match["value"])
        position = match.end()
    return frozenset(labels.items())


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    # HELP text escapes only backslash and newline; a double quote stays as it is.
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    # Whole numbers without ".0" read better, and are exact below 2**53.
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def _sort_key(values: tuple[str, ...]) -> tuple[tuple[int, int, str], ...]:
    # Numbers in numeric order, so that attempt="10" comes after attempt="9".
    return tuple((0, int(value), "") if value.isascii() and value.isdigit() else (1, 0, value) for value in values)
