"""The retry state machine: after a failed attempt, wait and retry, raise at once, or give up.

Pure: it reads the failure (the error, the attempt's number, the seconds since the first attempt
began) and its rules, and decides; whoever drives it sleeps, reads the clock, logs, calls back and
escalates. Every in-process form (``@retry``, ``retrying()``, ``RetryContext``, ``RetryManager``,
sync and async, in :mod:`retryq.inprocess`) drives this one machine, and a store that retries its
lost connections can drive it directly, with its own sleep and clock::

    machine = RetryMachine(max_attempts=5, wait=exponential(initial=0.5, max=8), exceptions=OSError)
    started = time.monotonic()
    for attempt in itertools.count(1):
        try:
            return work()
        except OSError as error:
            decision = machine.decide(Failure(error, attempt, time.monotonic() - started))
            if not decision.retry:
                raise
        time.sleep(decision.delay)

A success always ends the run, so the machine is asked after failures only: a call that succeeds
costs its drivers no more than a ``try`` block.
"""

from __future__ import annotations

__all__ = ["Decision", "Failure", "GiveUp", "RetryMachine", "Verdict", "retried_exceptions"]

import enum
import math
from collections.abc import Callable
from dataclasses import dataclass

from .backoff import RetryState

ExceptionTypes = type[Exception] | tuple[type[Exception], ...]


def retried_exceptions(value: object) -> tuple[type[Exception], ...]:
    """``value``, an exception class or a non-empty tuple of them, as a tuple; anything else is refused."""
    classes = value if isinstance(value, tuple) else (value,)
    # Exception, not BaseException: retrying Ctrl-C, SystemExit or a cancelled task defeats their purpose.
    if not classes or not all(isinstance(kind, type) and issubclass(kind, Exception) for kind in classes):
        raise ValueError(
            "exceptions must be an exception class or a non-empty tuple of them (subclasses of Exception), "
            f"not {value!r}"
        )
    return classes


class Verdict(enum.Enum):
    """What to do about a failed attempt."""

    RETRY = "retry"  # wait ``delay`` seconds, then make the next attempt
    RAISE = "raise"  # not a failure these rules retry: let it propagate now, as it was raised
    GIVE_UP = "give up"  # a failure these rules retry, with no attempt or time left: escalate, then raise


class GiveUp(enum.Enum):
    """Why a run gives up."""

    ATTEMPTS = "the last attempt failed"
    RETRY_AFTER = "the failure asks for a wait beyond max_delay"
    DEADLINE = "the next attempt would begin after max_elapsed"


@dataclass(frozen=True, slots=True)
class Failure:
    """The state the machine decides on: an attempt's error, its number (from 1), and the seconds
    since the first attempt began, by the driver's clock (only ``max_elapsed`` reads them)."""

    error: BaseException
    attempt: int = 1
    elapsed: float = 0.0


@dataclass(frozen=True, slots=True)
class Decision:
    """The machine's answer: a verdict, the wait before the next attempt (``RETRY``), what the
    failure asked to wait (a ``Retry-After``), and why the run gives up (``GIVE_UP``)."""

    verdict: Verdict
    delay: float = 0.0
    asked: float | None = None
    why: GiveUp | None = None

    @property
    def retry(self) -> bool:
        """Whether to wait ``delay`` seconds and attempt again."""
        return self.verdict is Verdict.RETRY


_RAISE = Decision(Verdict.RAISE)
_NO_ATTEMPT_LEFT = Decision(Verdict.GIVE_UP, why=GiveUp.ATTEMPTS)


def _is_seconds(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0  # NaN fails >= 0


@dataclass(frozen=True, slots=True)
class RetryMachine:
    """The rules of a retry run, and :meth:`decide`, the transition after each failed attempt.

    ``max_attempts`` counts every attempt, the first included; ``wait`` is a backoff strategy
    (:mod:`retryq.record.backoff`, or any function of a :class:`~retryq.record.backoff.RetryState`),
    each of its waits capped at ``max_delay``; only ``exceptions`` that pass ``retry_if`` are
    retried. ``asked_delay(error)`` reads how long a failure asks to wait (a server's
    ``Retry-After``), or None; ``max_elapsed`` is a budget in seconds for the whole run.
    """

    max_attempts: int
    wait: Callable[[RetryState], float]
    max_delay: float = math.inf
    exceptions: ExceptionTypes = (Exception,)
    retry_if: Callable[[BaseException], bool] | None = None
    asked_delay: Callable[[BaseException], float | None] | None = None
    max_elapsed: float | None = None

    def __post_init__(self) -> None:
        attempts = self.max_attempts
        if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
            raise ValueError(f"max_attempts must be an integer of at least 1, not {attempts!r}")
        for name, value, optional in (("max_delay", self.max_delay, False), ("max_elapsed", self.max_elapsed, True)):
            if not (_is_seconds(value) or (optional and value is None)):
                raise ValueError(f"{name} must be a number of seconds, not negative, not {value!r}")
        if not callable(self.wait):
            raise ValueError(f"wait must be callable, not {self.wait!r}")
        for name, function in (("retry_if", self.retry_if), ("asked_delay", self.asked_delay)):
            if function is not None and not callable(function):
                raise ValueError(f"{name} must be callable, not {function!r}")
        object.__setattr__(self, "exceptions", retried_exceptions(self.exceptions))

    def decide(self, failure: Failure) -> Decision:
        """What to do after ``failure``: in this order, raise what these rules do not retry, give up
        after the last attempt, wait what the strategy says (or longer, if the failure asks for it;
        give up if it asks for more than ``max_delay``), and give up rather than begin past
        ``max_elapsed``."""
        error = failure.error
        if not isinstance(error, self.exceptions) or (self.retry_if is not None and not self.retry_if(error)):
            return _RAISE
        if failure.attempt >= self.max_attempts:
            return _NO_ATTEMPT_LEFT
        delay = min(self.wait(RetryState(failure.attempt)), self.max_delay)
        asked = None if self.asked_delay is None else self.asked_delay(error)
        if asked is not None:
            if asked > self.max_delay:
                return Decision(Verdict.GIVE_UP, asked=asked, why=GiveUp.RETRY_AFTER)
            delay = max(delay, asked)
        if self.max_elapsed is not None and failure.elapsed + delay > self.max_elapsed:
            return Decision(Verdict.GIVE_UP, delay, asked, GiveUp.DEADLINE)
        return Decision(Verdict.RETRY, delay, asked)
