"""When a recurring job comes due, with a fixed clock: cron expressions, first sight, catch-up, DST."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from dateutil import tz

from retryq.record.errors import InvalidInput
from retryq.record.occurrences import CronRule, Due, check_cron, due, first_seen

UTC = timezone.utc
PARIS = tz.gettz("Europe/Paris")
MINUTE = timedelta(minutes=1)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    "expression", ["0 3 * * *", "*/5 * * * *", "0 9-17 * * MON-FRI", "0 0 1,15 JAN *", " 0  3 * * * "]
)
def test_five_fields_with_ranges_steps_lists_and_names_are_read(expression: str) -> None:
    assert check_cron(expression) == " ".join(expression.split())


@pytest.mark.parametrize(
    ("expression", "why"),
    [
        ("61 * * * *", "bad minute"),
        ("0 25 * * *", "bad hour"),
        ("* * * *", "five fields are expected"),
        ("0 0 3 * * *", "five fields are expected"),  # seconds: not cron's
        ("@daily", "five fields are expected"),
        ("0 0 31 2 *", "bad day-of-month"),  # never comes
        ("", "five fields are expected"),
    ],
)
def test_a_bad_expression_says_why(expression: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        check_cron(expression)
    with pytest.raises(InvalidInput, match="cron expression"):
        check_cron(3)


def test_occurrences_before_and_after_a_moment_in_utc() -> None:
    rule = CronRule("0 3 * * *", UTC)
    assert rule.after(utc(2025, 12, 19, 2, 59)) == utc(2025, 12, 19, 3)
    assert rule.after(utc(2025, 12, 19, 3)) == utc(2025, 12, 20, 3)  # strictly after
    assert rule.at_or_before(utc(2025, 12, 19, 3)) == utc(2025, 12, 19, 3)  # at the moment itself
    assert rule.at_or_before(utc(2025, 12, 19, 3, 0, 0, 1)) == utc(2025, 12, 19, 3)
    assert rule.at_or_before(utc(2025, 12, 19, 2, 59, 59, 999_999)) == utc(2025, 12, 18, 3)
    assert CronRule("0 3 * * *", PARIS).after(utc(2025, 12, 19)) == utc(2025, 12, 19, 2)  # 03:00 in Paris, winter


def test_the_date_of_an_occurrence_is_its_date_in_its_zone() -> None:
    rule = CronRule("30 0 * * *", PARIS)
    occurrence = rule.after(utc(2025, 12, 18, 12))
    assert occurrence == utc(2025, 12, 18, 23, 30)
    assert rule.date_of(occurrence) == "2025-12-19"
    assert CronRule("30 0 * * *", UTC).date_of(occurrence) == "2025-12-18"


# -- what a process handles --------------------------------------------------------------------------


def test_a_schedule_seen_for_the_first_time_starts_at_its_next_occurrence() -> None:
    rule = CronRule("0 3 * * *", UTC)
    now = utc(2025, 12, 19, 10)
    since = first_seen(now, MINUTE)
    assert due(rule, now=now, since=since, last=None, catch_up="latest", grace=MINUTE) is None  # no backfill of 03:00
    assert due(rule, now=utc(2025, 12, 20, 2, 59), since=since, last=None, catch_up="latest", grace=MINUTE) is None
    tick = utc(2025, 12, 20, 3, 0, 2)
    assert due(rule, now=tick, since=since, last=None, catch_up="latest", grace=MINUTE) == Due(
        utc(2025, 12, 20, 3), True
    )


def test_an_occurrence_at_the_tick_that_first_sees_the_schedule_counts() -> None:
    """A schedule added at 02:57 and first seen by the 03:00 tick (a few seconds late) runs at 03:00."""
    rule = CronRule("0 3 * * *", UTC)
    tick = utc(2025, 12, 19, 3, 0, 4)
    found = due(rule, now=tick, since=first_seen(tick, MINUTE), last=None, catch_up="latest", grace=MINUTE)
    assert found == Due(utc(2025, 12, 19, 3), True)


def test_an_occurrence_is_handled_once() -> None:
    rule = CronRule("*/5 * * * *", UTC)
    since, last = utc(2025, 12, 1), utc(2025, 12, 19, 10, 5)
    assert due(rule, now=utc(2025, 12, 19, 10, 9), since=since, last=last, catch_up="latest", grace=MINUTE) is None
    found = due(rule, now=utc(2025, 12, 19, 10, 10), since=since, last=last, catch_up="latest", grace=MINUTE)
    assert found == Due(utc(2025, 12, 19, 10, 10), True)


def test_after_a_downtime_latest_runs_the_most_recent_once_and_none_skips_them() -> None:
    rule = CronRule("0 3 * * *", UTC)
    since, last = utc(2025, 12, 1), utc(2025, 12, 16, 3)  # down since the 16th: the 17th, 18th, 19th were missed
    now = utc(2025, 12, 19, 10)
    assert due(rule, now=now, since=since, last=last, catch_up="latest", grace=MINUTE) == Due(
        utc(2025, 12, 19, 3), True
    )
    assert due(rule, now=now, since=since, last=last, catch_up="none", grace=timedelta(hours=1)) == Due(
        utc(2025, 12, 19, 3), False
    )
    # Within its grace, an occurrence is on time whatever catch_up says: the cron entry's own pace.
    soon = utc(2025, 12, 19, 3, 4)
    assert due(rule, now=soon, since=since, last=last, catch_up="none", grace=timedelta(minutes=5)) == Due(
        utc(2025, 12, 19, 3), True
    )


@pytest.mark.parametrize("day", ["2025-03-30", "2025-10-26", "2025-06-15"])  # spring forward, fall back, a plain day
@pytest.mark.parametrize("expression", ["0 3 * * *", "30 2 * * *", "0 2 * * *", "0 0 * * *", "59 23 * * *"])
def test_a_daily_schedule_runs_once_on_the_days_the_clocks_change(expression: str, day: str) -> None:
    """Ticks every five minutes from two days before to three days after; the record moves as a process's would."""
    rule = CronRule(expression, PARIS)
    start = datetime.fromisoformat(day).replace(tzinfo=PARIS).astimezone(UTC) - timedelta(days=2)
    since, last, handled = first_seen(start, MINUTE), None, []
    for step in range(5 * 24 * 12):
        now = start + step * timedelta(minutes=5) + timedelta(seconds=3)
        found = due(rule, now=now, since=since, last=last, catch_up="latest", grace=MINUTE)
        if found is not None:
            assert found.on_time
            assert now - found.occurrence < timedelta(minutes=5)  # found at the first tick after it
            handled.append(found.occurrence)
            last = found.occurrence
    dates = [rule.date_of(occurrence) for occurrence in handled]
    assert dates == sorted(set(dates)), "never twice a day"
    around = [(datetime.fromisoformat(day) + timedelta(days=n)).date().isoformat() for n in (-1, 0, 1)]
    assert set(around) <= set(dates), "never skipped"


