"""The job record as it is stored in the queue file, and the validation of its parts.

The JSON keys and formats of the original scripts (``clientId``, ``date``, ``scheduledAt``,
``executeAt`` as ``2025-12-19T10:00:00.000Z``, ``delayMinutes``, ``status``) are kept as they
were; retryq's own keys are added beside them, and keys it does not know are kept on rewrite.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_WORKFLOW",
    "FINISHED_STATUSES",
    "HISTORY_LIMIT",
    "MAX_ATTEMPTS",
    "OPEN_STATUSES",
    "Attempt",
    "Detection",
    "Job",
    "JobKey",
    "JobStatus",
    "Outcome",
    "Owner",
    "describe_validation_error",
    "new_job_id",
    "parse_statuses",
    "validate_client_id",
    "validate_date",
    "validate_max_attempts",
    "validate_priority",
    "validate_workflow_name",
]

import enum
import functools
import hashlib
import json
import re
import uuid
from collections.abc import Iterable
from datetime import date as date_type
from datetime import datetime
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    ValidationError,
    model_serializer,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import TzInfo

from .errors import InvalidInput
from .limits import MAX_ATTEMPTS, MAX_PRIORITY, MIN_PRIORITY
from .text import printable, storable, storable_tree, text_problem
from .timeutil import format_utc, to_utc

DEFAULT_WORKFLOW = "default"
#: How many attempts a job keeps in its history (the oldest are dropped first).
HISTORY_LIMIT = 10

# A client id becomes an argv item of the workflow: it must never read as an option (leading "-")
# nor carry anything a shell or a path would interpret.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def validate_client_id(value: str) -> str:
    """Accept letters, digits, ``.``, ``_`` and ``-``, starting with a letter or digit, at most 64 characters."""
    return _validate_name(value, "client id")


def validate_workflow_name(value: str) -> str:
    """Workflow names follow the same rule as client ids."""
    return _validate_name(value, "workflow name")


def _validate_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidInput(
            f"invalid {what} {value!r}: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return value


def validate_date(value: str) -> str:
    """Accept a real calendar date written ``YYYY-MM-DD``."""
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise InvalidInput(f"invalid date {value!r}: expected YYYY-MM-DD, for example 2025-12-19")
    try:
        date_type.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"invalid date {value!r}: no such day in the calendar") from None
    return value


def validate_max_attempts(value: object) -> int:
    """Accept a whole number of attempts from 1 to :data:`MAX_ATTEMPTS`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ATTEMPTS:
        raise InvalidInput(f"max attempts must be a whole number from 1 to {MAX_ATTEMPTS}, not {value!r}")
    return value


def validate_priority(value: object) -> int:
    """Accept a whole number from :data:`MIN_PRIORITY` to :data:`MAX_PRIORITY` (higher runs first)."""
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_PRIORITY <= value <= MAX_PRIORITY:
        raise InvalidInput(f"priority must be a whole number from {MIN_PRIORITY} to {MAX_PRIORITY}, not {value!r}")
    return value


class JobKey(NamedTuple):
    """What makes two jobs the same retry: the workflow, the client and the date.

    Built with :meth:`of` wherever a key comes from outside (arguments, a call, the command
    line), so that client ids and dates are checked in one place.
    """

    workflow: str
    client: str
    date: str

    @classmethod
    def of(cls, client: str, date: str, workflow: str = DEFAULT_WORKFLOW) -> JobKey:
        return cls(validate_workflow_name(workflow), validate_client_id(client), validate_date(date))

    def __str__(self) -> str:
        name = "" if self.workflow == DEFAULT_WORKFLOW else f"{self.workflow}:"
        return f"{name}{self.client} {self.date}"


def _aware(value: datetime) -> datetime:
    zone = value.tzinfo
    if zone is None:
        raise ValueError("timestamp must carry a time zone, as in 2025-12-19T10:00:00.000Z")
    if zone.__class__ is TzInfo and not value.microsecond % 1000 and not zone.utcoffset(None):
        return value  # "…Z" as the file writes it: a fixed UTC offset already (50,000 times per 10,000 jobs)
    return to_utc(value)


UtcDatetime = Annotated[
    datetime,
    AfterValidator(_aware),
    PlainSerializer(format_utc, return_type=str, when_used="json"),
]
ClientId = Annotated[str, AfterValidator(validate_client_id)]
WorkflowName = Annotated[str, AfterValidator(validate_workflow_name)]
JobDate = Annotated[str, AfterValidator(validate_date)]
#: Free text from outside retryq's rules (an error, an output tail, a host name): anything UTF-8 can hold, but NUL.
Text = Annotated[str, AfterValidator(storable)]


class JobStatus(str, enum.Enum):
    """Where a job is in its life; only ``pending`` jobs are ever run."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_open(self) -> bool:
        """Pending or running: the job's chain is not settled (one open job per workflow, client and date)."""
        return self in OPEN_STATUSES

    @property
    def is_finished(self) -> bool:
        """Completed, failed or cancelled: only these are ever pruned."""
        return self in FINISHED_STATUSES

    def __str__(self) -> str:
        return self.value


