"""Commands about upstream incidents and pauses: incidents, pause, resume."""

from __future__ import annotations

from typing import Annotated

import typer

from ..record.errors import InvalidInput
from ..record.text import plural
from ..record.timeutil import format_utc, parse_duration, utcnow
from ._app import JsonOption, app, echo_json, open_queue
from ._output import print_table

WorkflowArgument = Annotated[str, typer.Argument(metavar="WORKFLOW", help="A workflow named in the config.")]


@app.command()
def incidents(
    ctx: typer.Context,
    show_all: Annotated[
        bool, typer.Option("--all", help="Also the incidents closed lately (20 per workflow).")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Upstream incidents: the open ones (with --all, the closed ones too), and the paused workflows.

    An incident opens when many jobs of one workflow fail at once (see [breaker] in the
    configuration): its retries are held, one job runs as a probe now and then, a probe that
    succeeds closes it, and no attempt is burnt by the outage. HELD is the jobs an open incident
    holds now (for a closed one, the most it held at once).

    \b
    Example:
        retryq incidents
        retryq incidents --all --json | jq '.incidents[] | select(.closedBy == "max_open")'
    """
    from ..reporting.incidents import describe_pause, pause_json, read_states

    queue = open_queue(ctx)
    now = utcnow()
    found = queue.incidents(closed=show_all, now=now)
    reading = read_states(queue.store)
    paused = {name: state.pause for name, state in reading.states.items() if state.pause and state.pause.holds(now)}
    if as_json:
        echo_json(
            {
                "incidents": [each.to_json_dict() for each in found],
                "paused": {name: pause_json(pause) for name, pause in paused.items() if pause is not None},
            }
        )
        return
    for key, problem in reading.unreadable.items():
        typer.echo(f"retryq: warning: state document {key}: {problem}", err=True)
    if not found:
        typer.echo(f"no {'' if show_all else 'open '}incident in {queue.store.location}")
    else:
        headers = ["ID", "WORKFLOW", "OPENED", "CLOSED", "HOW", "FAILURES", "HELD", "PROBES", "GIVEN BACK", "SEEN"]
        rows = [
            [
                each.id,
                each.workflow,
                format_utc(each.opened_at),
                "open" if each.closed_at is None else format_utc(each.closed_at),
                each.closed_by or "",
                str(each.failures),
                str(each.held),
                str(each.probes),
                str(each.given_back),
                ", ".join(f"{what} ×{count}" for what, count in each.seen.items()),
            ]
            for each in found
        ]
        print_table(headers, rows)
    for name, pause in paused.items():
        typer.echo(f"paused: workflow {name} {describe_pause(pause)}")


@app.command()
def pause(
    ctx: typer.Context,
    workflow: WorkflowArgument,
    duration: Annotated[
        str | None,
        typer.Option(
            "--for", metavar="DURATION", help="End the pause by itself after this long (at most 30d): 30m, 2h, 1d."
        ),
    ] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", metavar="TEXT", help="Why, for whoever looks (list, doctor, incidents).")
    ] = None,
) -> None:
    """Hold a workflow's retries on every host, until `retryq resume` (or --for ends it).

    Its due jobs stay pending, their attempts untouched; none starts, and no probe is sent. A
    running job finishes as usual. Pausing again replaces the pause.

    \b
    Example:
        retryq pause boamp --for 2h --reason "BOAMP maintenance 14:00-16:00"
    """
    queue = open_queue(ctx)
    now = utcnow()
    until = None
    if duration is not None:
        span = parse_duration(duration, unit="m")
        if span.total_seconds() <= 0:
            raise InvalidInput(f"--for must be more than 0, not {duration!r}")
        until = now + span
    held = queue.pause(workflow, until=until, reason=reason, now=now)
    name = queue.config.workflow(workflow).name
    from ..reporting.incidents import describe_pause

    typer.echo(f"paused workflow {name} {describe_pause(held)}")


@app.command()
def resume(ctx: typer.Context, workflow: WorkflowArgument) -> None:
    """Run a workflow's retries again: lift its pause, and close its open incident (the upstream is back).

    Its held jobs are due at once: the next `retryq process` runs them.

    \b
    Example:
        retryq resume boamp
    """
    queue = open_queue(ctx)
    lifted, closed = queue.resume(workflow)
    name = queue.config.workflow(workflow).name
    done = []
    if lifted is not None:
        done.append("pause lifted")
    if closed is not None:
        done.append(f"incident {closed.id} closed ({plural(closed.given_back, 'attempt')} given back)")
    typer.echo(
        f"resumed workflow {name}: {'; '.join(done)}" if done else f"workflow {name} was not held: nothing to do"
    )
