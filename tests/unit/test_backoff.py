"""Backoff strategies as pure functions of the retry state."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from retryq.record.backoff import RetryState, constant, exponential, fixed, jitter, linear


def test_exponential_defaults_give_1_2_4_seconds() -> None:
    assert exponential(1).delays(3) == [1, 2, 4]


def test_exponential_with_factor_and_cap() -> None:
    assert exponential(initial=2, factor=1.5, max=30).delays(9) == [2, 3, 4.5, 6.75, 10.125, 15.1875, 22.78125, 30, 30]


def test_exponential_never_overflows() -> None:
    assert exponential(1, max=60)(RetryState(100_000)) == 60


def test_exponential_without_initial_uses_the_jobs_delay() -> None:
    assert exponential(factor=2).delays(3, base_delay=3600) == [3600, 7200, 14400]


def test_linear() -> None:
    assert linear(initial=10, increment=5).delays(4) == [10, 15, 20, 25]
    assert linear(initial=10, increment=5, max=18).delays(4) == [10, 15, 18, 18]
    assert linear().delays(3, base_delay=60) == [60, 120, 180]


def test_fixed_is_the_jobs_own_delay_by_default() -> None:
    assert fixed is constant
    assert fixed().delays(3, base_delay=3600) == [3600, 3600, 3600]
    assert constant(timedelta(minutes=2)).delays(2) == [120, 120]


def test_strategies_add_up() -> None:
    rng = random.Random(7)
    strategy = constant(10) + jitter(5, rng=rng)
    delays = strategy.delays(50)
    assert all(10 <= delay <= 15 for delay in delays)
    assert len(set(delays)) > 1
    assert sum([constant(1), constant(2)]).delays(1) == [3]  # type: ignore[attr-defined]


def test_jitter_is_reproducible_with_a_seeded_generator() -> None:
    assert jitter(5, rng=random.Random(1)).delays(3) == jitter(5, rng=random.Random(1)).delays(3)


@pytest.mark.parametrize(
    "build",
    [
        lambda: exponential(-1),
        lambda: exponential(1, factor=0.5),
        lambda: exponential(1, factor=True),
        lambda: linear(increment=-1),
        lambda: constant(float("nan")),
        lambda: jitter(-1),
    ],
)
def test_nonsense_is_refused(build: object) -> None:
    with pytest.raises(ValueError, match="must be"):
        build()  # type: ignore[operator]


def test_no_initial_and_no_base_delay_is_an_error() -> None:
    with pytest.raises(ValueError, match="no initial delay"):
        exponential()(RetryState(1))


def test_reprs_say_what_they_do() -> None:
    assert repr(exponential(1, max=60) + jitter(2)) == "exponential(initial=1.0, factor=2, max=60.0) + jitter(2)"
