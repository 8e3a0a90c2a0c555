"""RetryContext, RetryManager, BackoffStrategy and ExceptionFilter: the named API, over the one implementation."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import types
from collections.abc import Iterator
from typing import Any

import pytest

import retryq
from retryq import (
    BackoffStrategy,
    ExceptionFilter,
    RetryContext,
    RetryManager,
    RetryOptions,
    is_recoverable,
    retry,
    retrying,
)
from retryq.record.backoff import constant, exponential, linear

LOGGER = "retryq.retry"
HAS_NOTES = sys.version_info >= (3, 11)


class Flaky:
    """Raises the given exceptions in turn, then returns its arguments."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0
        self.raised: list[BaseException] = []

    def __call__(self, *args: object, **kwargs: object) -> tuple[object, ...]:
        self.calls += 1
        if self.failures:
            self.raised.append(self.failures.pop(0))
            raise self.raised[-1]
        return (*args, *kwargs.values())


def down(count: int) -> Flaky:
    return Flaky(*(ConnectionError(f"down {n}") for n in range(1, count + 1)))


@pytest.fixture
def sleeps() -> list[float]:
    return []


# -- RetryContext: the two forms that can retry ------------------------------------------------------


def test_the_loop_form_runs_the_block_again(sleeps: list[float]) -> None:
    flaky = down(2)
    numbers = []
    for attempt in RetryContext(max_attempts=3, backoff_factor=2, sleep=sleeps.append):
        with attempt:
            numbers.append(attempt.number)
            result = flaky("page")
    assert result == ("page",)
    assert numbers == [1, 2, 3]
    assert sleeps == [1, 2]


def test_call_retries_a_function_with_its_arguments(sleeps: list[float]) -> None:
    flaky = down(2)
    with RetryContext(max_attempts=3, sleep=sleeps.append) as ctx:
        assert ctx.call(flaky, "a", size=2) == ("a", 2)
    assert flaky.calls == 3
    assert sleeps == [1, 2]


def test_call_gives_up_with_the_last_exception_and_no_note(sleeps: list[float]) -> None:
    flaky = down(5)
    exhausted: list[int] = []
    with (
        pytest.raises(ConnectionError) as caught,
        RetryContext(max_attempts=2, sleep=sleeps.append, on_exhausted=lambda exc, n: exhausted.append(n)) as ctx,
    ):
        ctx.call(flaky)
    assert caught.value is flaky.raised[-1]
    assert flaky.calls == 2
    assert exhausted == [2]
    assert getattr(caught.value, "__notes__", []) == []  # it was retried: nothing to explain


def test_call_logs_under_the_functions_name(caplog: pytest.LogCaptureFixture, sleeps: list[float]) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)

    def fetch_page() -> tuple[object, ...]:
        return flaky()

    flaky = down(1)
    RetryContext(sleep=sleeps.append).call(fetch_page)
    RetryContext(sleep=sleeps.append, name="page 3").call(down(1))
    assert [message.split(":")[0] for *_, message in caplog.record_tuples] == [
        "test_call_logs_under_the_functions_name.<locals>.fetch_page",
        "page 3",
    ]


def test_call_refuses_a_coroutine_function(sleeps: list[float]) -> None:
    async def fetch() -> None:
        pass

    with pytest.raises(TypeError, match="async for attempt in RetryContext"):
        RetryContext(sleep=sleeps.append).call(fetch)


def test_a_context_is_reusable(sleeps: list[float]) -> None:
    context = RetryContext(max_attempts=2, sleep=sleeps.append)
    assert context.call(down(1)) == ()
    assert context.call(down(1)) == ()
    assert [attempt.number for attempt in _run(context, down(1))] == [1, 2]
    assert sleeps == [1, 1, 1]


def _run(context: RetryContext, block: Flaky) -> Iterator[Any]:
    for attempt in context:
        with attempt:
            yield attempt
            block()


