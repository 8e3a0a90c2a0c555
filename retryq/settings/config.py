"""Configuration: ``retryq.toml`` (or ``[tool.retryq]`` in ``pyproject.toml``) plus environment overrides.

The workflow command comes from here and never from the queue file: the queue holds data
(client, date), the configuration holds what to run with it.

Precedence, last wins: built-in defaults, the file, ``RETRYQ_*`` environment variables,
then command-line options (applied by the caller).
"""

from __future__ import annotations

__all__ = ["PLACEHOLDERS", "Config", "InconsistencyThresholds", "WorkflowSettings", "find_config_file", "load_config"]

import os
import re
import sys
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta, tzinfo
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, ValidationError

from ..record.backoff import Backoff, constant, exponential, jitter, linear
from ..record.errors import ConfigError, InvalidInput
from ..record.inconsistency import DelayPolicy, InconsistencyThresholds, parse_delay_policy
from ..record.models import DEFAULT_WORKFLOW, Job, JobStatus, describe_validation_error, validate_workflow_name
from ..record.timeutil import format_duration, named_zone, parse_duration
from .address import looks_like_url
from .commandline import split_command
from .filemode import FileMode

CONFIG_FILE = "retryq.toml"
DEFAULT_QUEUE_FILE = ".retry-queue.json"
#: What may appear inside the workflow command's argv items, replaced per job.
PLACEHOLDERS = ("client", "date", "attempt", "job_id", "workflow")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _duration(value: Any) -> timedelta:
    try:
        return parse_duration(value, unit="s")
    except InvalidInput as error:
        raise ValueError(str(error)) from None


Duration = Annotated[timedelta, BeforeValidator(_duration)]
ExitCodes = list[Annotated[int, Field(ge=0, le=255)]]


class _Section(BaseModel):
    # Built on first use: without a configuration file, `retryq schedule` never validates one.
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)


class BackoffSection(_Section):
    strategy: Literal["fixed", "constant", "linear", "exponential"] = "fixed"
    initial: Duration | None = None  # default: the job's own delayMinutes
    increment: Duration | None = None
    factor: float = Field(default=2.0, ge=1)
    max: Duration | None = None
    jitter: Duration = timedelta(0)

    def build(self) -> Backoff:
        initial = self.initial.total_seconds() if self.initial is not None else None
        maximum = self.max.total_seconds() if self.max is not None else None
        strategy: Backoff
        if self.strategy == "exponential":
            strategy = exponential(initial, self.factor, maximum)
        elif self.strategy == "linear":
            strategy = linear(initial, self.increment, maximum)
        else:
            strategy = constant(initial)
        if self.jitter:
            strategy = strategy + jitter(self.jitter)
        return strategy


# Days to keep finished jobs; 0 removes them at the next prune. A negative number is refused: it
# would remove a job that finished a minute ago.
Days = Annotated[int, Field(ge=0, le=36_500)]
KeepDays = Days | dict[Literal["completed", "failed", "cancelled"], Days]


class _WorkflowFields(_Section):
    """What a workflow may set; unset fields inherit the top level, then the built-in defaults."""

    timeout: Duration | None = None
    kill_grace: Duration | None = None
    concurrency: Annotated[int, Field(ge=1, le=256)] | None = None
    max_attempts: Annotated[int, Field(ge=1, le=100)] | None = None
    no_retry_exit_codes: ExitCodes | None = None
    backoff: BackoffSection | None = None
    keep_days: KeepDays | None = None
    on_failure: list[str] | None = None
    env: dict[str, str] | None = None


class WorkflowSection(_WorkflowFields):
    command: list[str] | str | None = None


class ReportSection(_Section):
    max_missing: Annotated[int, Field(ge=0)] = 3
    max_ratio: Annotated[float, Field(ge=0, le=1)] = 0.005
    delay: Annotated[DelayPolicy, PlainValidator(parse_delay_policy)] = DelayPolicy()  # minutes, per status, bands


class FileConfig(_WorkflowFields):
    """The whole file, as written."""

    queue: str | None = None
    queue_file: str | None = None
    # "schema" in the file: BaseModel has a method of that name.
    database_schema: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")] | None = Field(
        default=None, alias="schema"
    )
    lock_timeout: Duration = timedelta(seconds=30)
    lease_grace: Duration = timedelta(seconds=60)
    due_window: Duration = timedelta(minutes=1)
    global_concurrency: bool = False
    archive: bool = True
    metrics_file: str | None = None
    dashboard: str | None = None
    dashboard_mode: FileMode | None = None  # the page's mode; None: the queue file's (0600 without one)
    dashboard_tails: bool = True  # whether the page shows the workflows' output tails
    on_failure_timeout: Duration = timedelta(seconds=30)
    display_tz: str | None = None
    workflow: WorkflowSection | None = None
    workflows: dict[str, WorkflowSection] = Field(default_factory=dict)
    report: ReportSection = Field(default_factory=ReportSection)


