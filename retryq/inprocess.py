"""Retrying in-process: the ``@retry`` decorator, the ``retrying()`` loop, and which errors deserve a retry.

This is for failures that pass within seconds: a refused connection, a timeout, a 503. When the
source needs an hour to settle, sleeping in the process is the wrong tool; hand the work over to
the deferred queue instead, with ``on_exhausted=defer(queue, client, date)``.

The waits come from the same strategies as the queue's (:mod:`retryq.backoff`); by default
``exponential(initial=1, factor=2, max=60)``: 1 s, 2 s, 4 s after attempts 1, 2 and 3.
"""

from __future__ import annotations

__all__ = [
    "RECOVERABLE_STATUS_CODES",
    "RetryAttempt",
    "RetryOptions",
    "Retrying",
    "defer",
    "is_recoverable",
    "retry",
    "retry_after",
    "retrying",
]

import functools
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, cast, overload

from .backoff import Backoff, RetryState, exponential
from .errors import RetryqError
from .recoverable import RECOVERABLE_STATUS_CODES, is_recoverable, retry_after
from .timeutil import format_utc

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Unpack  # typing.Unpack from Python 3.11; annotations only

    from .queue import RetryQueue

logger = logging.getLogger("retryq.retry")

_F = TypeVar("_F", bound=Callable[..., Any])

ExceptionTypes = type[Exception] | tuple[type[Exception], ...]
OnRetry = Callable[[int, float, BaseException], object]
OnExhausted = Callable[[BaseException, int], object]
RetryIf = Callable[[BaseException], bool]
Sleep = Callable[[float], Any]

ENV_MAX_ATTEMPTS = "RETRY_MAX_ATTEMPTS"
ENV_BACKOFF_FACTOR = "RETRY_BACKOFF_FACTOR"


# -- the policy: validated once, consulted only after a failure ----------------------------------