def test_async_loop(sleeps: list[float]) -> None:
    async def nap(delay: float) -> None:
        sleeps.append(delay)

    async def main() -> int:
        flaky = down(2)
        async for attempt in RetryContext(sleep=nap):
            with attempt:
                flaky()
        return flaky.calls

    assert asyncio.run(main()) == 3
    assert sleeps == [1, 2]


def test_retrying_is_the_same_thing() -> None:
    assert retryq.Retrying is RetryContext
    assert isinstance(retrying(max_attempts=2), RetryContext)
    assert retrying(max_attempts=2).options == RetryContext(max_attempts=2).options


# -- RetryContext: what a plain `with` block does, honestly ---------------------------------------------


def test_a_plain_with_block_runs_once_and_lets_its_exception_through(sleeps: list[float]) -> None:
    flaky = down(1)

    def body() -> None:
        with RetryContext(max_attempts=3, sleep=sleeps.append):
            flaky()

    with pytest.raises(ConnectionError) as caught:
        body()
    assert caught.value is flaky.raised[0]  # the same object: not wrapped, not swallowed
    assert caught.value.__context__ is None
    assert flaky.calls == 1
    assert sleeps == []
    if HAS_NOTES:
        [note] = caught.value.__notes__
        assert "did not retry this: the body of a with statement runs once" in note
        assert "for attempt in RetryContext(...)" in note
        assert "ctx.call(" in note


def test_a_plain_with_block_that_succeeds_returns_its_value() -> None:
    def body() -> str:
        with RetryContext() as ctx:
            assert isinstance(ctx, RetryContext)
            return "done"

    assert body() == "done"


def test_no_note_for_an_exception_the_options_would_not_retry() -> None:
    with pytest.raises(KeyError) as caught, RetryContext(exceptions=OSError):
        raise KeyError("x")
    assert getattr(caught.value, "__notes__", []) == []


def test_nested_contexts_add_the_note_once() -> None:
    with pytest.raises(TimeoutError) as caught, RetryContext(), RetryContext():
        raise TimeoutError
    assert len(getattr(caught.value, "__notes__", [None])) == 1


# -- RetryManager: defaults in one place ------------------------------------------------------------------


def test_manager_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert RetryManager().options == RetryOptions()
    monkeypatch.setenv("RETRY_MAX_ATTEMPTS", "5")
    monkeypatch.setenv("RETRY_BACKOFF_FACTOR", "3")
    manager = RetryManager(initial_delay=0.5)
    assert (manager.options.max_attempts, manager.options.backoff_factor) == (5, 3)
    assert RetryManager(max_attempts=2).options.max_attempts == 2  # explicit wins
    monkeypatch.setenv("RETRY_MAX_ATTEMPTS", "9")
    assert manager.options.max_attempts == 5  # read once, when the manager was made


def test_manager_decorates_bare_and_with_changes(sleeps: list[float]) -> None:
    manager = RetryManager(max_attempts=4, initial_delay=0.5, sleep=sleeps.append)
    bare = manager.retry(down(3))
    assert bare("x") == ("x",)
    assert sleeps == [0.5, 1, 2]
    sleeps.clear()
    changed = manager.retry(max_attempts=2)(flaky := down(5))
    with pytest.raises(ConnectionError):
        changed()
    assert flaky.calls == 2
    assert sleeps == [0.5]
    assert manager.options.max_attempts == 4  # the manager's own defaults are untouched


def test_manager_makes_contexts(sleeps: list[float]) -> None:
    manager = RetryManager(max_attempts=2, sleep=sleeps.append, retry_if=is_recoverable)
    context = manager.context(max_attempts=3)
    assert isinstance(context, RetryContext)
    assert context.options == manager.options.copy(max_attempts=3)
    assert context.call(down(2)) == ()
    with pytest.raises(ValueError, match="bad") as caught:
        manager.context().call(Flaky(ValueError("bad")))
    assert caught.value.args == ("bad",)


def test_manager_checks_its_options_at_once() -> None:
    with pytest.raises(ValueError, match="max_attempts must be an integer from 1 to 100, not 500"):
        RetryManager(max_attempts=500)
    manager = RetryManager()
    with pytest.raises(ValueError, match="max_delay"):
        manager.context(max_delay=-1)
    with pytest.raises(TypeError, match="by keyword"):
        manager.retry(3)  # type: ignore[call-overload]


