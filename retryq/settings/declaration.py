"""Every setting of retryq, declared once: its key, kind, default, bounds, variable, option and help.

From this list come the keys ``retryq.toml`` accepts at each level (and the "did you mean" for
the others), the resolved :class:`~retryq.settings.config.Config` and ``WorkflowSettings``, the
command-line options that override a setting, and the configuration reference in the docs
(:func:`retryq.settings.reference.markdown`). A limit or default that the record or the stores
need lives in ``retryq.record.limits`` and is referred to here; every other one lives here, but for
the keys of recurring jobs and priorities, declared in :mod:`retryq.settings.schedules` and listed here.

The entries are plain frozen dataclasses, not pydantic fields: the command line reads them for its
``--help`` and its options, which must not import pydantic, and one parser per kind reads a value
the same from a file, a variable or an option.

The module is long because it is the one list of every setting.
"""

from __future__ import annotations

__all__ = [
    "BACKOFF_KEYS",
    "BREAKER_KEYS",
    "DEFAULT_KEEP_DAYS",
    "DEFAULT_QUEUE_FILE",
    "MAX_CONCURRENCY",
    "MAX_KEEP_DAYS",
    "PER_WORKFLOW",
    "REPORT",
    "SCHEDULE",
    "SETTINGS",
    "TOP_LEVEL",
    "max_wait",  # declared with the schedules (a key of the top level), listed here with the others
    "priority",  # declared with the schedules (a key of each workflow), listed here with the others
]

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..record.limits import DUE_WINDOW, LOCK_TIMEOUT, MAX_ATTEMPTS, MAX_MISSING, MAX_RATIO, REPORT_DELAY_MINUTES
from . import kinds
from .filemode import FileMode
from .schedules import SCHEDULE, max_wait, priority
from .setting import Scope, Setting, SwitchedTable, Table

if TYPE_CHECKING:
    from ..record.backoff import Backoff
    from ..record.breakerstate import BreakerSettings

DEFAULT_QUEUE_FILE = ".retry-queue.json"
#: The most days a finished job may be kept (a century): more is a typo, not a policy.
MAX_KEEP_DAYS = 36_500
DEFAULT_KEEP_DAYS = 7
#: The most workflows one process runs at once.
MAX_CONCURRENCY = 256


# -- the top level: the queue, and how retryq runs ---------------------------------------------------------------

