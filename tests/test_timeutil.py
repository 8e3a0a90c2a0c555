"""Durations, delays, user-given times and the UTC format."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from retryq.errors import InvalidInput
from retryq.timeutil import format_duration, format_utc, parse_delay, parse_duration, parse_utc, parse_when

NOW = datetime(2025, 12, 19, 10, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("text", "minutes"),
    [("60", 60), ("0", 0), ("90m", 90), ("2h", 120), ("1h30m", 90), ("1d", 1440), ("30d", 43200), (" 45 ", 45)],
)
def test_delays(text: str, minutes: int) -> None:
    assert parse_delay(text) == minutes


def test_delay_accepts_numbers_and_timedeltas() -> None:
    assert parse_delay(15) == 15
    assert parse_delay(timedelta(hours=1)) == 60


@pytest.mark.parametrize("text", ["-5", "abc", "", "1.5h", "5 minutes", "30d1m", "31d", "100000", "1h30", "m"])
def test_bad_delays(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_delay(text)


def test_delay_must_be_whole_minutes() -> None:
    with pytest.raises(InvalidInput, match="whole number of minutes"):
        parse_delay("90s")


def test_durations_default_to_seconds() -> None:
    assert parse_duration("300") == timedelta(seconds=300)
    assert parse_duration("5m") == timedelta(minutes=5)
    assert parse_duration(2.5) == timedelta(seconds=2.5)
    with pytest.raises(InvalidInput):
        parse_duration(True)


def test_format_and_parse_round_trip() -> None:
    stamp = "2025-12-19T10:00:00.000Z"
    assert format_utc(parse_utc(stamp)) == stamp
    assert parse_utc("2025-12-19T12:00:00+02:00") == NOW
    with pytest.raises(InvalidInput):
        parse_utc("yesterday")


def test_when_with_a_zone() -> None:
    assert parse_when("2025-12-20T04:00:00Z", now=NOW) == datetime(2025, 12, 20, 4, 0, tzinfo=timezone.utc)
    assert parse_when("2025-12-20 05:00 +01:00", now=NOW) == datetime(2025, 12, 20, 4, 0, tzinfo=timezone.utc)


def test_when_without_a_zone_is_local_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    try:
        assert parse_when("2025-12-20 04:00", now=NOW) == datetime(2025, 12, 20, 3, 0, tzinfo=timezone.utc)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


@pytest.mark.parametrize("text", ["not a date", "2025-02-30 04:00", "2026-06-01 04:00"])
def test_bad_or_far_times(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_when(text, now=NOW)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(minutes=90), "1h30m"),
        (timedelta(days=1, seconds=5), "1d5s"),
        (-timedelta(minutes=2), "-2m"),
    ],
)
def test_format_duration(value: timedelta, text: str) -> None:
    assert format_duration(value) == text
