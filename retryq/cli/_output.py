"""How commands print: log lines fit for cron, tables, job blocks, and a progress bar on terminals."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone, tzinfo
from types import TracebackType
from typing import TYPE_CHECKING

import typer

from ..record.models import DEFAULT_WORKFLOW, Job, JobStatus
from ..record.text import plural
from ..record.timeutil import format_duration, format_utc, local_zone
from ..settings.config import Config
from ._app import warn

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from ..record.views import JobData

log = logging.getLogger("retryq")

#: Between INFO and WARNING: what --quiet still shows, printed without a level (the summary).
NOTICE = 25


class CronFormatter(logging.Formatter):
    """``2025-12-19T11:05:00.412Z balthazar 2025-12-19 #1 warning: message``: greppable, one event a line."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = format_utc(datetime.fromtimestamp(record.created, timezone.utc))
        job = getattr(record, "job", None)
        label = job.label if isinstance(job, Job) else getattr(record, "label", "")
        level = "" if record.levelno in (logging.INFO, NOTICE) else f"{record.levelname.lower()}: "
        return " ".join(part for part in (stamp, label, level + record.getMessage()) if part)


class LogOutput:
    """Routes the ``retryq`` logger to stdout for the duration of a command.

    With ``progress`` (only on a terminal), lines are printed above a progress bar that
    :meth:`advance` moves; in cron logs there is never a bar, only lines.
    """

    def __init__(self, *, quiet: bool = False, verbose: bool = False, progress: bool = False) -> None:
        self.level = logging.DEBUG if verbose else NOTICE if quiet else logging.INFO
        self.show_progress = progress and not quiet and sys.stdout.isatty()
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._handler: logging.Handler | None = None
        self._saved = (log.level, log.propagate)

    def __enter__(self) -> LogOutput:
        if self.show_progress:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            console = Console(file=sys.stdout)
            self._progress = Progress(
                TextColumn("retryq process"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("jobs", total=None)
            self._handler = _ConsoleHandler(console)
        else:
            self._handler = logging.StreamHandler(sys.stdout)
        self._handler.setFormatter(CronFormatter())
        log.setLevel(self.level)
        log.propagate = False
        log.addHandler(self._handler)
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()
        assert self._handler is not None
        log.removeHandler(self._handler)
        log.setLevel(self._saved[0])
        log.propagate = self._saved[1]

    def expect(self, total: int) -> None:
        """Set how many jobs the bar expects."""
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, total=total)

    def advance(self, *_: object) -> None:
        """One more job done (usable as a processor's ``on_finished`` callback)."""
        if self._progress is not None and self._task is not None:
            task = self._progress.tasks[0]
            if task.total is not None and task.completed + 1 > task.total:
                self._progress.update(self._task, total=task.completed + 1)
            self._progress.advance(self._task)


class _ConsoleHandler(logging.Handler):
    def __init__(self, console: object) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        self.console.print(self.format(record), markup=False, highlight=False, soft_wrap=True)  # type: ignore[attr-defined]


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Columns padded to their widest cell; plain text, so that it greps and pipes well."""
    widths = [max(map(len, column)) for column in zip(headers, *rows, strict=False)]
    line = "  ".join(f"{{:<{width}}}" for width in widths).format
    # One write: a table of 100,000 rows is not 100,000 calls.
    typer.echo("\n".join([line(*row).rstrip() for row in [headers, *rows]]))


def print_rows(rows: Sequence[tuple[str, object]], indent: str = "  ") -> None:
    """``name  value`` lines, names aligned."""
    width = max((len(name) for name, _ in rows), default=0) + 1
    for name, value in rows:
        typer.echo(f"{indent}{name:<{width}}{value}")


class TimeFormat:
    """UTC as the queue file writes it, followed by the time in ``zone`` when one is given."""

    def __init__(self, zone: tzinfo | None = None) -> None:
        self.zone = zone

    @classmethod
    def local(cls, on_note: Callable[[str], object] | None = None) -> TimeFormat:
        """This machine's zone (``TZ``, else /etc/localtime), daylight saving included; a bogus ``TZ`` is noted."""
        return cls(local_zone(on_note)[0])

    def __call__(self, value: datetime) -> str:
        text = format_utc(value)
        if self.zone is None:
            return text
        local = value.astimezone(self.zone)
        shown = local.strftime("%H:%M %Z") if local.date() == value.date() else local.strftime("%Y-%m-%d %H:%M %Z")
        return f"{text} ({shown})"


def time_format(config: Config, *, local: bool) -> TimeFormat:
    """Times as ``list`` and ``show`` print them: UTC, and the machine's zone (--local) or ``display_tz``."""
    return TimeFormat.local(on_note=warn) if local else TimeFormat(config.display_tz)


def job_rows(job: Job, limit: int, times: TimeFormat) -> list[tuple[str, object]]:
    """The fields of a job a person wants to read, in the order they read them (``limit``: its attempts)."""
    rows: list[tuple[str, object]] = [("job", job.id)]
    if job.workflow != DEFAULT_WORKFLOW:
        rows.append(("workflow", job.workflow))
    rows += [
        ("client", job.client_id),
        ("date", job.date),
        ("scheduled at", times(job.scheduled_at)),
        ("execute at", times(job.execute_at)),
        ("delay", plural(job.delay_minutes, "minute")),
        ("attempt", f"{job.attempt} of {limit}"),
        ("status", job.status.value),
    ]
    if job.priority:
        rows.append(("priority", job.priority))
    return rows


def when(job: JobData, now: datetime, times: TimeFormat) -> str:
    if job.status is JobStatus.PENDING:
        delta = job.execute_at - now
        relative = f"in {format_duration(delta)}" if delta > timedelta(0) else "due"
        return f"{times(job.execute_at)} {relative}"
    if job.status is JobStatus.RUNNING and job.started_at is not None:
        return f"{times(job.started_at)} started"
    return times(job.finished_at or job.execute_at)


def last_outcome(job: JobData) -> str:
    if not job.history:
        return ""
    last = job.history[-1]
    code = "" if last.exit_code is None else f" (exit {last.exit_code})"
    given_back = ", not counted" if last.incident is not None else ""  # given back for an upstream incident
    return f"{last.outcome.value}{code}{given_back}"
