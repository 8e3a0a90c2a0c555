"""Commands that add, read and mend jobs: schedule, report, list, show, cancel, requeue, prune."""

from __future__ import annotations

import logging
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from ..errors import ExitCode, InvalidInput
from ..models import DEFAULT_WORKFLOW, Job
from ..stores import JobFilter
from ..timeutil import format_duration, format_utc, parse_duration, parse_when, utcnow
from ._app import (
    ClientFilterOption,
    DryRunOption,
    JsonOption,
    WorkflowFilterOption,
    WorkflowOption,
    app,
    echo_json,
    open_queue,
    warn,
)
from ._output import LogOutput, TimeFormat, job_rows, last_outcome, print_rows, print_table, when

if TYPE_CHECKING:
    from ..queue import BulkResult, FetchReport, RetryQueue, ScheduleResult

log = logging.getLogger("retryq")

ClientArgument = Annotated[str, typer.Argument(help="Client id: letters, digits, '.', '_', '-' (at most 64).")]
DateArgument = Annotated[str, typer.Argument(help="The date to fetch again, YYYY-MM-DD.")]
IdArgument = Annotated[str, typer.Argument(help="A job id, or a unique prefix of one (as `retryq list` shows).")]
BlockOption = Annotated[
    bool, typer.Option("--verbose", "-v", help="Print the whole job, as on a terminal [default: one line in a log].")
]
LocalOption = Annotated[
    bool, typer.Option("--local", help="Also show times in this machine's time zone [default: display_tz, if set].")
]
MaxAttemptsOption = Annotated[
    int | None, typer.Option("--max-attempts", min=1, max=100, help="A new limit of attempts.")
]


def _block_output(verbose: bool) -> bool:
    """A terminal (or --verbose) gets the whole block; a log file (cron's `>> retry.log`) one line per event."""
    return verbose or sys.stdout.isatty()


# -- schedule ------------------------------------------------------------------------------------


@app.command()
def schedule(
    ctx: typer.Context,
    client: ClientArgument,
    date: DateArgument,
    delay: Annotated[
        str | None,
        typer.Argument(help="Minutes before the run, and between attempts: 60, 90m, 2h, 1h30m. [default: 60]"),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="Run at this time instead ('2025-12-20 04:00'; no zone means local time, an offset or Z is exact).",
        ),
    ] = None,
    max_attempts: Annotated[
        int | None, typer.Option("--max-attempts", help="Attempts before giving up [default: from the config, 3].")
    ] = None,
    workflow: WorkflowOption = None,
    as_json: JsonOption = False,
    verbose: BlockOption = False,
) -> None:
    """Schedule a deferred retry of the workflow for CLIENT and DATE.

    If a pending retry for the same client and date exists, nothing is added; if it is running
    right now (the call comes from inside the run), its next attempt is requested instead.
    In a log (stdout not a terminal) it prints one timestamped line; on a terminal, the job.

    \b
    Example:
        retryq schedule balthazar 2025-12-19 60
        retryq schedule balthazar 2025-12-19 1h30m --max-attempts 5
        retryq schedule assurance 2025-12-22 60 --at '2025-12-22 04:00'
    """
    queue = open_queue(ctx)
    now = utcnow()
    moment = None
    if at is not None:
        # A job due before its own retention would look, once finished, as old as the jobs prune removes.
        retention = timedelta(days=max(queue.config.scheduling_workflow(workflow).keep_days.values()))
        moment = parse_when(at, now=now, oldest=now - retention, on_note=warn)
    if as_json or _block_output(verbose):
        result = queue.schedule(client, date, delay, at=moment, workflow=workflow, max_attempts=max_attempts, now=now)
    else:
        with LogOutput():
            result = queue.schedule(
                client, date, delay, at=moment, workflow=workflow, max_attempts=max_attempts, now=now
            )
    if as_json:
        echo_json({"outcome": result.outcome, "job": result.job.to_json_dict()})
    elif _block_output(verbose):
        _print_schedule(queue, result)
    if moment is not None and moment < now and result.created:
        warn(f"{at!r} has already passed ({format_utc(moment)}): the job is due now")
    settings = queue.config.workflows.get(result.job.workflow)
    if settings is None or not settings.command:
        warn(
            f"no command is configured for workflow {result.job.workflow!r} (set [workflow] command in "
            "retryq.toml, or RETRYQ_COMMAND): `retryq process` will leave this job pending"
        )


