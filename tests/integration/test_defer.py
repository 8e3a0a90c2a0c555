"""defer(): an exhausted call is handed over to the queue for the client and the date of that call."""

from __future__ import annotations

import asyncio
import datetime
import logging
import sys
from pathlib import Path
from typing import Any

import pytest

from retryq import Config, InvalidInput, RetryContext, RetryManager, RetryQueue, defer, is_recoverable, retry, retrying
from retryq.inprocess.forms import Deferral

LOGGER = "retryq.retry"
HAS_NOTES = sys.version_info >= (3, 11)


@pytest.fixture
def queue(tmp_path: Path) -> RetryQueue:
    return RetryQueue(tmp_path / "queue.json", config=Config())


@pytest.fixture
def sleeps() -> list[float]:
    return []


def scheduled(queue: RetryQueue) -> list[tuple[str, str, int]]:
    return sorted((job.client_id, job.date, job.delay_minutes) for job in queue.jobs())


# -- the client and the date come from the call ----------------------------------------------------------


def test_the_readme_example_defers_what_each_call_was_asked(queue: RetryQueue, sleeps: list[float]) -> None:
    calls: list[tuple[str, str]] = []

    @retry(retry_if=is_recoverable, on_exhausted=defer(queue), sleep=sleeps.append)
    def fetch_notices(client: str, date: str) -> list[dict[str, object]]:
        calls.append((client, date))
        raise ConnectionError("source down")

    with pytest.raises(ConnectionError, match="source down"):
        fetch_notices("balthazar", "2025-12-19")
    with pytest.raises(ConnectionError):
        fetch_notices("melchior", date="2025-12-20")
    with pytest.raises(ConnectionError):
        fetch_notices(date="2025-12-21", client="gaspard")
    assert len(calls) == 9
    assert scheduled(queue) == [
        ("balthazar", "2025-12-19", 60),
        ("gaspard", "2025-12-21", 60),
        ("melchior", "2025-12-20", 60),
    ]


def test_the_log_line_names_the_calls_values(
    queue: RetryQueue, sleeps: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)

    @retry(max_attempts=2, on_exhausted=defer(queue, delay=90), sleep=sleeps.append)
    def fetch(client: str, date: str) -> None:
        raise TimeoutError

    with pytest.raises(TimeoutError):
        fetch("balthazar", "2025-12-19")
    [job] = queue.jobs()
    assert job.delay_minutes == 90
    assert caplog.record_tuples[-1][2].startswith(
        f"deferred balthazar 2025-12-19 to the queue after 2 attempts: job {job.id} created"
    )


def test_defaults_of_the_function_count(queue: RetryQueue, sleeps: list[float]) -> None:
    @retry(max_attempts=1, on_exhausted=defer(queue))
    def fetch(client: str, date: str = "2025-12-19", *, page: int = 1) -> None:
        raise ConnectionError

    with pytest.raises(ConnectionError):
        fetch("balthazar")
    assert scheduled(queue) == [("balthazar", "2025-12-19", 60)]


def test_functions_pick_the_values_from_the_arguments(queue: RetryQueue) -> None:
    class Account:
        def __init__(self, name: str) -> None:
            self.name = name

    seen: list[dict[str, Any]] = []

    def client_of(call: Any) -> str:
        seen.append(dict(call))
        return str(call["account"].name)

    @retry(max_attempts=1, on_exhausted=defer(queue, client=client_of, date=lambda call: call["day"].isoformat()))
    def fetch(account: Account, day: datetime.date, limit: int = 100) -> None:
        raise ConnectionError

    with pytest.raises(ConnectionError):
        fetch(Account("balthazar"), datetime.date(2025, 12, 19))
    with pytest.raises(ConnectionError):
        fetch(Account("melchior"), day=datetime.date(2025, 12, 20), limit=5)
    assert scheduled(queue) == [("balthazar", "2025-12-19", 60), ("melchior", "2025-12-20", 60)]
    assert [(entry["account"].name, entry["limit"]) for entry in seen] == [("balthazar", 100), ("melchior", 5)]


