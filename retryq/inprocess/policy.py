"""The options of every in-process retry form, declared once, and what a form does about a failure:
the retry state machine they describe (:mod:`retryq.record.retrystate`) decides, and the options say
how to log it, whom to call back, and how to escalate.

:func:`retryq.retry`, :func:`retryq.retrying`, :class:`retryq.RetryContext` and
:class:`retryq.RetryManager` all take exactly the fields of :class:`RetryOptions`; type checkers
see that list through the decorators at the end of this module, so it is written here and nowhere else.
"""

from __future__ import annotations

__all__ = [
    "ENV_BACKOFF_FACTOR",
    "ENV_MAX_ATTEMPTS",
    "MAX_ATTEMPTS_LIMIT",
    "MAX_BACKOFF_FACTOR",
    "MAX_DELAY_SECONDS",
    "Escalation",
    "RetryOptions",
]

import dataclasses
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, overload

from ..record.backoff import Backoff, RetryState, exponential
from ..record.limits import MAX_ATTEMPTS
from ..record.retrystate import (
    Decision,
    ExceptionTypes,
    Failure,
    GiveUp,
    RetryMachine,
    Verdict,
    retried_exceptions,
)
from .recoverable import retry_after

logger = logging.getLogger("retryq.retry")

_P = ParamSpec("_P")
_T = TypeVar("_T")
_F = TypeVar("_F", bound=Callable[..., Any])
_N = TypeVar("_N", int, float)

OnRetry = Callable[[int, float, BaseException], object]
OnExhausted = Callable[[BaseException, int], object]
RetryIf = Callable[[BaseException], bool]
Sleep = Callable[[float], Any]
Strategy = Backoff | Callable[[RetryState], float]
#: The failed call as the decorator saw it: the function, its positional and its keyword arguments.
Call = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]

ENV_MAX_ATTEMPTS = "RETRY_MAX_ATTEMPTS"
ENV_BACKOFF_FACTOR = "RETRY_BACKOFF_FACTOR"

# Limits against nonsense, not policy: past them a process should hand the work to the queue.
MAX_ATTEMPTS_LIMIT = MAX_ATTEMPTS
MAX_BACKOFF_FACTOR = 10.0
MAX_DELAY_SECONDS = 86_400.0  # one day

_ANY_EXCEPTION: tuple[type[Exception], ...] = (Exception,)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _attempts_error(name: str, value: object) -> ValueError:
    return ValueError(f"{name} must be an integer from 1 to {MAX_ATTEMPTS_LIMIT}, not {value!r}")


def _factor_error(name: str, value: object) -> ValueError:
    return ValueError(f"{name} must be a number from 1 to {MAX_BACKOFF_FACTOR:g}, not {value!r}")


def _from_environment(
    name: str, parse: Callable[[str], _N], default: _N, top: float, error: Callable[..., ValueError]
) -> _N:
    """The number in variable ``name`` (from 1 to ``top``), else ``default``; anything else is refused."""
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = parse(text)
    except ValueError:
        raise error(name, text) from None
    if not 1 <= value <= top:  # also refuses NaN
        raise error(name, text)
    return value


def _default_max_attempts() -> int:
    return _from_environment(ENV_MAX_ATTEMPTS, int, 3, MAX_ATTEMPTS_LIMIT, _attempts_error)


def _default_backoff_factor() -> float:
    return _from_environment(ENV_BACKOFF_FACTOR, float, 2.0, MAX_BACKOFF_FACTOR, _factor_error)