_DEFAULTS = FileConfig.model_construct(report=ReportSection.model_construct())


@dataclass(frozen=True)
class WorkflowSettings:
    """One workflow, with every setting resolved."""

    name: str
    command: tuple[str, ...] | None = None
    command_origin: str = "not configured"
    timeout: timedelta = timedelta(minutes=5)
    kill_grace: timedelta = timedelta(seconds=10)
    concurrency: int | None = None  # this workflow's own cap on runs at once; None: only the overall one
    max_attempts: int = 3
    no_retry_exit_codes: frozenset[int] = frozenset({2, 64, 65, 77, 78})
    backoff: Backoff = field(default_factory=constant)
    keep_days: Mapping[JobStatus, int] = field(
        default_factory=lambda: {JobStatus.COMPLETED: 7, JobStatus.FAILED: 7, JobStatus.CANCELLED: 7}
    )
    on_failure: tuple[str, ...] | None = None
    #: Variables set for the workflow (and its on_failure hook) on top of retryq's own environment.
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str | None:
        """The PATH the workflow's command is looked up on: its own ``env`` PATH, else retryq's."""
        return self.env.get("PATH", os.environ.get("PATH"))


@dataclass(frozen=True)
class Config:
    """Everything retryq needs to know besides the queue's contents."""

    #: Where the jobs are: a file path, or a PostgreSQL URL (see :func:`retryq.stores.open_store`).
    queue: str = DEFAULT_QUEUE_FILE
    #: For a PostgreSQL queue: the schema of its tables (several queues may share a database).
    schema: str | None = None
    source: Path | None = None  # the file this came from, if any
    lock_timeout: timedelta = timedelta(seconds=30)
    lease_grace: timedelta = timedelta(seconds=60)
    #: A `process` run takes jobs due up to this long after it looks (cron ticks are whole minutes).
    due_window: timedelta = timedelta(minutes=1)
    #: A workflow's own `concurrency` caps its runs across every process and host, not per process.
    global_concurrency: bool = False
    archive: bool = True
    metrics_file: Path | None = None
    #: The dashboard page that `process` rewrites after each run (and `worker` every minute).
    dashboard_file: Path | None = None
    dashboard_mode: int | None = None  # the page's mode; None: the queue file's (0600 without one)
    dashboard_tails: bool = True  # whether the page shows the workflows' output tails
    on_failure_timeout: timedelta = timedelta(seconds=30)
    #: Where `list` and `show` also show times, besides UTC (None: UTC only, unless --local).
    display_tz: tzinfo | None = None
    workflows: Mapping[str, WorkflowSettings] = field(
        default_factory=lambda: {DEFAULT_WORKFLOW: WorkflowSettings(DEFAULT_WORKFLOW)}
    )
    concurrency: int = 1
    thresholds: InconsistencyThresholds = field(default_factory=InconsistencyThresholds)
    #: The workflow of the run this process is part of ($RETRYQ_WORKFLOW, set by retryq for each run).
    running_workflow: str | None = None

    def workflow(self, name: str | None = None) -> WorkflowSettings:
        """The settings of workflow ``name`` (the default workflow when None)."""
        name = name or DEFAULT_WORKFLOW
        try:
            return self.workflows[name]
        except KeyError:
            known = ", ".join(sorted(self.workflows)) or "none"
            raise InvalidInput(f"unknown workflow {name!r} (configured: {known})") from None

    def settings_of(self, name: str) -> WorkflowSettings:
        """The settings that apply to jobs of workflow ``name``: its own, else the default workflow's
        (for jobs of a workflow removed from the configuration since)."""
        return self.workflows.get(name) or self.workflow()

    def attempts_limit(self, job: Job) -> int:
        """How many attempts ``job`` has: its own limit, else its workflow's (files of the original scripts)."""
        return job.max_attempts if job.max_attempts is not None else self.settings_of(job.workflow).max_attempts

    def scheduling_workflow(self, name: str | None = None) -> WorkflowSettings:
        """The workflow a new retry belongs to: ``name``, else the one of the run we are inside, else the default.

        A named workflow that finds data missing from inside its retry run then continues its own
        chain, without having to repeat its name.
        """
        if name is None and self.running_workflow in self.workflows:
            name = self.running_workflow
        return self.workflow(name)

    def check_timeout_override(self, timeout: timedelta, workflows: Collection[str] | None = None) -> timedelta:
        """A ``--timeout`` may shorten the timeout of the workflows run (``workflows``, or all), not lengthen it.

        Other processes judge a run's lease by the configured timeout (a lease is never trusted
        beyond it): a longer run would look abandoned to them and run twice.
        """
        if timeout <= timedelta(0):
            raise InvalidInput(f"timeout must be more than 0 seconds, not {format_duration(timeout)}")
        for name, settings in self.workflows.items():
            if settings.command and (workflows is None or name in workflows) and timeout > settings.timeout:
                raise InvalidInput(
                    f"--timeout {format_duration(timeout)} is longer than the timeout of workflow {name!r} "
                    f"({format_duration(settings.timeout)}): other retryq processes would take the run for "
                    "abandoned; raise `timeout` in the configuration instead"
                )
        return timeout

    def with_overrides(self, **changes: Any) -> Config:
        """A copy with some top-level fields replaced (what command-line options do)."""
        return replace(self, **{key: value for key, value in changes.items() if value is not None})