def test_a_string_and_the_call_mix(queue: RetryQueue) -> None:
    @retry(max_attempts=1, on_exhausted=defer(queue, "balthazar"))
    def fetch(date: str) -> None:
        raise ConnectionError

    with pytest.raises(ConnectionError):
        fetch("2025-12-19")
    with pytest.raises(ConnectionError):
        fetch("2025-12-20")
    assert scheduled(queue) == [("balthazar", "2025-12-19", 60), ("balthazar", "2025-12-20", 60)]


def test_methods_and_keyword_catch_alls(queue: RetryQueue) -> None:
    class Fetcher:
        @retry(max_attempts=1, on_exhausted=defer(queue))
        def fetch(self, client: str, date: str) -> None:
            raise ConnectionError

    @retry(max_attempts=1, on_exhausted=defer(queue))
    def fetch_any(**params: str) -> None:
        raise ConnectionError

    with pytest.raises(ConnectionError):
        Fetcher().fetch("balthazar", "2025-12-19")
    with pytest.raises(ConnectionError):
        fetch_any(client="melchior", date="2025-12-20")
    assert scheduled(queue) == [("balthazar", "2025-12-19", 60), ("melchior", "2025-12-20", 60)]


def test_async_functions(queue: RetryQueue) -> None:
    async def nap(delay: float) -> None:
        pass

    @retry(max_attempts=2, on_exhausted=defer(queue), sleep=nap)
    async def fetch(client: str, date: str) -> None:
        raise ConnectionError

    with pytest.raises(ConnectionError):
        asyncio.run(fetch("balthazar", "2025-12-19"))
    assert scheduled(queue) == [("balthazar", "2025-12-19", 60)]


def test_nothing_is_deferred_for_an_error_that_is_not_retried(queue: RetryQueue) -> None:
    @retry(retry_if=is_recoverable, on_exhausted=defer(queue))
    def fetch(client: str, date: str) -> None:
        raise PermissionError

    with pytest.raises(PermissionError):
        fetch("balthazar", "2025-12-19")
    assert queue.jobs() == []


# -- what cannot work is refused when built --------------------------------------------------------------------


def test_a_function_without_the_parameter_is_refused_when_decorated(queue: RetryQueue) -> None:
    def fetch_day(customer: str, date: str) -> None:
        pass

    with pytest.raises(ValueError, match=r"defer\(\) takes the client from the argument 'client' of .*fetch_day"):
        retry(on_exhausted=defer(queue))(fetch_day)
    retry(on_exhausted=defer(queue, client=lambda call: call["customer"]))(fetch_day)  # picked: accepted
    retry(on_exhausted=defer(queue, "acme"))(fetch_day)


@pytest.mark.parametrize(
    "build",
    [
        lambda queue: retrying(on_exhausted=defer(queue)),
        lambda queue: RetryContext(on_exhausted=defer(queue, "balthazar")),
        lambda queue: RetryContext(on_exhausted=defer(queue, date=lambda call: "2025-12-19")),
        lambda queue: RetryManager(on_exhausted=defer(queue)).context(),
        lambda queue: RetryManager().context(on_exhausted=defer(queue)),
    ],
    ids=["retrying", "RetryContext, date from the call", "RetryContext, picker", "manager defaults", "manager change"],
)
def test_a_block_refuses_a_defer_that_needs_a_call_when_built(queue: RetryQueue, build: Any) -> None:
    with pytest.raises(ValueError, match=r"a retrying\(\) or RetryContext block makes no call: give them as strings"):
        build(queue)


def test_a_manager_with_such_a_defer_still_decorates(queue: RetryQueue, sleeps: list[float]) -> None:
    manager = RetryManager(max_attempts=2, on_exhausted=defer(queue), sleep=sleeps.append)

    @manager.retry
    def fetch(client: str, date: str) -> None:
        raise ConnectionError

    with pytest.raises(ConnectionError):
        fetch("balthazar", "2025-12-19")
    assert scheduled(queue) == [("balthazar", "2025-12-19", 60)]


