"""Configuration: ``retryq.toml`` (or ``[tool.retryq]`` in ``pyproject.toml``) plus environment overrides.

The workflow command comes from here and never from the queue file: the queue holds data
(client, date), the configuration holds what to run with it.

Precedence, last wins: built-in defaults, the file, ``RETRYQ_*`` environment variables,
then command-line options (applied by the caller). Every key, its default, bounds, variable and
option are declared once, in :mod:`retryq.settings.declaration`; this module resolves them.
"""

from __future__ import annotations

__all__ = [
    "PLACEHOLDERS",
    "Config",
    "InconsistencyThresholds",
    "Schedule",
    "WorkflowSettings",
    "find_config_file",
    "load_config",
]

import os
import sys
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..record.backoff import Backoff
from ..record.breakerstate import BreakerSettings
from ..record.errors import ConfigError, InvalidInput
from ..record.inconsistency import InconsistencyThresholds
from ..record.models import DEFAULT_WORKFLOW, JobStatus, validate_workflow_name
from ..record.timeutil import format_duration
from ..stores.base import PruneRule
from . import declaration as declared
from .declaration import DEFAULT_QUEUE_FILE, PER_WORKFLOW, REPORT, SETTINGS, TOP_LEVEL
from .kinds import PLACEHOLDERS, Invalid
from .schedules import Schedule, read_schedules
from .setting import Scope, Setting, read_table

if TYPE_CHECKING:
    from ..record.views import JobData

CONFIG_FILE = "retryq.toml"
#: What the top level accepts: its own settings, and the defaults of every workflow.
_TOP_KEYS = TOP_LEVEL + tuple(setting for setting in PER_WORKFLOW if setting.scope is Scope.SHARED)
_TABLES = ("workflow", "workflows", "report", "schedules")


@dataclass(frozen=True)
class WorkflowSettings:
    """One workflow, with every setting resolved (each default from :mod:`~retryq.settings.declaration`)."""

    name: str
    command: tuple[str, ...] | None = None
    command_origin: str = "not configured"
    timeout: timedelta = field(default_factory=declared.timeout.value)
    kill_grace: timedelta = field(default_factory=declared.kill_grace.value)
    concurrency: int | None = None  # this workflow's own cap on runs at once; None: only the overall one
    priority: int = field(default_factory=declared.priority.value)  # of its new jobs: higher runs first
    max_attempts: int = field(default_factory=declared.max_attempts.value)
    no_retry_exit_codes: frozenset[int] = field(default_factory=declared.no_retry_exit_codes.value)
    backoff: Backoff = field(default_factory=declared.backoff.value)
    keep_days: Mapping[JobStatus, int] = field(default_factory=declared.keep_days.value)
    on_failure: tuple[str, ...] | None = None
    #: Variables set for the workflow (and its on_failure hook) on top of retryq's own environment.
    env: Mapping[str, str] = field(default_factory=dict)
    #: When many of its jobs fail at once, an upstream incident holds its retries (None: no breaker).
    breaker: BreakerSettings | None = None
    #: A command run when an incident of the workflow opens and when it closes.
    on_incident: tuple[str, ...] | None = None

    @property
    def path(self) -> str | None:
        """The PATH the workflow's command is looked up on: its own ``env`` PATH, else retryq's."""
        return self.env.get("PATH", os.environ.get("PATH"))


