"""Commands that add, read and mend jobs: schedule, report, list, show, cancel, requeue, prune."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from ..errors import ExitCode, InvalidInput
from ..models import DEFAULT_WORKFLOW, Job
from ..queue import FetchReport, ScheduleResult
from ..timeutil import format_duration, format_utc, parse_when, utcnow
from ._app import (
    ConfigOption,
    JsonOption,
    LockTimeoutOption,
    QueueFileOption,
    WorkflowFilterOption,
    WorkflowOption,
    app,
    echo_json,
    open_queue,
)
from ._output import LogOutput, job_rows, last_outcome, print_rows, print_table, when

log = logging.getLogger("retryq")

ClientArgument = Annotated[str, typer.Argument(help="Client id: letters, digits, '.', '_', '-' (at most 64).")]
DateArgument = Annotated[str, typer.Argument(help="The date to fetch again, YYYY-MM-DD.")]
IdArgument = Annotated[str, typer.Argument(help="A job id, or a unique prefix of one (as `retryq list` shows).")]


# -- schedule ------------------------------------------------------------------------------------


@app.command()
def schedule(
    client: ClientArgument,
    date: DateArgument,
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
    queue = open_queue(queue_file, config, lock_timeout)
    now = utcnow()
    moment = parse_when(at, now=now) if at is not None else None
    result = queue.schedule(client, date, delay, at=moment, workflow=workflow, max_attempts=max_attempts, now=now)
    if as_json:
        echo_json({"outcome": result.outcome, "job": result.job.to_json_dict()})
        return
    _print_schedule(result)
    if moment is not None and moment < now and result.created:
        typer.echo(f"note: {at!r} has already passed ({format_utc(moment)}): the job is due now")


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
    print_rows(job_rows(job))


# -- report --------------------------------------------------------------------------------------


@app.command()
def report(
    client: ClientArgument,
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
    from ..inconsistency import FetchStatus

    queue = open_queue(queue_file, config, lock_timeout)
    result = queue.report_fetch(client, date, total=total, fetched=fetched, delay=delay, workflow=workflow)
    found = result.assessment
    if as_json:
        retry = result.retry
        echo_json(
            {
                **found.to_json_dict(),
                "retry": None if retry is None else {"outcome": retry.outcome, "job": retry.job.to_json_dict()},
            }
        )
    else:
        with LogOutput():
            _log_report(client, date, result)
    if found.status is FetchStatus.ERROR:
        raise typer.Exit(ExitCode.CRITICAL)


def _log_report(client: str, date: str, result: FetchReport) -> None:
    from ..inconsistency import FetchStatus

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
    elif job.attempt >= job.max_attempts:
        log.warning(
            "this retry run still misses data and is the last attempt (%d of %d): job %s will end failed",
            job.attempt,
            job.max_attempts,
            job.id,
            extra=label,
        )
    else:
        log.info(
            "this retry run still misses data: attempt %d will come %d minutes after it ends (job %s)",
            job.attempt + 1,
            job.follow_up_minutes,
            job.id,
            extra=label,
        )


# -- list and show -------------------------------------------------------------------------------


@app.command("list")
def list_jobs(
    status: Annotated[
        list[str] | None,
        typer.Option("--status", "-s", help="Only jobs in this status (repeatable): pending, running, completed, …"),
    ] = None,
    client: Annotated[str | None, typer.Option("--client", help="Only jobs of this client.")] = None,
    workflow: WorkflowFilterOption = None,
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
    queue = open_queue(queue_file, config)
    jobs = queue.jobs(status=status or None, client=client, workflow=workflow)
    if as_json:
        echo_json([job.to_json_dict() for job in jobs])
        return
    if not jobs:
        filtered = status or client is not None or workflow is not None
        typer.echo(f"no {'matching ' if filtered else ''}jobs in {queue.store.location}")
        return
    now = utcnow()
    show_workflow = any(job.workflow != DEFAULT_WORKFLOW for job in jobs)
    headers = ["ID", *(["WORKFLOW"] if show_workflow else []), "CLIENT", "DATE", "STATUS", "ATTEMPT", "WHEN", "LAST"]
    rows = [
        [
            job.id[:8],
            *([job.workflow] if show_workflow else []),
            job.client_id,
            job.date,
            job.status.value,
            f"{job.attempt}/{job.max_attempts}",
            when(job, now),
            last_outcome(job),
        ]
        for job in jobs
    ]
    print_table(headers, rows)


@app.command()
def show(
    ident: IdArgument,
    as_json: JsonOption = False,
    queue_file: QueueFileOption = None,
    config: ConfigOption = None,
) -> None:
    """Show one job: its fields, its attempts and the tail of each attempt's output.

    \b
    Example:
        retryq show 7ff34e21
    """
    job = open_queue(queue_file, config).get(ident)
    if as_json:
        echo_json(job.to_json_dict())
        return
    _print_job(job)


def _print_job(job: Job) -> None:
    rows = job_rows(job)
    optional: list[tuple[str, object]] = [
        ("started at", format_utc(job.started_at) if job.started_at else None),
        ("finished at", format_utc(job.finished_at) if job.finished_at else None),
        ("last exit", job.last_exit_code),
        ("last error", (job.last_error or "").split("\n", 1)[0] or None),
        ("owner", f"{job.owner.host}:{job.owner.pid}" if job.owner else None),
        ("lease until", format_utc(job.lease_until) if job.lease_until else None),
        ("workflow pid", job.workflow_pid),
        ("follow-up", f"{job.follow_up_minutes} minutes after this run" if job.follow_up_minutes is not None else None),
        ("other keys", ", ".join(sorted(job.extra_keys)) or None),
    ]
    print_rows(rows + [(name, value) for name, value in optional if value is not None])
    if not job.history:
        typer.echo("no attempts yet")
        return
    typer.echo("attempts:")
    for attempt in job.history:
        took = format_duration(attempt.finished_at - attempt.started_at)
        code = "" if attempt.exit_code is None else f", exit {attempt.exit_code}"
        typer.echo(f"  #{attempt.attempt}  {format_utc(attempt.started_at)}  {took}  {attempt.outcome.value}{code}")
        for line in (attempt.output_tail or "").splitlines():
            typer.echo(f"      | {line}")


# -- mending -------------------------------------------------------------------------------------


@app.command()
def cancel(
    ident: Annotated[str | None, typer.Argument(help="A job id or unique prefix; or give --client and --date.")] = None,
    client: Annotated[str | None, typer.Option("--client", help="Cancel the pending job of this client…")] = None,
    date: Annotated[str | None, typer.Option("--date", help="…and this date.")] = None,
    workflow: WorkflowOption = None,
    as_json: JsonOption = False,
    queue_file: QueueFileOption = None,
    config: ConfigOption = None,
    lock_timeout: LockTimeoutOption = None,
) -> None:
    """Cancel a pending job; it stays in the queue as `cancelled`, for the record.

    A running job is not cancelled under its runner's feet: wait for the run to end.

    \b
    Example:
        retryq cancel 7ff34e21
        retryq cancel --client balthazar --date 2025-12-19
    """
    if ident is None and (client is None or date is None):
        raise InvalidInput("give a job id, or --client and --date")
    queue = open_queue(queue_file, config, lock_timeout)
    cancelled = queue.cancel(ident, client=client, date=date, workflow=workflow)
    if as_json:
        echo_json([job.to_json_dict() for job in cancelled])
        return
    for job in cancelled:
        typer.echo(f"cancelled {job.id} ({job.label})")


@app.command()
def requeue(
    ident: IdArgument,
    delay: Annotated[str, typer.Option("--delay", help="Minutes before it runs: 0, 30, 2h [default: 0, now].")] = "0",
    max_attempts: Annotated[
        int | None, typer.Option("--max-attempts", help="A new limit of attempts [default: the job's own].")
    ] = None,
    as_json: JsonOption = False,
    queue_file: QueueFileOption = None,
    config: ConfigOption = None,
    lock_timeout: LockTimeoutOption = None,
) -> None:
    """Put a failed or cancelled job back to pending, with a fresh count of attempts.

    \b
    Example:
        retryq requeue 7ff34e21
        retryq requeue 7ff34e21 --delay 2h --max-attempts 5
    """
    job = open_queue(queue_file, config, lock_timeout).requeue(ident, delay=delay, max_attempts=max_attempts)
    if as_json:
        echo_json(job.to_json_dict())
        return
    typer.echo(f"requeued {job.id}")
    print_rows(job_rows(job)[1:])


@app.command()
def prune(
    keep_days: Annotated[
        int | None,
        typer.Option(
            "--keep-days", min=0, max=36500, help="Remove finished jobs older than this [default: keep_days, 7]."
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be removed; change nothing.")] = False,
    as_json: JsonOption = False,
    queue_file: QueueFileOption = None,
    config: ConfigOption = None,
    lock_timeout: LockTimeoutOption = None,
) -> None:
    """Remove completed, failed and cancelled jobs that ended long enough ago (as `process` does).

    Removed jobs are appended to <queue file>.archive.jsonl first, unless archive = false.

    \b
    Example:
        retryq prune --dry-run
        retryq prune --keep-days 30
    """
    queue = open_queue(queue_file, config, lock_timeout)
    removed = queue.prune(keep_days=keep_days, dry_run=dry_run)
    if as_json:
        echo_json([job.to_json_dict() for job in removed])
        return
    verb = "would remove" if dry_run else "removed"
    for job in removed:
        typer.echo(f"{verb} {job.id} ({job.label}, {job.status.value})")
    typer.echo(f"{verb} {len(removed)} finished job(s)")
