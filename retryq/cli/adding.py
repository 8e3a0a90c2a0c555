"""Commands that add work: schedule a retry, or report a fetch and let retryq judge it."""

from __future__ import annotations

import logging
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from ..record.errors import ExitCode
from ..record.text import plural
from ..record.timeutil import format_utc, parse_when, utcnow
from ..settings import declaration as declared
from ..settings.kinds import Count
from ._app import JsonOption, WorkflowOption, app, echo_json, open_queue, warn, warn_invalid
from ._options import parser, setting_option
from ._output import LogOutput, job_rows, print_rows, time_format

if TYPE_CHECKING:
    from ..queue import FetchReport, RetryQueue, ScheduleResult

log = logging.getLogger("retryq")

ClientArgument = Annotated[
    str, typer.Argument(metavar="CLIENT", help="Client id: letters, digits, '.', '_', '-' (at most 64).")
]
DateArgument = Annotated[str, typer.Argument(metavar="DATE", help="The date to fetch again, YYYY-MM-DD.")]
CountOption = parser(Count(0))
DelayArgument = Annotated[
    str | None,
    typer.Argument(
        metavar="DELAY", help="Minutes before the run, and between attempts: 60, 90m, 2h, 1h30m [default: 60]."
    ),
]
AtOption = Annotated[
    str | None,
    typer.Option(
        "--at",
        metavar="TIME",
        help="Run at this time instead ('2025-12-20 04:00'; no zone means local time, an offset or Z is exact).",
    ),
]
MaxAttemptsOption = Annotated[
    int | None,
    setting_option(declared.max_attempts, default="the workflow's max_attempts in the configuration, else 3"),
]
PriorityOption = Annotated[
    int | None,
    setting_option(declared.priority, default="the workflow's priority in the configuration, else 0"),
]
BlockOption = Annotated[
    bool, typer.Option("--verbose", "-v", help="Print the whole job, as on a terminal [default: one line in a log].")
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
    delay: DelayArgument = None,
    at: AtOption = None,
    max_attempts: MaxAttemptsOption = None,
    priority: PriorityOption = None,
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
        retryq schedule balthazar 2025-12-19 30 --priority 10
    """
    queue = open_queue(ctx)
    warn_invalid(queue)
    now = utcnow()
    moment = None
    if at is not None:
        # A job due before its own retention would look, once finished, as old as the jobs prune removes.
        retention = timedelta(days=max(queue.config.scheduling_workflow(workflow).keep_days.values()))
        moment = parse_when(at, now=now, oldest=now - retention, on_note=warn)
    result = queue.schedule(
        client, date, delay, at=moment, workflow=workflow, max_attempts=max_attempts, priority=priority, now=now
    )
    if as_json:
        echo_json({"outcome": result.outcome, "job": result.job.to_json_dict()})
    elif _block_output(verbose):
        _print_schedule(queue, result)
    else:
        with LogOutput():
            log.info(
                "%s", result.describe(queue.config.attempts_limit(result.job)), extra={"label": str(result.job.key)}
            )
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
            f"{format_utc(result.next_due)} at the earliest "
            f"({plural(job.follow_up_minutes or 0, 'minute')} after this one)"
        )
    print_rows(job_rows(job, limit, time_format(queue.config, local=False)))


# -- report --------------------------------------------------------------------------------------


@app.command()
def report(
    ctx: typer.Context,
    client: ClientArgument,
    date: Annotated[str, typer.Argument(metavar="DATE", help="The date that was fetched, YYYY-MM-DD.")],
    total: Annotated[
        int, typer.Option("--total", metavar="N", parser=CountOption, help="How many results the source announced.")
    ],
    fetched: Annotated[
        int, typer.Option("--fetched", metavar="N", parser=CountOption, help="How many results were actually fetched.")
    ],
    delay: Annotated[str | None, setting_option(declared.report_delay)] = None,
    workflow: WorkflowOption = None,
    as_json: JsonOption = False,
    verbose: BlockOption = False,
) -> None:
    """Judge a fetch and schedule a retry if anything is missing: for fetchers not written in Python.

    Missing = total - fetched. Nothing missing: OK. At most 3 missing, or at most 0.5% of the
    total: DEGRADED (tolerated). More: ERROR (critical). A retry is scheduled whenever something
    is missing, after the delay `[report] delay` gives for the verdict (or --delay); the line
    says why. Exits 0 for OK and DEGRADED, 3 for ERROR so that the fetcher can fail fast. More
    fetched than announced is a warning, schedules nothing and exits 0.

    \b
    Example (at the end of a fetch, from any language):
        retryq report balthazar 2025-12-19 --total 650 --fetched 647
    """
    from ..record.inconsistency import FetchStatus

    queue = open_queue(ctx)
    warn_invalid(queue)
    if as_json or _block_output(verbose):
        result = queue.report_fetch(client, date, total=total, fetched=fetched, delay=delay, workflow=workflow)
    else:
        with LogOutput():  # the one line the library logs
            result = queue.report_fetch(client, date, total=total, fetched=fetched, delay=delay, workflow=workflow)
    if as_json:
        retry, decision = result.retry, result.decision
        echo_json(
            {
                **result.assessment.to_json_dict(),
                "decision": None
                if decision is None
                else {"delayMinutes": decision.minutes, "reason": decision.reason or None},
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
    from ..record.inconsistency import FetchStatus

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
