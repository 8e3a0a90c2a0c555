"""`retryq schedules`: the recurring jobs of the configuration, their next occurrence and what became of the last."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..record.timeutil import utcnow
from ._app import JsonOption, app, echo_json, open_queue
from ._output import TimeFormat, print_table, time_format

if TYPE_CHECKING:
    from ..running.recurring import ScheduleStatus

LocalOption = Annotated[
    bool,
    typer.Option("--local", help="Also show times in this machine's time zone (without it: in display_tz, if set)."),
]


@app.command()
def schedules(ctx: typer.Context, local: LocalOption = False, as_json: JsonOption = False) -> None:
    """List the recurring jobs of the configuration: next occurrence, last one and its job.

    Each [schedules.NAME] of retryq.toml: its cron expression and zone, the workflow and client of
    its jobs, its next occurrence, the last occurrence the queue handled and what became of it (the
    status of its job; skipped when the job of the one before was still open; missed when found too
    late for catch_up = "none"). `process` and `worker` enqueue the occurrences; this only reads.

    \b
    Example:
        retryq schedules
        retryq schedules --json | jq '.[] | select(.lastOutcome == "failed")'
    """
    queue = open_queue(ctx)
    statuses = queue.schedules(now=utcnow())
    times = time_format(queue.config, local=local)
    if as_json:
        echo_json([_json(status, times) for status in statuses])
        return
    if not statuses:
        typer.echo("no schedules configured (add a [schedules.NAME] table to retryq.toml)")
        return
    headers = ["NAME", "CRON", "TZ", "WORKFLOW", "CLIENT", "NEXT", "LAST", "OUTCOME", "JOB"]
    rows = [
        [
            status.schedule.name,
            status.schedule.cron,
            status.schedule.zone_name,
            status.schedule.workflow,
            status.schedule.client_id,
            "none" if status.next is None else times(status.next),
            "-" if status.record is None or status.record.last is None else times(status.record.last),
            status.last_outcome,
            (status.record.job or "-")[:8] if status.record is not None else "-",
        ]
        for status in statuses
    ]
    print_table(headers, rows)


def _json(status: ScheduleStatus, times: TimeFormat) -> dict[str, Any]:
    data = status.to_json_dict()
    if times.zone is not None:  # display_tz (or --local): the next occurrence there too, with its offset
        data["nextLocal"] = None if status.next is None else status.next.astimezone(times.zone).isoformat()
    return data
