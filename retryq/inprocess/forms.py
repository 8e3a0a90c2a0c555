"""Retrying in-process: ``@retry``, ``RetryContext`` (``retrying()``) and ``RetryManager``.

This is for failures that pass within seconds: a refused connection, a timeout, a 503. When the
source needs an hour to settle, sleeping in the process is the wrong tool; hand the work over to
the deferred queue instead, with ``on_exhausted=defer(queue)`` (:mod:`retryq.inprocess.deferral`).

The waits come from the same strategies as the queue's (:mod:`retryq.record.backoff`); by default
``exponential(initial=1, factor=2, max=60)``: 1 s, 2 s, 4 s after attempts 1, 2 and 3. Every
form takes the options of :class:`~retryq.inprocess.policy.RetryOptions`, and every form, sync or
async, is a run of :class:`RetryAttempt` objects: after each failure the one retry state machine
(:mod:`retryq.record.retrystate`) decides, and the run sleeps, logs and escalates as it says.
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
from .policy import Call, RetryOptions, _decorator_options, _method_takes_options, _takes_options
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
    name = _name_of(func, options)
    catch = options.exceptions

    # The first attempt is one try block around the call, so that a success costs no more; its
    # failure goes to the machine, and the attempts after it are a run like a loop's.
    if inspect.iscoroutinefunction(func):
        nap = _async_sleep(options)

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return await func(*args, **kwargs)
            except catch as exc:
                first = RetryAttempt(1, options, name, (func, args, kwargs))
                if not first._failed(exc):
                    raise
            # Outside the except block, so that a later failure, or an interruption while asleep,
            # is not reported as happening "during handling" of this one.
            return await _call_again_async(_AsyncAttempts(first, nap), func, args, kwargs)

        return cast(_F, async_wrapper)

    pause = _sync_sleep(options)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except catch as exc:
            first = RetryAttempt(1, options, name, (func, args, kwargs))
            if not first._failed(exc):
                raise
        return _call_again(_attempts(first, pause), func, args, kwargs)

    return cast(_F, wrapper)


def _sync_sleep(options: RetryOptions) -> Callable[[float], object]:
    return time.sleep if options.sleep is None else options.sleep


def _async_sleep(options: RetryOptions) -> Callable[[float], Awaitable[object]]:
    if options.sleep is not None:
        return cast(Callable[[float], Awaitable[object]], options.sleep)
    import asyncio

    return asyncio.sleep


# -- a run of attempts: what every form drives -------------------------------------------------------

_RUNNING, _SUCCEEDED, _RETRY, _GAVE_UP = range(4)


class RetryAttempt:
    """One attempt of a :class:`RetryContext` loop; its block runs inside ``with attempt:``."""

    __slots__ = ("_call", "_delay", "_name", "_options", "_state", "number")

    def __init__(self, number: int, options: RetryOptions, name: str, call: Call | None) -> None:
        self.number = number
        self._options = options
        self._name = name
        self._call = call  # the decorated call, for an escalation that reads its arguments (defer)
        self._state = _RUNNING
        self._delay = 0.0

    def __repr__(self) -> str:
        return f"<RetryAttempt {self.number}/{self._options.max_attempts}>"

    def __enter__(self) -> RetryAttempt:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> bool:
        if exc is None:
            self._state = _SUCCEEDED
            return False
        return self._failed(exc)

    def _failed(self, exc: BaseException) -> bool:
        """Whether the run goes on after ``exc``, as the retry state machine decides (then ``exc`` is swallowed)."""
        delay = self._options.after_failure(exc, self.number, self._name, self._call)
        if delay is None:
            # Not suppressed: the exception leaves the with-block, and the loop, as it was raised.
            self._state = _GAVE_UP
            return False
        self._state = _RETRY
        self._delay = delay
        return True

    def _next(self) -> float | None:
        """The wait before the next attempt, or None when the run is over."""
        if self._state == _RETRY:
            return self._delay
        if self._state == _RUNNING:
            raise RuntimeError("each attempt of a retrying() loop must run its block inside `with attempt:`")
        return None

    def _then(self) -> RetryAttempt:
        return RetryAttempt(self.number + 1, self._options, self._name, self._call)


def _attempts(attempt: RetryAttempt, sleep: Callable[[float], object]) -> Iterator[RetryAttempt]:
    """A run from ``attempt`` on: ``attempt``, unless it was made already, then for as long as the
    machine retries, its wait slept and the next attempt."""
    if attempt._state == _RUNNING:
        yield attempt
    while (delay := attempt._next()) is not None:
        sleep(delay)
        attempt = attempt._then()
        yield attempt


class _AsyncAttempts:
    """The same run for ``async for``, its waits awaited: a class rather than an async generator, which a
    ``return`` from inside the loop would leave to the event loop to close."""

    __slots__ = ("_attempt", "_made", "_nap")

    def __init__(self, attempt: RetryAttempt, nap: Callable[[float], Awaitable[object]]) -> None:
        self._attempt = attempt
        self._made = attempt._state != _RUNNING
        self._nap = nap

    def __aiter__(self) -> _AsyncAttempts:
        return self

    async def __anext__(self) -> RetryAttempt:
        if not self._made:
            self._made = True
            return self._attempt
        delay = self._attempt._next()
        if delay is None:
            raise StopAsyncIteration
        await self._nap(delay)
        self._attempt = self._attempt._then()
        return self._attempt


def _call_again(
    attempts: Iterator[RetryAttempt], func: Callable[..., _T], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> _T:
    """The attempts of a call after its first failure, until one returns or a failure propagates."""
    for attempt in attempts:
        with attempt:
            return func(*args, **kwargs)
    raise AssertionError("unreachable: a run ends with an attempt that returns or raises")  # pragma: no cover


async def _call_again_async(
    attempts: AsyncIterator[RetryAttempt],
    func: Callable[..., Awaitable[_T]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> _T:
    """The same, awaited."""
    async for attempt in attempts:
        with attempt:
            return await func(*args, **kwargs)
    raise AssertionError("unreachable: a run ends with an attempt that returns or raises")  # pragma: no cover


# -- the loop form, for a block of code -------------------------------------------------------------


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

    def __iter__(self) -> Iterator[RetryAttempt]:
        options = self.options
        return _attempts(RetryAttempt(1, options, options.name or "block", None), _sync_sleep(options))

    def __aiter__(self) -> AsyncIterator[RetryAttempt]:
        options = self.options
        return _AsyncAttempts(RetryAttempt(1, options, options.name or "block", None), _async_sleep(options))

    def call(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """``fn(*args, **kwargs)``, called again after each failure the options allow; its result."""
        options = self.options
        try:
            result = fn(*args, **kwargs)
        except options.exceptions as exc:
            first = RetryAttempt(1, options, _name_of(fn, options), None)
            if not first._failed(exc):
                raise
        else:
            return _not_async(result, fn, options)
        return _not_async(_call_again(_attempts(first, _sync_sleep(options)), fn, args, kwargs), fn, options)

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


def _name_of(fn: Callable[..., Any], options: RetryOptions) -> str:
    return options.name or getattr(fn, "__qualname__", None) or repr(fn)


def _not_async(result: _T, fn: Callable[..., Any], options: RetryOptions) -> _T:
    if isinstance(result, CoroutineType):
        # Its failures would come when awaited, out of reach: refuse rather than not retry.
        result.close()
        raise TypeError(
            f"call() cannot retry {_name_of(fn, options)}: it is async; use `async for attempt in RetryContext(...)`"
        )
    return result


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
