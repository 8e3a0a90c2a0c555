"""The ``retryq`` command: parse arguments, call the library, format what it returns.

Every error the library raises becomes one line on stderr and the exit code docs/troubleshooting.md lists;
no traceback reaches the user. The library never imports this package.

``main`` imports only the command it runs (see ``COMMANDS`` in ``_app``); ``app`` is the typer
application with every command registered, for tests and for embedding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._app import main

if TYPE_CHECKING:
    from ._app import app

__all__ = ["app", "main"]


def __getattr__(name: str) -> Any:
    if name == "app":
        from ._app import load_commands

        return load_commands()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
