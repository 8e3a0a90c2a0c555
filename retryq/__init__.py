"""retryq: a file-backed deferred retry queue driven by cron.

A fetcher that finds data missing schedules a re-run; a ``*/5`` cron entry runs
``retryq process``, which runs it when due, again if still incomplete, and gives up after
``max_attempts``::

    from retryq import RetryQueue

    RetryQueue().schedule("balthazar", "2025-12-19", 60)
"""

from __future__ import annotations

__version__ = "0.1.0"

import importlib
from functools import cache
from pathlib import Path
from typing import Any


@cache
def _exports() -> dict[str, str]:
    """Each public name and its module, as ``__init__.pyi`` lists them (the one list of the package).

    Names are imported on first use, so that `retryq schedule` does not pay for the processor,
    and `import retryq` stays cheap for a fetcher that only schedules.
    """
    import ast

    stub = ast.parse(Path(__file__).with_suffix(".pyi").read_text(encoding="utf-8"))
    return {
        alias.asname or alias.name: node.module or ""
        for node in stub.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }


def __getattr__(name: str) -> Any:
    if name == "__all__":
        return sorted([*_exports(), "__version__"])
    module = _exports().get(name)
    if module is None:
        raise AttributeError(f"module 'retryq' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*_exports(), "__version__"])