queue: Setting[str] = Setting(
    "queue",
    kinds.QueueAddress(),
    Scope.TOP,
    "Where the jobs are: a queue file (relative to this file), or a server's URL such as postgresql://….",
    default=DEFAULT_QUEUE_FILE,
    example="jobs/queue.json",
    aliases=("queue_file",),
    env=("RETRYQ_QUEUE", "RETRYQ_QUEUE_FILE"),
    option=("--queue",),
    commands=("*",),
    option_help="The queue: a file path, or a server's URL such as postgresql://….",
)
namespace: Setting[str] = Setting(
    "namespace",
    kinds.Text(
        r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,99}",
        "letters, digits, '_', '.', ':' or '-', starting with a letter, a digit or '_' (at most 100; "
        "each backend checks the rest: a PostgreSQL schema is lowercase)",
    ),
    Scope.TOP,
    "The queue's own namespace on a server (PostgreSQL: the schema of its tables; Redis: the prefix of "
    "its keys), so that several queues share one server. A queue file has none: it is ignored there, "
    "with one warning.",
    unset="the backend's own (retryq)",
    example="billing",
    aliases=("schema",),
    env=("RETRYQ_NAMESPACE",),
)
lock_timeout: Setting[timedelta] = Setting(
    "lock_timeout",
    kinds.Duration(maximum=timedelta(days=1)),
    Scope.TOP,
    "How long a command waits for the queue's lock (or a row lock) before it exits 75.",
    default=LOCK_TIMEOUT,
    example="2m",
    option=("--lock-timeout",),
    commands=("*",),
    option_help="How long to wait for the queue's lock before exiting 75; a bare number is seconds.",
)
concurrency: Setting[int] = Setting(
    "concurrency",
    kinds.Count(1, MAX_CONCURRENCY),
    Scope.TOP,
    "How many workflows `process` and `worker` run at once.",
    default=1,
    example=4,
    option=("--concurrency", "-j"),
    commands=("process", "worker"),
    option_help="How many workflows run at once.",
)
global_concurrency: Setting[bool] = Setting(
    "global_concurrency",
    kinds.Switch(),
    Scope.TOP,
    "A workflow's own `concurrency` counts the runs of every process and host, not of each process.",
    default=False,
    example=True,
)
lease_grace: Setting[timedelta] = Setting(
    "lease_grace",
    kinds.Duration(maximum=timedelta(days=1)),
    Scope.TOP,
    "The clock difference hosts may have: a run is taken for abandoned only once its start + timeout + "
    "kill_grace + lease_grace has passed.",
    default=timedelta(minutes=1),
    example="5m",
)
due_window: Setting[timedelta] = Setting(
    "due_window",
    kinds.Duration(maximum=timedelta(days=1)),
    Scope.TOP,
    "`process` also runs jobs due within this long (cron ticks are whole minutes).",
    default=DUE_WINDOW,
    example="2m",
)
archive: Setting[bool] = Setting(
    "archive",
    kinds.Switch(),
    Scope.TOP,
    "Pruned jobs are first appended to the queue's archive (beside a queue file: `<file>.archive.jsonl`).",
    default=True,
    example=False,
)
metrics_file: Setting[Any] = Setting(
    "metrics_file",
    kinds.FilePath(),
    Scope.TOP,
    "Where `process` and `worker` write Prometheus metrics (a node_exporter textfile), relative to this file.",
    unset="none",
    example="metrics/retryq.prom",
    option=("--metrics-file",),
    commands=("process", "worker"),
    option_help="Write Prometheus metrics here (a node_exporter textfile).",
)
dashboard: Setting[Any] = Setting(
    "dashboard",
    kinds.FilePath(),
    Scope.TOP,
    "The HTML page `process` rewrites after each run (`worker`: every minute), relative to this file; "
    "needs retryq[dashboard].",
    unset="none",
    example="www/retryq.html",
    attribute="dashboard_file",
    option=("--dashboard",),
    commands=("process", "worker"),
    option_help="Rewrite this HTML page after the run (worker: every minute); needs retryq[dashboard].",
)
dashboard_mode: Setting[int] = Setting(
    "dashboard_mode",
    FileMode(),
    Scope.TOP,
    "The dashboard page's permission bits; unset, the page gets the queue file's (0600 without one), "
    "since it shows the same jobs and output tails.",
    unset="the queue file's mode",
    example="0640",
)
dashboard_tails: Setting[bool] = Setting(
    "dashboard_tails",
    kinds.Switch(),
    Scope.TOP,
    "Whether the dashboard page shows what failed workflows printed last (their output tails).",
    default=True,
    example=False,
)
on_failure_timeout: Setting[timedelta] = Setting(
    "on_failure_timeout",
    kinds.Duration(positive=True, maximum=timedelta(days=1)),
    Scope.TOP,
    "How long an `on_failure` hook may run before it is stopped.",
    default=timedelta(seconds=30),
    example="1m",
)
display_tz: Setting[Any] = Setting(
    "display_tz",
    kinds.Zone(),
    Scope.TOP,
    "`list` and `show` also show times in this zone, besides UTC.",
    unset="UTC only (unless --local)",
    example="Europe/Paris",
)

# -- each workflow: at the top level for all of them, in [workflow] or [workflows.NAME] for one ------------------

command: Setting[tuple[str, ...]] = Setting(
    "command",
    kinds.Command(),
    Scope.WORKFLOW,
    "What runs for a job: an array (argv), or one string split as a shell would split it (never run by "
    "one); {client}, {date}, {attempt}, {job_id} and {workflow} are replaced in each item. $RETRYQ_COMMAND "
    "sets the default workflow's.",
    unset="none: the workflow's jobs wait",
    example=["./fetch.sh", "{client}", "{date}"],
    env=("RETRYQ_COMMAND",),
)
workflow_concurrency: Setting[int] = Setting(
    "concurrency",
    kinds.Count(1, MAX_CONCURRENCY),
    Scope.WORKFLOW,
    "This workflow's own cap on runs at once (with global_concurrency, across every process and host).",
    unset="only the overall concurrency",
    example=2,
)
timeout: Setting[timedelta] = Setting(
    "timeout",
    kinds.Duration(positive=True),
    Scope.SHARED,
    "How long one run may last; then SIGTERM to its process group, and SIGKILL after kill_grace.",
    default=timedelta(minutes=5),
    example="30m",
    option=("--timeout",),
    commands=("process", "worker", "run"),
    option_help="Stop each run after this long (at most the configured timeout): 300, 5m, 1h.",
)
kill_grace: Setting[timedelta] = Setting(
    "kill_grace",
    kinds.Duration(maximum=timedelta(hours=1)),
    Scope.SHARED,
    "How long a run has to stop after SIGTERM, before SIGKILL.",
    default=timedelta(seconds=10),
    example="30s",
)
max_attempts: Setting[int] = Setting(
    "max_attempts",
    kinds.Count(1, MAX_ATTEMPTS),
    Scope.SHARED,
    "How many attempts a job has before it ends failed.",
    default=3,
    example=5,
    option=("--max-attempts",),
    commands=("schedule", "requeue"),
    option_help="Attempts before giving up.",
)
no_retry_exit_codes: Setting[frozenset[int]] = Setting(
    "no_retry_exit_codes",
    kinds.ExitCodes(),
    Scope.SHARED,
    "Exit codes that mean another attempt cannot help: the job fails at once.",
    default=[2, 64, 65, 77, 78],
    example=[2, 64],
)
keep_days: Setting[Any] = Setting(
    "keep_days",
    kinds.KeepDays(MAX_KEEP_DAYS, DEFAULT_KEEP_DAYS),
    Scope.SHARED,
    "Days a finished job is kept before `process` or `prune` removes it: one number, or a table per "
    "status ({ completed = 7, failed = 30 }: a status left out keeps the default).",
    default=DEFAULT_KEEP_DAYS,
    example={"completed": 3, "failed": 30},
    option=("--keep-days",),
    commands=("process", "prune"),
    option_help="Remove finished jobs that ended more than this many days ago.",
    option_kind=kinds.Count(0, MAX_KEEP_DAYS, "days"),
)
on_failure: Setting[tuple[str, ...] | None] = Setting(
    "on_failure",
    kinds.Words(),
    Scope.SHARED,
    "A command run (argv, without a shell, placeholders as in command) when a job ends failed.",
    unset="none",
    example=["./notify-team.sh", "{client}", "{date}"],
)
env: Setting[Mapping[str, str]] = Setting(
    "env",
    kinds.Variables(),
    Scope.SHARED,
    "Variables set for the workflow and its on_failure hook; a workflow's own table adds to the top "
    "level's (its PATH is also where its command is looked up).",
    default={},
    example={"TZ": "Europe/Paris"},
    merged=True,
)