@dataclass(frozen=True)
class Config:
    """Everything retryq needs to know besides the queue's contents (each default from the declaration)."""

    #: Where the jobs are: a file path, or a server's URL (see :func:`retryq.stores.open_store`).
    queue: str = DEFAULT_QUEUE_FILE
    #: On a server, the queue's own namespace (PostgreSQL: the schema of its tables); None: the backend's own.
    namespace: str | None = None
    source: Path | None = None  # the file this came from, if any
    lock_timeout: timedelta = field(default_factory=declared.lock_timeout.value)
    lease_grace: timedelta = field(default_factory=declared.lease_grace.value)
    #: A `process` run takes jobs due up to this long after it looks (cron ticks are whole minutes).
    due_window: timedelta = field(default_factory=declared.due_window.value)
    #: A workflow's own `concurrency` caps its runs across every process and host, not per process.
    global_concurrency: bool = field(default_factory=declared.global_concurrency.value)
    #: A due job waiting longer than this is claimed before the jobs of higher priority that became due after it.
    max_wait: timedelta = field(default_factory=declared.max_wait.value)
    archive: bool = field(default_factory=declared.archive.value)
    metrics_file: Path | None = None
    #: The dashboard page that `process` rewrites after each run (and `worker` every minute).
    dashboard_file: Path | None = None
    #: The page's permission bits (None: the queue file's, 0600 without one).
    dashboard_mode: int | None = None
    #: Whether the page shows the workflows' output tails.
    dashboard_tails: bool = field(default_factory=declared.dashboard_tails.value)
    on_failure_timeout: timedelta = field(default_factory=declared.on_failure_timeout.value)
    #: Where `list` and `show` also show times, besides UTC (None: UTC only, unless --local).
    display_tz: tzinfo | None = None
    workflows: Mapping[str, WorkflowSettings] = field(
        default_factory=lambda: {DEFAULT_WORKFLOW: WorkflowSettings(DEFAULT_WORKFLOW)}
    )
    concurrency: int = field(default_factory=declared.concurrency.value)
    thresholds: InconsistencyThresholds = field(default_factory=InconsistencyThresholds)
    #: The workflow of the run this process is part of ($RETRYQ_WORKFLOW, set by retryq for each run).
    running_workflow: str | None = None
    #: The recurring jobs the queue enqueues itself, by name (``[schedules.NAME]``).
    schedules: Mapping[str, Schedule] = field(default_factory=dict)

    @property
    def schema(self) -> str | None:
        """PostgreSQL's name for :attr:`namespace` (``schema`` in retryq.toml is an alias of ``namespace``)."""
        return self.namespace

    def workflow(self, name: str | None = None) -> WorkflowSettings:
        """The settings of workflow ``name`` (the default workflow when None)."""
        if name == "":
            raise InvalidInput("the workflow's name is empty (leave the option out for the default workflow)")
        name = DEFAULT_WORKFLOW if name is None else name
        try:
            return self.workflows[name]
        except KeyError:
            known = ", ".join(sorted(self.workflows)) or "none"
            raise InvalidInput(f"unknown workflow {name!r} (configured: {known})") from None

    def settings_of(self, name: str) -> WorkflowSettings:
        """The settings that apply to jobs of workflow ``name``: its own, else the default workflow's
        (for jobs of a workflow removed from the configuration since)."""
        return self.workflows.get(name) or self.workflow()

    def attempts_limit(self, job: JobData) -> int:
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

    def prune_rule(self, now: datetime, keep_days: int | None = None) -> PruneRule:
        """Which finished jobs go: those older than their workflow's ``keep_days`` (per status), or
        ``keep_days`` for every workflow; ``process``, ``worker`` and ``retryq prune`` all ask here."""
        if keep_days is not None and (isinstance(keep_days, bool) or not 0 <= keep_days <= declared.MAX_KEEP_DAYS):
            raise InvalidInput(f"keep days must be between 0 and {declared.MAX_KEEP_DAYS}, not {keep_days}")

        def cutoffs(days: Mapping[JobStatus, int]) -> dict[JobStatus, datetime]:
            return {status: now - timedelta(days=n if keep_days is None else keep_days) for status, n in days.items()}

        return PruneRule(
            cutoffs=cutoffs(self.workflow().keep_days),  # also for workflows no longer configured
            by_workflow={name: cutoffs(settings.keep_days) for name, settings in self.workflows.items()},
        )


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
    where = str(source) if source is not None else "configuration"
    base = source.parent if source is not None else Path()
    try:
        top = _anchored(read_table(data, _TOP_KEYS, "the top level", _TABLES, SETTINGS), base)
        tables = _workflow_tables(data)
        report = _read_at(data.get("report", {}), REPORT, ("report",), "[report]")
        schedules = read_schedules(data.get("schedules", {}), tables, SETTINGS)
    except Invalid as error:
        raise ConfigError(f"{where}: {'.'.join(error.path)}: {error}") from None
    workflows = {name: _workflow(name, table, top, env, where) for name, table in tables.items()}
    values = {setting.name: _top_value(setting, top, env) for setting in TOP_LEVEL}
    thresholds = InconsistencyThresholds(**{each.name: report.get(each.key, each.default) for each in REPORT})
    return Config(
        source=source,
        workflows=workflows,
        thresholds=thresholds,
        running_workflow=env.get("RETRYQ_WORKFLOW") or None,
        schedules=schedules,
        **values,
    )


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