def find_config_file(cwd: Path | None = None, env: Mapping[str, str] | None = None) -> Path | None:
    """``RETRYQ_CONFIG``, else ``retryq.toml`` here, else ``pyproject.toml`` here if it has ``[tool.retryq]``."""
    env = os.environ if env is None else env
    cwd = cwd or Path()  # relative, so that messages name "retryq.toml" as the user knows it
    if env.get("RETRYQ_CONFIG"):
        return Path(env["RETRYQ_CONFIG"])
    candidate = cwd / CONFIG_FILE
    if candidate.is_file():
        return candidate
    pyproject = cwd / "pyproject.toml"
    if pyproject.is_file():
        try:
            if "retryq" in _read_toml(pyproject).get("tool", {}):
                return pyproject
        except ConfigError:
            return None  # a broken pyproject.toml that does not concern retryq is not our business
    return None


def load_config(path: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None) -> Config:
    """Read the configuration from ``path`` (or the file :func:`find_config_file` finds) and the environment."""
    env = os.environ if env is None else env
    source = Path(path) if path is not None else find_config_file(env=env)
    data: dict[str, Any] = {}
    if source is not None:
        if not source.is_file():
            raise ConfigError(f"{source}: configuration file not found")
        data = _read_toml(source)
        if source.name == "pyproject.toml":
            data = data.get("tool", {}).get("retryq", {})
    try:
        parsed = FileConfig.model_validate(data) if data else _DEFAULTS
    except ValidationError as error:
        raise ConfigError(f"{source}: {describe_validation_error(error)}") from None
    return _resolve(parsed, source, env)


def _read_toml(path: Path) -> dict[str, Any]:
    # Imported here: without a configuration file, a command never parses TOML.
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]
    try:
        with path.open("rb") as handle:
            data: dict[str, Any] = tomllib.load(handle)
            return data
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {error}") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None


