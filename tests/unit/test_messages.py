"""What messages say: counted nouns, spans of time in words, and what `schedule` reports it did."""

from __future__ import annotations

from datetime import timedelta

import pytest

from retryq import MemoryStore, RetryQueue
from retryq.record import lifecycle
from retryq.record.models import Owner
from retryq.record.text import plural
from retryq.record.timeutil import format_utc, span_in_words

from ..helpers import T0, make_config


@pytest.mark.parametrize(
    ("count", "unit", "text"),
    [(1, "minute", "1 minute"), (0, "minute", "0 minutes"), (2, "job", "2 jobs"), (-1, "day", "-1 day")],
)
def test_a_count_takes_the_plural_unless_it_is_one(count: int, unit: str, text: str) -> None:
    assert plural(count, unit) == text


def test_an_irregular_plural_is_given() -> None:
    assert (plural(1, "entry", "entries"), plural(3, "entry", "entries")) == ("1 entry", "3 entries")


@pytest.mark.parametrize(
    ("span", "words"),
    [
        (timedelta(minutes=1), "1 minute"),
        (timedelta(minutes=90), "1 hour 30 minutes"),
        (timedelta(days=2, hours=18, minutes=5), "2 days 18 hours"),
        (timedelta(days=3), "3 days"),
        (timedelta(hours=1, seconds=29), "1 hour"),
        (timedelta(days=2, hours=17, minutes=59, seconds=58), "2 days 18 hours"),
        (timedelta(seconds=29), "less than a minute"),
    ],
)
def test_a_span_in_words_keeps_its_two_largest_units(span: timedelta, words: str) -> None:
    assert span_in_words(span) == words


@pytest.fixture
def queue() -> RetryQueue:
    return RetryQueue(MemoryStore(), config=make_config(["true"]))


def test_a_delay_of_one_minute_is_one_minute(queue: RetryQueue) -> None:
    result = queue.schedule("balthazar", "2025-12-19", 1, now=T0)
    assert result.describe(3).startswith("retry scheduled in 1 minute: job ")


def test_a_job_scheduled_at_a_time_says_when_it_is_due(queue: RetryQueue) -> None:
    at = T0 + timedelta(days=2, hours=18)
    result = queue.schedule("balthazar", "2025-12-19", at=at, now=T0)
    assert result.describe(3) == (
        f"retry scheduled in 2 days 18 hours: job {result.job.id}, due {format_utc(at)}, attempt 1 of 3"
    )


def test_a_job_scheduled_at_a_time_already_past_says_it_is_due_now(queue: RetryQueue) -> None:
    at = T0 - timedelta(hours=6)
    result = queue.schedule("balthazar", "2025-12-19", at=at, now=T0)
    assert result.describe(3) == (
        f"retry scheduled for now (the time given has passed): job {result.job.id}, due {format_utc(at)}, "
        "attempt 1 of 3"
    )


def test_a_job_scheduled_at_a_time_that_is_its_delay_says_in_n_minutes(queue: RetryQueue) -> None:
    result = queue.schedule("balthazar", "2025-12-19", 60, at=T0 + timedelta(minutes=60), now=T0)
    assert result.describe(3).startswith("retry scheduled in 60 minutes: job ")


def test_a_follow_up_of_one_minute_is_one_minute(queue: RetryQueue) -> None:
    job = queue.schedule("balthazar", "2025-12-19", 0, now=T0).job
    claim = lifecycle.claim(
        owner=Owner(host="h", pid=42), run_id="r1", now=T0, lease=timedelta(minutes=5), max_attempts=3
    )
    queue.store.update({job.id: claim})
    result = queue.schedule("balthazar", "2025-12-19", 1, now=T0 + timedelta(seconds=5))
    assert result.outcome == "follow_up"
    assert f"(1 minute after this one; job {job.id})" in result.describe(3)