def test_an_hourly_schedule_runs_at_each_real_hour_when_the_clocks_change() -> None:
    rule = CronRule("0 * * * *", PARIS)
    for day, hours in (("2025-03-30", 23), ("2025-10-26", 25)):
        start = datetime.fromisoformat(day).replace(tzinfo=PARIS).astimezone(UTC)
        end = (datetime.fromisoformat(day) + timedelta(days=1)).replace(tzinfo=PARIS).astimezone(UTC)
        found, moment = [], start - timedelta(seconds=1)
        while (moment := rule.after(moment)) is not None and moment < end:
            found.append(moment)
        assert len(found) == hours
        assert len(set(found)) == hours


def test_the_autumn_repeat_is_found_at_its_first_pass_going_backwards_too() -> None:
    """On 26 October 2025 Paris lives 02:00-03:00 twice; a 02:30 job runs at the first 02:30 (00:30 UTC)."""
    rule = CronRule("30 2 * * *", PARIS)
    assert rule.after(utc(2025, 10, 25, 12)) == utc(2025, 10, 26, 0, 30)
    assert rule.at_or_before(utc(2025, 10, 26, 1, 15)) == utc(2025, 10, 26, 0, 30)  # at 02:15, the second time
    assert rule.at_or_before(utc(2025, 10, 26, 0, 29)) == utc(2025, 10, 25, 0, 30)


def test_a_time_the_spring_change_skips_runs_at_the_first_minute_after_it() -> None:
    rule = CronRule("30 2 * * *", PARIS)
    assert rule.after(utc(2025, 3, 29, 12)) == utc(2025, 3, 30, 1)  # 03:00 CEST
    assert rule.at_or_before(utc(2025, 3, 30, 1, 0, 30)) == utc(2025, 3, 30, 1)