def _resolve(parsed: FileConfig, source: Path | None, env: Mapping[str, str]) -> Config:
    base_dir = source.parent if source is not None else Path()
    where = str(source) if source is not None else "configuration"

    sections: dict[str, WorkflowSection] = {}
    if parsed.workflow is not None:
        sections[DEFAULT_WORKFLOW] = parsed.workflow
    for name, section in parsed.workflows.items():
        try:
            validate_workflow_name(name)
        except InvalidInput as error:
            raise ConfigError(f"{where}: workflows.{name}: {error}") from None
        if name in sections:
            raise ConfigError(f"{where}: the default workflow is set twice ([workflow] and [workflows.default])")
        sections[name] = section
    # Defaults need no validation: model_construct() keeps the validators unbuilt when nothing was read.
    sections.setdefault(DEFAULT_WORKFLOW, WorkflowSection.model_construct())

    defaults = WorkflowSettings(DEFAULT_WORKFLOW)
    workflows = {}
    for name, section in sections.items():
        command, origin = _command(section.command, f"{where} [{_table(name)}].command")
        if name == DEFAULT_WORKFLOW and env.get("RETRYQ_COMMAND"):
            command, origin = _command(env["RETRYQ_COMMAND"], "RETRYQ_COMMAND")
        workflows[name] = WorkflowSettings(
            name=name,
            command=command,
            command_origin=origin,
            timeout=_pick(section.timeout, parsed.timeout, defaults.timeout),
            kill_grace=_pick(section.kill_grace, parsed.kill_grace, defaults.kill_grace),
            concurrency=section.concurrency,  # None: only the overall `concurrency` caps it
            max_attempts=_pick(section.max_attempts, parsed.max_attempts, defaults.max_attempts),
            no_retry_exit_codes=frozenset(
                _pick(section.no_retry_exit_codes, parsed.no_retry_exit_codes, defaults.no_retry_exit_codes)
            ),
            backoff=_pick(section.backoff, parsed.backoff, BackoffSection.model_construct()).build(),
            keep_days=_keep_days(_pick(section.keep_days, parsed.keep_days, 7)),
            on_failure=_optional_tuple(_pick(section.on_failure, parsed.on_failure, None)),
            env={**(parsed.env or {}), **(section.env or {})},  # the workflow's own values win
        )
        if workflows[name].timeout <= timedelta(0):
            raise ConfigError(f"{where}: [{_table(name)}].timeout must be more than 0 seconds")

    if parsed.queue and parsed.queue_file:
        raise ConfigError(f"{where}: give `queue` or `queue_file`, not both")
    queue = DEFAULT_QUEUE_FILE
    if parsed.queue_file or parsed.queue:
        queue = _queue_address(parsed.queue or parsed.queue_file or "", base_dir)
    # RETRYQ_QUEUE names any queue; RETRYQ_QUEUE_FILE (retryq sets both for a file) only a file.
    queue = env.get("RETRYQ_QUEUE") or env.get("RETRYQ_QUEUE_FILE") or queue
    metrics = base_dir / parsed.metrics_file if parsed.metrics_file else None
    return Config(
        queue=queue,
        schema=parsed.database_schema,
        source=source,
        lock_timeout=parsed.lock_timeout,
        lease_grace=parsed.lease_grace,
        due_window=parsed.due_window,
        global_concurrency=parsed.global_concurrency,
        archive=parsed.archive,
        metrics_file=metrics,
        dashboard_file=base_dir / parsed.dashboard if parsed.dashboard else None,
        dashboard_mode=parsed.dashboard_mode,
        dashboard_tails=parsed.dashboard_tails,
        on_failure_timeout=parsed.on_failure_timeout,
        display_tz=_zone(parsed.display_tz, where),
        workflows=workflows,
        concurrency=parsed.concurrency or 1,
        thresholds=InconsistencyThresholds(parsed.report.max_missing, parsed.report.max_ratio, parsed.report.delay),
        running_workflow=env.get("RETRYQ_WORKFLOW") or None,
    )


def _zone(name: str | None, where: str) -> tzinfo | None:
    zone = None if name is None else named_zone(name)
    if name is not None and zone is None:
        raise ConfigError(f"{where}: display_tz: unknown time zone {name!r} (for example 'Europe/Paris')")
    return zone


def _queue_address(value: str, base_dir: Path) -> str:
    """A server's URL as it is; a path relative to the file that names it, not to the cwd."""
    return value if looks_like_url(value) else str(base_dir / value)


def _table(name: str) -> str:
    return "workflow" if name == DEFAULT_WORKFLOW else f"workflows.{name}"


def _pick(*values: Any) -> Any:
    """The first value that is set (the workflow's, then the top level's, then the default)."""
    return next((value for value in values if value is not None), None)


def _optional_tuple(value: list[str] | None) -> tuple[str, ...] | None:
    return tuple(value) if value else None


def _keep_days(value: int | dict[str, int]) -> dict[JobStatus, int]:
    if isinstance(value, int):
        return dict.fromkeys((JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED), value)
    days = {JobStatus.COMPLETED: 7, JobStatus.FAILED: 7, JobStatus.CANCELLED: 7}
    days.update({JobStatus(status): number for status, number in value.items()})
    return days


def _command(value: list[str] | str | None, origin: str) -> tuple[tuple[str, ...] | None, str]:
    if value is None:
        return None, "not configured"
    try:
        argv = split_command(value) if isinstance(value, str) else list(value)
    except ValueError as error:
        raise ConfigError(f"{origin}: cannot split the command: {error}") from None
    if not argv or not argv[0]:
        raise ConfigError(f"{origin}: the command is empty")
    for item in argv:
        for name in _PLACEHOLDER.findall(item):
            if name not in PLACEHOLDERS:
                known = ", ".join("{" + known + "}" for known in PLACEHOLDERS)
                raise ConfigError(f"{origin}: unknown placeholder {{{name}}} (known: {known})")
    return tuple(argv), origin
