"""Which errors deserve a retry: timeouts, lost connections, rate limits and busy servers.

Client libraries are recognised by their class names and by the ``status_code`` / ``status``
and ``headers`` they carry, so none of them is imported here. :class:`ExceptionFilter` writes
other rules, for ``retry_if``.
"""

from __future__ import annotations

__all__ = [
    "RECOVERABLE_STATUS_CODES",
    "ExceptionFilter",
    "is_recoverable",
    "retry_after",
]

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from ..record.timeutil import to_utc

#: HTTP statuses worth another try: rate limiting and server-side failures that usually pass.
RECOVERABLE_STATUS_CODES = frozenset({429, 500, 502, 503, 504})

_TIMEOUT_SUFFIXES = ("Timeout", "TimeoutError", "TimeoutException")
_CONNECTION_MARKERS = ("ConnectionError", "ConnectError")
# Compared with the class name lowercased and without underscores: RateLimitError, Rate_Limited,
# TooManyRequests, TooManyRequestsError.
_RATE_LIMIT_MARKERS = ("ratelimit", "toomanyrequests")
_MAX_DEPTH = 5  # how deep into wrapped causes is_recoverable looks


def _attr(obj: object, name: str) -> Any:
    # Some clients compute these attributes and raise when they are missing (httpx's `.request`);
    # a question asked while handling a failure must not raise a second error over the first.
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _status_code(exc: BaseException) -> int | None:
    response = _attr(exc, "response")
    for source in (exc, response):
        if source is None:
            continue
        for name in ("status_code", "status"):
            value = _attr(source, name)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
    return None


def _named_recoverable(name: str) -> bool:
    if name.endswith(_TIMEOUT_SUFFIXES) or any(marker in name for marker in _CONNECTION_MARKERS):
        return True
    plain = name.lower().replace("_", "")
    return any(marker in plain for marker in _RATE_LIMIT_MARKERS)


def is_recoverable(exc: BaseException, *, _depth: int = 0) -> bool:
    """Whether ``exc`` is a timeout, a connection failure, a rate limit or an HTTP 429/500/502/503/504.

    A status code decides first: other client errors (400, 401, 403, 404...) are never
    recoverable. Without one, the class names decide (``requests.Timeout``, ``httpx.ConnectError``,
    ``RateLimitError``, ``TooManyRequests``), then the error it wraps.
    """
    depth = _depth
    status = _status_code(exc)
    if status is not None:
        if status in RECOVERABLE_STATUS_CODES:
            return True
        if 400 <= status < 500:
            return False
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return True
    if any(_named_recoverable(cls.__name__) for cls in type(exc).__mro__):
        return True
    # Wrappers carry the real failure inside: urllib's URLError in `.reason`, others in `__cause__`.
    inner = _attr(exc, "reason")
    if not isinstance(inner, BaseException):
        inner = exc.__cause__
    if isinstance(inner, BaseException) and depth < _MAX_DEPTH:
        return is_recoverable(inner, _depth=depth + 1)
    return False


def _header(headers: object, wanted: str) -> object:
    if headers is None:
        return None
    get = _attr(headers, "get")
    if callable(get):
        try:
            value = get(wanted)
        except Exception:
            value = None
        if value is not None:
            return value
    items = _attr(headers, "items")
    if callable(items):
        lowered = wanted.lower()
        try:
            for key, value in items():
                text = key.decode("latin-1") if isinstance(key, bytes) else str(key)
                if text.lower() == lowered:
                    return value
        except Exception:
            return None
    return None