class _Policy:
    """What to do after a failed attempt; built and validated once, when a function is decorated."""

    __slots__ = (
        "backoff",
        "exceptions",
        "max_attempts",
        "max_delay",
        "on_exhausted",
        "on_retry",
        "respect_retry_after",
        "retry_if",
    )

    def __init__(
        self,
        *,
        max_attempts: int,
        backoff: Callable[[RetryState], float],
        max_delay: float,
        exceptions: tuple[type[Exception], ...],
        retry_if: RetryIf | None,
        on_retry: OnRetry | None,
        on_exhausted: OnExhausted | None,
        respect_retry_after: bool,
    ) -> None:
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_delay = max_delay
        self.exceptions = exceptions
        self.retry_if = retry_if
        self.on_retry = on_retry
        self.on_exhausted = on_exhausted
        self.respect_retry_after = respect_retry_after

    def after_failure(self, exc: BaseException, attempt: int, name: str) -> float | None:
        """The wait before attempt ``attempt + 1``, or None when ``exc`` must propagate now."""
        if self.retry_if is not None and not self.retry_if(exc):
            return None
        if attempt >= self.max_attempts:
            logger.error("%s: attempt %d/%d failed: %r; giving up", name, attempt, self.max_attempts, exc)
            self._exhausted(exc, attempt)
            return None
        delay = min(self.backoff(RetryState(attempt)), self.max_delay)
        if self.respect_retry_after:
            asked = retry_after(exc)
            if asked is not None:
                if asked > self.max_delay:
                    logger.error(
                        "%s: attempt %d/%d failed: %r; giving up: Retry-After asks for %.2fs, beyond max_delay %.2fs",
                        name,
                        attempt,
                        self.max_attempts,
                        exc,
                        asked,
                        self.max_delay,
                    )
                    self._exhausted(exc, attempt)
                    return None
                delay = max(delay, asked)
        logger.warning("%s: attempt %d/%d failed: %r; retrying in %.2fs", name, attempt, self.max_attempts, exc, delay)
        if self.on_retry is not None:
            self.on_retry(attempt, delay, exc)
        return delay

    def _exhausted(self, exc: BaseException, attempts: int) -> None:
        if self.on_exhausted is not None:
            self.on_exhausted(exc, attempts)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _env_max_attempts() -> int | None:
    text = os.environ.get(ENV_MAX_ATTEMPTS, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{ENV_MAX_ATTEMPTS} must be an integer >= 1, not {text!r}")
    return value


def _env_backoff_factor() -> float | None:
    text = os.environ.get(ENV_BACKOFF_FACTOR, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 1 <= value < math.inf:  # also refuses NaN
        raise ValueError(f"{ENV_BACKOFF_FACTOR} must be a finite number >= 1, not {text!r}")
    return value


class RetryOptions(TypedDict, total=False):
    """The options :func:`retry` and :func:`retrying` share (see :func:`retry` for each)."""

    max_attempts: int | None
    backoff_factor: float | None
    initial_delay: float
    max_delay: float
    exceptions: ExceptionTypes
    on_retry: OnRetry | None
    retry_if: RetryIf | None
    backoff: Backoff | Callable[[RetryState], float] | None
    on_exhausted: OnExhausted | None
    respect_retry_after: bool


def _build_policy(
    *,
    max_attempts: int | None = None,
    backoff_factor: float | None = None,
    initial_delay: float = 1.0,
    max_delay: float = 60.0,
    exceptions: ExceptionTypes = (Exception,),
    on_retry: OnRetry | None = None,
    retry_if: RetryIf | None = None,
    backoff: Callable[[RetryState], float] | None = None,
    on_exhausted: OnExhausted | None = None,
    respect_retry_after: bool = True,
) -> _Policy:
    if max_attempts is None:
        max_attempts = _env_max_attempts() or 3
    elif not isinstance(max_attempts, int) or isinstance(max_attempts, bool) or max_attempts < 1:
        raise ValueError(f"max_attempts must be an integer >= 1, not {max_attempts!r}")
    if backoff_factor is None:
        backoff_factor = _env_backoff_factor() or 2.0
    elif not _is_number(backoff_factor) or not 1 <= backoff_factor < math.inf:  # also refuses NaN
        raise ValueError(f"backoff_factor must be a finite number >= 1, not {backoff_factor!r}")

    if not _is_number(initial_delay) or not 0 <= initial_delay < math.inf:
        raise ValueError(f"initial_delay must be a finite number of seconds >= 0, not {initial_delay!r}")
    if not _is_number(max_delay) or not max_delay >= 0:  # infinity is allowed: no cap
        raise ValueError(f"max_delay must be a number of seconds >= 0, not {max_delay!r}")
    if max_delay < initial_delay:
        raise ValueError(f"max_delay ({max_delay!r}) must not be less than initial_delay ({initial_delay!r})")

    classes = exceptions if isinstance(exceptions, tuple) else (exceptions,)
    # Exception, not BaseException: retrying Ctrl-C, SystemExit or a cancelled task defeats their purpose.
    if not classes or not all(isinstance(cls, type) and issubclass(cls, Exception) for cls in classes):
        raise ValueError(
            f"exceptions must be an exception class or a non-empty tuple of them (subclasses of Exception), "
            f"not {exceptions!r}"
        )

    for name, callback in (
        ("on_retry", on_retry),
        ("on_exhausted", on_exhausted),
        ("retry_if", retry_if),
        ("backoff", backoff),
    ):
        if callback is not None and not callable(callback):
            raise ValueError(f"{name} must be callable, not {callback!r}")

    if backoff is None:
        backoff = exponential(initial=initial_delay, factor=backoff_factor, max=max_delay)
    return _Policy(
        max_attempts=max_attempts,
        backoff=backoff,
        max_delay=float(max_delay),
        exceptions=classes,
        retry_if=retry_if,
        on_retry=on_retry,
        on_exhausted=on_exhausted,
        respect_retry_after=respect_retry_after,
    )


def _check_sleep(sleep: Sleep | None) -> None:
    if sleep is not None and not callable(sleep):
        raise ValueError(f"sleep must be callable, not {sleep!r}")


# -- the decorator ---------------------------------------------------------------------------------


@overload
def retry(func: _F, /) -> _F: ...


@overload
def retry(
    *,
    max_attempts: int | None = None,
    backoff_factor: float | None = None,
    initial_delay: float = 1.0,
    max_delay: float = 60.0,
    exceptions: ExceptionTypes = (Exception,),
    on_retry: OnRetry | None = None,
    retry_if: RetryIf | None = None,
    backoff: Backoff | Callable[[RetryState], float] | None = None,
    sleep: Sleep | None = None,
    on_exhausted: OnExhausted | None = None,
    respect_retry_after: bool = True,
) -> Callable[[_F], _F]: ...


def retry(
    func: Callable[..., Any] | None = None,
    /,
    *,
    max_attempts: int | None = None,
    backoff_factor: float | None = None,
    initial_delay: float = 1.0,
    max_delay: float = 60.0,
    exceptions: ExceptionTypes = (Exception,),
    on_retry: OnRetry | None = None,
    retry_if: RetryIf | None = None,
    backoff: Backoff | Callable[[RetryState], float] | None = None,
    sleep: Sleep | None = None,
    on_exhausted: OnExhausted | None = None,
    respect_retry_after: bool = True,
) -> Any:
    """Call the function again when it raises one of ``exceptions``, up to ``max_attempts`` calls in all.

    ``max_attempts`` and ``backoff_factor`` default to ``$RETRY_MAX_ATTEMPTS`` and
    ``$RETRY_BACKOFF_FACTOR``, else 3 and 2.0; both are read once, here. ``max_delay`` caps every
    wait, a custom ``backoff``'s too. Works on ``async def`` functions (``sleep`` must then return
    an awaitable). When attempts run out, ``on_exhausted(exc, attempts)`` is called and the last
    exception is re-raised.
    """
    _check_sleep(sleep)
    policy = _build_policy(
        max_attempts=max_attempts,
        backoff_factor=backoff_factor,
        initial_delay=initial_delay,
        max_delay=max_delay,
        exceptions=exceptions,
        on_retry=on_retry,
        retry_if=retry_if,
        backoff=backoff,
        on_exhausted=on_exhausted,
        respect_retry_after=respect_retry_after,
    )

    def decorate(function: _F) -> _F:
        return _wrap(function, policy, sleep)

    if func is None:
        return decorate
    if not callable(func):
        raise TypeError(f"retry() takes its options by keyword, as in @retry(max_attempts=3), not {func!r}")
    return decorate(func)


def _wrap(func: _F, policy: _Policy, sleep: Sleep | None) -> _F:
    import inspect  # here, not at the top: `import retryq` stays fast for the CLI

    if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
        raise TypeError(f"retry cannot re-run {func!r}: a generator fails while it is consumed, not when called")
    name = getattr(func, "__qualname__", None) or repr(func)
    catch = policy.exceptions
    after_failure = policy.after_failure

    # The success path is one try block around the call: everything else waits for a failure.
    if inspect.iscoroutinefunction(func):
        if sleep is None:
            import asyncio

            sleep = asyncio.sleep
        nap = cast(Callable[[float], Awaitable[object]], sleep)

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            attempt = 1
            while True:
                try:
                    return await func(*args, **kwargs)
                except catch as exc:
                    delay = after_failure(exc, attempt, name)
                    if delay is None:
                        raise
                # Outside the except block, so that an interruption while asleep is not reported
                # as happening "during handling" of the failure.
                await nap(delay)
                attempt += 1

        return cast(_F, async_wrapper)

    pause = time.sleep if sleep is None else sleep

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        attempt = 1
        while True:
            try:
                return func(*args, **kwargs)
            except catch as exc:
                delay = after_failure(exc, attempt, name)
                if delay is None:
                    raise
            pause(delay)
            attempt += 1

    return cast(_F, wrapper)


# -- the loop form, for a block of code -------------------------------------------------------------

_RUNNING, _SUCCEEDED, _RETRY, _GAVE_UP = range(4)


class RetryAttempt:
    """One attempt of a :func:`retrying` loop; its block runs inside ``with attempt:``."""

    __slots__ = ("_delay", "_name", "_policy", "_state", "number")

    def __init__(self, number: int, policy: _Policy, name: str) -> None:
        self.number = number
        self._policy = policy
        self._name = name
        self._state = _RUNNING
        self._delay = 0.0

    def __repr__(self) -> str:
        return f"<RetryAttempt {self.number}/{self._policy.max_attempts}>"

    def __enter__(self) -> RetryAttempt:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> bool:
        if exc is None:
            self._state = _SUCCEEDED
            return False
        if isinstance(exc, self._policy.exceptions):
            delay = self._policy.after_failure(exc, self.number, self._name)
            if delay is not None:
                self._state = _RETRY
                self._delay = delay
                return True
        # Not suppressed: the exception leaves the with-block, and the loop, as it was raised.
        self._state = _GAVE_UP
        return False

    def _next(self) -> float | None:
        """The wait before the next attempt, or None when the loop is over."""
        if self._state == _RETRY:
            return self._delay
        if self._state == _RUNNING:
            raise RuntimeError("each attempt of a retrying() loop must run its block inside `with attempt:`")
        return None


class Retrying:
    """Attempts to iterate over, with ``for`` or ``async for``; reusable, each loop starts again at 1."""

    def __init__(self, policy: _Policy, sleep: Sleep | None, name: str) -> None:
        self._policy = policy
        self._sleep = sleep
        self._name = name

    def __iter__(self) -> Iterator[RetryAttempt]:
        pause = time.sleep if self._sleep is None else self._sleep
        number = 1
        while True:
            attempt = RetryAttempt(number, self._policy, self._name)
            yield attempt
            delay = attempt._next()
            if delay is None:
                return
            pause(delay)
            number += 1

    def __aiter__(self) -> AsyncIterator[RetryAttempt]:
        return self._attempts_async()

    async def _attempts_async(self) -> AsyncIterator[RetryAttempt]:
        if self._sleep is None:
            import asyncio

            nap: Callable[[float], Awaitable[object]] = asyncio.sleep
        else:
            nap = self._sleep
        number = 1
        while True:
            attempt = RetryAttempt(number, self._policy, self._name)
            yield attempt
            delay = attempt._next()
            if delay is None:
                return
            await nap(delay)
            number += 1


def retrying(*, sleep: Sleep | None = None, name: str = "block", **options: Unpack[RetryOptions]) -> Retrying:
    """Retry a block of code: ``for attempt in retrying(): with attempt: ...`` (``async for`` in async code).

    A plain ``with`` statement cannot do this: its body runs once, and ``__exit__`` may swallow an
    exception but never run the body again. The loop runs it again; ``with attempt:`` tells the loop
    how the attempt went. The options are those of :func:`retry`; ``name`` labels the log lines.
    When attempts run out, the last exception leaves the ``with`` block and ends the loop.
    """
    _check_sleep(sleep)
    return Retrying(_build_policy(**options), sleep, name)


# -- escalation to the deferred queue -----------------------------------------------------------------


def defer(
    queue: RetryQueue,
    client: str,
    date: str,
    delay: int | str | timedelta = 60,
    *,
    workflow: str | None = None,
) -> Callable[[BaseException, int], None]:
    """An ``on_exhausted`` callback that schedules the workflow for ``client`` and ``date`` on ``queue``.

    The failure still propagates: the queue takes over the retrying, the caller still learns that
    this run failed. If the queue cannot take the job, that is logged and the original error wins.
    """
    # Imported here: pydantic's models are a heavy import for a fetcher that only uses @retry.
    from .models import validate_client_id, validate_date
    from .timeutil import parse_delay

    # Checked now rather than after the last attempt, when a typo would be found too late.
    validate_client_id(client)
    validate_date(date)
    parse_delay(delay)
    queue.config.workflow(workflow)

    def escalate(exc: BaseException, attempts: int) -> None:
        try:
            result = queue.schedule(client, date, delay, workflow=workflow)
        except RetryqError as error:
            logger.error(
                "could not defer %s %s to the queue after %d attempt(s): %s; the original error propagates",
                client,
                date,
                attempts,
                error,
            )
            # Python 3.11+ shows notes in the traceback, where whoever reads the failure looks first.
            add_note = getattr(exc, "add_note", None)
            if add_note is not None:
                add_note(f"retryq: deferring to the queue failed: {error}")
            return
        logger.info(
            "deferred %s %s to the queue after %d attempt(s): job %s %s, executeAt %s",
            client,
            date,
            attempts,
            result.job.id,
            result.outcome,
            format_utc(result.job.execute_at),
        )

    return escalate
