"""The kinds of value a setting takes: how one is read, bounded, shown and named to users.

One parser per kind serves ``retryq.toml``, the ``RETRYQ_*`` variables and the command line alike,
so that a value means the same wherever it is given (a bare number of seconds, ``"5m"``, ``true``).
A value that does not fit raises :class:`Invalid` with a message that the caller prefixes with the
key (and the file or the option), for one line.

Nothing here imports the job model: the command line reads these for its help, which must start fast.
"""

from __future__ import annotations

__all__ = [
    "Choice",
    "Command",
    "Count",
    "CronExpression",
    "Delay",
    "Duration",
    "ExitCodes",
    "FilePath",
    "Invalid",
    "KeepDays",
    "Kind",
    "Number",
    "QueueAddress",
    "Switch",
    "Text",
    "Variables",
    "Words",
    "Zone",
    "ZoneName",
    "said",
]

import re
from collections.abc import Mapping
from datetime import timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

from ..record.errors import InvalidInput
from ..record.timeutil import format_duration, named_zone, parse_duration

if TYPE_CHECKING:
    from ..record.inconsistency import DelayPolicy
    from ..record.models import JobStatus

T = TypeVar("T")

#: What may appear inside a workflow command's argv items, replaced per job.
PLACEHOLDERS = ("client", "date", "attempt", "job_id", "workflow")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_WHOLE = re.compile(r"\s*[+-]?\d+\s*")


def said(value: object) -> str:
    """``value`` as a message shows it: as TOML writes booleans (``true``), else as Python's repr."""
    return ("true" if value else "false") if isinstance(value, bool) else repr(value)


class Invalid(ValueError):
    """A value a setting refuses: why, and where inside the value (``("strategy",)`` in a table)."""

    def __init__(self, message: str, path: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.path = path


class Kind(Generic[T]):
    """What a setting's values are. ``parse`` takes the value as TOML gives it, or as text (a variable,
    an option); ``anchor`` makes a value read from a file relative to that file where that matters."""

    #: How the reference names the kind, and the placeholder the command line shows for a value.
    name = "value"
    metavar = "VALUE"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"

    def parse(self, value: object) -> T:
        raise NotImplementedError

    def anchor(self, value: T, base: Path) -> T:
        return value

    def merge(self, top: object, own: object) -> object:
        """What a workflow gets of a setting whose table adds to the top level's (``merged``): the top
        level's keys, then its own (None where a level does not give it)."""
        return {**(top or {}), **(own or {})}  # type: ignore[dict-item]

    def bounds(self) -> str:
        """The values allowed, in words (``1 to 256``), or "" when the kind says it all."""
        return ""

    def show(self, value: object) -> str:
        """A value as a user would write it on the command line: ``5m``, ``7``, ``true``."""
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, timedelta):
            return format_duration(value)
        if isinstance(value, (list, tuple)):
            return "[" + ", ".join(self.show(item) for item in value) + "]"
        return str(value)


def _spaced(bounds: str) -> str:
    return f" {bounds}" if bounds.startswith("from") else f", {bounds}"


def _refuse(expected: str, value: object) -> Invalid:
    return Invalid(f"expected {expected}, not {said(value)}")


class Count(Kind[int]):
    """A whole number from ``minimum`` to ``maximum`` (no maximum when None)."""

    name = "integer"
    metavar = "N"

    def __init__(self, minimum: int, maximum: int | None = None, unit: str = "") -> None:
        self.minimum, self.maximum, self.unit = minimum, maximum, unit

    def parse(self, value: object) -> int:
        number = int(value) if isinstance(value, str) and _WHOLE.fullmatch(value) else value
        if isinstance(number, bool) or not isinstance(number, int) or not self._fits(number):
            raise Invalid(f"must be a whole number{self._unit()}{_spaced(self.bounds())}, not {said(value)}")
        return number

    def _fits(self, number: int) -> bool:
        return self.minimum <= number and (self.maximum is None or number <= self.maximum)

    def _unit(self) -> str:
        return f" of {self.unit}" if self.unit else ""

    def bounds(self) -> str:
        return f"at least {self.minimum}" if self.maximum is None else f"from {self.minimum} to {self.maximum}"