# -- [report]: how `report` and report_fetch() judge a fetch ---------------------------------------------------

max_missing: Setting[int] = Setting(
    "max_missing",
    kinds.Count(0),
    Scope.REPORT,
    "A fetch missing at most this many results is DEGRADED (tolerated), not ERROR.",
    default=MAX_MISSING,
    example=10,
)
max_ratio: Setting[float] = Setting(
    "max_ratio",
    kinds.Number(0, 1),
    Scope.REPORT,
    "…or missing at most this ratio of the total (0.005 is 0.5 %).",
    default=MAX_RATIO,
    example=0.01,
)
report_delay: Setting[Any] = Setting(
    "delay",
    kinds.Delay(),
    Scope.REPORT,
    'How long the retry of an incomplete fetch waits: minutes or a duration ("1h"), a table per status '
    '({ degraded = "60m", error = "20m" }), or an array of bands of the missing ratio.',
    default=REPORT_DELAY_MINUTES,
    example={"degraded": "60m", "error": "20m"},
    option=("--delay",),
    commands=("report",),
    option_help="Minutes (or a duration) before the retry, whatever the verdict.",
    option_kind=kinds.Text(metavar="DELAY"),
)

# -- a backoff table: the wait between attempts -------------------------------------------------------------------

backoff_strategy: Setting[str] = Setting(
    "strategy",
    kinds.Choice(("fixed", "constant", "linear", "exponential")),
    Scope.BACKOFF,
    "fixed (or constant): the same wait every time; linear: initial, then increment more each time; "
    "exponential: initial × factor each time.",
    default="fixed",
    example="exponential",
)
backoff_initial: Setting[timedelta] = Setting(
    "initial",
    kinds.Duration(),
    Scope.BACKOFF,
    "The first wait.",
    unset="the job's own delay (delayMinutes)",
    example="10m",
)
backoff_increment: Setting[timedelta] = Setting(
    "increment",
    kinds.Duration(),
    Scope.BACKOFF,
    "linear: how much longer each wait is than the one before.",
    unset="initial",
    example="30m",
)
backoff_factor: Setting[float] = Setting(
    "factor",
    kinds.Number(1),
    Scope.BACKOFF,
    "exponential: how many times longer each wait is than the one before.",
    default=2.0,
    example=3,
)
backoff_max: Setting[timedelta] = Setting(
    "max",
    kinds.Duration(),
    Scope.BACKOFF,
    "The longest wait.",
    unset="no cap",
    example="6h",
)
backoff_jitter: Setting[timedelta] = Setting(
    "jitter",
    kinds.Duration(),
    Scope.BACKOFF,
    "A random extra wait between 0 and this, so that many retries do not fire at once.",
    default=timedelta(0),
    example="5m",
)

BACKOFF_KEYS: tuple[Setting[Any], ...] = (
    backoff_strategy,
    backoff_initial,
    backoff_increment,
    backoff_factor,
    backoff_max,
    backoff_jitter,
)


