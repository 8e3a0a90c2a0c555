"""Read-only views of jobs for the commands that read a whole queue (`list`, `stats`, `doctor`).

A :class:`~retryq.record.models.Job` is a pydantic model whose checks partly run in Python (times
made UTC, names and dates checked, text checked): at 100,000 jobs, validating the models takes
three times as long as parsing the file. A :class:`JobView` holds the same fields in a slotted
class, and :func:`views_of` builds them in one pass of pydantic-core over the file's bytes,
with a schema derived from the models' own: each Python check of a model is replaced by the
equivalent a schema can state, or by a check of the whole file's bytes, and the fields, aliases,
types, bounds and defaults are the models' themselves. Nothing is declared twice.

The fast path only ever says yes or "ask the model": it accepts timestamps in UTC to the
millisecond (the form retryq writes, ``2025-12-19T10:00:00.000Z``), and refuses any file that
spells a NUL or a surrogate as an escape, and any record without an id (written by the original
scripts). :func:`views_of` returns None for such a file, and the caller reads it through the
models, which say precisely what is wrong with which record. A record the fast path accepts is
one the model accepts, with the same values (``tests/unit/test_views.py`` checks it on generated
records).

Keys of other tools are not kept in a view: a command that writes, or prints a job whole, reads
the models.
"""

from __future__ import annotations

__all__ = ["AttemptData", "DetectionData", "JobData", "JobView", "OwnerData", "views_of"]

import functools
import gc
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, cast

from pydantic_core import SchemaValidator, ValidationError
from pydantic_core import core_schema as cs

from . import models, text
from .errors import InvalidInput
from .models import DEFAULT_WORKFLOW, Attempt, Detection, Job, JobKey, JobStatus, Outcome, Owner

# -- what a reader needs of a job, whether a model or a view -------------------------------------


class OwnerData(Protocol):
    """The process that claimed a job (an :class:`Owner` or its view)."""

    @property
    def host(self) -> str: ...
    @property
    def pid(self) -> int: ...
    @property
    def boot_id(self) -> str | None: ...
    @property
    def started(self) -> int | None: ...
    @property
    def pid_ns(self) -> str | None: ...


class AttemptData(Protocol):
    """One run of a job's workflow (an :class:`Attempt` or its view)."""

    @property
    def attempt(self) -> int: ...
    @property
    def started_at(self) -> datetime: ...
    @property
    def finished_at(self) -> datetime: ...
    @property
    def outcome(self) -> Outcome: ...
    @property
    def exit_code(self) -> int | None: ...
    @property
    def output_tail(self) -> str | None: ...
    @property
    def incident(self) -> str | None: ...


class DetectionData(Protocol):
    """The verdict that asked for a chain's retry (a :class:`Detection` or its view)."""

    @property
    def status(self) -> str: ...
    @property
    def delay_minutes(self) -> int: ...


class JobData(Protocol):
    """The fields of a job that reading needs: a :class:`Job` has them, and so has a :class:`JobView`."""

    @property
    def client_id(self) -> str: ...
    @property
    def date(self) -> str: ...
    @property
    def scheduled_at(self) -> datetime: ...
    @property
    def execute_at(self) -> datetime: ...
    @property
    def delay_minutes(self) -> int: ...
    @property
    def status(self) -> JobStatus: ...
    @property
    def id(self) -> str: ...
    @property
    def workflow(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    @property
    def max_attempts(self) -> int | None: ...
    @property
    def started_at(self) -> datetime | None: ...
    @property
    def finished_at(self) -> datetime | None: ...
    @property
    def last_exit_code(self) -> int | None: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def lease_until(self) -> datetime | None: ...
    @property
    def owner(self) -> OwnerData | None: ...
    @property
    def run_id(self) -> str | None: ...
    @property
    def workflow_pid(self) -> int | None: ...
    @property
    def follow_up_minutes(self) -> int | None: ...
    @property
    def history(self) -> Sequence[AttemptData]: ...
    @property
    def detection(self) -> DetectionData | None: ...
    @property
    def priority(self) -> int: ...
    @property
    def key(self) -> JobKey: ...
    @property
    def label(self) -> str: ...


# -- the views: the models' fields, without a model ------------------------------------------------
# Plain classes with slots: only the validator builds them (filling the models' defaults), and a
# dataclass would cost an import a few milliseconds of generated methods that nothing calls.


class _View:
    """Read-only fields in slots, named as the model's: set once, by the validator."""

    __slots__: tuple[str, ...] = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _View) and type(other) is type(self) and self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"