def test_manager_repr() -> None:
    assert repr(RetryManager(max_attempts=4)).startswith("RetryManager(RetryOptions(max_attempts=4, ")


# -- BackoffStrategy: the strategies as functions of the attempt number ------------------------------------


def test_exponential_counts_from_the_attempt_that_just_failed() -> None:
    assert [BackoffStrategy.exponential(n) for n in (1, 2, 3)] == [1, 2, 4]
    assert BackoffStrategy.exponential(10) == 60
    assert BackoffStrategy.exponential(3, initial_delay=0.5, factor=3, max_delay=4) == 4
    assert BackoffStrategy.exponential(2, initial_delay=0.5, factor=3) == 1.5


def test_linear_and_constant() -> None:
    assert [BackoffStrategy.linear(n) for n in (1, 2, 3)] == [1, 2, 3]
    assert [BackoffStrategy.linear(n, increment=5, max_delay=12) for n in (1, 2, 3)] == [5, 10, 12]
    assert BackoffStrategy.constant() == 1
    assert BackoffStrategy.constant(2.5) == 2.5


@pytest.mark.parametrize("attempt", range(1, 12))
def test_the_functions_are_the_strategies_of_retryq_backoff(attempt: int) -> None:
    state = retryq.RetryState(attempt)
    assert BackoffStrategy.exponential(attempt, 2, 1.5, 30) == exponential(initial=2, factor=1.5, max=30)(state)
    assert BackoffStrategy.linear(attempt, 3, 20) == linear(initial=3, increment=3, max=20)(state)
    assert BackoffStrategy.constant(7) == constant(7)(state)


def test_the_decorator_waits_what_the_functions_say(sleeps: list[float]) -> None:
    with pytest.raises(ConnectionError):
        retry(max_attempts=4, sleep=sleeps.append)(down(9))()
    assert sleeps == [BackoffStrategy.exponential(n) for n in (1, 2, 3)]


@pytest.mark.parametrize("attempt", [0, -1, 1.5, True, "2"])
def test_attempts_count_from_one(attempt: Any) -> None:
    with pytest.raises(ValueError, match="attempt counts the failed attempts from 1"):
        BackoffStrategy.exponential(attempt)
    with pytest.raises(ValueError, match="attempt counts the failed attempts from 1"):
        BackoffStrategy.linear(attempt)


def test_negative_delays_are_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        BackoffStrategy.constant(-1)
    with pytest.raises(ValueError, match="factor"):
        BackoffStrategy.exponential(1, factor=0.5)


# -- ExceptionFilter -------------------------------------------------------------------------------------------


