"""Commands that run workflows: process (cron), worker (long-running), run (now)."""

from __future__ import annotations

import gc
import logging
import os
import shlex
import signal
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from ..record.errors import ExitCode
from ..record.text import plural
from ..record.timeutil import format_utc, utcnow
from ..settings import declaration as declared
from ._app import DryRunOption, QuietOption, VerboseOption, WorkflowOption, app, error, open_queue, warn
from ._options import NO_OVERRIDES, Overrides, overriding, setting_option
from ._output import NOTICE, LogOutput

if TYPE_CHECKING:
    from datetime import datetime

    from ..queue import RetryQueue
    from ..running.summary import ProcessReport

log = logging.getLogger("retryq")

#: The settings `process` and `worker` alike may override for one run.
RUN_SETTINGS = (declared.concurrency, declared.timeout, declared.metrics_file, declared.dashboard)
OnlyWorkflowOption = Annotated[
    list[str] | None, typer.Option("--workflow", "-w", metavar="NAME", help="Only jobs of this workflow (repeatable).")
]


@app.command()
@overriding(*RUN_SETTINGS, declared.keep_days)
def process(
    ctx: typer.Context,
    overrides: Overrides = NO_OVERRIDES,
    workflow: OnlyWorkflowOption = None,
    no_prune: Annotated[bool, typer.Option("--no-prune", help="Do not prune finished jobs.")] = False,
    dry_run: DryRunOption = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="Nothing at all when nothing was due and nothing went wrong; else only what matters."
        ),
    ] = False,
    verbose: VerboseOption = False,
) -> None:
    """Run every due retry: the cron entry point.

    Each due job (executeAt passed, or within due_window, oldest first) runs the configured
    workflow for its client and date, once per process run. Exit 0 means retryq did its job,
    whatever the workflows did; their outcomes are in the queue and in these lines. With
    --quiet, a run with nothing to report prints nothing, so that cron mails only what matters.

    \b
    Example (crontab):
        */5 * * * * cd /srv/app && retryq process >> retry.log 2>&1
        */5 * * * * cd /srv/app && retryq process --quiet
        */5 * * * * cd /srv/app && retryq process --dashboard /var/www/retryq.html >> retry.log 2>&1
    """
    gc.enable()  # a run may last: its garbage is collected as usual
    queue = open_queue(ctx)
    keep_days = overrides.get(declared.keep_days)
    if dry_run:
        _dry_run(queue, keep_days, prune=not no_prune)
        return
    from ..reporting.writers import reporters_for
    from ..running.processor import Processor

    config = queue.config.with_overrides(**overrides.top_level())
    with LogOutput(quiet=quiet, verbose=verbose, progress=True) as output:
        if output.show_progress:
            output.expect(len(queue.due()))
        report = Processor(
            queue.store,
            config,
            timeout=overrides.get(declared.timeout),
            keep_days=keep_days,
            prune=not no_prune,
            workflows=workflow,
            on_finished=output.advance,
            reporters=reporters_for(config, queue.store),
        ).run()
        if report.eventful or not quiet:
            log.log(NOTICE, _summary(report))
    _exit(report)