def retry_after(exc: BaseException, *, now: datetime | None = None) -> float | None:
    """Seconds to wait that the server asked for in a ``Retry-After`` header, or None if it did not ask.

    The header is looked for on ``exc.response.headers``, then ``exc.headers``; it holds seconds
    (``120``) or an HTTP date (``Wed, 21 Oct 2015 07:28:00 GMT``, counted from ``now``).
    """
    value = _header(_attr(_attr(exc, "response"), "headers"), "Retry-After")
    if value is None:
        value = _header(_attr(exc, "headers"), "Retry-After")
    if value is None:
        return None
    text = (value.decode("latin-1") if isinstance(value, bytes) else str(value)).strip()
    if text.isascii() and text.replace(".", "", 1).isdigit():
        return float(text)
    from email.utils import parsedate_to_datetime  # here: only an HTTP date needs the email package

    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC with no claim about local time (RFC 5322)
        when = when.replace(tzinfo=timezone.utc)
    current = datetime.now(timezone.utc) if now is None else to_utc(now)
    return max(0.0, (when - current).total_seconds())


Predicate = Callable[[BaseException], bool]


class ExceptionFilter:
    """Which exceptions to retry, as a test for ``retry_if``: some classes, a predicate, or both.

    ``ExceptionFilter(TimeoutError, ConnectionError)`` accepts instances of either class;
    ``ExceptionFilter(predicate=is_recoverable)`` what the function accepts; given both, an
    exception must pass both. Filters combine with ``|`` (either), ``&`` (both) and ``~`` (not),
    also with a plain exception class or predicate on the other side.
    """

    __slots__ = ("_test", "_text")

    def __init__(self, *exceptions: type[BaseException], predicate: Predicate | None = None) -> None:
        if not all(isinstance(cls, type) and issubclass(cls, BaseException) for cls in exceptions):
            raise ValueError(f"ExceptionFilter takes exception classes, not {exceptions!r}")
        if predicate is not None and not callable(predicate):
            raise ValueError(f"predicate must be callable, not {predicate!r}")
        if not exceptions and predicate is None:
            raise ValueError("ExceptionFilter needs exception classes, a predicate, or both")
        parts = [cls.__qualname__ for cls in exceptions]
        if predicate is not None:
            parts.append(f"predicate={getattr(predicate, '__qualname__', None) or repr(predicate)}")
        self._text = f"ExceptionFilter({', '.join(parts)})"
        if predicate is None:
            self._test: Predicate = lambda exc: isinstance(exc, exceptions)
        elif exceptions:
            self._test = lambda exc: isinstance(exc, exceptions) and bool(predicate(exc))
        else:
            self._test = lambda exc: bool(predicate(exc))

    @classmethod
    def _of(cls, test: Predicate, text: str) -> ExceptionFilter:
        made = cls.__new__(cls)
        made._test = test
        made._text = text
        return made

    def __call__(self, exc: BaseException) -> bool:
        return self._test(exc)

    def __repr__(self) -> str:
        return self._text

    def __or__(self, other: ExceptionFilter | type[BaseException] | Predicate) -> ExceptionFilter:
        left, right = self._test, _as_filter(other)
        return ExceptionFilter._of(lambda exc: left(exc) or right(exc), f"({self} | {right})")

    def __ror__(self, other: type[BaseException] | Predicate) -> ExceptionFilter:
        return _as_filter(other) | self

    def __and__(self, other: ExceptionFilter | type[BaseException] | Predicate) -> ExceptionFilter:
        left, right = self._test, _as_filter(other)
        return ExceptionFilter._of(lambda exc: left(exc) and right(exc), f"({self} & {right})")

    def __rand__(self, other: type[BaseException] | Predicate) -> ExceptionFilter:
        return _as_filter(other) & self

    def __invert__(self) -> ExceptionFilter:
        test = self._test
        return ExceptionFilter._of(lambda exc: not test(exc), f"~{self}")


def _as_filter(value: object) -> ExceptionFilter:
    if isinstance(value, ExceptionFilter):
        return value
    # A class is callable too, and calling it makes a (truthy) exception: test it as a class.
    if isinstance(value, type) and issubclass(value, BaseException):
        return ExceptionFilter(value)
    if callable(value):
        return ExceptionFilter(predicate=value)
    raise TypeError(f"an ExceptionFilter combines with a filter, an exception class or a predicate, not {value!r}")
