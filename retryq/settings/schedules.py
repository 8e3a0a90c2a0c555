"""The keys of recurring jobs and priorities: ``[schedules.NAME]``, a workflow's ``priority``, ``max_wait``.

Declared here as every other setting is in :mod:`retryq.settings.declaration`, which lists them with
the rest (the reference, the "did you mean", the command line's ``--priority`` come from there). A
schedule's table is read into a :class:`Schedule`, checked at start: an unknown key, a bad cron
expression or an unknown workflow is one line naming the schedule (exit 78).
"""

from __future__ import annotations

__all__ = ["SCHEDULE", "Schedule", "max_wait", "priority", "read_schedules"]

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from ..record.limits import MAX_PRIORITY, MAX_WAIT, MIN_PRIORITY
from . import kinds
from .kinds import Invalid
from .setting import Scope, Setting, read_table

if TYPE_CHECKING:
    from ..record.occurrences import CronRule

# -- priorities ------------------------------------------------------------------------------------

max_wait: Setting[timedelta] = Setting(
    "max_wait",
    kinds.Duration(maximum=timedelta(days=30)),
    Scope.TOP,
    "How long a due job may wait for jobs of higher priority: past it, it is claimed before every job that "
    "became due after it, whatever their priority (0: by due time alone).",
    default=MAX_WAIT,
    example="30m",
)
priority: Setting[int] = Setting(
    "priority",
    kinds.Count(MIN_PRIORITY, MAX_PRIORITY),
    Scope.WORKFLOW,
    "The priority of the workflow's new jobs: among due jobs, higher runs first (see max_wait).",
    default=0,
    example=5,
    option=("--priority",),
    commands=("schedule",),
    option_help="The job's priority: among due jobs, higher runs first.",
)

# -- [schedules.NAME]: recurring jobs the queue enqueues itself ------------------------------------

DEFAULT_WORKFLOW = "default"  # the record's, spelled here: the command line reads these keys without the job model
_NAME_RULE = "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"

schedule_cron: Setting[str] = Setting(
    "cron",
    kinds.CronExpression(),
    Scope.SCHEDULE,
    "When the schedule's jobs come: minute hour day-of-month month day-of-week, with ranges (`1-5`), steps "
    "(`*/15`), lists (`1,15`) and names (`MON`, `JAN`), read in `tz` as cron reads them, daylight saving time "
    "included.",
    unset="none: every schedule gives one",
    example="0 3 * * *",
)
schedule_workflow: Setting[str] = Setting(
    "workflow",
    kinds.Text(_NAME_PATTERN, "a configured workflow's name"),
    Scope.SCHEDULE,
    "The workflow each occurrence runs, as any job of it (retries, timeout, on_failure, retention).",
    default=DEFAULT_WORKFLOW,
    example="sync",
)
schedule_client: Setting[str] = Setting(
    "client",
    kinds.Text(_NAME_PATTERN, _NAME_RULE),
    Scope.SCHEDULE,
    "The {client} of each occurrence's job ({date} is the occurrence's date in `tz`).",
    unset="the schedule's name",
    example="all",
)
schedule_tz: Setting[str] = Setting(
    "tz",
    kinds.ZoneName(),
    Scope.SCHEDULE,
    "The time zone `cron` is read in (set it when the hosts sharing a queue are not all in the same zone).",
    unset="the local time zone, as cron",
    example="Europe/Paris",
)
schedule_catch_up: Setting[str] = Setting(
    "catch_up",
    kinds.Choice(("latest", "none")),
    Scope.SCHEDULE,
    "Occurrences missed while no process ran (a downtime): latest enqueues the most recent of them, once; "
    "none skips them (an occurrence found later than `grace` after its time).",
    default="latest",
    example="none",
)
schedule_grace: Setting[timedelta] = Setting(
    "grace",
    kinds.Duration(maximum=timedelta(days=30)),
    Scope.SCHEDULE,
    'With catch_up = "none": how late an occurrence may still be enqueued; keep it above the interval of the '
    "cron entry that runs `retryq process`.",
    default=timedelta(hours=1),
    example="15m",
)
schedule_priority: Setting[int] = Setting(
    "priority",
    kinds.Count(MIN_PRIORITY, MAX_PRIORITY),
    Scope.SCHEDULE,
    "The priority of each occurrence's job.",
    unset="the workflow's priority",
    example=5,
)

#: The keys of a schedule's table, in the order of the reference.
SCHEDULE: tuple[Setting[Any], ...] = (
    schedule_cron,
    schedule_workflow,
    schedule_client,
    schedule_tz,
    schedule_catch_up,
    schedule_grace,
    schedule_priority,
)


@dataclass(frozen=True)
class Schedule:
    """A recurring job of the configuration (``[schedules.NAME]``), each key resolved."""

    name: str
    cron: str
    workflow: str = DEFAULT_WORKFLOW
    client: str | None = None  # None: the schedule's name
    tz: str | None = None  # None: the local time zone
    catch_up: str = field(default_factory=schedule_catch_up.value)
    grace: timedelta = field(default_factory=schedule_grace.value)
    priority: int | None = None  # None: the workflow's

    @property
    def client_id(self) -> str:
        """The ``{client}`` of its jobs."""
        return self.client or self.name

    @property
    def state_key(self) -> str:
        """The key of what the queue records of it (its state): the last occurrence handled, when it was first seen."""
        return f"schedule:{self.name}"

    @property
    def zone_name(self) -> str:
        """The zone its expression is read in, as the queue records it (``local`` for the local time zone)."""
        return self.tz or "local"

    def zone(self) -> tzinfo:
        from ..record.timeutil import local_zone, named_zone

        return (named_zone(self.tz) if self.tz else None) or local_zone()[0]

    def rule(self) -> CronRule:
        """Its expression, read in its zone."""
        from ..record.occurrences import CronRule

        return CronRule(self.cron, self.zone())


def read_schedules(
    tables: object, workflows: Collection[str], everywhere: Sequence[Setting[Any]]
) -> dict[str, Schedule]:
    """The schedules of ``[schedules.*]``, by name; :class:`Invalid` names the schedule and the key."""
    if not isinstance(tables, Mapping):
        raise Invalid(f"expected a table of schedules ([schedules.NAME]), not {tables!r}", ("schedules",))
    by_key = {setting.key: setting for setting in SCHEDULE}
    found = {}
    for name, table in tables.items():
        path = ("schedules", str(name))
        if not isinstance(name, str) or not re.fullmatch(_NAME_PATTERN, name):
            raise Invalid(f"invalid schedule name: use {_NAME_RULE}", path)
        try:
            values = read_table(table, SCHEDULE, f"[schedules.{name}]", everywhere=everywhere)
        except Invalid as error:
            raise Invalid(str(error), (*path, *error.path)) from None
        if "cron" not in values:
            raise Invalid('`cron` is missing: when its jobs come, as in cron = "0 3 * * *"', path)
        workflow = values.get("workflow", DEFAULT_WORKFLOW)
        if workflow not in workflows:
            known = ", ".join(sorted(workflows))
            raise Invalid(f"unknown workflow {workflow!r} (configured: {known})", (*path, "workflow"))
        found[name] = Schedule(name=name, **{by_key[key].name: value for key, value in values.items()})
    return found