@app.command()
@overriding(*RUN_SETTINGS)
def worker(
    ctx: typer.Context,
    overrides: Overrides = NO_OVERRIDES,
    workflow: OnlyWorkflowOption = None,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Run due retries as they come, until stopped: an alternative to cron.

    Polls the queue every 2 s, waiting 1.5 times longer after each idle poll up to 30 s, and
    back to 2 s as soon as it ran a job; on a PostgreSQL queue it also wakes at once when a job
    is scheduled due now. Every 30 s, busy or not, it takes up jobs whose process (or host)
    died once their lease has ended. Each job runs at its own time (no due window), the
    next attempt of a job included. SIGTERM or SIGINT stop it as they stop `process`: running
    workflows are terminated and their jobs given back. Restart it after changing retryq.toml.
    See retryq.service.example for systemd.

    \b
    Example:
        retryq worker --concurrency 4
    """
    from ..reporting.writers import reporters_for
    from ..running.processor import Processor

    gc.enable()  # a run may last: its garbage is collected as usual
    queue = open_queue(ctx)
    config = queue.config.with_overrides(**overrides.top_level())
    with LogOutput(quiet=quiet, verbose=verbose):
        log.info("worker started on %s (pid %d)", queue.store.location, os.getpid())
        report = Processor(
            queue.store,
            config,
            timeout=overrides.get(declared.timeout),
            workflows=workflow,
            reporters=reporters_for(config, queue.store),
        ).run(worker=True)
        log.log(NOTICE, "worker stopped; %s", _summary(report))
    _exit(report)


@app.command()
def run(
    ctx: typer.Context,
    client: Annotated[str, typer.Argument(metavar="CLIENT", help="Client id.")],
    date: Annotated[str, typer.Argument(metavar="DATE", help="The date to fetch, YYYY-MM-DD.")],
    workflow: WorkflowOption = None,
    timeout: Annotated[
        timedelta | None,
        setting_option(
            declared.timeout,
            help="Stop the workflow after this long: 300, 5m",
            default="the workflow's timeout in the configuration, else 5m",
        ),
    ] = None,
) -> None:
    """Run the workflow for CLIENT and DATE now, and exit with its exit code.

    No job is needed or created. A timeout exits 124; Ctrl-C stops the workflow and exits 130.

    \b
    Example:
        retryq run balthazar 2025-12-19
    """
    from ..record.models import JobKey
    from ..running.runner import run_workflow

    queue = open_queue(ctx)
    key = JobKey.of(client, date, queue.config.workflow(workflow).name)
    result = run_workflow(queue.config, key, queue=queue.store.environment(), timeout=timeout)
    if (leftovers := result.describe_leftovers()) is not None:
        warn(leftovers)
    if result.timed_out:
        error("the workflow timed out and was stopped")
        raise typer.Exit(124)
    if result.stopped:
        raise typer.Exit(ExitCode.of_signal(result.stop_signal or signal.SIGINT))
    raise typer.Exit(result.exit_code or 0)


def _summary(report: ProcessReport) -> str:
    waiting = f"pending {report.pending}"
    if report.next_due is not None:
        waiting += f", next due {format_utc(report.next_due)}"
    invalid = f"; invalid {len(report.invalid)}" if report.invalid else ""
    held = ""  # upstream incidents and pauses (docs/incidents.md)
    if report.held or report.given_back:
        held = f"; held {sum(report.held.values())}, attempts not counted {report.given_back}"
    return (
        f"summary: processed {report.processed} (succeeded {report.succeeded}, rescheduled {report.retrying}, "
        f"failed {report.failed}); recovered {report.recovered}, given back {report.released}, "
        f"pruned {report.pruned}; {waiting}{held}{invalid}"
    )


def _exit(report: ProcessReport) -> None:
    for problem in report.invalid:  # in the log above, and on stderr: a human must fix or remove it
        warn(f"{problem}; left as it is, never run")
    if report.stopped_by is not None:
        raise typer.Exit(ExitCode.of_signal(report.stopped_by))
    if report.config_errors:
        for message in report.config_errors:  # in the log above, and on stderr where cron and people look
            error(message)
        raise typer.Exit(ExitCode.CONFIG)


def _dry_run(queue: RetryQueue, keep_days: int | None, *, prune: bool) -> None:
    from ..running.commands import invocation

    now = utcnow()
    due = queue.due(now + queue.config.due_window)
    typer.echo(f"dry run: {plural(len(due), 'job')} due in {queue.store.location}")
    holders = _holders(queue, now)
    for job in due:
        if job.workflow in holders:  # an upstream incident or a pause holds it (docs/incidents.md)
            typer.echo(f"  would hold {job.id[:8]} {job.label}: {holders[job.workflow]}")
            continue
        settings = queue.config.workflows.get(job.workflow)
        if settings is None or not settings.command:
            command = "(workflow not configured: left pending)"
        else:
            argv, _ = invocation(
                settings.command, job.key, job=job, run_id="", queue=queue.store.environment(), config_file=None
            )
            command = shlex.join(argv)
        typer.echo(f"  would run {job.id[:8]} {job.label}: {command}")
    if prune:
        pruned = queue.prune(now=now, keep_days=keep_days, dry_run=True)
        typer.echo(f"dry run: {plural(len(pruned), 'finished job')} would be pruned")
        for job in pruned:
            typer.echo(f"  would prune {job.id[:8]} {job.label} ({job.status.value})")


def _holders(queue: RetryQueue, now: datetime) -> dict[str, str]:
    """Why each held workflow is held (an open incident, with a probe now and then, or a pause)."""
    from ..record.breakerstate import Pause
    from ..record.errors import RetryqError
    from ..reporting.incidents import read_states

    try:
        holders = read_states(queue.store).holders(now)
    except RetryqError as error:
        warn(f"{error}")
        return {}
    return {
        name: "paused" if isinstance(holder, Pause) else f"incident {holder.id} (one may run as its probe)"
        for name, holder in holders.items()
    }
