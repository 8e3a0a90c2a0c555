"""UTC time helpers: the queue file's timestamp format, durations, and user-given times."""

from __future__ import annotations

__all__ = [
    "MAX_DELAY",
    "format_duration",
    "format_utc",
    "local_zone",
    "named_zone",
    "parse_delay",
    "parse_duration",
    "parse_utc",
    "parse_when",
    "span_in_words",
    "to_utc",
    "utcnow",
    "wait_in_words",
]

import os
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone, tzinfo

from .errors import InvalidInput
from .text import plural

#: The longest delay a job may be scheduled with; anything longer is almost surely a typo.
MAX_DELAY = timedelta(days=30)

_DURATION = re.compile(
    r"^(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m(?:in)?)?(?:(?P<s>\d+)s)?$",
)


_UNITS = {"s": "seconds", "m": "minutes", "d": "days"}
_EXAMPLES = {"s": "300, 90s, 5m, 1h", "m": "60, 90m, 2h, 1h30m", "d": "30, 30d, 12h"}


_ZERO = timedelta(0)


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC, to the millisecond (what the queue keeps: a job is
    the same in memory as once written and read back)."""
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def to_utc(value: datetime) -> datetime:
    """Convert an aware datetime to UTC, truncated to the millisecond the queue file keeps."""
    tz = value.tzinfo
    if tz is timezone.utc and not value.microsecond % 1000:
        return value  # what the queue holds (50,000 times in a 10,000-job queue): nothing to do
    if tz is None:
        raise InvalidInput(f"timestamp {value.isoformat()} has no time zone")
    if value.utcoffset() != _ZERO:
        value = value.astimezone(timezone.utc)
    return value.replace(tzinfo=timezone.utc, microsecond=value.microsecond // 1000 * 1000)


def format_utc(value: datetime) -> str:
    """Format as the queue file does: ``2025-12-19T10:00:00.000Z``."""
    if not value.microsecond % 1000:
        text = value.isoformat(timespec="milliseconds")
        if text.endswith("+00:00"):  # UTC already, whatever object spells its zone (a time read from a file)
            return text[:-6] + "Z"
    return to_utc(value).isoformat(timespec="milliseconds")[:-6] + "Z"  # "+00:00" → "Z"


def parse_utc(text: str) -> datetime:
    """Parse an ISO 8601 timestamp that carries a zone (``Z`` or ``+02:00``) into UTC."""
    try:
        # datetime.fromisoformat() accepts a trailing "Z" only from Python 3.11.
        value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        raise InvalidInput(f"not an ISO 8601 timestamp: {text!r}") from None
    return to_utc(value)


def parse_duration(text: str | int | float | timedelta, *, unit: str = "s") -> timedelta:
    """Parse ``90s``, ``5m``, ``2h``, ``1h30m``, ``7d``; a bare number is in ``unit`` (``s``, ``m`` or ``d``)."""
    try:
        value = _duration(text, unit)
    except InvalidInput:
        raise
    except (OverflowError, ValueError):  # timedelta's range ends at 999,999,999 days; NaN and inf have none
        raise InvalidInput(f"duration out of range: {text!r}") from None
    if value < timedelta(0):
        raise InvalidInput(f"duration must not be negative: {text!r}")
    return value


def _duration(text: str | int | float | timedelta, unit: str) -> timedelta:
    if isinstance(text, timedelta):
        return text
    if isinstance(text, bool):
        raise InvalidInput(f"not a duration: {text!r}")
    if isinstance(text, (int, float)):
        return timedelta(**{_UNITS[unit]: text})
    raw = text.strip().lower()
    if re.fullmatch(r"-?\d+(\.\d+)?", raw):
        return timedelta(**{_UNITS[unit]: float(raw)})
    match = _DURATION.match(raw)
    if not raw or match is None:
        raise InvalidInput(f"not a duration: {text!r} (examples: {_EXAMPLES[unit]})")
    parts = {k: int(v) for k, v in match.groupdict(default="0").items()}
    return timedelta(days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"])


def parse_delay(text: str | int | timedelta) -> int:
    """Parse a job delay into whole minutes: ``60`` (minutes), ``90m``, ``2h``, ``1h30m``; at most 30 days."""
    value = parse_duration(text, unit="m")
    if value > MAX_DELAY:
        raise InvalidInput(f"delay {text!r} is longer than the 30-day maximum")
    if value % timedelta(minutes=1):
        raise InvalidInput(f"delay {text!r} is not a whole number of minutes")
    return int(value // timedelta(minutes=1))


def parse_when(
    text: str,
    *,
    now: datetime,
    oldest: datetime | None = None,
    on_note: Callable[[str], object] | None = None,
) -> datetime:
    """Parse an absolute time given by a person (``2025-12-20 04:00``, ``04:00``); no zone means local time.

    A local time the clocks skip (daylight saving starts) is refused; one they show twice (it
    ends) takes the first and says so through ``on_note``, as does an invalid ``TZ``. An explicit
    offset or ``Z`` avoids both. Times more than 30 days ahead, or before ``oldest``, are refused.
    """
    from dateutil import parser, tz  # imported here: only `schedule --at` needs them

    zone, zone_name = local_zone(on_note)
    try:
        # What the text leaves out is taken from today at midnight: a date alone means 00:00.
        midnight = now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
        value = parser.parse(text, default=midnight)
        if value.tzinfo is None:
            value = value.replace(tzinfo=zone)
            if not tz.datetime_exists(value):
                jump = (value + timedelta(hours=3)).utcoffset() - (value - timedelta(hours=3)).utcoffset()  # type: ignore[operator]
                raise InvalidInput(
                    f"{text!r} does not exist in {zone_name}: the clocks jump forward {format_duration(jump)} "
                    "over it; give another time, or an explicit offset or Z"
                )
            if tz.datetime_ambiguous(value):
                first, second = tz.enfold(value, fold=0), tz.enfold(value, fold=1)
                if on_note is not None:
                    on_note(
                        f"{text!r} happens twice in {zone_name} (the clocks go back): taking the first, "
                        f"{format_utc(first)}; for the second ({format_utc(second)}) give its offset or Z"
                    )
                value = first
        result = to_utc(value)
    except (ValueError, OverflowError) as error:  # also the edges of the calendar: year 1, year 9999 with an offset
        if isinstance(error, InvalidInput):
            raise
        raise InvalidInput(f"not a date and time: {text!r} (example: '2025-12-20 04:00')") from None
    if result - now > MAX_DELAY:
        raise InvalidInput(f"time {text!r} is more than 30 days ahead")
    if oldest is not None and result < oldest:
        days = (now - oldest).days
        raise InvalidInput(
            f"time {text!r} ({format_utc(result)}) is more than {plural(days, 'day')} in the past (the retention of "
            "finished jobs): a retry that old is a typo"
        )
    return result


def named_zone(name: str) -> tzinfo | None:
    """The time zone called ``name`` (``Europe/Paris``, or a POSIX ``TZ`` string), None if there is none."""
    from dateutil import tz

    return tz.gettz(name)


def local_zone(on_note: Callable[[str], object] | None = None) -> tuple[tzinfo, str]:
    """This machine's zone and its name for messages: ``TZ`` when set, else /etc/localtime, else UTC.

    A ``TZ`` that names no zone is taken as UTC (as the C library does) and said through ``on_note``:
    a local time shown or read in the wrong zone is an hour or more off without a word.
    """
    from dateutil import tz

    name = os.environ.get("TZ")
    if name:
        zone = tz.gettz(name.removeprefix(":"))  # ":Europe/Paris" is the C library's form of the same
        if zone is None:
            if on_note is not None:
                on_note(f"TZ={name!r} is not a known time zone: local times are taken as UTC")
            return timezone.utc, "UTC"
        return zone, f"TZ={name}"
    zone = tz.gettz()
    return (zone, "the local time zone") if zone is not None else (timezone.utc, "UTC")


def format_duration(value: timedelta) -> str:
    """Format a duration compactly: ``1h30m``, ``45s``, ``0s``."""
    total = int(value.total_seconds())
    sign, total = ("-", -total) if total < 0 else ("", total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{n}{u}" for n, u in ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")) if n]
    return sign + ("".join(parts) or "0s")


def span_in_words(value: timedelta) -> str:
    """A span of time as a person says it, its two largest units: ``2 days 18 hours``, ``1 hour 30 minutes``."""
    minutes = round(abs(value).total_seconds() / 60)  # to the nearest: 10:00:02 to 04:00 two days on is 2 days 18 hours
    if not minutes:
        return "less than a minute"
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [plural(n, unit) for n, unit in ((days, "day"), (hours, "hour"), (minutes, "minute")) if n]
    return " ".join(parts[:2])


def wait_in_words(wait: timedelta, minutes: int) -> str:
    """How long until a job is due: ``in 60 minutes`` when that is its delay (``minutes``), else the wait
    itself (a time was given): ``in 2 days 18 hours``, or ``for now (the time given has passed)``."""
    if wait == timedelta(minutes=minutes):
        return f"in {plural(minutes, 'minute')}"
    return f"in {span_in_words(wait)}" if wait > _ZERO else "for now (the time given has passed)"