def _print_schedule(queue: RetryQueue, result: ScheduleResult) -> None:
    job = result.job
    limit = queue.config.attempts_limit(job)
    if result.outcome == "created":
        typer.echo("Retry scheduled")
    elif result.outcome == "exists":
        typer.echo(f"A pending retry already exists for {job.client_id} {job.date}; nothing added")
    elif result.next_due is None:
        typer.echo(f"The retry for {job.client_id} {job.date} is running its last attempt ({job.attempt} of {limit})")
    else:
        typer.echo(
            f"The retry for {job.client_id} {job.date} is running now; its next attempt will be due "
            f"{format_utc(result.next_due)} at the earliest ({job.follow_up_minutes} minutes after this one)"
        )
    print_rows(job_rows(job, limit, _times(queue, local=False)))


# -- report --------------------------------------------------------------------------------------


@app.command()
def report(
    ctx: typer.Context,
    client: ClientArgument,
    date: Annotated[str, typer.Argument(help="The date that was fetched, YYYY-MM-DD.")],
    total: Annotated[int, typer.Option("--total", min=0, help="How many results the source announced.")],
    fetched: Annotated[int, typer.Option("--fetched", min=0, help="How many results were actually fetched.")],
    delay: Annotated[
        str | None, typer.Option("--delay", help="Minutes before the retry [default: [report] delay, 60].")
    ] = None,
    workflow: WorkflowOption = None,
    as_json: JsonOption = False,
    verbose: BlockOption = False,
) -> None:
    """Judge a fetch and schedule a retry if anything is missing: for fetchers not written in Python.

    Missing = total - fetched. Nothing missing: OK. At most 3 missing, or at most 0.5% of the
    total: DEGRADED (tolerated). More: ERROR (critical). A retry is scheduled whenever something
    is missing. Exits 0 for OK and DEGRADED, 3 for ERROR so that the fetcher can fail fast. More
    fetched than announced is a warning, schedules nothing and exits 0.

    \b
    Example (at the end of a fetch, from any language):
        retryq report balthazar 2025-12-19 --total 650 --fetched 647
    """
    from ..inconsistency import FetchStatus

    queue = open_queue(ctx)
    if as_json or _block_output(verbose):
        result = queue.report_fetch(client, date, total=total, fetched=fetched, delay=delay, workflow=workflow)
    else:
        with LogOutput():  # the one line the library logs
            result = queue.report_fetch(client, date, total=total, fetched=fetched, delay=delay, workflow=workflow)
    if as_json:
        retry = result.retry
        echo_json(
            {
                **result.assessment.to_json_dict(),
                "retry": None
                if retry is None
                else {
                    "outcome": retry.outcome,
                    "nextDue": None if retry.next_due is None else format_utc(retry.next_due),
                    "job": retry.job.to_json_dict(),
                },
            }
        )
    elif _block_output(verbose):
        with LogOutput():
            _log_report(queue, client, date, result)
    if result.assessment.status is FetchStatus.ERROR:
        raise typer.Exit(ExitCode.CRITICAL)


def _log_report(queue: RetryQueue, client: str, date: str, result: FetchReport) -> None:
    """The detailed form of what `report` found: the counts, the verdict, the retry."""
    from ..inconsistency import FetchStatus

    found, limits = result.assessment, result.assessment.thresholds
    label = {"label": f"{client} {date}"}
    if found.status is FetchStatus.OK:
        log.log(logging.WARNING if found.surplus else logging.INFO, "%s", found.describe(), extra=label)
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
    assert result.retry is not None  # something is missing, so a retry was asked for
    log.info("%s", result.retry.describe(queue.config.attempts_limit(result.retry.job)), extra=label)


# -- list and show -------------------------------------------------------------------------------

SortKey = Literal["due", "scheduled", "queue", "status", "client"]
_SORTS = {
    "due": lambda job: (job.execute_at, job.id),
    "scheduled": lambda job: (job.scheduled_at, job.id),
    "status": lambda job: (job.status.value, job.execute_at),
    "client": lambda job: (job.client_id, job.date, job.execute_at),
}