class Escalation:
    """Base of ``on_exhausted`` callbacks that may need the arguments of the decorated call (see ``defer``)."""

    def __call__(self, exc: BaseException, attempts: int) -> object:
        raise NotImplementedError

    def check(self, func: Callable[..., Any] | None) -> None:
        """Refuse, when a form is built, to serve ``func``, or a block with no call when ``func`` is None."""

    def after_call(self, exc: BaseException, attempts: int, call: Call) -> object:
        """Escalate the failure of ``call``; by default the call is not needed."""
        return self(exc, attempts)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryOptions:
    """How to retry: the options every form takes, checked once when built.

    ``max_attempts`` and ``backoff_factor`` default to ``$RETRY_MAX_ATTEMPTS`` and
    ``$RETRY_BACKOFF_FACTOR``, else 3 and 2.0, read when the options are built; explicit values
    win. ``backoff``, when given, replaces the exponential of ``initial_delay`` and
    ``backoff_factor``; ``max_delay`` caps every wait. Change a copy with ``options.copy(...)``.
    """

    max_attempts: int = field(default_factory=_default_max_attempts)
    backoff_factor: float = field(default_factory=_default_backoff_factor)
    initial_delay: float = 1.0
    max_delay: float = 60.0
    exceptions: ExceptionTypes = _ANY_EXCEPTION
    retry_if: RetryIf | None = None
    backoff: Strategy | None = None
    on_retry: OnRetry | None = None
    on_exhausted: OnExhausted | None = None
    respect_retry_after: bool = True
    sleep: Sleep | None = None
    name: str | None = None
    #: Where failed attempts are logged (a warning each, an error on giving up); None logs nothing.
    logger: logging.Logger | None = logger

    def __post_init__(self) -> None:
        # Kept cheap: code that builds a loop inside a function, as most does, pays this on every call.
        attempts = self.max_attempts
        if not isinstance(attempts, int) or isinstance(attempts, bool) or not 1 <= attempts <= MAX_ATTEMPTS_LIMIT:
            raise _attempts_error("max_attempts", attempts)
        factor = self.backoff_factor
        if not _is_number(factor) or not 1 <= factor <= MAX_BACKOFF_FACTOR:  # also refuses NaN
            raise _factor_error("backoff_factor", factor)
        for name, value in (("initial_delay", self.initial_delay), ("max_delay", self.max_delay)):
            if not _is_number(value) or not 0 <= value <= MAX_DELAY_SECONDS:
                raise ValueError(
                    f"{name} must be a number of seconds from 0 to {MAX_DELAY_SECONDS:g} (one day), not {value!r}"
                )
        if self.max_delay < self.initial_delay:
            raise ValueError(
                f"max_delay ({self.max_delay!r}) must not be less than initial_delay ({self.initial_delay!r})"
            )

        if self.exceptions is not _ANY_EXCEPTION:
            object.__setattr__(self, "exceptions", retried_exceptions(self.exceptions))

        for option, callback in (
            ("retry_if", self.retry_if),
            ("backoff", self.backoff),
            ("on_retry", self.on_retry),
            ("on_exhausted", self.on_exhausted),
            ("sleep", self.sleep),
        ):
            if callback is not None and not callable(callback):
                raise ValueError(f"{option} must be callable, not {callback!r}")
        if not isinstance(self.respect_retry_after, bool):
            raise ValueError(f"respect_retry_after must be True or False, not {self.respect_retry_after!r}")
        if self.name is not None and not isinstance(self.name, str):
            raise ValueError(f"name must be a string, not {self.name!r}")
        if self.logger is not None and not isinstance(self.logger, logging.Logger):
            raise ValueError(f"logger must be a logging.Logger or None, not {self.logger!r}")

    def copy(self, **changes: Any) -> RetryOptions:
        """These options with ``changes``, checked again; the environment is not read again."""
        return dataclasses.replace(self, **changes) if changes else self

    def strategy(self) -> Callable[[RetryState], float]:
        """The backoff in force: ``backoff``, or the exponential that the numbers describe."""
        if self.backoff is not None:
            return self.backoff
        # Built here, after a failure, rather than with the options: most calls never need it.
        return exponential(initial=self.initial_delay, factor=self.backoff_factor, max=self.max_delay)

    def machine(self) -> RetryMachine:
        """The retry state machine these options describe (:mod:`retryq.record.retrystate`), which decides.

        Built on demand, after a failure: a cache on the options would cost every form its time
        when the options are made, and most calls never fail.
        """
        return RetryMachine(
            max_attempts=self.max_attempts,
            wait=self.strategy(),
            max_delay=self.max_delay,
            exceptions=self.exceptions,
            retry_if=self.retry_if,
            asked_delay=retry_after if self.respect_retry_after else None,
        )

    def after_failure(self, exc: BaseException, attempt: int, name: str, call: Call | None = None) -> float | None:
        """The wait before attempt ``attempt + 1``, or None when ``exc`` must propagate now."""
        return self.carry_out(self.machine().decide(Failure(exc, attempt)), exc, attempt, name, call)

    def carry_out(
        self, decision: Decision, exc: BaseException, attempt: int, name: str, call: Call | None
    ) -> float | None:
        """Do what a form does about the machine's ``decision``: log it, call ``on_retry`` before a wait, or
        ``on_exhausted`` when giving up; the wait before the next attempt, or None when ``exc`` must propagate."""
        if decision.verdict is Verdict.RETRY:
            self._log(
                logging.WARNING,
                "%s: attempt %d/%d failed: %r; retrying in %.2fs",
                name,
                attempt,
                self.max_attempts,
                exc,
                decision.delay,
            )
            if self.on_retry is not None:
                self.on_retry(attempt, decision.delay, exc)
            return decision.delay
        if decision.verdict is Verdict.GIVE_UP:
            if decision.why is GiveUp.RETRY_AFTER:
                self._log(
                    logging.ERROR,
                    "%s: attempt %d/%d failed: %r; giving up: Retry-After asks for %.2fs, beyond max_delay %.2fs",
                    name,
                    attempt,
                    self.max_attempts,
                    exc,
                    decision.asked,
                    self.max_delay,
                )
            else:
                self._log(
                    logging.ERROR, "%s: attempt %d/%d failed: %r; giving up", name, attempt, self.max_attempts, exc
                )
            self._exhausted(exc, attempt, call)
        return None

    def _log(self, level: int, message: str, *args: object) -> None:
        if self.logger is not None:
            self.logger.log(level, message, *args)

    def _exhausted(self, exc: BaseException, attempts: int, call: Call | None) -> None:
        escalate = self.on_exhausted
        if escalate is None:
            return
        if call is not None and isinstance(escalate, Escalation):
            escalate.after_call(exc, attempts, call)
        else:
            escalate(exc, attempts)

    def check_escalation(self, func: Callable[..., Any] | None) -> None:
        """Refuse an ``on_exhausted`` that cannot serve ``func`` (None: a block, which makes no call)."""
        if isinstance(self.on_exhausted, Escalation):
            self.on_exhausted.check(func)


