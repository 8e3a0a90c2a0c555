"""procrastinate as a peer: a task deferred with ``schedule_in``, and a worker whose task runs `true`.

The app lives in a schema of its own (the URL's ``options=-csearch_path=…``, set on every
connection of its pool), on the same server as retryq's. Its task starts `true` as retryq's
runner starts a workflow (own session, output piped) and fails if it fails; it is a coroutine,
so that a worker of concurrency 4 runs four at once on its event loop, as procrastinate advises
for asynchronous tasks.
"""

from __future__ import annotations

import asyncio
from typing import Any

from procrastinate import App, PsycopgConnector


def open_app(url: str) -> tuple[Any, Any]:
    """The app on ``url`` (not yet opened) and its one task, named so that any process finds it."""
    app = App(connector=PsycopgConnector(conninfo=url))

    @app.task(name="run_true")
    async def run_true(client: str, date: str) -> None:
        """Run the workflow `true`, as retryq would for ``client`` and ``date``."""
        process = await asyncio.create_subprocess_exec(
            "true",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"true exited {process.returncode}")

    return app, run_true