class OwnerView(_View):
    """The fields of an :class:`Owner`."""

    __slots__ = tuple(Owner.model_fields)
    host: str
    pid: int
    boot_id: str | None
    started: int | None
    pid_ns: str | None


class AttemptView(_View):
    """The fields of an :class:`Attempt`."""

    __slots__ = tuple(Attempt.model_fields)
    attempt: int
    started_at: datetime
    finished_at: datetime
    outcome: Outcome
    exit_code: int | None
    output_tail: str | None
    incident: str | None


class DetectionView(_View):
    """The fields of a :class:`Detection` (without the keys of other tools)."""

    __slots__ = tuple(Detection.model_fields)
    status: str
    total: int
    missing: int
    ratio: float
    delay_minutes: int
    reason: str | None
    attempt: int


class JobView(_View):
    """The fields of a :class:`Job` (without the keys of other tools), read-only."""

    __slots__ = tuple(Job.model_fields)
    client_id: str
    date: str
    scheduled_at: datetime
    execute_at: datetime
    delay_minutes: int
    status: JobStatus
    id: str
    workflow: str
    attempt: int
    max_attempts: int | None
    started_at: datetime | None
    finished_at: datetime | None
    last_exit_code: int | None
    last_error: str | None
    lease_until: datetime | None
    owner: OwnerView | None
    run_id: str | None
    workflow_pid: int | None
    follow_up_minutes: int | None
    history: tuple[AttemptView, ...]
    detection: DetectionView | None
    priority: int

    @property
    def key(self) -> JobKey:
        """What makes two jobs the same retry: workflow, client and date."""
        return JobKey(self.workflow, self.client_id, self.date)

    @property
    def label(self) -> str:
        """``client date #attempt`` (plus the workflow when it is not the default), for log lines."""
        name = "" if self.workflow == DEFAULT_WORKFLOW else f"{self.workflow}:"
        return f"{name}{self.client_id} {self.date} #{self.attempt}"


_VIEWS: dict[type, type] = {Job: JobView, Owner: OwnerView, Attempt: AttemptView, Detection: DetectionView}

# -- the models' schema, with its Python checks replaced --------------------------------------------

#: Escapes of a NUL or of half a UTF-16 pair: text the models refuse (a pair is fine, but rare: ask them).
_DOUBTFUL_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89abAB])")


def _pattern(regex: re.Pattern[str]) -> str:
    return "^(?:" + regex.pattern + ")$"  # fullmatch, as the model's check


def _native_checks() -> dict[Callable[..., Any], Callable[[cs.CoreSchema], cs.CoreSchema]]:
    """Each Python check of the models, and what replaces it in the fast schema."""
    keep = lambda inner: inner  # noqa: E731
    name = lambda inner: cs.str_schema(pattern=_pattern(models._NAME))  # noqa: E731
    return {
        # Only times at a zero UTC offset, which the model keeps as they are when they are whole
        # milliseconds, as views_of checks after: the same datetime.
        models._aware: lambda inner: {**inner, "tz_constraint": 0},
        models.validate_client_id: name,
        models.validate_workflow_name: name,
        # Checked after, once per distinct date (views_of): the same function.
        models.validate_date: keep,
        # Text and other tools' keys: no NUL or lone surrogate anywhere in the file (views_of).
        text.storable: keep,
        models.Job._storable_extra: keep,
        models.Detection._storable_extra: keep,
        models._Record._share_fields_set: keep,  # the memory of models: views hold no set of fields
        # A record without an id fails the fast schema (its field is required) and is read by the model.
        models.Job._legacy_id.__func__: keep,
    }


