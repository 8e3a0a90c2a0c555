"""Every in-process form, sync and async, drives the one retry state machine; none decides on its own."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from retryq import RetryContext, RetryManager, RetryOptions, retry, retrying
from retryq.inprocess.recoverable import retry_after
from retryq.record.backoff import constant, exponential
from retryq.record.retrystate import Decision, Failure, RetryMachine


class Flaky:
    """Raises ``ConnectionError`` ``failures`` times, then returns ``"ok"``."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.raised: list[BaseException] = []

    def __call__(self, *args: object, **kwargs: object) -> str:
        if len(self.raised) < self.failures:
            self.raised.append(ConnectionError(f"down {len(self.raised) + 1}"))
            raise self.raised[-1]
        return "ok"


async def nap(delay: float) -> None:
    pass


def sync_forms(flaky: Flaky) -> dict[str, Callable[[], object]]:
    """Each sync form, running ``flaky`` until it succeeds, with sleeping recorded away."""

    def loop() -> object:
        for attempt in retrying(sleep=lambda _: None):
            with attempt:
                return flaky()
        raise AssertionError("unreachable")

    manager = RetryManager(sleep=lambda _: None)
    return {
        "@retry": retry(sleep=lambda _: None)(flaky),
        "for attempt in retrying()": loop,
        "RetryContext().call": lambda: RetryContext(sleep=lambda _: None).call(flaky),
        "manager.retry": manager.retry(flaky),
        "manager.context().call": lambda: manager.context().call(flaky),
    }


def async_forms(flaky: Flaky) -> dict[str, Callable[[], Coroutine[Any, Any, object]]]:
    async def function() -> str:
        await asyncio.sleep(0)
        return flaky()

    async def loop() -> object:
        async for attempt in RetryContext(sleep=nap):
            with attempt:
                await asyncio.sleep(0)
                return flaky()
        raise AssertionError("unreachable")

    return {"@retry on async def": retry(sleep=nap)(function), "async for attempt in RetryContext()": loop}


FORMS = [*sync_forms(Flaky(0)), *async_forms(Flaky(0))]


def run_form(name: str, flaky: Flaky) -> object:
    sync = sync_forms(flaky)
    if name in sync:
        return sync[name]()
    return asyncio.run(async_forms(flaky)[name]())


@pytest.mark.parametrize("form", FORMS)
def test_every_form_asks_the_machine_after_each_failure(form: str, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[Failure] = []
    decide = RetryMachine.decide

    def spy(machine: RetryMachine, failure: Failure) -> Decision:
        asked.append(failure)
        return decide(machine, failure)

    monkeypatch.setattr(RetryMachine, "decide", spy)
    flaky = Flaky(2)
    assert run_form(form, flaky) == "ok"
    assert [(failure.error, failure.attempt) for failure in asked] == [(flaky.raised[0], 1), (flaky.raised[1], 2)]


@pytest.mark.parametrize("form", FORMS)
def test_every_form_does_what_the_machine_decides(form: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine with rules no option can express (a budget of time) is obeyed by every form alike."""
    machine = RetryOptions.machine

    def out_of_time(options: RetryOptions) -> RetryMachine:
        rules = machine(options)
        return RetryMachine(max_attempts=rules.max_attempts, wait=rules.wait, max_elapsed=0.5)

    monkeypatch.setattr(RetryOptions, "machine", out_of_time)
    flaky = Flaky(2)
    with pytest.raises(ConnectionError) as caught:
        run_form(form, flaky)
    assert caught.value is flaky.raised[0]  # the first wait (1 s) would overrun the budget: given up at once
    assert len(flaky.raised) == 1


def test_the_options_describe_the_machine() -> None:
    options = RetryOptions(max_attempts=4, backoff=constant(3), max_delay=30, exceptions=OSError, retry_if=callable)
    machine = options.machine()
    assert (machine.max_attempts, machine.wait, machine.max_delay) == (4, options.backoff, 30)
    assert (machine.exceptions, machine.retry_if, machine.asked_delay) == ((OSError,), callable, retry_after)
    assert options.machine() == machine  # the same rules: built again after each failure, never kept
    assert options.copy(max_attempts=5).machine().max_attempts == 5
    assert options.copy(respect_retry_after=False).machine().asked_delay is None
    default = RetryOptions(max_attempts=3, backoff_factor=2).machine()
    assert [default.decide(Failure(ConnectionError(), n)).delay for n in (1, 2)] == exponential(1, 2, 60).delays(2)


# -- what a run leaves behind -----------------------------------------------------------------------------------


class Interrupted(BaseException):
    pass


def interrupt(delay: float) -> None:
    raise Interrupted


async def interrupt_async(delay: float) -> None:
    raise Interrupted


def test_an_interruption_while_asleep_is_not_chained_to_the_failure() -> None:
    def loop() -> None:
        flaky = Flaky(1)
        for attempt in retrying(sleep=interrupt):
            with attempt:
                flaky()

    async def function() -> str:
        return flaky()

    flaky = Flaky(1)
    forms: list[Callable[[], object]] = [
        retry(sleep=interrupt)(Flaky(1)),
        lambda: RetryContext(sleep=interrupt).call(Flaky(1)),
        loop,
        lambda: asyncio.run(retry(sleep=interrupt_async)(function)()),
    ]
    for form in forms:
        with pytest.raises(Interrupted) as caught:
            form()
        assert caught.value.__context__ is None


def test_an_async_run_leaves_no_async_generator_for_the_event_loop_to_close() -> None:
    """A ``return`` from inside ``async for`` abandons the iterator: it must not need the event loop to close it."""
    started: list[object] = []

    async def main() -> None:
        hooks = sys.get_asyncgen_hooks()

        def first_iteration(agen: Any) -> None:
            started.append(agen)
            if hooks.firstiter is not None:
                hooks.firstiter(agen)

        sys.set_asyncgen_hooks(firstiter=first_iteration)
        try:
            for form in async_forms(Flaky(1)).values():
                assert await form() == "ok"
        finally:
            sys.set_asyncgen_hooks(*hooks)

    asyncio.run(main())
    assert started == []