def _anchored(values: dict[str, Any], base: Path) -> dict[str, Any]:
    """Paths read from a file are relative to that file, not to the working directory."""
    kinds = {setting.key: setting.kind for setting in _TOP_KEYS}
    return {key: kinds[key].anchor(value, base) for key, value in values.items()}


def _workflow_tables(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Each workflow's own values, by name: ``[workflow]`` is the default one's."""
    named = data.get("workflows", {})
    if not isinstance(named, Mapping):
        raise Invalid(f"expected a table of workflows, not {named!r}", ("workflows",))
    tables: dict[str, dict[str, Any]] = {}
    if "workflow" in data:
        tables[DEFAULT_WORKFLOW] = _read_at(data["workflow"], PER_WORKFLOW, ("workflow",), "[workflow]")
    for name, table in named.items():
        try:
            validate_workflow_name(name)
        except InvalidInput as error:
            raise Invalid(str(error), ("workflows", name)) from None
        if name in tables:
            raise Invalid("the default workflow is set twice ([workflow] and [workflows.default])", ("workflows", name))
        tables[name] = _read_at(table, PER_WORKFLOW, ("workflows", name), f"[workflows.{name}]")
    tables.setdefault(DEFAULT_WORKFLOW, {})
    return tables


def _read_at(table: object, settings: tuple[Setting[Any], ...], path: tuple[str, ...], label: str) -> dict[str, Any]:
    """The values of the table at ``path`` (``("workflows", "ftp")``), errors named by their whole path."""
    try:
        return read_table(table, settings, label, everywhere=SETTINGS)
    except Invalid as error:
        raise Invalid(str(error), (*path, *error.path)) from None


def _workflow(
    name: str, own: Mapping[str, Any], top: Mapping[str, Any], env: Mapping[str, str], where: str
) -> WorkflowSettings:
    """A workflow's settings: its own value, else the top level's (for a shared setting), else the default."""
    values: dict[str, Any] = {}
    for setting in PER_WORKFLOW:
        if setting.merged:
            values[setting.name] = setting.kind.merge(top.get(setting.key), own.get(setting.key))
        elif setting.key in own:
            values[setting.name] = own[setting.key]
        elif setting.scope is Scope.SHARED and setting.key in top:
            values[setting.name] = top[setting.key]
        elif setting.default is not None:
            values[setting.name] = setting.value()
    origin = f"{where} [{_table(name)}].command" if "command" in own else "not configured"
    if name == DEFAULT_WORKFLOW:  # the command's variable sets the default workflow's only
        for variable in declared.command.env:
            if env.get(variable):
                values["command"], origin = _from_env(declared.command, variable, env[variable]), variable
                break
    return WorkflowSettings(name=name, command_origin=origin, **values)


def _top_value(setting: Setting[Any], top: Mapping[str, Any], env: Mapping[str, str]) -> Any:
    """A top-level setting: its variable if set, else the file's value, else the default (None: not set)."""
    for variable in setting.env:
        if env.get(variable):
            return _from_env(setting, variable, env[variable])
    if setting.key in top:
        return top[setting.key]
    return None if setting.default is None else setting.value()


def _from_env(setting: Setting[Any], variable: str, text: str) -> Any:
    try:
        return setting.kind.parse(text)
    except Invalid as error:
        raise ConfigError(f"{variable}: {error}") from None


def _table(name: str) -> str:
    return "workflow" if name == DEFAULT_WORKFLOW else f"workflows.{name}"
