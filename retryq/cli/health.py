"""Commands that look at the health of the queue: stats and doctor."""

from __future__ import annotations

from typing import Annotated

import typer

from ..record.errors import ConfigError, ExitCode, InvalidInput
from ..record.timeutil import parse_duration, utcnow
from ._app import (
    ChainsSinceOption,
    ClientFilterOption,
    JsonOption,
    WorkflowFilterOption,
    app,
    echo_json,
    open_queue,
    warn_invalid,
)


@app.command()
def stats(
    ctx: typer.Context,
    since: ChainsSinceOption = None,
    client: ClientFilterOption = None,
    workflow: WorkflowFilterOption = None,
    by: Annotated[
        str | None,
        typer.Option(
            "--by",
            metavar="FIELD",
            help="status: also break the figures down by the status `report` judged at detection "
            "(DEGRADED, ERROR; unknown: scheduled without report). --json always has byStatus.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """How inconsistencies resolve: at which retry, how many persist, how long it takes.

    Counts every chain (a retry requested for a client and date) in the queue and in its
    archive, so that the figures survive pruning.

    \b
    Example:
        retryq stats --since 30d
        retryq stats --by status
        retryq stats --client balthazar --json
    """
    from ..reporting.incidents import upstream_stats
    from ..reporting.stats import format_by_status, format_stats, read_history, resolution_stats

    if by not in (None, "status"):
        raise InvalidInput(f"unknown breakdown {by!r} (known: status)")
    queue = open_queue(ctx)
    jobs = read_history(queue.store)  # first: a queue read whole tells at once whether any record is invalid
    warn_invalid(queue, "not counted")
    window = parse_duration(since, unit="d") if since is not None else None
    now = utcnow()
    result = resolution_stats(jobs, now=now, since=window, client=client, workflow=workflow)
    upstream = upstream_stats(queue.store, jobs, now=now, since=window, client=client, workflow=workflow)
    if as_json:
        echo_json({**result.to_json_dict(breakdowns=True), "incidents": upstream.to_json_dict()})
        return
    for line in format_stats(result) + (format_by_status(result) if by == "status" else []) + upstream.lines():
        typer.echo(line)


@app.command()
def doctor(
    ctx: typer.Context,
    overdue: Annotated[
        str,
        typer.Option(
            "--overdue",
            metavar="DURATION",
            help="A pending job due longer ago than this means cron is not running.",
        ),
    ] = "15m",
    as_json: JsonOption = False,
) -> None:
    """Check the configuration, the workflow commands, the queue file and the lock; flag stuck jobs.

    Exits 1 when something needs a human: a command not found, a corrupt or unwritable queue
    file, a job stuck running past its lease, or jobs pending long past their time (a sign
    that cron is not running `retryq process`).

    \b
    Example:
        retryq doctor && echo "all good"
    """
    try:
        queue = open_queue(ctx)
    except ConfigError as problem:  # a finding like any other: what doctor is for
        if as_json:
            echo_json([{"level": "problem", "message": str(problem)}])
        else:
            typer.echo("problem: " + " ".join(str(problem).split()))  # one line, as every error
        raise typer.Exit(ExitCode.FAILURE) from None
    from ..reporting.doctor import diagnose

    findings = diagnose(queue.config, queue.store, now=utcnow(), overdue=parse_duration(overdue))
    if as_json:
        echo_json([{"level": finding.level, "message": finding.message} for finding in findings])
    else:
        for finding in findings:
            typer.echo(f"{finding.level}: {finding.message}")
    if any(finding.level == "problem" for finding in findings):
        raise typer.Exit(ExitCode.FAILURE)