# -- the one list of options, lent to every form for type checkers ------------------------------------
#
# At run time these decorators return the function unchanged; a type checker sees it take the
# keyword arguments of RetryOptions, each with its type, so misspelt or mistyped options are
# caught without a second copy of the list.


class RetryDecorator(Protocol[_P]):
    """The type of :func:`retryq.retry`: bare on a function, or called with the options."""

    @overload
    def __call__(self, func: _F, /) -> _F: ...

    @overload
    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> Callable[[_F], _F]: ...


def _decorator_options(options: Callable[_P, object]) -> Callable[[Callable[..., Any]], RetryDecorator[_P]]:
    """Type a decorator as ``@it`` or ``@it(**options)``, the options being the parameters of ``options``."""

    def lend(form: Callable[..., Any]) -> RetryDecorator[_P]:
        return form

    return lend


def _takes_options(options: Callable[_P, object]) -> Callable[[Callable[..., _T]], Callable[_P, _T]]:
    """Type a function as taking the parameters of ``options``."""

    def lend(form: Callable[..., _T]) -> Callable[_P, _T]:
        return form

    return lend


def _method_takes_options(
    options: Callable[_P, object],
) -> Callable[[Callable[..., _T]], Callable[Concatenate[Any, _P], _T]]:
    """Type a method (``__init__`` included) as taking the parameters of ``options`` after ``self``."""

    def lend(form: Callable[..., _T]) -> Callable[Concatenate[Any, _P], _T]:
        return form

    return lend
