"""The ``retryq`` command: parse arguments, call the library, format what it returns.

Every error the library raises becomes one line on stderr and the exit code of the README;
no traceback reaches the user.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from . import __version__
from .config import load_config
from .errors import ExitCode, RetryqError
from .inconsistency import FetchStatus
from .models import DEFAULT_WORKFLOW, Job, JobStatus
from .queue import FetchReport, RetryQueue, ScheduleResult
from .timeutil import format_duration, format_utc, parse_when, utcnow

try:  # typer >= 0.25 carries its own copy of click
    from typer._click.exceptions import ClickException, UsageError
except ImportError:  # pragma: no cover - older typer, on the click package
    from click.exceptions import ClickException, UsageError  # type: ignore[import-not-found, no-redef, unused-ignore]

log = logging.getLogger("retryq")


class _Group(TyperGroup):
    """Turns every failure into one line on stderr and a documented exit code."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except UsageError as error:
            command = error.ctx.command_path if error.ctx is not None else "retryq"
            _fail(f"{error.format_message()} (see '{command} --help')", ExitCode.USAGE)
        except ClickException as error:
            _fail(error.format_message(), error.exit_code or ExitCode.USAGE)
        except RetryqError as error:
            _fail(str(error), error.exit_code)
        except (KeyboardInterrupt, typer.Abort):
            _fail("interrupted", ExitCode.SIGINT)
        except BrokenPipeError:
            sys.exit(ExitCode.FAILURE)  # the reader went away (`retryq list | head`): nothing to report
        except Exception as error:  # the promise is "never a traceback": say what broke, in one line
            if os.environ.get("RETRYQ_DEBUG"):
                raise
            _fail(
                f"internal error: {type(error).__name__}: {error} (set RETRYQ_DEBUG=1 for a traceback)",
                ExitCode.SOFTWARE,
            )
        code = result if isinstance(result, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


def _fail(message: str, code: int) -> NoReturn:
    first_line = " ".join(str(message).split("\n")[0].split()) if message else "error"
    _error(first_line)
    sys.exit(int(code))


def _error(message: str) -> None:
    typer.echo(f"retryq: error: {message}", err=True)


app = typer.Typer(
    cls=_Group,
    name="retryq",
    help="A file-backed deferred retry queue driven by cron.\n\n"
    "Schedule a re-run of a fetch workflow for a client and date; `retryq process`, run by cron "
    "every 5 minutes, runs it when due, again while data is still missing, and gives up after "
    "max attempts.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: paragraphs rewrapped, examples kept as written (\b), no rich import
)

# -- shared options ------------------------------------------------------------------------------

QueueFileOption = Annotated[
    Path | None,
    typer.Option(
        "--queue-file",
        help="Queue file [default: $RETRYQ_QUEUE_FILE, else queue_file of the config, else .retry-queue.json].",
        show_default=False,
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Configuration file [default: $RETRYQ_CONFIG, else ./retryq.toml, else ./pyproject.toml's [tool.retryq]].",
        show_default=False,
    ),
]
LockTimeoutOption = Annotated[
    float | None,
    typer.Option("--lock-timeout", help="Seconds to wait for the queue lock before exiting 75 [default: 30].", min=0),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
WorkflowOption = Annotated[
    str | None, typer.Option("--workflow", "-w", help="A workflow named in the config [default: the default workflow].")
]


def _open_queue(queue_file: Path | None, config: Path | None, lock_timeout: float | None) -> RetryQueue:
    settings = load_config(config).with_overrides(
        queue_file=queue_file,
        lock_timeout=timedelta(seconds=lock_timeout) if lock_timeout is not None else None,
    )
    return RetryQueue(config=settings)


@contextmanager
def _logging(*, quiet: bool = False, verbose: bool = False) -> Iterator[None]:
    """Log lines for cron: UTC timestamp, the job's client, date and attempt, then the message."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_CronFormatter())
    logger = logging.getLogger("retryq")
    previous = (logger.level, logger.propagate)
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous[0])
        logger.propagate = previous[1]


class _CronFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = format_utc(datetime.fromtimestamp(record.created, timezone.utc))
        job = getattr(record, "job", None)
        label = job.label if isinstance(job, Job) else getattr(record, "label", "")
        level = "" if record.levelno <= logging.INFO else f"{record.levelname.lower()}: "
        return " ".join(part for part in (stamp, label, level + record.getMessage()) if part)


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"retryq {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """A file-backed deferred retry queue driven by cron."""


# -- schedule ------------------------------------------------------------------------------------


@app.command()
def schedule(
    client: Annotated[str, typer.Argument(help="Client id: letters, digits, '.', '_', '-' (at most 64).")],
    date: Annotated[str, typer.Argument(help="The date to fetch again, YYYY-MM-DD.")],
    delay: Annotated[
        str | None,
        typer.Argument(help="Minutes before the run, and between attempts: 60, 90m, 2h, 1h30m. [default: 60]"),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option("--at", help="Run at this time instead ('2025-12-20 04:00'; no zone means local time)."),
    ] = None,
    max_attempts: Annotated[
        int | None, typer.Option("--max-attempts", help="Attempts before giving up [default: from the config, 3].")
    ] = None,
    workflow: WorkflowOption = None,
    as_json: JsonOption = False,
    queue_file: QueueFileOption = None,
    config: ConfigOption = None,
    lock_timeout: LockTimeoutOption = None,
) -> None:
    """Schedule a deferred retry of the workflow for CLIENT and DATE.

    If a pending retry for the same client and date exists, nothing is added; if it is running
    right now (the call comes from inside the run), its next attempt is requested instead.

    \b
    Example:
        retryq schedule balthazar 2025-12-19 60
        retryq schedule balthazar 2025-12-19 1h30m --max-attempts 5
        retryq schedule assurance 2025-12-22 60 --at '2025-12-22 04:00'
    """
    queue = _open_queue(queue_file, config, lock_timeout)
    now = utcnow()
    when = parse_when(at, now=now) if at is not None else None
    result = queue.schedule(client, date, delay, at=when, workflow=workflow, max_attempts=max_attempts, now=now)
    if as_json:
        _echo_json({"outcome": result.outcome, "job": result.job.to_json_dict()})
        return
    _print_schedule(result)


def _print_schedule(result: ScheduleResult) -> None:
    job = result.job
    if result.outcome == "created":
        typer.echo("Retry scheduled")
    elif result.outcome == "exists":
        typer.echo(f"A pending retry already exists for {job.client_id} {job.date}; nothing added")
    else:
        typer.echo(
            f"The retry for {job.client_id} {job.date} is running now; its next attempt will come "
            f"{job.follow_up_minutes} minutes after this run ends"
        )
    rows = [("job", job.id)]
    if job.workflow != DEFAULT_WORKFLOW:
        rows.append(("workflow", job.workflow))
    rows += [
        ("client", job.client_id),
        ("date", job.date),
        ("scheduled at", format_utc(job.scheduled_at)),
        ("execute at", format_utc(job.execute_at)),
        ("delay", f"{job.delay_minutes} minutes"),
        ("attempt", f"{job.attempt} of {job.max_attempts}"),
        ("status", job.status.value),
    ]
    for name, value in rows:
        typer.echo(f"  {name:<13}{value}")


# -- report --------------------------------------------------------------------------------------


@app.command()
def report(
    client: Annotated[str, typer.Argument(help="Client id.")],
    date: Annotated[str, typer.Argument(help="The date that was fetched, YYYY-MM-DD.")],
    total: Annotated[int, typer.Option("--total", min=0, help="How many results the source announced.")],
    fetched: Annotated[int, typer.Option("--fetched", min=0, help="How many results were actually fetched.")],
    delay: Annotated[
        str | None, typer.Option("--delay", help="Minutes before the retry [default: [report] delay, 60].")
    ] = None,
    workflow: WorkflowOption = None,
    as_json: JsonOption = False,
    queue_file: QueueFileOption = None,
    config: ConfigOption = None,
    lock_timeout: LockTimeoutOption = None,
) -> None:
    """Judge a fetch and schedule a retry if anything is missing: for fetchers not written in Python.

    Missing = total - fetched. Nothing missing: OK. At most 3 missing, or at most 0.5% of the
    total: DEGRADED (tolerated). More: ERROR (critical). A retry is scheduled whenever something
    is missing. Exits 0 for OK and DEGRADED, 3 for ERROR so that the fetcher can fail fast.

    \b
    Example (at the end of a fetch, from any language):
        retryq report balthazar 2025-12-19 --total 650 --fetched 647
    """
    queue = _open_queue(queue_file, config, lock_timeout)
    result = queue.report_fetch(client, date, total=total, fetched=fetched, delay=delay, workflow=workflow)
    found = result.assessment
    if as_json:
        retry = result.retry
        _echo_json(
            {
                **found.to_json_dict(),
                "retry": None if retry is None else {"outcome": retry.outcome, "job": retry.job.to_json_dict()},
            }
        )
    else:
        with _logging():
            _log_report(client, date, result)
    if found.status is FetchStatus.ERROR:
        raise typer.Exit(ExitCode.CRITICAL)


def _log_report(client: str, date: str, result: FetchReport) -> None:
    found, limits = result.assessment, result.assessment.thresholds
    label = {"label": f"{client} {date}"}
    if found.status is FetchStatus.OK:
        log.info("complete: %d of %d fetched; no retry needed", found.fetched, found.total, extra=label)
        return
    log.warning(
        "inconsistency: missing=%d total=%d fetched=%d ratio=%.2f%%",
        found.missing,
        found.total,
        found.fetched,
        found.ratio * 100,
        extra=label,
    )
    if found.status is FetchStatus.DEGRADED:
        log.warning(
            "tolerated: %d missing is within the threshold (at most %d, or at most %.2f%%)",
            found.missing,
            limits.max_missing,
            limits.max_ratio * 100,
            extra=label,
        )
    else:
        log.error(
            "critical: %d missing exceeds the threshold (more than %d and more than %.2f%%)",
            found.missing,
            limits.max_missing,
            limits.max_ratio * 100,
            extra=label,
        )
    retry = result.retry
    assert retry is not None  # something is missing, so a retry was asked for
    job, due = retry.job, format_utc(retry.job.execute_at)
    if retry.outcome == "created":
        log.info(
            "retry scheduled in %d minutes for date %s (job %s, due %s)",
            job.delay_minutes,
            date,
            job.id,
            due,
            extra=label,
        )
    elif retry.outcome == "exists":
        log.info(
            "a retry is already pending for date %s (job %s, due %s); nothing added", date, job.id, due, extra=label
        )
    else:
        log.info(
            "this retry run still misses data: attempt %d will come %d minutes after it ends (job %s)",
            job.attempt + 1,
            job.follow_up_minutes,
            job.id,
            extra=label,
        )


# -- process -------------------------------------------------------------------------------------


@app.command()
def process(
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", "-j", min=1, max=256, help="Workflows run at once [default: 1].")
    ] = None,
    timeout: Annotated[
        str | None, typer.Option("--timeout", help="Per-run timeout, overriding the config: 300, 5m, 1h [default: 5m].")
    ] = None,
    keep_days: Annotated[
        int | None,
        typer.Option("--keep-days", min=0, help="Prune finished jobs older than this [default: keep_days, 7]."),
    ] = None,
    no_prune: Annotated[bool, typer.Option("--no-prune", help="Do not prune finished jobs.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would run and be pruned; change nothing.")
    ] = False,
    workflow: Annotated[
        list[str] | None, typer.Option("--workflow", "-w", help="Only jobs of this workflow (repeatable).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings, errors and the summary.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also debug lines.")] = False,
    queue_file: QueueFileOption = None,
    config: ConfigOption = None,
    lock_timeout: LockTimeoutOption = None,
) -> None:
    """Run every due retry: the cron entry point.

    Each due job (executeAt passed, oldest first) runs the configured workflow for its client
    and date. Exit 0 means retryq did its job, whatever the workflows did; their outcomes are in
    the queue and in these lines.

    \b
    Example (crontab):
        */5 * * * * cd /srv/app && retryq process >> retry.log 2>&1
    """
    from .timeutil import parse_duration

    queue = _open_queue(queue_file, config, lock_timeout)
    run_timeout = parse_duration(timeout) if timeout is not None else None
    if dry_run:
        _dry_run(queue, keep_days, prune=not no_prune)
        return
    with _logging(quiet=quiet, verbose=verbose):
        report = queue.process(
            concurrency=concurrency,
            timeout=run_timeout,
            keep_days=keep_days,
            prune=not no_prune,
            workflows=workflow,
        )
        summary = (
            f"summary: processed {report.processed} (succeeded {report.succeeded}, rescheduled {report.retrying}, "
            f"failed {report.failed}); recovered {report.recovered}, given back {report.released}, "
            f"pruned {report.pruned}"
        )
        log.log(logging.WARNING if quiet else logging.INFO, summary)
    if report.stopped_by is not None:
        raise typer.Exit(128 + report.stopped_by)
    if report.config_errors:
        raise typer.Exit(ExitCode.CONFIG)


def _dry_run(queue: RetryQueue, keep_days: int | None, *, prune: bool) -> None:
    now = utcnow()
    due = queue.due(now)
    typer.echo(f"dry run: {len(due)} job(s) due in {queue.store.location}")
    for job in due:
        settings = queue.config.workflows.get(job.workflow)
        command = " ".join(settings.command) if settings and settings.command else "(workflow not configured)"
        typer.echo(f"  would run {job.id[:8]} {job.label}: {command}")
    if prune:
        pruned = queue.prune(now=now, keep_days=keep_days, dry_run=True)
        typer.echo(f"dry run: {len(pruned)} finished job(s) would be pruned")
        for job in pruned:
            typer.echo(f"  would prune {job.id[:8]} {job.label} ({job.status.value})")


# -- run -----------------------------------------------------------------------------------------


@app.command()
def run(
    client: Annotated[str, typer.Argument(help="Client id.")],
    date: Annotated[str, typer.Argument(help="The date to fetch, YYYY-MM-DD.")],
    workflow: WorkflowOption = None,
    timeout: Annotated[
        str | None, typer.Option("--timeout", help="Stop the workflow after this long: 300, 5m [default: 5m].")
    ] = None,
    queue_file: QueueFileOption = None,
    config: ConfigOption = None,
) -> None:
    """Run the workflow for CLIENT and DATE now, and exit with its exit code.

    No job is needed or created. A timeout exits 124; Ctrl-C stops the workflow and exits 130.

    \b
    Example:
        retryq run balthazar 2025-12-19
    """
    from .timeutil import parse_duration

    queue = _open_queue(queue_file, config, None)
    result = queue.run_now(client, date, workflow=workflow, timeout=parse_duration(timeout) if timeout else None)
    if result.timed_out:
        _error("the workflow timed out and was stopped")
        raise typer.Exit(124)
    if result.stopped:
        raise typer.Exit(ExitCode.SIGINT)
    raise typer.Exit(result.exit_code or 0)


# -- list ----------------------------------------------------------------------------------------


@app.command("list")
def list_jobs(
    status: Annotated[
        list[str] | None,
        typer.Option("--status", "-s", help="Only jobs in this status (repeatable): pending, running, completed, …"),
    ] = None,
    client: Annotated[str | None, typer.Option("--client", help="Only jobs of this client.")] = None,
    workflow: WorkflowOption = None,
    as_json: JsonOption = False,
    queue_file: QueueFileOption = None,
    config: ConfigOption = None,
) -> None:
    """List the jobs in the queue.

    \b
    Example:
        retryq list
        retryq list --status pending --status running
        retryq list --json | jq '.[] | select(.status == "failed")'
    """
    queue = _open_queue(queue_file, config, None)
    jobs = queue.jobs(status=status or None, client=client, workflow=workflow)
    if as_json:
        _echo_json([job.to_json_dict() for job in jobs])
        return
    if not jobs:
        typer.echo(f"no jobs in {queue.store.location}")
        return
    now = utcnow()
    show_workflow = any(job.workflow != DEFAULT_WORKFLOW for job in jobs)
    headers = ["ID", *(["WORKFLOW"] if show_workflow else []), "CLIENT", "DATE", "STATUS", "ATTEMPT", "WHEN", "LAST"]
    rows = []
    for job in jobs:
        rows.append(
            [
                job.id[:8],
                *([job.workflow] if show_workflow else []),
                job.client_id,
                job.date,
                job.status.value,
                f"{job.attempt}/{job.max_attempts}",
                _when(job, now),
                _last(job),
            ]
        )
    _print_table(headers, rows)


def _when(job: Job, now: datetime) -> str:
    if job.status is JobStatus.PENDING:
        delta = job.execute_at - now
        relative = f"in {format_duration(delta)}" if delta > timedelta(0) else "due"
        return f"{format_utc(job.execute_at)} ({relative})"
    if job.status is JobStatus.RUNNING and job.started_at is not None:
        return f"{format_utc(job.started_at)} (started)"
    return format_utc(job.finished_at or job.execute_at)


def _last(job: Job) -> str:
    if not job.history:
        return ""
    last = job.history[-1]
    code = "" if last.exit_code is None else f" (exit {last.exit_code})"
    return f"{last.outcome.value}{code}"


def _print_table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    for row in [headers, *rows]:
        typer.echo("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip())


def main() -> None:
    """Entry point of the ``retryq`` console script."""
    app()
