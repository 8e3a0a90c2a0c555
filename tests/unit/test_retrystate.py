"""The retry state machine as pure functions: a failure goes in, a decision comes out; nothing sleeps."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from retryq.record.backoff import RetryState, constant, exponential, jitter
from retryq.record.retrystate import Decision, Failure, GiveUp, RetryMachine, Verdict


def failure(attempt: int = 1, elapsed: float = 0.0, error: BaseException | None = None) -> Failure:
    """The state builder: the failure of attempt ``attempt``, ``elapsed`` seconds after the first began."""
    return Failure(ConnectionError("refused") if error is None else error, attempt, elapsed)


def machine(**rules: Any) -> RetryMachine:
    """retryq's defaults for @retry, changed by ``rules``."""
    defaults: dict[str, Any] = {"max_attempts": 3, "wait": exponential(initial=1, factor=2, max=60), "max_delay": 60}
    return RetryMachine(**{**defaults, **rules})


def waits(rules: RetryMachine, attempts: int, error: BaseException | None = None) -> list[float | None]:
    """The wait after each failed attempt, None where the machine would not retry."""
    decisions = [rules.decide(failure(number, error=error)) for number in range(1, attempts + 1)]
    return [decision.delay if decision.verdict is Verdict.RETRY else None for decision in decisions]


# -- retry, and how long to wait -----------------------------------------------------------------------------------


def test_a_failure_with_attempts_left_is_retried_after_the_strategys_wait() -> None:
    assert machine().decide(failure(1)) == Decision(Verdict.RETRY, 1.0)
    assert machine().decide(failure(2)) == Decision(Verdict.RETRY, 2.0)
    assert waits(machine(max_attempts=5), 5) == [1, 2, 4, 8, None]


def test_the_last_attempt_gives_up() -> None:
    decision = machine(max_attempts=3).decide(failure(3))
    assert decision == Decision(Verdict.GIVE_UP, why=GiveUp.ATTEMPTS)
    assert not decision.retry
    assert machine(max_attempts=1).decide(failure(1)).why is GiveUp.ATTEMPTS
    assert machine(max_attempts=3).decide(failure(7)).why is GiveUp.ATTEMPTS  # past the last, still the end


def test_max_delay_caps_every_wait() -> None:
    assert waits(machine(max_attempts=5, wait=exponential(initial=10, factor=2), max_delay=25), 5) == [
        10,
        20,
        25,
        25,
        None,
    ]
    assert waits(machine(wait=constant(120), max_delay=60), 3) == [60, 60, None]


def test_any_function_of_the_retry_state_is_a_wait() -> None:
    seen: list[RetryState] = []

    def by_attempt(state: RetryState) -> float:
        seen.append(state)
        return state.attempt / 4

    assert waits(machine(wait=by_attempt), 3) == [0.25, 0.5, None]
    assert seen == [RetryState(1), RetryState(2)]  # not asked once the attempts are spent


def test_jitter_is_drawn_once_per_retry() -> None:
    assert waits(machine(max_attempts=4, wait=jitter(1, rng=random.Random(7))), 4)[:3] == jitter(
        1, rng=random.Random(7)
    ).delays(3)


def test_the_machine_has_no_memory() -> None:
    rules = machine(wait=jitter(0) + constant(3))
    assert [rules.decide(failure(2)) for _ in range(3)] == [Decision(Verdict.RETRY, 3.0)] * 3


# -- raise: what is not retried at all -----------------------------------------------------------------------------


def test_an_error_of_another_kind_is_raised_at_once_even_with_attempts_left() -> None:
    rules = machine(exceptions=(ConnectionError, TimeoutError))
    assert rules.decide(failure(1, error=ValueError("bad"))) == Decision(Verdict.RAISE)
    assert rules.decide(failure(1, error=ConnectionResetError())).retry
    assert machine(exceptions=LookupError).decide(failure(1, error=KeyError("k"))).retry


def test_base_exceptions_are_never_retried() -> None:
    for error in (KeyboardInterrupt(), SystemExit(1), GeneratorExit()):
        assert machine().decide(failure(1, error=error)).verdict is Verdict.RAISE


def test_retry_if_refuses_before_the_attempts_are_counted() -> None:
    asked: list[BaseException] = []

    def only_timeouts(error: BaseException) -> bool:
        asked.append(error)
        return isinstance(error, TimeoutError)

    rules = machine(retry_if=only_timeouts, exceptions=(OSError,))
    refused = PermissionError("no")
    assert rules.decide(failure(3, error=refused)) == Decision(Verdict.RAISE)  # raised, not given up
    assert rules.decide(failure(1, error=TimeoutError())).retry
    assert rules.decide(failure(1, error=ValueError())).verdict is Verdict.RAISE
    assert asked[:2] == [refused, asked[1]]
    assert len(asked) == 2  # an error of another kind is not even shown to retry_if


# -- Retry-After: what the failure itself asks for -----------------------------------------------------------------


class Busy(Exception):
    def __init__(self, seconds: float | None) -> None:
        super().__init__(seconds)
        self.seconds = seconds


def asked(error: BaseException) -> float | None:
    return error.seconds if isinstance(error, Busy) else None


