"""Durations, delays, user-given times and the UTC format."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from retryq.record.errors import InvalidInput
from retryq.record.timeutil import (
    format_duration,
    format_utc,
    local_zone,
    parse_delay,
    parse_duration,
    parse_utc,
    parse_when,
)

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


SPRING = datetime(2026, 3, 20, 12, 0, tzinfo=timezone.utc)
AUTUMN = datetime(2026, 10, 20, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def paris(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/Paris")


@pytest.mark.usefixtures("paris")
def test_a_local_time_the_clocks_skip_is_refused() -> None:
    """2026-03-29 02:30 does not exist in Paris: it used to become 00:30Z silently."""
    with pytest.raises(InvalidInput) as raised:
        parse_when("2026-03-29 02:30", now=SPRING)
    assert str(raised.value) == (
        "'2026-03-29 02:30' does not exist in TZ=Europe/Paris: the clocks jump forward 1h over it; "
        "give another time, or an explicit offset or Z"
    )
    assert parse_when("2026-03-29 02:30+01:00", now=SPRING) == datetime(2026, 3, 29, 1, 30, tzinfo=timezone.utc)
    assert parse_when("2026-03-29 03:30", now=SPRING) == datetime(2026, 3, 29, 1, 30, tzinfo=timezone.utc)


@pytest.mark.usefixtures("paris")
def test_a_local_time_shown_twice_takes_the_first_and_says_so() -> None:
    notes: list[str] = []
    assert parse_when("2026-10-25 02:30", now=AUTUMN, on_note=notes.append) == datetime(
        2026, 10, 25, 0, 30, tzinfo=timezone.utc
    )
    assert notes == [
        "'2026-10-25 02:30' happens twice in TZ=Europe/Paris (the clocks go back): taking the first, "
        "2026-10-25T00:30:00.000Z; for the second (2026-10-25T01:30:00.000Z) give its offset or Z"
    ]
    assert parse_when("2026-10-25 02:30 +01:00", now=AUTUMN, on_note=notes.append) == datetime(
        2026, 10, 25, 1, 30, tzinfo=timezone.utc
    )
    assert len(notes) == 1  # an explicit offset is not ambiguous


def test_an_invalid_tz_is_said_not_silently_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Europe/Pariss")
    notes: list[str] = []
    assert parse_when("2025-12-20 04:00", now=NOW, on_note=notes.append) == datetime(
        2025, 12, 20, 4, 0, tzinfo=timezone.utc
    )
    assert notes == ["TZ='Europe/Pariss' is not a known time zone: local times are taken as UTC"]


def test_a_time_older_than_the_retention_is_refused() -> None:
    week_ago = NOW - timedelta(days=7)
    assert parse_when("2025-12-13 04:00Z", now=NOW, oldest=week_ago) == datetime(2025, 12, 13, 4, tzinfo=timezone.utc)
    with pytest.raises(InvalidInput, match="is more than 7 days in the past"):
        parse_when("1970-01-01", now=NOW, oldest=week_ago)


def test_now_is_to_the_millisecond_the_queue_keeps() -> None:
    from retryq.record.timeutil import format_utc, parse_utc, utcnow

    now = utcnow()
    assert now.microsecond % 1000 == 0
    assert parse_utc(format_utc(now)) == now  # a job in memory is the job written and read back


@pytest.mark.parametrize("name", ["Nowhere/Bogus", "Bogus", "Europe/Pariss"])
def test_a_tz_that_names_no_zone_is_said_and_taken_as_utc(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("TZ", name)
    notes: list[str] = []
    zone, label = local_zone(notes.append)
    assert (zone, label) == (timezone.utc, "UTC")
    assert notes == [f"TZ={name!r} is not a known time zone: local times are taken as UTC"]


@pytest.mark.parametrize("name", ["Europe/Paris", "UTC", "CET-1CEST,M3.5.0,M10.5.0/3"])
def test_a_tz_that_names_a_zone_is_used_without_a_word(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("TZ", name)
    notes: list[str] = []
    zone, label = local_zone(notes.append)
    assert label == f"TZ={name}"
    assert zone.utcoffset(datetime(2025, 7, 1)) is not None
    assert notes == []


def test_format_utc_spells_utc_alike_whatever_object_holds_the_zone() -> None:
    from pydantic_core import TzInfo

    moment = datetime(2025, 12, 19, 10, 0, 0, 123000, tzinfo=timezone.utc)
    assert format_utc(moment) == "2025-12-19T10:00:00.123Z"
    assert format_utc(moment.replace(tzinfo=TzInfo(0))) == "2025-12-19T10:00:00.123Z"  # as read from a file
    assert format_utc(moment.astimezone(timezone(timedelta(hours=2)))) == "2025-12-19T10:00:00.123Z"
    assert format_utc(moment.replace(microsecond=123456)) == "2025-12-19T10:00:00.123Z"
