"""Retrying in-process: ``@retry``, ``RetryContext`` (``retrying()``) and ``RetryManager``.

This is for failures that pass within seconds: a refused connection, a timeout, a 503. When the
source needs an hour to settle, sleeping in the process is the wrong tool; hand the work over to
the deferred queue instead, with ``on_exhausted=defer(queue)`` (:mod:`retryq.deferral`).

The waits come from the same strategies as the queue's (:mod:`retryq.backoff`); by default
``exponential(initial=1, factor=2, max=60)``: 1 s, 2 s, 4 s after attempts 1, 2 and 3. Every
form takes the options of :class:`~retryq.inprocess.policy.RetryOptions`.
"""

from __future__ import annotations

__all__ = [
    "RECOVERABLE_STATUS_CODES",
    "Deferral",
    "RetryAttempt",
    "RetryContext",
    "RetryManager",
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
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import CoroutineType
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from .deferral import Deferral, defer
from .policy import RetryOptions, _decorator_options, _method_takes_options, _takes_options
from .recoverable import RECOVERABLE_STATUS_CODES, is_recoverable, retry_after

if TYPE_CHECKING:
    from types import TracebackType


logger = logging.getLogger("retryq.retry")

_F = TypeVar("_F", bound=Callable[..., Any])
_P = ParamSpec("_P")
_T = TypeVar("_T")


# -- the decorator ---------------------------------------------------------------------------------


@_decorator_options(RetryOptions)
def retry(func: object = None, /, **options: Any) -> Any:
    """Call the function again when it raises one of ``exceptions``, up to ``max_attempts`` calls in all.

    Bare (``@retry``) or with the options of :class:`~retryq.inprocess.policy.RetryOptions`, checked now;
    the environment is read now too, never on each call. Works on ``async def`` functions
    (``sleep`` must then return an awaitable). When attempts run out, ``on_exhausted(exc,
    attempts)`` is called and the last exception is re-raised.
    """
    return _retry_from(None, func, **options)


def _retry_from(base: RetryOptions | None, func: object = None, /, **changes: Any) -> Any:
    if func is not None and not callable(func):
        hint = f"max_attempts={func!r}" if isinstance(func, int) and not isinstance(func, bool) else "max_attempts=3"
        raise TypeError(f"retry() takes its options by keyword: write @retry({hint}), not @retry({func!r})")
    options = RetryOptions(**changes) if base is None else base.copy(**changes)
    if func is None:
        return functools.partial(_wrap, options=options)
    return _wrap(func, options=options)


def _wrap(func: _F, *, options: RetryOptions) -> _F:
    import inspect  # here, not at the top: `import retryq` stays fast for the CLI

    if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
        raise TypeError(f"retry cannot re-run {func!r}: a generator fails while it is consumed, not when called")
    options.check_escalation(func)
    name = options.name or getattr(func, "__qualname__", None) or repr(func)
    catch = options.exceptions
    after_failure = options.after_failure
    sleep = options.sleep

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
                    delay = after_failure(exc, attempt, name, (func, args, kwargs))
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
                delay = after_failure(exc, attempt, name, (func, args, kwargs))
                if delay is None:
                    raise
            pause(delay)
            attempt += 1

    return cast(_F, wrapper)


# -- the loop form, for a block of code -------------------------------------------------------------

_RUNNING, _SUCCEEDED, _RETRY, _GAVE_UP = range(4)


class RetryAttempt:
    """One attempt of a :class:`RetryContext` loop; its block runs inside ``with attempt:``."""

    __slots__ = ("_delay", "_name", "_policy", "_state", "number")

    def __init__(self, number: int, policy: RetryOptions, name: str) -> None:
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


class RetryContext:
    """Retry a block of code: ``for attempt in RetryContext(): with attempt: ...``, or ``ctx.call(fn, ...)``.

    A ``with`` statement alone cannot retry: its body runs once, and ``__exit__`` may swallow an
    exception but never run the body again. So ``with RetryContext() as ctx:`` retries only what
    goes through ``ctx.call``; an exception raised in the body itself propagates unchanged, with
    a note saying it was not retried. The loop form runs the block again (``async for`` in async
    code). Takes the options of :func:`retry`; reusable, each loop or call starts at attempt 1.
    """

    __slots__ = ("options",)

    @_method_takes_options(RetryOptions)
    def __init__(self, **options: Any) -> None:
        self.options = RetryOptions(**options)
        self.options.check_escalation(None)

    @classmethod
    def _of(cls, options: RetryOptions) -> RetryContext:
        options.check_escalation(None)
        context = cls.__new__(cls)
        context.options = options
        return context

    def __repr__(self) -> str:
        return f"RetryContext({self.options!r})"

    def _steps(self) -> Iterator[RetryAttempt | float]:
        """Attempts, each followed by the wait before the next one while there is a next one."""
        name = self.options.name or "block"
        number = 1
        while True:
            attempt = RetryAttempt(number, self.options, name)
            yield attempt
            delay = attempt._next()
            if delay is None:
                return
            yield delay
            number += 1

    def __iter__(self) -> Iterator[RetryAttempt]:
        pause = time.sleep if self.options.sleep is None else self.options.sleep
        for step in self._steps():
            if isinstance(step, RetryAttempt):
                yield step
            else:
                pause(step)

    def __aiter__(self) -> AsyncIterator[RetryAttempt]:
        return self._attempts_async()

    async def _attempts_async(self) -> AsyncIterator[RetryAttempt]:
        if self.options.sleep is None:
            import asyncio

            nap: Callable[[float], Awaitable[object]] = asyncio.sleep
        else:
            nap = self.options.sleep
        for step in self._steps():
            if isinstance(step, RetryAttempt):
                yield step
            else:
                await nap(step)

    def call(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """``fn(*args, **kwargs)``, called again after each failure the options allow; its result."""
        options = self.options
        name = options.name or getattr(fn, "__qualname__", None) or repr(fn)
        catch = options.exceptions
        pause = time.sleep if options.sleep is None else options.sleep
        attempt = 1
        while True:
            try:
                result = fn(*args, **kwargs)
            except catch as exc:
                delay = options.after_failure(exc, attempt, name)
                if delay is None:
                    raise
            else:
                if isinstance(result, CoroutineType):
                    # Its failures would come when awaited, out of reach: refuse rather than not retry.
                    result.close()
                    raise TypeError(
                        f"call() cannot retry {name}: it is async; use `async for attempt in RetryContext(...)`"
                    )
                return result
            pause(delay)
            attempt += 1

    def __enter__(self) -> RetryContext:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        # Never swallowed (None, not True): the body's exception goes on as it was raised.
        if isinstance(exc, self.options.exceptions) and not _came_through_call(traceback):
            notes = getattr(exc, "__notes__", ())
            add_note = getattr(exc, "add_note", None)  # Python 3.11+
            if add_note is not None and _NOT_RETRIED not in notes:
                add_note(_NOT_RETRIED)


#: The name :func:`retrying` returned before :class:`RetryContext` took over its loop.
Retrying = RetryContext

_NOT_RETRIED = (
    "retryq: RetryContext did not retry this: the body of a with statement runs once. "
    "Retry a block with `for attempt in RetryContext(...): with attempt: ...`, "
    "or a function with `ctx.call(function, *args)`."
)


def _came_through_call(traceback: TracebackType | None) -> bool:
    """Whether the exception left RetryContext.call, which already retried it as the options allow."""
    while traceback is not None:
        if traceback.tb_frame.f_code is RetryContext.call.__code__:
            return True
        traceback = traceback.tb_next
    return False


@_takes_options(RetryOptions)
def retrying(**options: Any) -> RetryContext:
    """Retry a block of code: ``for attempt in retrying(): with attempt: ...``; the same as :class:`RetryContext`."""
    return RetryContext(**options)


class RetryManager:
    """A program's retry defaults in one place: the decorators and contexts it makes start from them.

    ``RetryManager(max_attempts=5)`` builds its :class:`~retryq.inprocess.policy.RetryOptions` once, reading
    ``$RETRY_MAX_ATTEMPTS`` and ``$RETRY_BACKOFF_FACTOR`` for what is not given; ``manager.retry``
    and ``manager.context(...)`` take the same options again to change some for one use.
    """

    __slots__ = ("options", "retry")

    @_method_takes_options(RetryOptions)
    def __init__(self, **options: Any) -> None:
        self.options = RetryOptions(**options)
        # An attribute typed as retry itself, rather than a method: it keeps both forms, bare and called.
        self.retry = _typed_like(retry, functools.partial(_retry_from, self.options))

    def __repr__(self) -> str:
        return f"RetryManager({self.options!r})"

    @_method_takes_options(RetryOptions)
    def context(self, **changes: Any) -> RetryContext:
        """A :class:`RetryContext` with these defaults, changed by ``changes``."""
        return RetryContext._of(self.options.copy(**changes))


def _typed_like(template: _T, value: object) -> _T:
    return cast(_T, value)