@app.command("list")
def list_jobs(
    ctx: typer.Context,
    status: Annotated[
        list[str] | None,
        typer.Option("--status", "-s", help="Only jobs in this status (repeatable): pending, running, completed, …"),
    ] = None,
    client: ClientFilterOption = None,
    workflow: WorkflowFilterOption = None,
    sort: Annotated[
        str,
        typer.Option("--sort", help="Order: due (executeAt), scheduled, status, client, or queue (file order)."),
    ] = "due",
    local: LocalOption = False,
    as_json: JsonOption = False,
) -> None:
    """List the jobs in the queue, soonest due first.

    \b
    Example:
        retryq list
        retryq list --status pending --status running --local
        retryq list --json | jq '.[] | select(.status == "failed")'
    """
    if sort not in (*_SORTS, "queue"):
        raise InvalidInput(f"unknown sort {sort!r} (known: due, scheduled, status, client, queue)")
    queue = open_queue(ctx)
    jobs = queue.jobs(status=status or None, client=client, workflow=workflow)
    for problem in queue.store.invalid():
        warn(f"{problem}; not listed")
    if sort != "queue":
        jobs.sort(key=_SORTS[sort])
    if as_json:
        echo_json([job.to_json_dict() for job in jobs])
        return
    if not jobs:
        filtered = status or client is not None or workflow is not None
        typer.echo(f"no {'matching ' if filtered else ''}jobs in {queue.store.location}")
        return
    now, times = utcnow(), _times(queue, local=local)
    show_workflow = any(job.workflow != DEFAULT_WORKFLOW for job in jobs)
    headers = ["ID", *(["WORKFLOW"] if show_workflow else []), "CLIENT", "DATE", "STATUS", "ATTEMPT", "WHEN", "LAST"]
    rows = [
        [
            job.id[:8],
            *([job.workflow] if show_workflow else []),
            job.client_id,
            job.date,
            job.status.value,
            f"{job.attempt}/{queue.config.attempts_limit(job)}",
            when(job, now, times),
            last_outcome(job),
        ]
        for job in jobs
    ]
    print_table(headers, rows)


@app.command()
def show(ctx: typer.Context, ident: IdArgument, local: LocalOption = False, as_json: JsonOption = False) -> None:
    """Show one job: its fields, its attempts and the tail of each attempt's output.

    \b
    Example:
        retryq show 7ff34e21
    """
    queue = open_queue(ctx)
    job = queue.get(ident)
    if as_json:
        echo_json(job.to_json_dict())
        return
    _print_job(job, queue.config.attempts_limit(job), _times(queue, local=local))


def _times(queue: RetryQueue, *, local: bool) -> TimeFormat:
    return TimeFormat.local() if local else TimeFormat(queue.config.display_tz)


