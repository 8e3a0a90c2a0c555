"""The configuration reference, in markdown, rendered from the settings' declaration.

``docs/configuration.md`` is this page (a test keeps it current); ``make config-reference``, or
``python -m retryq.settings.reference > docs/configuration.md``, writes it again.
"""

from __future__ import annotations

__all__ = ["markdown", "toml"]

import sys
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from ..record.timeutil import format_duration
from .declaration import BACKOFF_KEYS, BREAKER_KEYS, PER_WORKFLOW, REPORT, SCHEDULE, TOP_LEVEL
from .setting import Setting

_INTRO = """\
# Configuration reference

<!-- Generated from retryq/settings/declaration.py by `make config-reference`: edit the declaration, not this page. -->

retryq reads `retryq.toml` in the working directory, else `[tool.retryq]` in `pyproject.toml`, or
the file that `--config` or `$RETRYQ_CONFIG` names. Every key is optional. Where a key can be given
in several ways, the last of these wins: the default, the file, its environment variable, its
command-line option. A path in the file is relative to the file. A duration is a number of seconds
or a string with a unit: `"90s"`, `"5m"`, `"2h"`, `"1h30m"`, `"1d"`. A key retryq does not know is
an error (exit 78, with the closest known key), as is a value out of bounds: a typo never falls back
to a default in silence. The [configuration guide](configuration-guide.md) shows how the pieces fit.
"""

_SECTIONS: Sequence[tuple[str, str, Sequence[Setting[Any]]]] = (
    ("The top level", "Settings of the whole queue, written before any `[table]`.", TOP_LEVEL),
    (
        "Each workflow: the top level, `[workflow]` and `[workflows.NAME]`",
        "At the top level, a key applies to every workflow; in `[workflow]` (the default workflow) or "
        "`[workflows.NAME]`, to that workflow, over the top level's value. `command` and a workflow's own "
        "`concurrency` are set in a workflow's table only.",
        PER_WORKFLOW,
    ),
    ("`[report]`", "How `retryq report` and `report_fetch()` judge a fetch.", REPORT),
    (
        "Backoff tables",
        "`[backoff]` at the top level, or `backoff = { … }` in a workflow's table: the whole table is "
        "that workflow's (keys left out take these defaults, not the top level's).",
        BACKOFF_KEYS,
    ),
    (
        "Breaker tables",
        "`[breaker]` at the top level, or `breaker = { … }` in a workflow's table, which changes the top "
        "level's key by key (`breaker = false` turns it off for that workflow): see "
        "[Incidents and pauses](incidents.md).",
        BREAKER_KEYS,
    ),
    (
        "`[schedules.NAME]`",
        "A recurring job the queue enqueues itself: `process` and `worker` enqueue each occurrence once, across "
        "processes and hosts, as a job of its workflow for `client` and the occurrence's date "
        "(see [Recurring jobs and priorities](recurring.md)). `NAME` follows the rule of client ids.",
        SCHEDULE,
    ),
)
_COLUMNS = ("Key", "Type", "Default", "Allowed", "Variable", "Option", "Description")


def toml(value: Any) -> str:
    """``value`` in TOML, as a user writes it in ``retryq.toml``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, timedelta):
        return f'"{format_duration(value)}"'
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{key} = {toml(item)}" for key, item in value.items()) + " }" if value else "{}"
    return str(value)


def markdown() -> str:
    """The whole reference page: every key, its table, type, default, bounds, variable, option and help."""
    parts = [_INTRO]
    for title, text, settings in _SECTIONS:
        parts.append(f"\n## {title}\n\n{text}\n\n")
        parts.append("| " + " | ".join(_COLUMNS) + " |\n")
        parts.append("|" + " --- |" * len(_COLUMNS) + "\n")
        parts.extend("| " + " | ".join(_cell(cell) for cell in _row(setting)) + " |\n" for setting in settings)
    return "".join(parts)


def _row(setting: Setting[Any]) -> tuple[str, ...]:
    key = f"`{setting.key}`" + "".join(f" (or `{alias}`)" for alias in setting.aliases)
    default = f"`{toml(setting.default)}`" if setting.default is not None else f"*{setting.unset}*"
    variables = ", ".join(f"`{name}`" for name in setting.env)
    option = ""
    if setting.option:
        commands = "every command" if setting.commands == ("*",) else ", ".join(setting.commands)
        option = ", ".join(f"`{name}`" for name in setting.option) + f" ({commands})"
    kind = setting.kind
    example = f"Example: `{setting.key} = {toml(setting.example)}`."
    return (key, kind.name, default, kind.bounds(), variables, option, f"{setting.help} {example}")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


if __name__ == "__main__":
    sys.stdout.write(markdown())