def _backoff(given: Mapping[str, Any]) -> Backoff:
    """The strategy a backoff table describes."""
    from ..record.backoff import constant, exponential, jitter, linear

    seconds = {key: given[key].total_seconds() for key in ("initial", "increment", "max") if key in given}
    strategy: Backoff
    name = given.get("strategy", backoff_strategy.default)
    if name == "exponential":
        strategy = exponential(seconds.get("initial"), given.get("factor", backoff_factor.value()), seconds.get("max"))
    elif name == "linear":
        strategy = linear(seconds.get("initial"), seconds.get("increment"), seconds.get("max"))
    else:
        strategy = constant(seconds.get("initial"))
    return strategy + jitter(given["jitter"].total_seconds()) if given.get("jitter") else strategy


backoff: Setting[Backoff] = Setting(
    "backoff",
    Table(BACKOFF_KEYS, _backoff, "the backoff table"),
    Scope.SHARED,
    "The wait between attempts: a table of the keys below ([backoff] at the top level, or backoff = { … }).",
    default={},
    example={"strategy": "exponential", "initial": "10m", "factor": 3, "max": "2h"},
)

# -- a breaker table: upstream incidents (docs/incidents.md) ----------------------------------------------------

breaker_failures: Setting[int] = Setting(
    "failures",
    kinds.Count(1, 10_000),
    Scope.BREAKER,
    "An incident opens when failed attempts of this many distinct jobs of the workflow come within `window`.",
    default=5,
    example=3,
)
breaker_window: Setting[timedelta] = Setting(
    "window",
    kinds.Duration(maximum=timedelta(days=1), positive=True),
    Scope.BREAKER,
    "How close together those failures must be; a job whose last attempt failed waits this long for the "
    "verdict before it ends failed.",
    default="10m",
    example="15m",
)
breaker_probe_every: Setting[timedelta] = Setting(
    "probe_every",
    kinds.Duration(maximum=timedelta(days=1), positive=True),
    Scope.BREAKER,
    "While an incident is open, one held job runs as a probe this often; one that succeeds closes it.",
    default="15m",
    example="5m",
)
breaker_max_open: Setting[timedelta] = Setting(
    "max_open",
    kinds.Duration(maximum=timedelta(days=30), positive=True),
    Scope.BREAKER,
    "An incident still open after this long closes by itself, with a warning (a false alarm: a few broken "
    "clients taken for an outage); the jobs run and count as usual until one succeeds.",
    default="12h",
    example="6h",
)

BREAKER_KEYS: tuple[Setting[Any], ...] = (breaker_failures, breaker_window, breaker_probe_every, breaker_max_open)


def _breaker(given: Mapping[str, Any]) -> BreakerSettings:
    from ..record.breakerstate import BreakerSettings

    return BreakerSettings(given["failures"], given["window"], given["probe_every"], given["max_open"])


breaker: Setting[BreakerSettings | None] = Setting(
    "breaker",
    SwitchedTable(BREAKER_KEYS, _breaker, "the breaker table"),
    Scope.SHARED,
    "Upstream incidents: when many of the workflow's jobs fail at once, hold its retries, probe gently and "
    "give back the attempts the outage burnt. `[breaker]` at the top level (every workflow), `breaker = "
    "{ … }` in a workflow's table (over the top level's, key by key), or `breaker = false`.",
    unset="none: each job retries on its own",
    example={"failures": 3, "window": "15m"},
    merged=True,
)
on_incident: Setting[tuple[str, ...] | None] = Setting(
    "on_incident",
    kinds.Words(),
    Scope.SHARED,
    "A command run (argv, without a shell) when an incident of the workflow opens and when it closes; "
    "{workflow} and {incident} are replaced, and the incident is JSON on its stdin.",
    unset="none",
    example=["./page-oncall.sh", "{workflow}", "{incident}"],
)

#: Each setting, in the order of the reference.
TOP_LEVEL: tuple[Setting[Any], ...] = (
    queue,
    namespace,
    lock_timeout,
    concurrency,
    global_concurrency,
    lease_grace,
    due_window,
    max_wait,
    archive,
    metrics_file,
    dashboard,
    dashboard_mode,
    dashboard_tails,
    on_failure_timeout,
    display_tz,
)
PER_WORKFLOW: tuple[Setting[Any], ...] = (
    command,
    workflow_concurrency,
    priority,
    timeout,
    kill_grace,
    max_attempts,
    no_retry_exit_codes,
    backoff,
    keep_days,
    on_failure,
    env,
    breaker,
    on_incident,
)
REPORT: tuple[Setting[Any], ...] = (max_missing, max_ratio, report_delay)
SETTINGS: tuple[Setting[Any], ...] = TOP_LEVEL + PER_WORKFLOW + REPORT + BACKOFF_KEYS + BREAKER_KEYS + SCHEDULE
