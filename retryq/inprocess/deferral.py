"""Handing a failure over to the deferred queue: ``@retry(on_exhausted=defer(queue))``.

When the quick in-process retries run out, the work is not dropped: a job is scheduled for the
client and date of the failed call, and the queue takes over the retrying, an hour later, after
a restart, on any host. The original exception still propagates: the caller learns that this
run failed.
"""

from __future__ import annotations

__all__ = ["Deferral", "defer"]

import logging
from collections.abc import Callable, Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from ..record.errors import InvalidInput, RetryqError
from ..record.text import plural
from ..record.timeutil import format_utc
from .policy import Call, Escalation

if TYPE_CHECKING:
    from ..record.models import Job


class Scheduled(Protocol):
    """What scheduling answers (a :class:`~retryq.queue.ScheduleResult`): the job, and what was done."""

    @property
    def job(self) -> Job: ...

    @property
    def outcome(self) -> str: ...


class Workflows(Protocol):
    """What :func:`defer` asks of a configuration (:class:`~retryq.Config` is one): is this workflow known."""

    def workflow(self, name: str | None = None) -> object: ...


class Schedules(Protocol):
    """What :func:`defer` needs of a queue (:class:`~retryq.RetryQueue` is one): its configuration, and schedule."""

    @property
    def config(self) -> Workflows: ...

    def schedule(
        self,
        client: str,
        date: str,
        delay: int | str | timedelta | None = ...,
        *,
        workflow: str | None = ...,
        priority: int | None = ...,
    ) -> Scheduled: ...


logger = logging.getLogger("retryq.retry")

#: Where :func:`defer` takes the client or the date from: a string; a function of the failed call's
#: arguments (a mapping of parameter name to value, defaults applied) returning the string; or None,
#: the call's own argument of that name.
Source = str | Callable[[Mapping[str, Any]], str] | None


def defer(
    queue: Schedules,
    client: Source = None,
    date: Source = None,
    delay: int | str | timedelta = 60,
    *,
    workflow: str | None = None,
    priority: int | None = None,
) -> Deferral:
    """An ``on_exhausted`` callback that schedules the workflow for the failed call's client and date.

    ``defer(queue)`` on ``def fetch(client, date)`` takes both from each call's arguments; a
    string gives a fixed value, and a function picks it from the arguments. A block has no call,
    so a loop or :class:`RetryContext` refuses a ``defer`` that needs one when it is built. The
    failure still propagates: the queue takes over the retrying, the caller still learns that
    this run failed. If the queue cannot take the job, that is logged and the original error wins.
    ``priority`` is the job's (default: the workflow's), as in :meth:`~retryq.RetryQueue.schedule`.
    """
    return Deferral(queue, client, date, delay, workflow=workflow, priority=priority)


