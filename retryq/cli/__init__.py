"""The ``retryq`` command: parse arguments, call the library, format what it returns.

Every error the library raises becomes one line on stderr and the exit code of the README;
no traceback reaches the user. The library never imports this package.
"""

from __future__ import annotations

# Importing the command modules registers their commands on the app, in this order in --help.
from . import adding, dashboard, health, jobs, running, transfer  # noqa: F401
from ._app import app, main

__all__ = ["app", "main"]