class HTTPError(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(status_code)
        self.status_code = status_code


def test_a_filter_of_classes_a_predicate_or_both() -> None:
    classes = ExceptionFilter(TimeoutError, ConnectionError)
    assert classes(ConnectionResetError())
    assert classes(TimeoutError())
    assert not classes(ValueError())
    busy = ExceptionFilter(predicate=lambda exc: getattr(exc, "status_code", None) == 503)
    assert busy(HTTPError(503))
    assert not busy(HTTPError(500))
    both = ExceptionFilter(HTTPError, predicate=lambda exc: "503" in str(exc))
    assert both(HTTPError(503))
    assert not both(ValueError("503"))


def test_filters_combine() -> None:
    timeouts = ExceptionFilter(TimeoutError)
    server = ExceptionFilter(HTTPError, predicate=lambda exc: exc.status_code >= 500)  # type: ignore[attr-defined]
    either = timeouts | server
    assert either(TimeoutError())
    assert either(HTTPError(502))
    assert not either(HTTPError(404))
    not_502 = server & ~ExceptionFilter(predicate=lambda exc: "502" in str(exc))
    assert not_502(HTTPError(500))
    assert not not_502(HTTPError(502))


def test_filters_combine_with_plain_classes_and_predicates() -> None:
    recoverable_or_key = ExceptionFilter(KeyError) | is_recoverable
    assert recoverable_or_key(KeyError())
    assert recoverable_or_key(TimeoutError())
    assert not recoverable_or_key(ValueError())
    from_the_left = ValueError | ExceptionFilter(KeyError)
    assert from_the_left(ValueError())
    assert not from_the_left(TypeError())
    assert (is_recoverable & ExceptionFilter(OSError))(ConnectionError())
    assert not (is_recoverable & ExceptionFilter(OSError))(HTTPError(503))
    assert (ExceptionFilter(KeyError) & LookupError)(KeyError())


def test_a_filter_is_a_retry_if(sleeps: list[float]) -> None:
    only_timeouts = ExceptionFilter(TimeoutError) | ExceptionFilter(HTTPError, predicate=is_recoverable)
    flaky = Flaky(TimeoutError(), HTTPError(503), HTTPError(404))
    with pytest.raises(HTTPError) as caught:
        retry(max_attempts=5, retry_if=only_timeouts, sleep=sleeps.append)(flaky)()
    assert caught.value.status_code == 404
    assert flaky.calls == 3


def test_filter_repr() -> None:
    combined = ExceptionFilter(TimeoutError, ConnectionError) | ~ExceptionFilter(predicate=is_recoverable)
    assert repr(combined) == (
        "(ExceptionFilter(TimeoutError, ConnectionError) | ~ExceptionFilter(predicate=is_recoverable))"
    )


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {}, "needs exception classes, a predicate, or both"),
        ((ValueError(),), {}, "takes exception classes"),
        (("ValueError",), {}, "takes exception classes"),
        ((int,), {}, "takes exception classes"),
        ((), {"predicate": 3}, "predicate must be callable"),
    ],
)
def test_filter_nonsense_is_refused(args: tuple[Any, ...], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ExceptionFilter(*args, **kwargs)


def test_a_filter_combines_with_nothing_else() -> None:
    with pytest.raises(TypeError, match="combines with a filter, an exception class or a predicate"):
        ExceptionFilter(KeyError) | 3  # type: ignore[operator]


# -- the example of the module specification, section 5.3 ------------------------------------------------------

# The specification's example, as written there but for two things: its import lines name this
# package (and a stand-in module for the NetworkError of its own `exceptions` module), and its
# comments and messages are in English.
SPEC_EXAMPLE = '''
from retryq import retry, RetryContext
from spec_exceptions import NetworkError
import requests

# With the decorator
@retry(max_attempts=3, backoff_factor=2, exceptions=(NetworkError, requests.Timeout))
def call_api(url: str) -> dict:
    """Call an API, retried automatically."""
    response = requests.get(url, timeout=5)
    response.raise_for_status()
    return response.json()

# With the context manager
def another_api_call(url: str) -> dict:
    with RetryContext(max_attempts=3, backoff_factor=2) as retry_ctx:
        response = requests.get(url, timeout=5)
        response.raise_for_status()
        return response.json()

# With a callback of one's own
def on_retry_callback(attempt: int, delay: float, exception: Exception):
    print(f"Attempt {attempt} failed, retrying in {delay}s: {exception}")

@retry(max_attempts=3, on_retry=on_retry_callback)
def api_with_logging(url: str) -> dict:
    response = requests.get(url, timeout=5)
    response.raise_for_status()
    return response.json()

# Using it
try:
    data = call_api("https://api.example.com/data")
    print(f"Data received: {data}")
except NetworkError as e:
    print(f"Failed for good after 3 attempts: {e}")
'''


class FakeRequests(types.ModuleType):
    """Just enough of `requests` for the example: get(), Timeout, HTTPError, and answers given in advance."""

    class Timeout(Exception):
        pass

    class HTTPError(Exception):
        pass

    def __init__(self) -> None:
        super().__init__("requests")
        self.answers: list[object] = []
        self.urls: list[str] = []

    def get(self, url: str, timeout: float) -> FakeResponse:
        self.urls.append(url)
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        assert isinstance(answer, FakeResponse)
        return answer


class FakeResponse:
    def __init__(self, status_code: int, body: object = None) -> None:
        self.status_code = status_code
        self.body = body

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise FakeRequests.HTTPError(f"{self.status_code} error")

    def json(self) -> object:
        return self.body


class NetworkError(Exception):
    pass


@pytest.fixture
def spec_example(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> tuple[FakeRequests, dict[str, Any]]:
    """The example's modules faked and time.sleep recorded: the fake requests and a namespace to run it in."""
    requests = FakeRequests()
    exceptions = types.ModuleType("spec_exceptions")
    exceptions.NetworkError = NetworkError  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "requests", requests)
    monkeypatch.setitem(sys.modules, "spec_exceptions", exceptions)
    monkeypatch.setattr(time, "sleep", sleeps.append)  # the example does not inject its sleep
    namespace: dict[str, Any] = {"__name__": "spec_example"}
    return requests, namespace


def run_example(namespace: dict[str, Any]) -> None:
    exec(compile(SPEC_EXAMPLE, "spec_example.py", "exec"), namespace)  # noqa: S102 - our own constant


def test_spec_example_runs_and_retries_the_decorated_call(
    spec_example: tuple[FakeRequests, dict[str, Any]], sleeps: list[float], capsys: pytest.CaptureFixture[str]
) -> None:
    requests, namespace = spec_example
    requests.answers = [requests.Timeout("read timed out"), NetworkError("reset"), FakeResponse(200, {"n": 1})]
    run_example(namespace)
    assert capsys.readouterr().out == "Data received: {'n': 1}\n"
    assert requests.urls == ["https://api.example.com/data"] * 3
    assert sleeps == [1, 2]


def test_spec_example_fails_for_good_after_three_attempts(
    spec_example: tuple[FakeRequests, dict[str, Any]], sleeps: list[float], capsys: pytest.CaptureFixture[str]
) -> None:
    requests, namespace = spec_example
    requests.answers = [NetworkError("down 1"), NetworkError("down 2"), NetworkError("down 3")]
    run_example(namespace)
    assert capsys.readouterr().out == "Failed for good after 3 attempts: down 3\n"
    assert sleeps == [1, 2]
    requests.answers = [FakeResponse(404)]
    with pytest.raises(requests.HTTPError):  # not among the exceptions it retries
        namespace["call_api"]("https://api.example.com/missing")
    assert sleeps == [1, 2]


def test_spec_example_context_manager_runs_its_body_once(
    spec_example: tuple[FakeRequests, dict[str, Any]], sleeps: list[float]
) -> None:
    requests, namespace = spec_example
    requests.answers = [FakeResponse(200, {"n": 1})]
    run_example(namespace)
    requests.answers = [FakeResponse(200, {"n": 2})]
    assert namespace["another_api_call"]("https://api.example.com/other") == {"n": 2}
    timeout = requests.Timeout("read timed out")
    requests.answers = [timeout, FakeResponse(200, {"n": 3})]
    with pytest.raises(requests.Timeout) as caught:
        namespace["another_api_call"]("https://api.example.com/other")
    assert caught.value is timeout  # propagated as raised, after one call: a with body cannot be re-run
    assert len(requests.answers) == 1  # the second answer was never asked for
    assert sleeps == []
    if HAS_NOTES:
        assert "did not retry this" in caught.value.__notes__[0]


def test_spec_example_callback_is_told_of_each_retry(
    spec_example: tuple[FakeRequests, dict[str, Any]], sleeps: list[float], capsys: pytest.CaptureFixture[str]
) -> None:
    requests, namespace = spec_example
    requests.answers = [FakeResponse(200, {"n": 1})]
    run_example(namespace)
    capsys.readouterr()
    requests.answers = [requests.Timeout("slow"), FakeResponse(503), FakeResponse(200, {"n": 4})]
    assert namespace["api_with_logging"]("https://api.example.com/logged") == {"n": 4}
    assert capsys.readouterr().out == (
        "Attempt 1 failed, retrying in 1.0s: slow\nAttempt 2 failed, retrying in 2.0s: 503 error\n"
    )
    assert sleeps == [1, 2]