class Deferral(Escalation):
    """What :func:`defer` returns: hands the work of an exhausted call over to the deferred queue."""

    __slots__ = ("_client", "_date", "_delay", "_priority", "_queue", "_workflow")

    def __init__(
        self,
        queue: Schedules,
        client: Source,
        date: Source,
        delay: int | str | timedelta,
        *,
        workflow: str | None,
        priority: int | None = None,
    ) -> None:
        # Imported here: pydantic's models are a heavy import for a fetcher that only uses @retry.
        from ..record.models import validate_client_id, validate_date, validate_priority
        from ..record.timeutil import parse_delay

        # Checked now rather than after the last attempt, when a typo would be found too late.
        for name, source, validate in (("client", client, validate_client_id), ("date", date, validate_date)):
            if isinstance(source, str):
                validate(source)
            elif source is not None and not callable(source):
                raise InvalidInput(
                    f"{name} must be a string, a function of the call's arguments, or None for the call's "
                    f"own {name!r} argument, not {source!r}"
                )
        parse_delay(delay)
        queue.config.workflow(workflow)
        if priority is not None:
            validate_priority(priority)
        self._priority = priority
        self._queue = queue
        self._client = client
        self._date = date
        self._delay = delay
        self._workflow = workflow

    def __repr__(self) -> str:
        def shown(source: Source) -> str:
            return repr(source) if source is None or isinstance(source, str) else getattr(source, "__name__", "?")

        return f"<defer {shown(self._client)} {shown(self._date)} to {self._queue!r}>"

    def _sources(self) -> tuple[tuple[str, Source], tuple[str, Source]]:
        return ("client", self._client), ("date", self._date)

    def check(self, func: Callable[..., Any] | None) -> None:
        needed = [name for name, source in self._sources() if not isinstance(source, str)]
        if not needed:
            return
        if func is None:
            raise ValueError(
                f"defer() takes the {' and '.join(needed)} from the arguments of a decorated call, and a "
                "retrying() or RetryContext block makes no call: give them as strings, as in "
                "defer(queue, 'acme', '2025-12-19')"
            )

        try:
            import inspect  # here: only a decorated function's check needs it

            parameters = inspect.signature(func).parameters
        except (TypeError, ValueError):  # no signature to read (some builtins): the call will tell
            return
        if any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters.values()):
            return
        for name, source in self._sources():
            if source is None and name not in parameters:
                raise ValueError(
                    f"defer() takes the {name} from the argument {name!r} of "
                    f"{getattr(func, '__qualname__', func)!r}, which has no such parameter: "
                    f"pass {name}= a string or a function of the call's arguments"
                )

    def __call__(self, exc: BaseException, attempts: int) -> None:
        """Schedule the job after a block failed; only for a client and a date given as strings."""
        if not isinstance(self._client, str) or not isinstance(self._date, str):
            raise TypeError("this defer() takes values from a decorated call: use it as @retry(on_exhausted=...)")
        self._schedule(exc, attempts, self._client, self._date)

    def after_call(self, exc: BaseException, attempts: int, call: Call) -> None:
        if isinstance(self._client, str) and isinstance(self._date, str):
            self._schedule(exc, attempts, self._client, self._date)
            return
        func, args, kwargs = call
        try:
            client, date = self._values(func, args, kwargs)
        except Exception as error:  # a bad picker, a missing argument: the original error still wins
            what = getattr(func, "__qualname__", None) or repr(func)
            self._failed(exc, attempts, what, f"{type(error).__name__}: {error}")
            return
        self._schedule(exc, attempts, client, date)

    def _values(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:

        import inspect  # here: only a failed call's escalation needs it

        signature = inspect.signature(func)
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = bound.arguments
        extra: Mapping[str, Any] = {}
        for parameter in signature.parameters.values():
            if parameter.kind is parameter.VAR_KEYWORD:
                extra = arguments.get(parameter.name, {})
        values = []
        for name, source in self._sources():
            if isinstance(source, str):
                values.append(source)
            elif source is not None:
                values.append(source(MappingProxyType(arguments)))
            elif name in arguments:
                values.append(arguments[name])
            elif name in extra:
                values.append(extra[name])
            else:
                raise InvalidInput(f"the call has no argument {name!r}")
        return values[0], values[1]

    def _schedule(self, exc: BaseException, attempts: int, client: Any, date: Any) -> None:
        try:
            # Given only when set: a queue of another kind need not know priorities.
            ranked = {} if self._priority is None else {"priority": self._priority}
            result = self._queue.schedule(client, date, self._delay, workflow=self._workflow, **ranked)
        except RetryqError as error:
            self._failed(exc, attempts, f"{client} {date}", str(error))
            return
        logger.info(
            "deferred %s %s to the queue after %s: job %s %s, executeAt %s",
            client,
            date,
            plural(attempts, "attempt"),
            result.job.id,
            result.outcome,
            format_utc(result.job.execute_at),
        )

    @staticmethod
    def _failed(exc: BaseException, attempts: int, what: str, error: str) -> None:
        logger.error(
            "could not defer %s to the queue after %s: %s; the original error propagates",
            what,
            plural(attempts, "attempt"),
            error,
        )
        # Python 3.11+ shows notes in the traceback, where whoever reads the failure looks first.
        add_note = getattr(exc, "add_note", None)
        if add_note is not None:
            add_note(f"retryq: deferring to the queue failed: {error}")
