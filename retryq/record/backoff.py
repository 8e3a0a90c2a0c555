"""Backoff strategies: how long to wait before the next attempt.

The same small callables serve the deferred queue (minutes between cron-driven attempts),
the in-process :func:`retryq.retry` decorator (seconds between calls) and the worker's polling.
Each takes a :class:`RetryState` and returns a delay in seconds; strategies add up with ``+``::

    exponential(initial=60, factor=2, max=3600) + jitter(30)

These are for spacing out retries of one piece of work. They are not a tool for arbitrating
contention between processes: the queue's lock does that.
"""

from __future__ import annotations

__all__ = [
    "Backoff",
    "BackoffStrategy",
    "RetryState",
    "constant",
    "exponential",
    "fixed",
    "jitter",
    "linear",
]

import math
import random
from dataclasses import dataclass
from datetime import timedelta

Seconds = float | int | timedelta


def _seconds(value: Seconds, name: str) -> float:
    number = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if math.isnan(number) or number < 0:
        raise ValueError(f"{name} must be a non-negative number of seconds, not {value!r}")
    return number


@dataclass(frozen=True)
class RetryState:
    """What a strategy may look at: the number of the attempt that just failed (1 for the first)
    and, for queue jobs, the job's own delay in seconds (``delayMinutes``)."""

    attempt: int
    base_delay: float | None = None


class Backoff:
    """Base class of strategies: ``strategy(state) -> seconds``; ``a + b`` waits the sum of both."""

    def __call__(self, state: RetryState) -> float:
        raise NotImplementedError

    def __add__(self, other: Backoff) -> Backoff:
        if not isinstance(other, Backoff):
            return NotImplemented
        return _Sum((self, other))

    def __radd__(self, other: object) -> Backoff:
        if other == 0:  # sum([...]) starts from 0
            return self
        return NotImplemented

    def delays(self, attempts: int, *, base_delay: float | None = None) -> list[float]:
        """The delays after attempts 1..n, for docs and tests: ``exponential(1).delays(3) == [1, 2, 4]``."""
        return [self(RetryState(attempt, base_delay)) for attempt in range(1, attempts + 1)]


class _Sum(Backoff):
    def __init__(self, parts: tuple[Backoff, ...]) -> None:
        self.parts = parts

    def __call__(self, state: RetryState) -> float:
        return sum(part(state) for part in self.parts)

    def __repr__(self) -> str:
        return " + ".join(repr(part) for part in self.parts)


def _base(initial: float | None, state: RetryState) -> float:
    if initial is not None:
        return initial
    if state.base_delay is None:
        raise ValueError("this strategy has no initial delay and the retry state carries none")
    return state.base_delay


class constant(Backoff):  # noqa: N801 - lowercase like tenacity's wait_fixed: used as a function
    """The same delay every time; with no delay given, the job's own ``delayMinutes``."""

    def __init__(self, delay: Seconds | None = None) -> None:
        self.delay = None if delay is None else _seconds(delay, "delay")

    def __call__(self, state: RetryState) -> float:
        return _base(self.delay, state)

    def __repr__(self) -> str:
        return f"constant({'' if self.delay is None else f'{self.delay:g}'})"


#: ``fixed`` is the queue's name for :class:`constant` (10:00 → 11:00 → 12:00 with a 60-minute job).
fixed = constant


class linear(Backoff):  # noqa: N801
    """``initial``, then ``increment`` more after each attempt, capped at ``max``."""

    def __init__(
        self, initial: Seconds | None = None, increment: Seconds | None = None, max: Seconds | None = None
    ) -> None:
        self.initial = None if initial is None else _seconds(initial, "initial")
        self.increment = None if increment is None else _seconds(increment, "increment")
        self.max = None if max is None else _seconds(max, "max")

    def __call__(self, state: RetryState) -> float:
        start = _base(self.initial, state)
        step = start if self.increment is None else self.increment
        value = start + step * (state.attempt - 1)
        return value if self.max is None else min(value, self.max)

    def __repr__(self) -> str:
        return f"linear(initial={self.initial}, increment={self.increment}, max={self.max})"


class exponential(Backoff):  # noqa: N801
    """``initial × factor^(attempt-1)``, capped at ``max``: 1 s, 2 s, 4 s with the defaults of :func:`retryq.retry`."""

    def __init__(self, initial: Seconds | None = None, factor: float = 2.0, max: Seconds | None = None) -> None:
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor >= 1:
            raise ValueError(f"factor must be a number >= 1, not {factor!r}")
        self.initial = None if initial is None else _seconds(initial, "initial")
        self.factor = float(factor)
        self.max = None if max is None else _seconds(max, "max")

    def __call__(self, state: RetryState) -> float:
        start = _base(self.initial, state)
        try:
            value = start * self.factor ** (state.attempt - 1)
        except OverflowError:
            value = math.inf
        return value if self.max is None else min(value, self.max)

    def __repr__(self) -> str:
        return f"exponential(initial={self.initial}, factor={self.factor:g}, max={self.max})"


class jitter(Backoff):  # noqa: N801
    """A random extra delay between 0 and ``max``, so that many retries do not fire at once."""

    def __init__(self, max: Seconds, *, rng: random.Random | None = None) -> None:
        self.max = _seconds(max, "max")
        self.rng = rng or random.Random()  # noqa: S311 - spreading retries, not cryptography

    def __call__(self, state: RetryState) -> float:
        return self.rng.uniform(0, self.max)

    def __repr__(self) -> str:
        return f"jitter({self.max:g})"


def _attempt_number(attempt: int) -> RetryState:
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise ValueError(f"attempt counts the failed attempts from 1, not {attempt!r}")
    return RetryState(attempt)


class BackoffStrategy:
    """The strategies above as plain functions of the attempt number, for code that wants a number.

    ``attempt`` is the attempt that just failed, counted from 1: the wait after attempt 1 is the
    initial delay, so ``exponential`` gives 1 s, 2 s, 4 s for attempts 1, 2, 3. To choose how
    ``@retry`` waits, pass a strategy object instead: ``backoff=linear(initial=1, increment=1)``.
    """

    @staticmethod
    def exponential(attempt: int, initial_delay: float = 1.0, factor: float = 2.0, max_delay: float = 60.0) -> float:
        """``initial_delay × factor^(attempt-1)``, at most ``max_delay``: 1, 2, 4, 8... by default."""
        return exponential(initial=initial_delay, factor=factor, max=max_delay)(_attempt_number(attempt))

    @staticmethod
    def linear(attempt: int, increment: float = 1.0, max_delay: float = 60.0) -> float:
        """``increment × attempt``, at most ``max_delay``: 1, 2, 3, 4... by default."""
        return linear(initial=increment, increment=increment, max=max_delay)(_attempt_number(attempt))

    @staticmethod
    def constant(delay: float = 1.0) -> float:
        """``delay``, whatever the attempt."""
        return constant(delay)(RetryState(1))
