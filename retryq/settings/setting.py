"""What a setting is: its key, kind, scope, default and help, and how a table of them is read.

The settings themselves are declared in :mod:`retryq.settings.declaration`.
"""

from __future__ import annotations

__all__ = ["Scope", "Setting", "SwitchedTable", "Table", "read_table"]

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .kinds import Invalid, Kind

T = TypeVar("T")


class Scope(enum.Enum):
    """Where a key is written, and what it sets."""

    TOP = "top level"  # Config: once for the whole queue
    #: WorkflowSettings: a workflow's own value, else the top level's, else the default.
    SHARED = "top level or a workflow"
    WORKFLOW = "a workflow"  # WorkflowSettings: in [workflow] or [workflows.NAME] only
    REPORT = "[report]"  # InconsistencyThresholds
    BACKOFF = "a backoff table"  # the strategy a `backoff` value builds
    BREAKER = "a breaker table"  # the breaker a `breaker` value builds
    SCHEDULE = "a schedule"  # Schedule: in [schedules.NAME] only


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: each is declared once
class Setting(Generic[T]):
    """One key of ``retryq.toml``, and everything else that sets or describes it."""

    key: str
    kind: Kind[T]
    scope: Scope
    #: What it does, for a user: the reference's description, and the option's help unless ``option_help``.
    help: str
    #: The default as a user would write it (None: not set; ``unset`` then says what that means).
    default: object = None
    unset: str = ""
    #: A value worth showing (tests set each setting to its example).
    example: object = None
    #: The attribute of Config, WorkflowSettings or InconsistencyThresholds it resolves into (default: the key).
    attribute: str = ""
    #: Other keys meaning the same (the first key given wins; two are an error).
    aliases: tuple[str, ...] = ()
    #: Variables that override the file, the first set one winning.
    env: tuple[str, ...] = ()
    #: The command-line option that overrides it, and the commands that have it ("*": every command).
    option: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()
    option_help: str = ""
    #: What the option takes when it is not what the file takes (--keep-days: one number of days).
    option_kind: Kind[Any] | None = None
    #: The workflow's table adds to the top level's instead of replacing it.
    merged: bool = False

    @property
    def name(self) -> str:
        return self.attribute or self.key

    def value(self) -> T:
        """The default, parsed (a fresh object each time: the dataclasses use it as a default factory)."""
        if self.default is None:
            raise ValueError(f"{self.key} has no default value: {self.unset}")
        return self.kind.parse(self.default)

    def option_default(self) -> str:
        """What applies when the option is not given, for its help: variables, the configuration, the default."""
        sources = [f"${name}" for name in self.env]
        place = "[report] " if self.scope is Scope.REPORT else ""
        sources.append(f"{place}{self.key} in the configuration")
        shown = self.kind.show(self.default) if self.default is not None else self.unset
        return ", else ".join([*sources, shown])


class Table(Kind[T]):
    """A table of keys of its own (a backoff table), built into one value."""

    name = "table"
    metavar = "TABLE"

    def __init__(self, keys: tuple[Setting[Any], ...], build: Callable[[dict[str, Any]], T], label: str) -> None:
        self.keys, self.build, self.label = keys, build, label

    def parse(self, value: object) -> T:
        return self.build(read_table(value, self.keys, self.label))

    def bounds(self) -> str:
        return "the keys of " + self.label


class SwitchedTable(Kind[Any]):
    """A table of keys of its own that is off unless given: ``false`` turns it off, ``true`` (or a table)
    on; a workflow's table changes the top level's key by key. Parsed, a value is what was given (a
    table of the keys given, or a switch); :meth:`merge` builds a workflow's (None: off)."""

    name = "table, or false"
    metavar = "TABLE"

    def __init__(self, keys: tuple[Setting[Any], ...], build: Callable[[dict[str, Any]], Any], label: str) -> None:
        self.keys, self.build, self.label = keys, build, label

    def parse(self, value: object) -> dict[str, Any] | bool:
        if isinstance(value, bool):
            return value
        return read_table(value, self.keys, self.label)

    def merge(self, top: object, own: object) -> Any:
        if own is False or (own is None and top in (None, False)):
            return None
        given = {**(top if isinstance(top, dict) else {}), **(own if isinstance(own, dict) else {})}
        return self.build({setting.key: given.get(setting.key, setting.value()) for setting in self.keys})

    def bounds(self) -> str:
        return f"the keys of {self.label}, true or false"

    def show(self, value: object) -> str:
        return str(value).lower() if isinstance(value, bool) else super().show(value)


def read_table(
    data: object,
    settings: Sequence[Setting[Any]],
    table: str,
    tables: Sequence[str] = (),
    everywhere: Sequence[Setting[Any]] = (),
) -> dict[str, Any]:
    """The values of ``table`` (``[report]``), parsed, by key (aliases under their key).

    ``tables`` are the sub-tables the caller reads itself. Raises :class:`Invalid` naming the key:
    an unknown one gets a suggestion, or where it belongs if it is a key of ``everywhere`` elsewhere.
    """
    if not isinstance(data, Mapping):
        raise Invalid(f"expected a table, not {data!r}")
    by_key = {name: setting for setting in settings for name in (setting.key, *setting.aliases)}
    values: dict[str, Any] = {}
    given_as: dict[str, str] = {}
    for key, value in data.items():
        if key in tables:
            continue
        setting = by_key.get(key)
        if setting is None:
            raise Invalid(_unknown(key, table, [*by_key, *tables], everywhere), (key,))
        if setting.key in given_as:
            raise Invalid(f"give `{given_as[setting.key]}` or `{key}`, not both", (key,))
        given_as[setting.key] = key
        try:
            values[setting.key] = setting.kind.parse(value)
        except Invalid as error:
            raise Invalid(str(error), (key, *error.path)) from None
        except ValueError as error:  # a library check below the kinds (a backoff's own)
            raise Invalid(str(error), (key,)) from None
    return values


def _unknown(key: str, table: str, known: Sequence[str], everywhere: Sequence[Setting[Any]]) -> str:
    elsewhere = [_place(setting.scope) for setting in everywhere if setting.key == key]
    if elsewhere:
        return f"not a key of {table}: `{key}` is set in {' or '.join(elsewhere)}"
    import difflib  # only when a key is wrong

    close = difflib.get_close_matches(key, known, n=1)
    return f"unknown key in {table}" + (f"; did you mean `{close[0]}`?" if close else "")


def _place(scope: Scope) -> str:
    return {
        Scope.TOP: "the top level only",
        Scope.SHARED: "the top level or a workflow",
        Scope.WORKFLOW: "[workflow] or [workflows.NAME]",
        Scope.REPORT: "[report]",
        Scope.BACKOFF: "a backoff table",
        Scope.BREAKER: "a breaker table ([breaker] or breaker = { … })",
        Scope.SCHEDULE: "[schedules.NAME]",
    }[scope]
