"""The in-process retry toolkit: @retry, retrying(), is_recoverable, retry_after and defer, with no real sleeping."""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import random
import socket
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest

from retryq import Config, InvalidInput, MemoryStore, RetryQueue, StoreIOError
from retryq.inprocess.forms import RetryAttempt, Retrying, defer, is_recoverable, retry, retry_after, retrying
from retryq.record.backoff import RetryState, constant, exponential, jitter
from retryq.record.models import Job
from retryq.record.timeutil import format_utc

LOGGER = "retryq.retry"


class Flaky:
    """A callable that raises the given exceptions in turn, then returns ``"ok"``."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0
        self.raised: list[BaseException] = []

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            error = self.failures.pop(0)
            self.raised.append(error)
            raise error
        return "ok"


def failing(count: int, kind: type[Exception] = ConnectionError) -> Flaky:
    return Flaky(*(kind(f"failure {n}") for n in range(1, count + 1)))


@pytest.fixture
def sleeps() -> list[float]:
    return []


# -- the decorator: what it retries, how long it waits ---------------------------------------------


def test_success_after_failures(sleeps: list[float]) -> None:
    flaky = failing(2)
    assert retry(sleep=sleeps.append)(flaky)() == "ok"
    assert flaky.calls == 3
    assert sleeps == [1, 2]


def test_exhaustion_reraises_the_last_exception_with_its_traceback(sleeps: list[float]) -> None:
    flaky = failing(5)
    with pytest.raises(ConnectionError) as caught:
        retry(sleep=sleeps.append)(flaky)()
    assert flaky.calls == 3
    assert caught.value is flaky.raised[-1]
    assert caught.value.__context__ is None  # not chained to the earlier failures
    assert caught.traceback[-1].name == "__call__"  # where it was raised, not where it was re-raised


def test_an_exception_that_does_not_match_propagates_at_once(sleeps: list[float]) -> None:
    flaky = failing(1, ValueError)
    with pytest.raises(ValueError, match="failure 1"):
        retry(exceptions=(ConnectionError, TimeoutError), sleep=sleeps.append)(flaky)()
    assert flaky.calls == 1
    assert sleeps == []


def test_a_single_exception_class_is_accepted(sleeps: list[float]) -> None:
    flaky = failing(1, KeyError)
    assert retry(exceptions=LookupError, sleep=sleeps.append)(flaky)() == "ok"
    assert flaky.calls == 2


def test_base_exceptions_are_never_retried(sleeps: list[float]) -> None:
    flaky = Flaky(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        retry(sleep=sleeps.append)(flaky)()
    assert flaky.calls == 1


def test_default_backoff_waits_1_2_4_seconds(sleeps: list[float]) -> None:
    with pytest.raises(ConnectionError):
        retry(max_attempts=4, sleep=sleeps.append)(failing(9))()
    assert sleeps == [1, 2, 4]
    assert sleeps == exponential(initial=1.0, factor=2.0, max=60.0).delays(3)


def test_max_delay_caps_the_wait(sleeps: list[float]) -> None:
    with pytest.raises(ConnectionError):
        retry(max_attempts=5, initial_delay=10, max_delay=25, sleep=sleeps.append)(failing(9))()
    assert sleeps == [10, 20, 25, 25]


def test_a_custom_backoff_replaces_the_exponential(sleeps: list[float]) -> None:
    with pytest.raises(ConnectionError):
        retry(max_attempts=4, backoff=constant(5), sleep=sleeps.append)(failing(9))()
    assert sleeps == [5, 5, 5]


def test_max_delay_caps_a_custom_backoff_too(sleeps: list[float]) -> None:
    with pytest.raises(ConnectionError):
        retry(max_attempts=3, backoff=constant(120), max_delay=60, sleep=sleeps.append)(failing(9))()
    assert sleeps == [60, 60]


def test_jitter_from_a_seeded_generator(sleeps: list[float]) -> None:
    strategy = exponential(initial=1, factor=2, max=60) + jitter(0.5, rng=random.Random(42))
    with pytest.raises(ConnectionError):
        retry(max_attempts=4, backoff=strategy, sleep=sleeps.append)(failing(9))()
    expected = (exponential(initial=1, factor=2, max=60) + jitter(0.5, rng=random.Random(42))).delays(3)
    assert sleeps == expected
    assert all(base <= got <= base + 0.5 for base, got in zip([1, 2, 4], sleeps, strict=True))
    assert len({got - base for base, got in zip([1, 2, 4], sleeps, strict=True)}) == 3


def test_any_callable_of_the_retry_state_is_a_backoff(sleeps: list[float]) -> None:
    def by_attempt(state: RetryState) -> float:
        return state.attempt * 0.25

    with pytest.raises(ConnectionError):
        retry(max_attempts=3, backoff=by_attempt, sleep=sleeps.append)(failing(9))()
    assert sleeps == [0.25, 0.5]


def test_on_retry_gets_the_attempt_the_delay_and_the_exception(sleeps: list[float]) -> None:
    seen: list[tuple[int, float, BaseException]] = []
    flaky = failing(2)
    retry(on_retry=lambda attempt, delay, exc: seen.append((attempt, delay, exc)), sleep=sleeps.append)(flaky)()
    assert seen == [(1, 1.0, flaky.raised[0]), (2, 2.0, flaky.raised[1])]


def test_on_retry_is_called_before_the_sleep() -> None:
    events: list[str] = []
    retry(on_retry=lambda *_: events.append("on_retry"), sleep=lambda _: events.append("sleep"))(failing(1))()
    assert events == ["on_retry", "sleep"]


def test_on_exhausted_gets_the_last_exception_and_the_number_of_attempts(sleeps: list[float]) -> None:
    seen: list[tuple[BaseException, int]] = []
    flaky = failing(9)
    with pytest.raises(ConnectionError):
        retry(max_attempts=2, on_exhausted=lambda exc, n: seen.append((exc, n)), sleep=sleeps.append)(flaky)()
    assert seen == [(flaky.raised[-1], 2)]


def test_on_exhausted_is_not_called_on_success_nor_for_an_unretried_exception(sleeps: list[float]) -> None:
    seen: list[object] = []
    retry(on_exhausted=lambda *args: seen.append(args), sleep=sleeps.append)(failing(2))()
    with pytest.raises(ValueError, match="failure 1"):
        retry(exceptions=OSError, on_exhausted=lambda *args: seen.append(args))(failing(1, ValueError))()
    assert seen == []


def test_retry_if_refuses_what_it_does_not_like(sleeps: list[float]) -> None:
    flaky = Flaky(PermissionError("no"))
    with pytest.raises(PermissionError):
        retry(retry_if=is_recoverable, sleep=sleeps.append)(flaky)()
    assert flaky.calls == 1
    flaky = Flaky(TimeoutError("slow"), ConnectionResetError("reset"))
    assert retry(retry_if=is_recoverable, sleep=sleeps.append)(flaky)() == "ok"
    assert flaky.calls == 3


def test_bare_decorator_and_metadata(sleeps: list[float]) -> None:
    calls: list[int] = []

    @retry
    def fetch(page: int, *, size: int = 10) -> list[int]:
        """Fetch one page."""
        calls.append(page)
        return list(range(page * size, page * size + 2))

    assert fetch(3, size=5) == [15, 16]
    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Fetch one page."
    assert fetch.__qualname__.endswith("<locals>.fetch")
    assert inspect.signature(fetch) == inspect.signature(fetch.__wrapped__)  # type: ignore[attr-defined]


def test_methods_can_be_decorated(sleeps: list[float]) -> None:
    class Client:
        def __init__(self) -> None:
            self.flaky = failing(1)

        @retry(sleep=sleeps.append)
        def get(self) -> str:
            return self.flaky()

    assert Client().get() == "ok"


def test_positional_options_are_refused_with_the_keyword_to_write() -> None:
    with pytest.raises(TypeError, match=r"by keyword: write @retry\(max_attempts=3\), not @retry\(3\)"):
        retry(3)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match=r"by keyword: write @retry\(max_attempts=3\), not @retry\('fast'\)"):
        retry("fast")  # type: ignore[call-overload]


def test_generators_are_refused() -> None:
    def pages() -> Iterator[int]:
        yield 1

    with pytest.raises(TypeError, match="generator"):
        retry(pages)


# -- validation and environment ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_attempts": 0}, "max_attempts"),
        ({"max_attempts": -1}, "max_attempts"),
        ({"max_attempts": 2.5}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
        ({"max_attempts": "3"}, "max_attempts"),
        ({"backoff_factor": 0.5}, "backoff_factor"),
        ({"backoff_factor": "2"}, "backoff_factor"),
        ({"backoff_factor": math.nan}, "backoff_factor"),
        ({"backoff_factor": math.inf}, "backoff_factor"),
        ({"backoff_factor": False}, "backoff_factor"),
        ({"initial_delay": -1}, "initial_delay"),
        ({"initial_delay": math.nan}, "initial_delay"),
        ({"initial_delay": math.inf}, "initial_delay"),
        ({"max_delay": -1}, "max_delay"),
        ({"max_delay": math.nan}, "max_delay"),
        ({"max_delay": math.inf}, "max_delay"),
        ({"max_attempts": 101}, "max_attempts must be an integer from 1 to 100, not 101"),
        ({"backoff_factor": 10.5}, "backoff_factor must be a number from 1 to 10, not 10.5"),
        ({"initial_delay": 86_401}, r"initial_delay must be a number of seconds from 0 to 86400 \(one day\)"),
        ({"max_delay": 90_000}, r"max_delay must be a number of seconds from 0 to 86400 \(one day\)"),
        ({"respect_retry_after": "yes"}, "respect_retry_after"),
        ({"name": 3}, "name"),
        ({"initial_delay": 10, "max_delay": 5}, r"max_delay \(5\) must not be less than initial_delay \(10\)"),
        ({"exceptions": ()}, "exceptions"),
        ({"exceptions": ValueError("x")}, "exceptions"),
        ({"exceptions": (ValueError, "KeyError")}, "exceptions"),
        ({"exceptions": [ValueError]}, "exceptions"),
        ({"exceptions": (KeyboardInterrupt,)}, "exceptions"),
        ({"on_retry": "print"}, "on_retry"),
        ({"on_exhausted": 1}, "on_exhausted"),
        ({"retry_if": True}, "retry_if"),
        ({"backoff": 5}, "backoff"),
        ({"sleep": 0}, "sleep"),
    ],
)
def test_nonsense_is_refused_when_decorating(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        retry(**options)
    with pytest.raises(ValueError, match=message):
        retrying(**options)


def test_the_limits_themselves_are_accepted(sleeps: list[float]) -> None:
    flaky = failing(99)
    options = {"max_attempts": 100, "backoff_factor": 10, "initial_delay": 86_400, "max_delay": 86_400}
    assert retry(sleep=sleeps.append, **options)(flaky)() == "ok"
    assert sleeps == [86_400] * 99


def test_environment_supplies_attempts_and_factor(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> None:
    monkeypatch.setenv("RETRY_MAX_ATTEMPTS", "4")
    monkeypatch.setenv("RETRY_BACKOFF_FACTOR", "3")
    flaky = failing(9)
    with pytest.raises(ConnectionError):
        retry(sleep=sleeps.append)(flaky)()
    assert flaky.calls == 4
    assert sleeps == [1, 3, 9]


def test_explicit_arguments_win_over_the_environment(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> None:
    monkeypatch.setenv("RETRY_MAX_ATTEMPTS", "4")
    monkeypatch.setenv("RETRY_BACKOFF_FACTOR", "3")
    flaky = failing(9)
    with pytest.raises(ConnectionError):
        retry(max_attempts=3, backoff_factor=2, sleep=sleeps.append)(flaky)()
    assert flaky.calls == 3
    assert sleeps == [1, 2]


def test_the_environment_is_read_when_decorating(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> None:
    monkeypatch.setenv("RETRY_MAX_ATTEMPTS", "2")
    decorated = retry(sleep=sleeps.append)(flaky := failing(9))
    monkeypatch.setenv("RETRY_MAX_ATTEMPTS", "5")
    with pytest.raises(ConnectionError):
        decorated()
    assert flaky.calls == 2


def test_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> None:
    monkeypatch.setenv("RETRY_MAX_ATTEMPTS", "")
    flaky = failing(9)
    with pytest.raises(ConnectionError):
        retry(sleep=sleeps.append)(flaky)()
    assert flaky.calls == 3


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RETRY_MAX_ATTEMPTS", "three"),
        ("RETRY_MAX_ATTEMPTS", "0"),
        ("RETRY_MAX_ATTEMPTS", "2.5"),
        ("RETRY_BACKOFF_FACTOR", "fast"),
        ("RETRY_BACKOFF_FACTOR", "0.5"),
        ("RETRY_BACKOFF_FACTOR", "nan"),
        ("RETRY_BACKOFF_FACTOR", "inf"),
        ("RETRY_MAX_ATTEMPTS", "101"),
        ("RETRY_BACKOFF_FACTOR", "12"),
    ],
)
def test_invalid_environment_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=f"^{name} must be .*, not '{value}'$"):
        retry()


def test_an_invalid_variable_is_ignored_when_its_argument_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETRY_MAX_ATTEMPTS", "three")
    retry(max_attempts=2)


# -- logging ------------------------------------------------------------------------------------------


def test_one_warning_per_retry_and_one_error_when_exhausted(
    caplog: pytest.LogCaptureFixture, sleeps: list[float]
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)

    @retry(sleep=sleeps.append)
    def fetch() -> None:
        raise ConnectionError("refused")

    with pytest.raises(ConnectionError):
        fetch()
    name = "test_one_warning_per_retry_and_one_error_when_exhausted.<locals>.fetch"
    assert caplog.record_tuples == [
        (LOGGER, logging.WARNING, f"{name}: attempt 1/3 failed: ConnectionError('refused'); retrying in 1.00s"),
        (LOGGER, logging.WARNING, f"{name}: attempt 2/3 failed: ConnectionError('refused'); retrying in 2.00s"),
        (LOGGER, logging.ERROR, f"{name}: attempt 3/3 failed: ConnectionError('refused'); giving up"),
    ]


def test_the_attempts_go_to_the_logger_given_or_nowhere(caplog: pytest.LogCaptureFixture, sleeps: list[float]) -> None:
    caplog.set_level(logging.DEBUG)
    mine = logging.getLogger("myapp.fetch")
    with pytest.raises(ConnectionError):
        retry(sleep=sleeps.append, max_attempts=2, logger=mine, name="fetch")(failing(5, ConnectionError))()
    assert [(name, level) for name, level, _ in caplog.record_tuples] == [
        ("myapp.fetch", logging.WARNING),
        ("myapp.fetch", logging.ERROR),
    ]
    caplog.clear()
    with pytest.raises(ConnectionError):
        retry(sleep=sleeps.append, max_attempts=2, logger=None)(failing(5, ConnectionError))()
    assert caplog.records == []
    with pytest.raises(ValueError, match=r"logger must be a logging\.Logger or None"):
        retry(logger="retryq")  # type: ignore[call-overload]


def test_nothing_is_logged_on_success_nor_for_an_unretried_exception(
    caplog: pytest.LogCaptureFixture, sleeps: list[float]
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    retry(sleep=sleeps.append)(failing(0))()
    with pytest.raises(ValueError, match="failure 1"):
        retry(exceptions=OSError)(failing(1, ValueError))()
    assert caplog.records == []


# -- async functions ------------------------------------------------------------------------------------


def test_async_function_succeeds_after_failures() -> None:
    sleeps: list[float] = []
    flaky = failing(2)

    async def nap(delay: float) -> None:
        sleeps.append(delay)

    @retry(sleep=nap)
    async def fetch(page: int) -> str:
        """Fetch asynchronously."""
        await asyncio.sleep(0)
        return f"{flaky()} {page}"

    assert inspect.iscoroutinefunction(fetch)
    assert fetch.__name__ == "fetch"
    assert fetch.__doc__ == "Fetch asynchronously."
    assert asyncio.run(fetch(7)) == "ok 7"
    assert flaky.calls == 3
    assert sleeps == [1, 2]


def test_async_function_exhaustion_reraises_the_last_exception() -> None:
    sleeps: list[float] = []
    flaky = failing(9, TimeoutError)
    exhausted: list[int] = []

    async def nap(delay: float) -> None:
        sleeps.append(delay)

    @retry(max_attempts=4, sleep=nap, on_exhausted=lambda _, n: exhausted.append(n))
    async def fetch() -> str:
        return flaky()

    with pytest.raises(TimeoutError) as caught:
        asyncio.run(fetch())
    assert caught.value is flaky.raised[-1]
    assert sleeps == [1, 2, 4]
    assert exhausted == [4]


def test_async_function_sleeps_with_asyncio_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []

    async def fake_sleep(delay: float) -> None:
        sleeps.append(delay)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)

    @retry(initial_delay=0.5)
    async def fetch() -> str:
        return flaky()

    flaky = failing(1)
    assert asyncio.run(fetch()) == "ok"
    assert sleeps == [0.5]


# -- retrying(): the loop form --------------------------------------------------------------------------


def run_loop(loop: Retrying, block: Callable[[], object]) -> list[int]:
    """Run ``block`` in a retrying() loop as a caller would; the attempt numbers it went through."""
    numbers = []
    for attempt in loop:
        with attempt:
            numbers.append(attempt.number)
            block()
    return numbers


def test_retrying_runs_the_block_again_until_it_succeeds(sleeps: list[float]) -> None:
    flaky = failing(2)
    for attempt in retrying(sleep=sleeps.append):
        with attempt:
            result = flaky()
    assert result == "ok"
    assert sleeps == [1, 2]
    assert run_loop(retrying(sleep=sleeps.append), failing(2)) == [1, 2, 3]


def test_retrying_reraises_the_last_exception_after_the_last_attempt(sleeps: list[float]) -> None:
    flaky = failing(9)
    exhausted: list[tuple[BaseException, int]] = []
    loop = retrying(max_attempts=2, sleep=sleeps.append, on_exhausted=lambda e, n: exhausted.append((e, n)))
    with pytest.raises(ConnectionError) as caught:
        run_loop(loop, flaky)
    assert flaky.calls == 2
    assert caught.value is flaky.raised[-1]
    assert exhausted == [(flaky.raised[-1], 2)]
    assert sleeps == [1]


def test_retrying_lets_an_unmatched_exception_through_at_once(sleeps: list[float]) -> None:
    flaky = failing(1, ValueError)
    with pytest.raises(ValueError, match="failure 1"):
        run_loop(retrying(exceptions=OSError, sleep=sleeps.append), flaky)
    assert flaky.calls == 1
    assert sleeps == []


def test_retrying_ends_when_the_caller_swallows_the_last_failure(sleeps: list[float]) -> None:
    runs = 0
    for attempt in retrying(max_attempts=2, sleep=sleeps.append):
        runs += 1
        try:
            with attempt:
                raise ConnectionError("down")
        except ConnectionError:
            pass
    assert runs == 2


def test_retrying_needs_the_with_block(sleeps: list[float]) -> None:
    with pytest.raises(RuntimeError, match="with attempt"):
        for _attempt in retrying(sleep=sleeps.append):
            pass


def test_retrying_is_reusable_and_logs_under_its_name(caplog: pytest.LogCaptureFixture, sleeps: list[float]) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    loop = retrying(max_attempts=2, sleep=sleeps.append, name="fetch page")
    for _ in range(2):
        flaky = failing(1)
        attempts = []
        for attempt in loop:
            with attempt:
                attempts.append(repr(attempt))
                flaky()
        assert attempts == ["<RetryAttempt 1/2>", "<RetryAttempt 2/2>"]
    assert [message for *_, message in caplog.record_tuples] == [
        "fetch page: attempt 1/2 failed: ConnectionError('failure 1'); retrying in 1.00s"
    ] * 2


def test_retrying_async() -> None:
    sleeps: list[float] = []
    flaky = failing(2)

    async def nap(delay: float) -> None:
        sleeps.append(delay)

    async def main() -> list[int]:
        numbers = []
        async for attempt in retrying(sleep=nap):
            with attempt:
                numbers.append(attempt.number)
                await asyncio.sleep(0)
                flaky()
        return numbers

    assert asyncio.run(main()) == [1, 2, 3]
    assert sleeps == [1, 2]


def test_retrying_async_exhaustion() -> None:
    flaky = failing(9)

    async def nap(delay: float) -> None:
        pass

    async def main() -> None:
        async for attempt in retrying(max_attempts=3, sleep=nap):
            with attempt:
                assert isinstance(attempt, RetryAttempt)
                flaky()

    with pytest.raises(ConnectionError) as caught:
        asyncio.run(main())
    assert caught.value is flaky.raised[-1]
    assert flaky.calls == 3


# -- is_recoverable ------------------------------------------------------------------------------------------


class FakeTimeout(Exception):
    pass


class ReadTimeout(FakeTimeout):  # the name of requests' and httpx's read timeouts
    pass


class TimeoutException(Exception):  # httpx's base class of timeouts
    pass


class PoolTimeout(TimeoutException):
    pass


class ConnectError(Exception):  # httpx
    pass


class NewConnectionError(Exception):  # urllib3
    pass


class RateLimitError(Exception):  # the name most API clients give a 429 they turned into an exception
    pass


class TooManyRequests(Exception):  # werkzeug's, among others
    pass


class ClientRateLimited(RateLimitError):
    pass


class HTTPError(Exception):
    """Carries a status the way a client library would: on itself or on its response."""

    def __init__(self, *, status_code: int | None = None, status: int | None = None, response: object = None) -> None:
        super().__init__(status_code or status)
        if status_code is not None:
            self.status_code = status_code
        if status is not None:
            self.status = status
        self.response = response


class Response:
    def __init__(self, *, status_code: int | None = None, status: int | None = None, headers: object = None) -> None:
        if status_code is not None:
            self.status_code = status_code
        if status is not None:
            self.status = status
        self.headers = headers if headers is not None else {}


class ExplodingResponse(Exception):
    @property
    def response(self) -> object:
        raise RuntimeError("no response attached")


STATUS_CARRIERS: list[Callable[[int], BaseException]] = [
    lambda code: HTTPError(status_code=code),
    lambda code: HTTPError(status=code),
    lambda code: HTTPError(response=Response(status_code=code)),
    lambda code: HTTPError(response=Response(status=code)),
]
STATUS_CARRIER_IDS = ["status_code", "status", "response.status_code", "response.status"]


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (TimeoutError("slow"), True),
        (socket.timeout("slow"), True),  # noqa: UP041 - the name socket users know, an alias since 3.10
        (asyncio.TimeoutError(), True),
        (FakeTimeout(), True),
        (ReadTimeout(), True),
        (PoolTimeout(), True),
        (ConnectionError("down"), True),
        (ConnectionRefusedError(), True),
        (ConnectionResetError(), True),
        (BrokenPipeError(), True),
        (ConnectError(), True),
        (NewConnectionError(), True),
        (RateLimitError("slow down"), True),
        (TooManyRequests(), True),
        (ClientRateLimited(), True),
        (type("Rate_Limit_Exceeded", (Exception,), {})(), True),
        (type("TooManyRequestsError", (Exception,), {})(), True),
        (type("RateCalculationError", (Exception,), {})(), False),
        (ValueError("bad"), False),
        (KeyError("x"), False),
        (PermissionError(), False),
        (FileNotFoundError(), False),
        (OSError("other"), False),
        (Exception("plain"), False),
        (ExplodingResponse(), False),
        (HTTPError(response=None), False),
    ],
    ids=repr,
)
def test_is_recoverable_by_kind(exc: BaseException, expected: bool) -> None:
    assert is_recoverable(exc) is expected


@pytest.mark.parametrize("code", [429, 500, 502, 503, 504])
@pytest.mark.parametrize("build", STATUS_CARRIERS, ids=STATUS_CARRIER_IDS)
def test_is_recoverable_for_rate_limits_and_server_errors(build: Callable[[int], BaseException], code: int) -> None:
    assert is_recoverable(build(code)) is True


@pytest.mark.parametrize("code", [400, 401, 403, 404, 405, 408, 409, 410, 422, 451, 501, 505])
@pytest.mark.parametrize("build", STATUS_CARRIERS, ids=STATUS_CARRIER_IDS)
def test_is_not_recoverable_for_other_statuses(build: Callable[[int], BaseException], code: int) -> None:
    assert is_recoverable(build(code)) is False


def test_a_client_error_status_wins_over_a_connection_like_name() -> None:
    class ClientConnectionError(Exception):
        status = 403

    assert is_recoverable(ClientConnectionError()) is False


def test_a_client_error_status_wins_over_a_rate_limit_name() -> None:
    class RateLimitError(Exception):
        status_code = 401  # a rate-limit class reused for a bad key: asking again will not help

    assert is_recoverable(RateLimitError()) is False


def test_the_http_helpers_live_in_their_own_module_and_keep_their_old_addresses() -> None:
    import retryq
    import retryq.inprocess.recoverable

    assert is_recoverable is retryq.inprocess.recoverable.is_recoverable is retryq.is_recoverable
    assert retry_after is retryq.inprocess.recoverable.retry_after is retryq.retry_after
    from retryq.inprocess.forms import RECOVERABLE_STATUS_CODES

    assert RECOVERABLE_STATUS_CODES is retryq.inprocess.recoverable.RECOVERABLE_STATUS_CODES


# -- retry_after ------------------------------------------------------------------------------------------------


NOW = datetime(2025, 12, 19, 10, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "120"}, 120.0),
        ({"retry-after": "7"}, 7.0),
        ({"RETRY-AFTER": " 0 "}, 0.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"Retry-After": b"30"}, 30.0),
        ({"Retry-After": "Fri, 19 Dec 2025 10:01:30 GMT"}, 90.0),
        ({"Retry-After": "Fri, 19 Dec 2025 09:00:00 GMT"}, 0.0),  # already past: no wait
        ({"Retry-After": "Fri, 19 Dec 2025 11:00:00 +0100"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "-5"}, None),
        ({"Content-Type": "text/plain"}, None),
        ({}, None),
    ],
)
def test_retry_after_reads_seconds_or_a_date(headers: dict[str, object], expected: float | None) -> None:
    assert retry_after(HTTPError(status_code=503, response=Response(headers=headers)), now=NOW) == expected


def test_retry_after_also_reads_the_exceptions_own_headers() -> None:
    error = HTTPError(status_code=429)
    error.headers = {"Retry-After": format_datetime(NOW + timedelta(seconds=45), usegmt=True)}  # type: ignore[attr-defined]
    assert retry_after(error, now=NOW) == 45.0


def test_retry_after_without_headers_is_none() -> None:
    assert retry_after(ConnectionError("down")) is None
    assert retry_after(ExplodingResponse()) is None


def test_retry_after_with_a_case_insensitive_mapping() -> None:
    import email.message

    headers = email.message.Message()  # what urllib's HTTPError carries
    headers["Retry-After"] = "12"
    assert retry_after(HTTPError(status=503, response=Response(headers=headers))) == 12.0


def test_retry_after_counts_from_now_by_default() -> None:
    later = datetime.now(timezone.utc) + timedelta(seconds=100)
    waited = retry_after(HTTPError(status=503, response=Response(headers={"Retry-After": format_datetime(later)})))
    assert waited is not None
    assert 95 <= waited <= 100


def rate_limited(seconds: str) -> HTTPError:
    return HTTPError(status_code=429, response=Response(headers={"Retry-After": seconds}))


def test_the_wait_is_the_longer_of_backoff_and_retry_after(sleeps: list[float]) -> None:
    flaky = Flaky(rate_limited("5"), rate_limited("1"))
    assert retry(sleep=sleeps.append)(flaky)() == "ok"
    assert sleeps == [5, 2]


def test_retry_after_can_be_ignored(sleeps: list[float]) -> None:
    flaky = Flaky(rate_limited("5"))
    assert retry(respect_retry_after=False, sleep=sleeps.append)(flaky)() == "ok"
    assert sleeps == [1]


def test_a_retry_after_beyond_max_delay_gives_up_at_once(caplog: pytest.LogCaptureFixture, sleeps: list[float]) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    exhausted: list[tuple[BaseException, int]] = []
    flaky = Flaky(rate_limited("3600"))

    @retry(max_delay=60, sleep=sleeps.append, on_exhausted=lambda exc, n: exhausted.append((exc, n)))
    def fetch() -> str:
        return flaky()

    with pytest.raises(HTTPError) as caught:
        fetch()
    assert flaky.calls == 1
    assert sleeps == []
    assert exhausted == [(caught.value, 1)]
    assert caplog.record_tuples == [
        (
            LOGGER,
            logging.ERROR,
            "test_a_retry_after_beyond_max_delay_gives_up_at_once.<locals>.fetch: attempt 1/3 failed: HTTPError(429); "
            "giving up: Retry-After asks for 3600.00s, beyond max_delay 60.00s",
        )
    ]


# -- defer: escalation to the deferred queue -------------------------------------------------------------------


def test_defer_schedules_one_job_and_the_error_still_propagates(
    caplog: pytest.LogCaptureFixture, sleeps: list[float]
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    queue = RetryQueue(MemoryStore(), config=Config())

    @retry(sleep=sleeps.append, on_exhausted=defer(queue, "balthazar", "2025-12-19", 90))
    def fetch() -> None:
        raise ConnectionError("source down")

    with pytest.raises(ConnectionError, match="source down"):
        fetch()
    [job] = queue.jobs()
    assert (job.client_id, job.date, job.delay_minutes, job.workflow) == ("balthazar", "2025-12-19", 90, "default")
    assert caplog.record_tuples[-1] == (
        LOGGER,
        logging.INFO,
        f"deferred balthazar 2025-12-19 to the queue after 3 attempts: job {job.id} created, "
        f"executeAt {format_utc(job.execute_at)}",
    )

    with pytest.raises(ConnectionError):
        fetch()
    assert queue.jobs() == [job]
    assert caplog.records[-1].getMessage().endswith(f"job {job.id} exists, executeAt {format_utc(job.execute_at)}")


class BrokenStore(MemoryStore):
    def add(self, job: Job, on_open: Any) -> tuple[Job, bool]:
        raise StoreIOError("disk full")


def test_a_failing_queue_does_not_mask_the_original_error(
    caplog: pytest.LogCaptureFixture, sleeps: list[float]
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    queue = RetryQueue(BrokenStore(), config=Config())

    @retry(max_attempts=1, sleep=sleeps.append, on_exhausted=defer(queue, "balthazar", "2025-12-19"))
    def fetch() -> None:
        raise TimeoutError("slow source")

    with pytest.raises(TimeoutError, match="slow source") as caught:
        fetch()
    assert caplog.record_tuples[-1] == (
        LOGGER,
        logging.ERROR,
        "could not defer balthazar 2025-12-19 to the queue after 1 attempt: disk full; the original error propagates",
    )
    assert getattr(caught.value, "__notes__", ["retryq: deferring to the queue failed: disk full"]) == [
        "retryq: deferring to the queue failed: disk full"
    ]


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("bad client!", "2025-12-19"), {}, "client"),
        (("balthazar", "2025-13-45"), {}, "date"),
        (("balthazar", "2025-12-19", "soon"), {}, "not a duration"),
        (("balthazar", "2025-12-19"), {"workflow": "nope"}, "unknown workflow"),
    ],
)
def test_defer_checks_its_arguments_at_once(args: tuple[Any, ...], kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        defer(RetryQueue(MemoryStore(), config=Config()), *args, **kwargs)


def test_is_recoverable_looks_inside_wrappers() -> None:
    import urllib.error

    assert is_recoverable(urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")))
    assert is_recoverable(urllib.error.HTTPError("http://x", 503, "busy", {}, None))  # type: ignore[arg-type]
    assert not is_recoverable(urllib.error.HTTPError("http://x", 404, "not found", {}, None))  # type: ignore[arg-type]
    assert not is_recoverable(urllib.error.URLError("unknown url type: ftp"))
    wrapped = RuntimeError("fetch failed")
    wrapped.__cause__ = TimeoutError()
    assert is_recoverable(wrapped)
    endless = RuntimeError("loop")
    endless.__cause__ = endless
    assert not is_recoverable(endless)