#: The statuses of a chain not yet settled, and of one that is.
OPEN_STATUSES = frozenset({JobStatus.PENDING, JobStatus.RUNNING})
FINISHED_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})


def parse_statuses(values: JobStatus | str | Iterable[JobStatus | str] | None) -> frozenset[JobStatus] | None:
    """Status names (or statuses) as a set; None stays None (no filter). Unknown names are refused."""
    if values is None:
        return None
    items = [values] if isinstance(values, (str, JobStatus)) else list(values)
    try:
        return frozenset(JobStatus(item) for item in items)
    except ValueError:
        known = ", ".join(status.value for status in JobStatus)
        raise InvalidInput(f"unknown status in {[str(item) for item in items]!r} (known: {known})") from None


class Outcome(str, enum.Enum):
    """How one attempt ended."""

    SUCCEEDED = "succeeded"  # exit 0
    INCOMPLETE = "incomplete"  # exit 75, or exit 0 with a follow-up requested: data still missing
    FAILED = "failed"  # another non-zero exit
    FATAL = "fatal"  # an exit code listed in no_retry_exit_codes: retrying cannot help
    TIMEOUT = "timeout"  # killed after the workflow's timeout
    INTERRUPTED = "interrupted"  # its runner died (crash, kill, reboot); found by recovery
    STOPPED = "stopped"  # retryq was asked to stop; the attempt is not counted

    def __str__(self) -> str:
        return self.value


#: One set of field names for all the records that were given the same fields (see _Record).
_FIELDS_SETS: dict[frozenset[str], set[str]] = {}


class _Record(BaseModel):
    # Validators are built on first use, not at import: `import retryq` and `retryq --help` never
    # build one, and a command builds only the records it reads or writes.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, defer_build=True)

    @model_validator(mode="after")
    def _share_fields_set(self) -> Any:
        # Each model keeps the set of the fields it was given: 2.2 KB of a job's 4.5 KB, the same
        # names in every job of a queue. Frozen records never change theirs (a copy gets a copy of
        # the set), so records given the same fields share one: 100,000 jobs take 220 MB less.
        given = self.__pydantic_fields_set__
        shared = _FIELDS_SETS.setdefault(frozenset(given), given)
        if shared is not given:
            object.__setattr__(self, "__pydantic_fields_set__", shared)
        return self

    def _check_extra_keys(self) -> None:
        # Keys of other tools are kept on rewrite: they must be text the file (or a database) can hold.
        extra = self.__pydantic_extra__
        if extra:
            storable_tree(extra, "")

    def to_json_dict(self) -> dict[str, Any]:
        """The record as the queue file stores it (camelCase keys, UTC timestamps)."""
        return self.model_dump(mode="json", by_alias=True)

    def to_json_line(self) -> str:
        """The record as one line of JSON, as the queue file, its archive and ``retryq export`` write it."""
        return json_line(self.to_json_dict())


class Owner(_Record):
    """The process that claimed a job: host, pid, and what tells a reused pid apart."""

    host: Text
    pid: int
    boot_id: Text | None = None  # kernel boot id: a pid from before a reboot is a different process
    started: int | None = None  # process start time in clock ticks since boot (Linux)
    pid_ns: Text | None = None  # pid namespace: containers sharing a hostname do not share pids


class Attempt(_Record):
    """One run of a job's workflow."""

    attempt: int
    started_at: UtcDatetime
    finished_at: UtcDatetime
    outcome: Outcome
    exit_code: int | None = None
    output_tail: Text | None = None
    #: The upstream incident this attempt was given back for: it is kept, but not counted toward max_attempts.
    incident: Text | None = None

    @model_serializer(mode="wrap")
    def _without_incident(self, handler: SerializerFunctionWrapHandler) -> Any:
        # Written only when set: an attempt that was not given back is stored as it always was.
        data = handler(self)
        if self.incident is None and isinstance(data, dict):
            data.pop("incident", None)
        return data


class Detection(_Record):
    """The verdict of ``report`` that asked for a chain's retry, and the delay it chose (the first one is kept)."""

    model_config = ConfigDict(extra="allow")  # as for jobs: keys of a later version are kept on rewrite

    status: Literal["OK", "DEGRADED", "ERROR"]
    total: int = Field(ge=0)
    missing: int = Field(ge=0)
    ratio: float = Field(ge=0, le=1)
    delay_minutes: int = Field(ge=0, le=30 * 24 * 60)
    reason: Text | None = None  # why that delay ("delay for ERROR"); None when the one configured delay applied
    attempt: int = Field(default=1, ge=1)  # the retry it scheduled: 1 when the verdict started the chain

    @model_validator(mode="after")
    def _storable_extra(self) -> Any:
        self._check_extra_keys()
        return self