def _print_job(job: Job, limit: int, times: TimeFormat) -> None:
    rows = job_rows(job, limit, times)
    optional: list[tuple[str, object]] = [
        ("started at", times(job.started_at) if job.started_at else None),
        ("finished at", times(job.finished_at) if job.finished_at else None),
        ("last exit", job.last_exit_code),
        ("last error", (job.last_error or "").split("\n", 1)[0] or None),
        ("owner", f"{job.owner.host}:{job.owner.pid}" if job.owner else None),
        ("lease until", times(job.lease_until) if job.lease_until else None),
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
        typer.echo(f"  #{attempt.attempt}  {times(attempt.started_at)}  {took}  {attempt.outcome.value}{code}")
        for line in (attempt.output_tail or "").splitlines():
            typer.echo(f"      | {line}")


# -- mending -------------------------------------------------------------------------------------

StatusFilterOption = Annotated[
    list[str] | None,
    typer.Option("--status", "-s", help="Every job in this status (repeatable), with the filters below."),
]
SinceOption = Annotated[
    str | None,
    typer.Option("--since", help="Only jobs active (ended, started or scheduled) within this long: 7d, 12h, 30m."),
]


@app.command()
def cancel(
    ctx: typer.Context,
    ident: Annotated[str | None, typer.Argument(help="A job id or unique prefix; or give --client and --date.")] = None,
    client: Annotated[str | None, typer.Option("--client", help="The pending job of this client…")] = None,
    date: Annotated[str | None, typer.Option("--date", help="…and this date.")] = None,
    status: StatusFilterOption = None,
    workflow: WorkflowOption = None,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Cancel pending jobs; they stay in the queue as `cancelled`, for the record.

    One job by id (or --client and --date), or every pending job matching filters with
    --status pending. A running job is not cancelled under its runner's feet: wait for it.

    \b
    Example:
        retryq cancel 7ff34e21
        retryq cancel --client balthazar --date 2025-12-19
        retryq cancel --status pending --client balthazar --dry-run
    """
    queue = open_queue(ctx)
    if status:
        query = JobFilter.of(status=status, client=client, workflow=workflow, date=date)
        _print_bulk("cancel", queue.cancel_matching(query, dry_run=dry_run), as_json=as_json)
        return
    if ident is None and (client is None or date is None):
        raise InvalidInput("give a job id, --client and --date, or --status pending for every matching job")
    if dry_run:
        raise InvalidInput("--dry-run goes with --status (a bulk cancel)")
    cancelled = queue.cancel(ident, client=client, date=date, workflow=workflow)
    if as_json:
        echo_json([job.to_json_dict() for job in cancelled])
        return
    for job in cancelled:
        typer.echo(f"cancelled {job.id} ({job.label})")


@app.command()
def requeue(
    ctx: typer.Context,
    ident: Annotated[str | None, typer.Argument(help="A job id or unique prefix; or give --status.")] = None,
    status: StatusFilterOption = None,
    client: ClientFilterOption = None,
    workflow: WorkflowFilterOption = None,
    since: SinceOption = None,
    delay: Annotated[str, typer.Option("--delay", help="Minutes before it runs: 0, 30, 2h [default: 0, now].")] = "0",
    max_attempts: MaxAttemptsOption = None,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Put failed or cancelled jobs back to pending, with a fresh count of attempts.

    One job by id, or every job matching filters with --status failed (or cancelled): of
    several finished jobs of one client and date, only the latest goes back, and none where a
    job of that client and date is already open.

    \b
    Example:
        retryq requeue 7ff34e21
        retryq requeue 7ff34e21 --delay 2h --max-attempts 5
        retryq requeue --status failed --since 7d --client balthazar --dry-run
    """
    queue = open_queue(ctx)
    if status:
        window = parse_duration(since, unit="d") if since is not None else None
        query = JobFilter.of(
            status=status, client=client, workflow=workflow, since=utcnow() - window if window else None
        )
        result = queue.requeue_matching(query, delay=delay, max_attempts=max_attempts, dry_run=dry_run)
        _print_bulk("requeue", result, as_json=as_json)
        return
    if ident is None or client is not None or workflow is not None or since is not None or dry_run:
        raise InvalidInput("give a job id, or --status failed (or cancelled) with filters for a bulk requeue")
    job = queue.requeue(ident, delay=delay, max_attempts=max_attempts)
    if as_json:
        echo_json(job.to_json_dict())
        return
    typer.echo(f"requeued {job.id}")
    print_rows(job_rows(job, queue.config.attempts_limit(job), _times(queue, local=False))[1:])


_PAST = {"cancel": "cancelled", "requeue": "requeued"}


def _print_bulk(verb: str, result: BulkResult, *, as_json: bool) -> None:
    if as_json:
        echo_json(
            {
                "dryRun": result.dry_run,
                "done": [job.to_json_dict() for job in result.done],
                "skipped": [{"reason": item.reason, "job": item.job.to_json_dict()} for item in result.skipped],
            }
        )
        return
    done = f"would {verb}" if result.dry_run else _PAST[verb]
    for job in result.done:
        typer.echo(f"{done} {job.id} ({job.label})")
    for item in result.skipped:
        typer.echo(f"skipped {item.job.id} ({item.job.label}): {item.reason}")
    typer.echo(f"{done} {len(result.done)} job(s), skipped {len(result.skipped)}")


@app.command()
def prune(
    ctx: typer.Context,
    keep_days: Annotated[
        int | None,
        typer.Option(
            "--keep-days", min=0, max=36500, help="Remove finished jobs older than this [default: keep_days, 7]."
        ),
    ] = None,
    dry_run: DryRunOption = False,
    as_json: JsonOption = False,
) -> None:
    """Remove completed, failed and cancelled jobs that ended long enough ago (as `process` does).

    Removed jobs are appended to <queue file>.archive.jsonl first, unless archive = false.

    \b
    Example:
        retryq prune --dry-run
        retryq prune --keep-days 30
    """
    queue = open_queue(ctx)
    removed = queue.prune(keep_days=keep_days, dry_run=dry_run)
    if as_json:
        echo_json([job.to_json_dict() for job in removed])
        return
    verb = "would remove" if dry_run else "removed"
    for job in removed:
        typer.echo(f"{verb} {job.id} ({job.label}, {job.status.value})")
    typer.echo(f"{verb} {len(removed)} finished job(s)")