def test_the_wait_is_the_longer_of_the_strategy_and_what_the_failure_asks() -> None:
    rules = machine(asked_delay=asked)
    assert rules.decide(failure(1, error=Busy(5))) == Decision(Verdict.RETRY, 5.0, asked=5.0)
    assert rules.decide(failure(2, error=Busy(1))) == Decision(Verdict.RETRY, 2.0, asked=1.0)
    assert rules.decide(failure(1, error=Busy(None))) == Decision(Verdict.RETRY, 1.0)
    assert machine().decide(failure(1, error=Busy(5))) == Decision(Verdict.RETRY, 1.0)  # not asked: not read


def test_asking_for_more_than_max_delay_gives_up_at_once() -> None:
    decision = machine(asked_delay=asked, max_delay=60).decide(failure(1, error=Busy(3600)))
    assert decision == Decision(Verdict.GIVE_UP, asked=3600.0, why=GiveUp.RETRY_AFTER)
    assert machine(asked_delay=asked, max_delay=60).decide(failure(1, error=Busy(60))).retry


def test_the_last_attempt_gives_up_without_reading_what_is_asked() -> None:
    def unread(error: BaseException) -> float | None:
        raise AssertionError("read after the last attempt")

    assert machine(asked_delay=unread).decide(failure(3)).why is GiveUp.ATTEMPTS


# -- elapsed time: a budget for the whole run ----------------------------------------------------------------------


def test_no_budget_by_default_whatever_the_time_elapsed() -> None:
    assert machine().decide(failure(1, elapsed=1e9)).retry


def test_the_next_attempt_must_begin_within_the_budget() -> None:
    rules = machine(max_attempts=10, max_elapsed=10)
    assert rules.decide(failure(2, elapsed=7.5)) == Decision(Verdict.RETRY, 2.0)  # next attempt at 9.5 s
    assert rules.decide(failure(2, elapsed=8.0)) == Decision(Verdict.RETRY, 2.0)  # at 10 s exactly
    assert rules.decide(failure(2, elapsed=8.5)) == Decision(Verdict.GIVE_UP, 2.0, why=GiveUp.DEADLINE)
    assert rules.decide(failure(1, elapsed=0.0)).retry


def test_attempts_are_counted_before_the_budget() -> None:
    assert machine(max_attempts=2, max_elapsed=1).decide(failure(2, elapsed=5)).why is GiveUp.ATTEMPTS


# -- the machine checks its rules once, when made ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be an integer of at least 1, not 0"),
        ({"max_attempts": 2.5}, "max_attempts must be an integer of at least 1"),
        ({"max_attempts": True}, "max_attempts must be an integer of at least 1"),
        ({"max_delay": -1}, "max_delay must be a number of seconds, not negative, not -1"),
        ({"max_delay": math.nan}, "max_delay must be a number of seconds"),
        ({"max_delay": None}, "max_delay must be a number of seconds"),
        ({"max_elapsed": -0.5}, "max_elapsed must be a number of seconds"),
        ({"max_elapsed": "10"}, "max_elapsed must be a number of seconds"),
        ({"wait": 5}, "wait must be callable"),
        ({"retry_if": True}, "retry_if must be callable"),
        ({"asked_delay": "Retry-After"}, "asked_delay must be callable"),
        ({"exceptions": ()}, "exceptions must be an exception class or a non-empty tuple of them"),
        ({"exceptions": (ValueError, "KeyError")}, "exceptions must be an exception class"),
        ({"exceptions": [ValueError]}, "exceptions must be an exception class"),
        ({"exceptions": (KeyboardInterrupt,)}, r"exceptions must be .* \(subclasses of Exception\)"),
    ],
)
def test_nonsense_is_refused_when_the_machine_is_made(rules: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        machine(**rules)


def test_the_rules_are_frozen_and_shown() -> None:
    rules = machine(exceptions=OSError, max_elapsed=30)
    assert rules.exceptions == (OSError,)
    with pytest.raises(AttributeError):
        rules.max_attempts = 5  # type: ignore[misc]
    assert repr(rules).startswith("RetryMachine(max_attempts=3, wait=exponential(initial=1.0, factor=2, max=60.0)")


def test_a_store_drives_the_machine_with_its_own_sleep_and_clock() -> None:
    """The loop of the module's docstring, as a store would write it: attempts counted, time read, waits recorded."""
    import itertools

    rules = RetryMachine(max_attempts=5, wait=exponential(initial=0.5, max=8), exceptions=OSError)
    clock = iter(range(100)).__next__  # one second per reading
    slept: list[float] = []
    errors = [ConnectionRefusedError(), ConnectionResetError()]

    def work() -> str:
        if errors:
            raise errors.pop(0)
        return "rows"

    def run() -> str:
        started = clock()
        for attempt in itertools.count(1):
            try:
                return work()
            except OSError as error:
                decision = rules.decide(Failure(error, attempt, clock() - started))
                if not decision.retry:
                    raise
            slept.append(decision.delay)
        raise AssertionError("unreachable")

    assert run() == "rows"
    assert slept == [0.5, 1.0]