class Number(Kind[float]):
    """A number, whole or not, from ``minimum`` to ``maximum``."""

    name = "number"
    metavar = "X"

    def __init__(self, minimum: float, maximum: float | None = None) -> None:
        self.minimum, self.maximum = minimum, maximum

    def parse(self, value: object) -> float:
        number: object = value
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                raise _refuse("a number", value) from None
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise _refuse("a number", value)
        if not (self.minimum <= number and (self.maximum is None or number <= self.maximum)):
            raise Invalid(f"must be a number{_spaced(self.bounds())}, not {said(value)}")
        return float(number)

    def bounds(self) -> str:
        low = f"{self.minimum:g}"
        return f"at least {low}" if self.maximum is None else f"from {low} to {self.maximum:g}"


class Duration(Kind[timedelta]):
    """A duration: a number of seconds, or ``90s``, ``5m``, ``2h``, ``1h30m``, ``1d``."""

    name = "duration"
    metavar = "DURATION"

    def __init__(self, maximum: timedelta | None = None, *, positive: bool = False) -> None:
        self.maximum, self.positive = maximum, positive

    def parse(self, value: object) -> timedelta:
        if not isinstance(value, (str, int, float, timedelta)) or isinstance(value, bool):
            raise Invalid(f"not a duration: {said(value)} (examples: 300, 90s, 5m, 1h)")
        try:
            duration = parse_duration(value, unit="s")
        except InvalidInput as error:
            raise Invalid(str(error)) from None
        if self.positive and duration <= timedelta(0):
            raise Invalid(f"must be more than 0 seconds, not {said(value)}")
        if self.maximum is not None and duration > self.maximum:
            raise Invalid(f"must be at most {format_duration(self.maximum)}, not {said(value)}")
        return duration

    def bounds(self) -> str:
        low = "more than 0" if self.positive else ""
        high = f"at most {format_duration(self.maximum)}" if self.maximum is not None else ""
        return ", ".join(part for part in (low, high) if part)


class Switch(Kind[bool]):
    """``true`` or ``false`` (as text also ``1``/``0``, ``yes``/``no``, ``on``/``off``)."""

    name = "boolean"
    metavar = "BOOL"

    def parse(self, value: object) -> bool:
        if isinstance(value, bool):
            return value
        word = value.strip().lower() if isinstance(value, str) else None
        if word in ("true", "1", "yes", "on"):
            return True
        if word in ("false", "0", "no", "off"):
            return False
        raise _refuse("true or false", value)


class Text(Kind[str]):
    """A string; with ``pattern``, one that matches it, as ``rule`` says in words."""

    name = "string"

    def __init__(self, pattern: str = "", rule: str = "", *, metavar: str = "TEXT") -> None:
        self.pattern, self.rule, self.metavar = pattern, rule, metavar

    def parse(self, value: object) -> str:
        if not isinstance(value, str):
            raise _refuse("a string", value)
        if self.pattern and not re.fullmatch(self.pattern, value):
            raise Invalid(f"must be {self.rule}, not {said(value)}")
        return value

    def bounds(self) -> str:
        return self.rule


class Choice(Kind[str]):
    """One of a few words."""

    name = "string"
    metavar = "NAME"

    def __init__(self, choices: tuple[str, ...]) -> None:
        self.choices = choices

    def parse(self, value: object) -> str:
        if value not in self.choices:
            raise Invalid(f"must be one of {', '.join(self.choices)}, not {said(value)}")
        assert isinstance(value, str)
        return value

    def bounds(self) -> str:
        return " | ".join(self.choices)


class QueueAddress(Kind[str]):
    """Where the jobs are: a file path (from a file, relative to it) or a URL, kept as written."""

    name = "path or URL"
    metavar = "PATH-OR-URL"

    def parse(self, value: object) -> str:
        if not isinstance(value, str) or not value:
            raise _refuse("a file path or a URL", value)
        return value

    def anchor(self, value: str, base: Path) -> str:
        from .address import looks_like_url

        return value if looks_like_url(value) else str(base / value)


class FilePath(Kind[Path]):
    """A file to write; from a file, relative to it."""

    name = "path"
    metavar = "PATH"

    def parse(self, value: object) -> Path:
        if isinstance(value, Path):
            return value
        if not isinstance(value, str) or not value:
            raise _refuse("a file path", value)
        return Path(value)

    def anchor(self, value: Path, base: Path) -> Path:
        return base / value


class Zone(Kind[tzinfo]):
    """A time zone by name."""

    name = "time zone"
    metavar = "ZONE"

    def parse(self, value: object) -> tzinfo:
        zone = named_zone(value) if isinstance(value, str) and value else None
        if zone is None:
            raise Invalid(f"unknown time zone {said(value)} (for example 'Europe/Paris')")
        return zone


