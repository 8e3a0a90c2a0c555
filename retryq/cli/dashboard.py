"""The dashboard command: one HTML page about the queue and its archive, written to a file or served."""

from __future__ import annotations

import gc
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from ..record.errors import ExitCode
from ..record.timeutil import parse_duration, utcnow
from ..settings.kinds import Count
from ._app import ChainsSinceOption, ClientFilterOption, WorkflowFilterOption, app, fail, open_queue, warn_invalid
from ._options import parser

PortOption = Annotated[
    int,
    typer.Option(
        "--port", metavar="PORT", parser=parser(Count(0, 65535)), help="Port for --serve, 0 to 65535 (0: any free)."
    ),
]
RefreshOption = Annotated[
    str | None,
    typer.Option(
        "--refresh",
        metavar="DURATION",
        help="Reload the page this often: 30s, 5m; 0 never [default: 60s with --serve, else never].",
    ),
]
TailsOption = Annotated[
    bool | None,
    typer.Option(
        "--tails/--no-tails",
        help="Show what failed workflows printed last (their output tails) [default: dashboard_tails, true].",
        show_default=False,
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        metavar="TOKEN",
        envvar="RETRYQ_DASHBOARD_TOKEN",
        help="With --serve: answer only requests that bring this token (?token=… or Authorization: Bearer …); "
        "prefer $RETRYQ_DASHBOARD_TOKEN, which other users cannot see in the process list.",
        show_default=False,
        show_envvar=False,
    ),
]


@app.command()
def dashboard(
    ctx: typer.Context,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="PATH", help="Write the page to this file (replaced atomically)."),
    ] = None,
    serve: Annotated[bool, typer.Option("--serve", help="Serve the page on 127.0.0.1 until Ctrl-C.")] = False,
    port: PortOption = 8080,
    refresh: RefreshOption = None,
    tails: TailsOption = None,
    token: TokenOption = None,
    since: ChainsSinceOption = None,
    client: ClientFilterOption = None,
    workflow: WorkflowFilterOption = None,
) -> None:
    """One HTML page about the queue: how retries resolve, open and failed jobs, health.

    The figures are those of `retryq stats --json` for the same filters; the page makes no
    request to any host. Needs the dashboard extra: pip install 'retryq[dashboard]'.

    \b
    Example:
        retryq dashboard --output report.html --since 30d --no-tails
        retryq dashboard --serve --port 8080
        RETRYQ_DASHBOARD_TOKEN=5f0c2e91 retryq dashboard --serve   # http://127.0.0.1:8080/?token=5f0c2e91
    """
    if (output is None) == (not serve):
        fail("give either --output FILE or --serve (see 'retryq dashboard --help')", ExitCode.USAGE)
    if output is not None and str(output) in ("", "."):  # typer reads an empty --output as the directory "."
        fail("--output needs a file name, such as dashboard.html", ExitCode.USAGE)
    if token is not None and not token.strip():
        fail("the dashboard token is empty (--token or RETRYQ_DASHBOARD_TOKEN)", ExitCode.USAGE)
    from ..reporting.dashboard import DashboardData, collect, page_mode, render, write_dashboard

    queue = open_queue(ctx)
    warn_invalid(queue, "not shown")
    show_tails = queue.config.dashboard_tails if tails is None else tails
    window = parse_duration(since, unit="d") if since is not None else None
    if refresh is None:
        every = None if output is not None else timedelta(seconds=60)  # a served page is watched: keep it fresh
    else:
        every = parse_duration(refresh) or None  # 0 means never

    def gather() -> DashboardData:
        return collect(queue.config, queue.store, now=utcnow(), since=window, client=client, workflow=workflow)

    if output is not None:
        write_dashboard(output, gather(), refresh=every, mode=page_mode(queue.config, queue.store), tails=show_tails)
        typer.echo(f"wrote {output}")
        return

    def build() -> str:
        return render(gather(), refresh=every, tails=show_tails)

    _serve(build, queue.store.location, port, token.strip() if token else None)


def _serve(build: Callable[[], str], location: str, port: int, token: str | None) -> None:
    """Serve the page ``build`` renders until a signal stops the server, then exit 128 + its number."""
    from ..reporting.dashboard import serve

    build()  # a missing extra or a corrupt queue stops the command here, before it listens
    gc.enable()  # the server may run for days: its garbage is collected as usual

    def ready(url: str) -> None:
        typer.echo(f"serving the dashboard of {location} at {url} (Ctrl-C to stop)")

    signum = serve(build, port=port, on_ready=ready, token=token)
    typer.echo("dashboard server stopped")
    raise typer.Exit(ExitCode.of_signal(signum))
