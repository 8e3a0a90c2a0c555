"""Commands that read and mend jobs: list, show, cancel, requeue, prune."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ..record.errors import InvalidInput
from ..record.models import DEFAULT_WORKFLOW, Job, JobStatus, jobs_json
from ..record.text import plural
from ..record.timeutil import format_duration, parse_duration, utcnow
from ..settings import declaration as declared
from ..stores import JobFilter, read_jobs
from ._app import (
    ClientFilterOption,
    DryRunOption,
    JsonOption,
    WorkflowFilterOption,
    app,
    echo_json,
    open_queue,
    warn_invalid,
)
from ._options import setting_option
from ._output import TimeFormat, job_rows, last_outcome, print_rows, print_table, time_format, when

if TYPE_CHECKING:
    from datetime import datetime

    from ..queue import BulkResult, RetryQueue
    from ..record.breakerstate import Incident, Pause
    from ..record.views import JobData

IdArgument = Annotated[
    str, typer.Argument(metavar="ID", help="A job id, or a unique prefix of one (as `retryq list` shows).")
]
LocalOption = Annotated[
    bool,
    typer.Option("--local", help="Also show times in this machine's time zone (without it: in display_tz, if set)."),
]


# -- list and show -------------------------------------------------------------------------------

_SORTS = {
    "due": lambda job: (job.execute_at, job.id),
    "scheduled": lambda job: (job.scheduled_at, job.id),
    "status": lambda job: (job.status.value, job.execute_at),
    "client": lambda job: (job.client_id, job.date, job.execute_at),
    "priority": lambda job: (-job.priority, job.execute_at, job.id),  # highest first, then soonest due
}

ListStatusOption = Annotated[
    list[str] | None,
    typer.Option(
        "--status",
        "-s",
        metavar="STATUS",
        help="Only jobs in this status (repeatable): pending, running, completed, failed, cancelled.",
    ),
]
SortOption = Annotated[
    str,
    typer.Option(
        "--sort",
        metavar="ORDER",
        help="Order: due (executeAt), scheduled, status, client, priority (highest first), or queue (file order).",
    ),
]


@app.command("list")
def list_jobs(
    ctx: typer.Context,
    status: ListStatusOption = None,
    client: ClientFilterOption = None,
    workflow: WorkflowFilterOption = None,
    sort: SortOption = "due",
    local: LocalOption = False,
    as_json: JsonOption = False,
) -> None:
    """List the jobs in the queue, soonest due first.

    \b
    Example:
        retryq list
        retryq list --status pending --status running --local
        retryq list --sort priority
        retryq list --json | jq '.[] | select(.status == "failed")'
    """
    if sort not in (*_SORTS, "queue"):
        raise InvalidInput(f"unknown sort {sort!r} (known: due, scheduled, status, client, priority, queue)")
    queue = open_queue(ctx)
    query = JobFilter.of(status=status or None, client=client, workflow=workflow)
    if as_json:  # each job whole, with the keys of other tools: the models
        models = queue.select(query)
        warn_invalid(queue, "not listed")
        if sort != "queue":
            models.sort(key=_SORTS[sort])
        typer.echo(jobs_json(models))
        return
    jobs = list(read_jobs(queue.store, query))  # the table needs no model per job
    warn_invalid(queue, "not listed")
    if sort != "queue":
        jobs.sort(key=_SORTS[sort])
    if not jobs:
        filtered = status or client is not None or workflow is not None
        typer.echo(f"no {'matching ' if filtered else ''}jobs in {queue.store.location}")
        return
    now, times = utcnow(), time_format(queue.config, local=local)
    holders = _holders(queue, now)
    show_workflow = any(job.workflow != DEFAULT_WORKFLOW for job in jobs)
    show_priority = any(job.priority for job in jobs)  # a column only when priorities are in use
    headers = ["ID", *(["WORKFLOW"] if show_workflow else []), "CLIENT", "DATE", "STATUS"]
    headers += [*(["PRI"] if show_priority else []), "ATTEMPT", "WHEN", "LAST"]
    rows = [
        [
            job.id[:8],
            *([job.workflow] if show_workflow else []),
            job.client_id,
            job.date,
            job.status.value,
            *([str(job.priority)] if show_priority else []),
            f"{job.attempt}/{queue.config.attempts_limit(job)}",
            when(job, now, times) + _held(job, holders, now),
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
    warn_invalid(queue)
    job = queue.get(ident)
    if as_json:
        echo_json(job.to_json_dict())
        return
    now = utcnow()
    held = _held(job, _holders(queue, now), now).removeprefix(", held: ") or None
    _print_job(job, queue.config.attempts_limit(job), time_format(queue.config, local=local), held)


def _holders(queue: RetryQueue, now: datetime) -> dict[str, Pause | Incident]:
    """What holds each held workflow (an upstream incident, a pause); a state that cannot be read holds nothing."""
    from ..record.errors import RetryqError
    from ..reporting.incidents import read_states

    try:
        return read_states(queue.store).holders(now)
    except RetryqError as error:
        typer.echo(f"retryq: warning: {error}", err=True)
        return {}


def _held(job: JobData, holders: dict[str, Pause | Incident], now: datetime) -> str:
    """``, held: incident X`` or ``, held: paused`` for a due pending job of a held workflow."""
    from ..record.breakerstate import Pause

    holder = holders.get(job.workflow)
    if holder is None or job.status is not JobStatus.PENDING or job.execute_at > now:
        return ""
    return ", held: paused" if isinstance(holder, Pause) else f", held: incident {holder.id}"


def _print_job(job: Job, limit: int, times: TimeFormat, held: str | None = None) -> None:
    rows = job_rows(job, limit, times)
    optional: list[tuple[str, object]] = [
        ("held", held),
        ("started at", times(job.started_at) if job.started_at else None),
        ("finished at", times(job.finished_at) if job.finished_at else None),
        ("last exit", job.last_exit_code),
        ("last error", (job.last_error or "").split("\n", 1)[0] or None),
        ("owner", f"{job.owner.host}:{job.owner.pid}" if job.owner else None),
        ("lease until", times(job.lease_until) if job.lease_until else None),
        ("workflow pid", job.workflow_pid),
        (
            "follow-up",
            f"{plural(job.follow_up_minutes, 'minute')} after this run" if job.follow_up_minutes is not None else None,
        ),
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
        back = "" if attempt.incident is None else f", not counted (given back: incident {attempt.incident})"
        typer.echo(f"  #{attempt.attempt}  {times(attempt.started_at)}  {took}  {attempt.outcome.value}{code}{back}")
        for line in (attempt.output_tail or "").splitlines():
            typer.echo(f"      | {line}")


# -- mending -------------------------------------------------------------------------------------

StatusFilterOption = Annotated[
    list[str] | None,
    typer.Option(
        "--status", "-s", metavar="STATUS", help="Every job in this status (repeatable), with the filters below."
    ),
]
SinceOption = Annotated[
    str | None,
    typer.Option(
        "--since",
        metavar="DURATION",
        help="Only jobs active (ended, started or scheduled) within this long: 7d, 12h, 30m.",
    ),
]


@app.command()
def cancel(
    ctx: typer.Context,
    ident: Annotated[
        str | None, typer.Argument(metavar="ID", help="A job id or unique prefix; or give --client and --date.")
    ] = None,
    client: Annotated[
        str | None, typer.Option("--client", metavar="CLIENT", help="The pending job of this client…")
    ] = None,
    date: Annotated[str | None, typer.Option("--date", metavar="DATE", help="…and this date.")] = None,
    status: StatusFilterOption = None,
    workflow: Annotated[
        str | None,
        typer.Option(
            "--workflow",
            "-w",
            metavar="NAME",
            help="With --client and --date, or --status: only jobs of this workflow.",
        ),
    ] = None,
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
    warn_invalid(queue)
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
    ident: Annotated[
        str | None, typer.Argument(metavar="ID", help="A job id or unique prefix; or give --status.")
    ] = None,
    status: StatusFilterOption = None,
    client: ClientFilterOption = None,
    workflow: WorkflowFilterOption = None,
    since: SinceOption = None,
    delay: Annotated[
        str, typer.Option("--delay", metavar="DELAY", help="Minutes before it runs: 0 (now), 30, 2h.")
    ] = "0",
    max_attempts: Annotated[
        int | None,
        setting_option(declared.max_attempts, help="A new limit of attempts", default="the job's own limit"),
    ] = None,
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
    warn_invalid(queue)
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
    print_rows(job_rows(job, queue.config.attempts_limit(job), time_format(queue.config, local=False))[1:])


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
    typer.echo(f"{done} {plural(len(result.done), 'job')}, skipped {len(result.skipped)}")


@app.command()
def prune(
    ctx: typer.Context,
    keep_days: Annotated[int | None, setting_option(declared.keep_days)] = None,
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
    warn_invalid(queue)
    removed = queue.prune(keep_days=keep_days, dry_run=dry_run)
    if as_json:
        echo_json([job.to_json_dict() for job in removed])
        return
    verb = "would remove" if dry_run else "removed"
    for job in removed:
        typer.echo(f"{verb} {job.id} ({job.label}, {job.status.value})")
    typer.echo(f"{verb} {plural(len(removed), 'finished job')}")