class _NoFastPath(Exception):
    """The models hold a check that the fast schema has no replacement for."""


def _fast(node: Any, checks: dict[Callable[..., Any], Callable[[cs.CoreSchema], cs.CoreSchema]]) -> Any:
    if isinstance(node, list):
        return [_fast(item, checks) for item in node]
    if not isinstance(node, dict):
        return node
    kind = node.get("type")
    if kind in ("function-after", "function-before", "function-wrap", "function-plain"):
        function = node["function"]["function"]
        replace = checks.get(getattr(function, "__func__", function))
        if replace is None:
            raise _NoFastPath(f"no replacement for {function!r}")
        return replace(_fast(node["schema"], checks))
    if kind == "model":
        return _view_schema(node, _fast(node["schema"], checks))
    return {key: _fast(value, checks) for key, value in node.items() if key != "serialization"}


def _view_schema(model: dict[str, Any], fields_schema: dict[str, Any]) -> cs.CoreSchema:
    """The view of a model: its fields (types, aliases, defaults) in a slotted class; extra keys ignored."""
    view = _VIEWS[model["cls"]]
    if fields_schema.get("type") != "model-fields" or list(fields_schema["fields"]) != list(view.__annotations__):
        raise _NoFastPath(f"{view.__name__} does not declare the fields of {model['cls'].__name__}")
    fields = [
        cs.dataclass_field(name, field["schema"], validation_alias=field.get("validation_alias"))
        for name, field in fields_schema["fields"].items()
    ]
    config = cast(
        cs.CoreConfig, {key: value for key, value in model.get("config", {}).items() if key != "extra_fields_behavior"}
    )
    return cs.dataclass_schema(
        view,
        cs.dataclass_args_schema(view.__name__, fields, extra_behavior="ignore"),
        [field["name"] for field in fields],
        config=config,
        frozen=True,
        slots=True,
    )


@functools.cache
def _validator() -> SchemaValidator | None:
    """The fast validator of a JSON array of jobs (built on first use); None if the models hold a check it lacks."""
    Job.model_rebuild()
    try:
        schema = _fast(Job.__pydantic_core_schema__, _native_checks())
    except _NoFastPath:
        return None
    return SchemaValidator(cs.list_schema(schema))


def views_of(raw: bytes) -> list[JobView] | None:
    """The jobs of a JSON array, as views; None when the fast path cannot vouch for every record (ask the models).

    The cyclic garbage collector is paused meanwhile, as for the models: views hold no cycles.
    """
    validator = _validator()
    if validator is None or _DOUBTFUL_ESCAPE.search(raw):
        return None
    paused = gc.isenabled()
    gc.disable()
    try:
        views: list[JobView] = validator.validate_json(raw)
    except ValidationError:
        return None
    finally:
        if paused:
            gc.enable()
    if _sub_millisecond(views) or not all(map(_real_date, {view.date for view in views})):
        return None
    return views


def _sub_millisecond(views: list[JobView]) -> bool:
    """Whether a time is finer than the millisecond, which the model would truncate (the file never holds one)."""
    for view in views:
        if view.scheduled_at.microsecond % 1000 or view.execute_at.microsecond % 1000:
            return True
        for value in (view.started_at, view.finished_at, view.lease_until):
            if value is not None and value.microsecond % 1000:
                return True
        for attempt in view.history:
            if attempt.started_at.microsecond % 1000 or attempt.finished_at.microsecond % 1000:
                return True
    return False


def _real_date(value: str) -> bool:
    try:
        models.validate_date(value)
    except InvalidInput:
        return False
    return True