class Job(_Record):
    """A deferred run of one workflow for one client and date, and its attempts so far."""

    model_config = ConfigDict(extra="allow")  # keys written by other tools are kept on rewrite

    # The keys of the original scripts, in their order.
    client_id: ClientId
    date: JobDate
    scheduled_at: UtcDatetime
    execute_at: UtcDatetime
    delay_minutes: int = Field(ge=0, le=30 * 24 * 60)
    status: JobStatus = JobStatus.PENDING
    # retryq's keys.
    # Like client ids, an id starts with a letter or digit: `{job_id}` in a command must never read as an option.
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
    workflow: WorkflowName = DEFAULT_WORKFLOW
    attempt: int = Field(default=1, ge=1)
    # None in files written by the original scripts: the workflow's max_attempts applies (fixed at the first claim).
    max_attempts: int | None = Field(default=None, ge=1, le=MAX_ATTEMPTS)
    started_at: UtcDatetime | None = None
    finished_at: UtcDatetime | None = None
    last_exit_code: int | None = None
    last_error: Text | None = None
    lease_until: UtcDatetime | None = None
    owner: Owner | None = None
    run_id: Text | None = None
    workflow_pid: int | None = Field(default=None, gt=1)  # a process group; 0, 1 and negatives mean others
    follow_up_minutes: int | None = Field(default=None, ge=0, le=30 * 24 * 60)
    history: tuple[Attempt, ...] = ()
    # None for chains scheduled without `report` (and in files written before it was recorded).
    detection: Detection | None = None
    # Higher runs first (claims: retryq.record.rules.claim_order); 0 in files written before priorities.
    priority: int = Field(default=0, ge=MIN_PRIORITY, le=MAX_PRIORITY, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _legacy_id(cls, data: Any) -> Any:
        # Jobs written by the original scripts have no id: derive a stable one from what
        # identifies them, so that `list` and `show` agree before the file is first rewritten.
        if isinstance(data, dict) and "id" not in data:
            basis = "|".join(
                str(data.get(key, "")) for key in ("workflow", "clientId", "date", "scheduledAt", "executeAt")
            )
            data = {**data, "id": hashlib.sha256(basis.encode()).hexdigest()[:16]}
        return data

    @model_validator(mode="after")
    def _storable_extra(self) -> Any:
        self._check_extra_keys()
        return self

    @property
    def key(self) -> JobKey:
        """What makes two jobs the same retry: workflow, client and date."""
        return JobKey(self.workflow, self.client_id, self.date)

    @property
    def label(self) -> str:
        """``client date #attempt`` (plus the workflow when it is not the default), for log lines."""
        return f"{self.key} #{self.attempt}"

    @property
    def extra_keys(self) -> dict[str, Any]:
        """Keys found in the file that retryq does not know."""
        return dict(self.__pydantic_extra__ or {})


@functools.cache
def job_list() -> TypeAdapter[list[Job]]:
    """Validation and serialization of a list of jobs in one pass (built on first use)."""
    return TypeAdapter(list[Job])


def jobs_json(jobs: list[Job]) -> str:
    """Jobs as one indented JSON array, as ``list --json`` prints them: what ``to_json_dict`` gives, for each."""
    return job_list().dump_json(jobs, indent=2, by_alias=True).decode("utf-8")


def json_line(record: Any) -> str:
    """A record as one line of JSON (non-ASCII text kept as it is)."""
    return json.dumps(record, ensure_ascii=False)


def new_job_id() -> str:
    """A random job id: 16 hex digits, so that a short unique prefix is easy to type."""
    return uuid.uuid4().hex[:16]


_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "function-after", "function-before", "function-plain"}


def describe_validation_error(error: ValidationError) -> str:
    """The most specific problem of a pydantic error as ``field: message``, for a one-line report.

    For a value that may take several forms (``keep_days = 7`` or ``{ failed = 30 }``), pydantic
    reports a failure per form; the deepest one is about the form the value actually has.
    """
    first = max(error.errors(), key=lambda item: len(_location(item["loc"])))
    parts = _location(first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    given = first.get("input")
    if first["type"] == "string_unicode" and isinstance(given, str) and text_problem(given):
        # A key that is not UTF-8 text, refused before any check of retryq's: say what is wrong with it.
        message = f"{printable(given)!r} {text_problem(given)}"
    elif not parts and first["type"] == "value_error":
        return message  # raised by a check of the whole record, which names the key itself
    where = ".".join(parts)
    return f"{where}: {message}" if where else message


def _location(loc: tuple[int | str, ...]) -> list[str]:
    # Drop the tags pydantic adds to the location for the forms of a union ("command.list[str]").
    return [
        str(part)
        for part in loc
        if not (isinstance(part, str) and ("[" in part or part in _TYPE_TAGS or part.startswith("constrained-")))
    ]