class ZoneName(Kind[str]):
    """A time zone by name, kept as its name (a schedule's record in the queue says which zone it was read in)."""

    name = "time zone"
    metavar = "ZONE"

    def parse(self, value: object) -> str:
        if not isinstance(value, str) or not value or named_zone(value) is None:
            raise Invalid(f"unknown time zone {said(value)} (for example 'Europe/Paris')")
        return value


class CronExpression(Kind[str]):
    """Five cron fields: minute, hour, day of month, month and day of week (ranges, steps, names)."""

    name = "cron expression"
    metavar = "CRON"

    def parse(self, value: object) -> str:
        from ..record.occurrences import check_cron  # here: cronsim only for a configuration with schedules

        try:
            return check_cron(value)
        except InvalidInput as error:
            raise Invalid(str(error)) from None

    def bounds(self) -> str:
        return "minute hour day-of-month month day-of-week"


def _strings(value: object, expected: str) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
        raise _refuse(expected, value)
    return tuple(value)


class Words(Kind["tuple[str, ...] | None"]):
    """An argv: an array of strings, run without a shell; an empty one means none."""

    name = "array of strings"
    metavar = "ARGV"

    def parse(self, value: object) -> tuple[str, ...] | None:
        return _strings(value, "an array of strings") or None


class Command(Kind["tuple[str, ...]"]):
    """A workflow command: an argv array, or one string split as this system's programs split theirs
    (never by a shell); only the known ``{placeholders}``."""

    name = "array of strings, or a string"
    metavar = "COMMAND"

    def parse(self, value: object) -> tuple[str, ...]:
        from .commandline import split_command

        if isinstance(value, str):
            try:
                argv = tuple(split_command(value))
            except ValueError as error:
                raise Invalid(f"cannot split the command: {error}") from None
        else:
            argv = _strings(value, "an array of strings or a string")
        if not argv or not argv[0]:
            raise Invalid("the command is empty")
        for item in argv:
            for name in _PLACEHOLDER.findall(item):
                if name not in PLACEHOLDERS:
                    known = ", ".join("{" + known + "}" for known in PLACEHOLDERS)
                    raise Invalid(f"unknown placeholder {{{name}}} (known: {known})")
        return argv


class Variables(Kind["Mapping[str, str]"]):
    """Environment variables: a table of strings."""

    name = "table of strings"
    metavar = "TABLE"

    def parse(self, value: object) -> Mapping[str, str]:
        if not isinstance(value, Mapping):
            raise _refuse("a table of strings", value)
        for key, item in value.items():
            if not isinstance(item, str):
                raise Invalid(f"expected a string, not {said(item)}", (str(key),))
        return dict(value)


class ExitCodes(Kind["frozenset[int]"]):
    """Exit codes, 0 to 255."""

    name = "array of integers"
    metavar = "CODES"

    def parse(self, value: object) -> frozenset[int]:
        if not isinstance(value, (list, tuple)):
            raise _refuse("an array of exit codes", value)
        code = Count(0, 255)
        return frozenset(code.parse(item) for item in value)

    def bounds(self) -> str:
        return "each from 0 to 255"


class KeepDays(Kind["Mapping[JobStatus, int]"]):
    """Days to keep finished jobs: one number for every status, or a table per status."""

    name = "integer, or a table per status"
    metavar = "DAYS"

    def __init__(self, maximum: int, default: int) -> None:
        self.maximum, self.default = maximum, default

    def parse(self, value: object) -> Mapping[JobStatus, int]:
        from ..record.models import JobStatus

        statuses = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
        days = Count(0, self.maximum, "days")
        if not isinstance(value, Mapping):
            return dict.fromkeys(statuses, days.parse(value))
        kept = dict.fromkeys(statuses, self.default)
        names = [status.value for status in statuses]
        for key, given in value.items():
            if key not in names:
                raise Invalid(f"unknown status {key!r} (known: {', '.join(names)})")
            try:
                kept[JobStatus(key)] = days.parse(given)
            except Invalid as error:
                raise Invalid(str(error), (key,)) from None
        return kept

    def bounds(self) -> str:
        return f"from 0 to {self.maximum}"


class Delay(Kind["DelayPolicy"]):
    """``[report] delay``: minutes or a duration, a table per status, or bands of the missing ratio."""

    name = "minutes, duration, table or array"
    metavar = "DELAY"

    def parse(self, value: object) -> DelayPolicy:
        from ..record.inconsistency import parse_delay_policy

        try:
            return parse_delay_policy(value)
        except InvalidInput as error:
            raise Invalid(str(error)) from None
