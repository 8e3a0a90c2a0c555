"""The dashboard: one self-contained HTML page about the queue and its archive.

``collect`` gathers what the page shows from any store, ``render`` turns it into HTML (it needs
the ``dashboard`` extra: Jinja2), ``write_dashboard`` renders it into a file replaced atomically,
and ``serve`` serves the page on the loopback interface::

    from retryq.dashboard import collect, write_dashboard

    write_dashboard("report.html", collect(queue.config, queue.store, now=utcnow()))

Nothing here is imported by ``import retryq`` or by the other commands.
"""

from __future__ import annotations

__all__ = ["DashboardData", "collect", "page_mode", "render", "serve", "write_dashboard"]

from typing import TYPE_CHECKING, Any

from .data import DashboardData, collect, page_mode
from .page import render, write_dashboard

if TYPE_CHECKING:
    from .server import serve


def __getattr__(name: str) -> Any:
    # The HTTP server is imported on first use: writing the page after a `process` run does not need it.
    if name == "serve":
        from .server import serve

        return serve
    raise AttributeError(f"module 'retryq.reporting.dashboard' has no attribute {name!r}")
