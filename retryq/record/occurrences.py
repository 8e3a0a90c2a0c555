"""When a recurring job comes due, as pure functions of its cron expression, its zone and ``now``.

A schedule's expression is read by cronsim, which follows Debian's cron, daylight saving time
included: in the zone the expression is read in, a job at a fixed time (``0 3 * * *``, ``30 2 * *
*``) runs once a day, also on the days the clocks change (a time the spring change skips runs at
the first minute after it; a time the autumn change repeats runs the first time only), while a
job whose minute or hour is a wildcard or a step (``0 * * * *``, ``*/5 * * * *``) runs at each of
its real times. Occurrences are moments, given in UTC.

What a process does with the occurrences (:func:`due`) is decided from what the queue recorded of
the schedule: when it was first seen (``since``), the last occurrence it handled (``last``), and
how it catches up after a downtime. Nothing here reads a clock or a store.
"""

from __future__ import annotations

__all__ = ["CATCH_UP", "CronRule", "Due", "check_cron", "due", "first_seen"]

from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from .errors import InvalidInput
from .timeutil import to_utc

#: How missed occurrences are caught up: "latest" runs the most recent once, "none" skips them.
CATCH_UP = ("latest", "none")
_SECOND = timedelta(seconds=1)


def check_cron(expression: object) -> str:
    """``expression`` if it is a cron expression of five fields that cronsim reads; InvalidInput says why not."""
    from cronsim import CronSim, CronSimError  # here: only a configuration with schedules pays for it

    if not isinstance(expression, str):
        raise InvalidInput(f"expected a cron expression (a string such as '0 3 * * *'), not {expression!r}")
    fields = expression.split()
    if len(fields) != 5:
        raise InvalidInput(
            f"invalid cron expression {expression!r}: five fields are expected (minute hour day-of-month month "
            f"day-of-week), not {len(fields)}"
        )
    try:
        CronSim(expression, datetime(2000, 1, 1))
    except CronSimError as error:
        raise InvalidInput(f"invalid cron expression {expression!r}: {str(error).lower()}") from None
    return " ".join(fields)


@dataclass(frozen=True)
class CronRule:
    """A cron expression read in ``zone``: its occurrences before and after a moment, in UTC."""

    expression: str
    zone: tzinfo

    def __post_init__(self) -> None:
        object.__setattr__(self, "expression", check_cron(self.expression))

    def after(self, moment: datetime) -> datetime | None:
        """The first occurrence strictly after ``moment`` (None: none within 50 years)."""
        from cronsim import CronSim

        try:
            return to_utc(next(CronSim(self.expression, to_utc(moment).astimezone(self.zone))))
        except StopIteration:
            return None

    def at_or_before(self, moment: datetime) -> datetime | None:
        """The last occurrence at or before ``moment`` (None: none within 50 years)."""
        from cronsim import CronSim

        moment = to_utc(moment)
        # Iterating backwards starts one second before its start, or at the whole second of a start with
        # microseconds: either way, occurrences at ``moment`` itself are found.
        start = moment if moment.microsecond else moment + _SECOND
        try:
            found: datetime | None = to_utc(next(CronSim(self.expression, start.astimezone(self.zone), reverse=True)))
        except StopIteration:
            found = None
        # Backwards, a time the autumn change repeats is found at its second pass only: walk forwards from
        # what was found, so that both directions agree (a step or two, at most, on that day).
        while found is not None and (later := self.after(found)) is not None and later <= moment:
            found = later
        return found

    def date_of(self, occurrence: datetime) -> str:
        """The occurrence's date in its zone, ``YYYY-MM-DD`` (a job's ``{date}``)."""
        return to_utc(occurrence).astimezone(self.zone).date().isoformat()


@dataclass(frozen=True)
class Due:
    """An occurrence a process handles now: enqueued when ``on_time``, else recorded as missed
    (``catch_up = "none"``)."""

    occurrence: datetime
    on_time: bool


def due(
    rule: CronRule,
    *,
    now: datetime,
    since: datetime,
    last: datetime | None,
    catch_up: str,
    grace: timedelta,
) -> Due | None:
    """The occurrence to handle at ``now``, if one came since the schedule was first seen (``since``) and
    after the last one handled (``last``): only ever the most recent one (runs missed meanwhile are not
    run one after the other). With ``catch_up = "latest"`` it is on time however late; with ``"none"``,
    only within ``grace`` of its time (later, it was missed: a downtime, not the cron entry's pace)."""
    start = since if last is None else max(since, last)
    latest = rule.at_or_before(now)
    if latest is None or latest <= start:
        return None
    return Due(latest, catch_up == "latest" or now - latest <= grace)


def first_seen(now: datetime, window: timedelta) -> datetime:
    """When a schedule seen for the first time at ``now`` counts from: its next occurrence, or one that came
    within ``window`` (``due_window``: the cron tick that sees it is at most a minute late)."""
    return to_utc(now) - window