def test_a_block_with_strings_defers_as_before(queue: RetryQueue, sleeps: list[float]) -> None:
    def down() -> None:
        raise ConnectionError

    def loop() -> None:
        for attempt in retrying(
            max_attempts=2, on_exhausted=defer(queue, "balthazar", "2025-12-19"), sleep=sleeps.append
        ):
            with attempt:
                down()

    with pytest.raises(ConnectionError):
        loop()
    with pytest.raises(ConnectionError):
        RetryContext(max_attempts=1, on_exhausted=defer(queue, "melchior", "2025-12-20")).call(down)
    assert scheduled(queue) == [("balthazar", "2025-12-19", 60), ("melchior", "2025-12-20", 60)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((42,), "client must be a string, a function of the call's arguments, or None"),
        ((None, ["2025-12-19"]), "date must be a string"),
        (("bad client!",), "invalid client id"),
        ((None, "2025-02-30"), "no such day"),
    ],
)
def test_literals_are_checked_at_once(queue: RetryQueue, args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        defer(queue, *args)


def test_calling_a_defer_that_needs_a_call_by_hand_is_a_type_error(queue: RetryQueue) -> None:
    deferral = defer(queue, "balthazar")
    assert isinstance(deferral, Deferral)
    with pytest.raises(TypeError, match="takes values from a decorated call"):
        deferral(ConnectionError(), 3)


# -- bad values from the call: logged, and the original error wins ------------------------------------------------


def test_an_invalid_client_from_the_call_is_logged_and_the_error_propagates(
    queue: RetryQueue, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)

    @retry(max_attempts=1, on_exhausted=defer(queue))
    def fetch(client: str, date: str) -> None:
        raise ConnectionError("source down")

    with pytest.raises(ConnectionError, match="source down") as caught:
        fetch("bad client!", "2025-12-19")
    assert queue.jobs() == []
    [(logger, level, message)] = [record for record in caplog.record_tuples if record[1] >= logging.ERROR][1:]
    assert (logger, level) == (LOGGER, logging.ERROR)
    assert message.startswith("could not defer bad client! 2025-12-19 to the queue after 1 attempt: invalid client")
    assert message.endswith("; the original error propagates")
    if HAS_NOTES:
        assert caught.value.__notes__[0].startswith("retryq: deferring to the queue failed: invalid client id")


def test_a_picker_that_fails_is_logged_and_the_error_propagates(
    queue: RetryQueue, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger=LOGGER)

    @retry(max_attempts=1, on_exhausted=defer(queue, client=lambda call: call["account"]["id"]))
    def fetch(account: dict[str, str], date: str) -> None:
        raise TimeoutError("slow")

    with pytest.raises(TimeoutError, match="slow"):
        fetch({}, "2025-12-19")
    assert queue.jobs() == []
    assert caplog.record_tuples[-1][2] == (
        "could not defer test_a_picker_that_fails_is_logged_and_the_error_propagates.<locals>.fetch to the queue "
        "after 1 attempt: KeyError: 'id'; the original error propagates"
    )


def test_a_missing_keyword_of_a_catch_all_is_logged(queue: RetryQueue, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger=LOGGER)

    @retry(max_attempts=1, on_exhausted=defer(queue))
    def fetch(**params: str) -> None:
        raise TimeoutError

    with pytest.raises(TimeoutError):
        fetch(client="balthazar")
    assert queue.jobs() == []
    assert "InvalidInput: the call has no argument 'date'" in caplog.record_tuples[-1][2]


def test_repr(queue: RetryQueue) -> None:
    def day_of(call: Any) -> str:
        return "2025-12-19"

    assert repr(defer(queue, None, day_of)).startswith("<defer None day_of to RetryQueue(")
