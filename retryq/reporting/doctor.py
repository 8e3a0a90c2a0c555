"""`retryq doctor`: is this installation able to do its job, and is anything waiting for a human?"""

from __future__ import annotations

__all__ = [
    "CRON_PATH",
    "SLOW_DOCUMENT_BYTES",
    "SLOW_MARKED_DOCUMENT_BYTES",
    "Finding",
    "diagnose",
    "document_size_finding",
]

import os
from collections import Counter
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ..record.errors import ConfigError, RetryqError
from ..record.leases import describe_skew, stale_reason
from ..record.models import Job, JobStatus
from ..record.text import plural
from ..record.timeutil import format_duration, format_utc
from ..running import platform
from ..running.commands import resolve_command
from ..settings.config import Config, WorkflowSettings
from ..stores import Finding, JobFilter, Store, read_jobs, store_time
from . import incidents

if TYPE_CHECKING:
    from ..record.views import JobData

#: The PATH cron gives its jobs unless the crontab sets one (Debian's and most others' cron).
CRON_PATH = "/usr/bin:/bin"
#: The size of a queue rewritten whole at each change (the JSON file) past which one `retryq schedule`
#: spends more than 50 ms on the file on the machine of docs/performance.md: its check for invalid
#: records reads every record, and the write copies the rest (53 ms at 4.5 MB, 112 ms at 9.1 MB; the
#: library alone, which skips the check, passes 50 ms at about 20 MB). See "How large a JSON queue
#: can grow" there. That is for a file without the mark of a write that knew every record valid
#: (stores/file/voucher.py: a file system without extended attributes, a file edited by hand).
SLOW_DOCUMENT_BYTES = 4_000_000
#: The same for a file that carries that mark, whose check then reads no record: 35 ms at 13.6 MB,
#: 51 ms at 18.1 MB, 65 ms at 22.7 MB (seven rounds each, medians), rounded down.
SLOW_MARKED_DOCUMENT_BYTES = 16_000_000


def diagnose(
    config: Config, store: Store, *, now: datetime, overdue: timedelta = timedelta(minutes=15)
) -> list[Finding]:
    """Check the configuration, the workflow commands, the queue file and the jobs in it.

    Leases are judged by the store's clock where it has one (a server's), and a host clock off from
    it by more than ``lease_grace`` is a problem; ``now`` is this host's time.
    """
    findings = [_configuration(config)]
    findings += _commands(config)
    findings += _hooks_and_metrics(config)
    try:
        jobs = read_jobs(store)  # no model per job: a large queue is read quickly
        invalid = store.invalid()
        # Whether a runner still holds a running job is judged on the job itself (its owner, its lease).
        running = store.load(JobFilter.of(status=JobStatus.RUNNING)) if _any_running(jobs) else []
        now, skew = store_time(store, now)
    except RetryqError as error:
        return [*findings, Finding("problem", f"queue: {error}")]
    findings.append(_queue_summary(store, jobs))
    size = getattr(store, "document_bytes", None)  # only a store rewritten whole at each change has one
    marked = getattr(store, "document_marked", False) is True  # its last writer knew every record valid
    grown = document_size_finding(store.location, size if isinstance(size, int) else None, len(jobs), marked=marked)
    findings += [grown] if grown is not None else []
    findings += store.check()
    if abs(skew) > config.lease_grace:
        findings.append(
            Finding(
                "problem",
                f"clock: {describe_skew(skew, store.location)}, more than lease_grace "
                f"({format_duration(config.lease_grace)}): claims and leases follow the server's clock, but the "
                "times this host writes (results, next attempts, schedules) follow its own; set its time right (NTP)",
            )
        )
    findings += [Finding("problem", f"{problem} (left as it is, never run: fix or remove it)") for problem in invalid]
    findings += _jobs(config, jobs, running, now=now, overdue=overdue, held=incidents.held_workflows(store, now))
    findings += incidents.findings(store, config, now=now)  # upstream incidents and pauses
    findings += _schedules(config, store, now=now)
    return findings


def _any_running(jobs: Sequence[JobData]) -> bool:
    return any(job.status is JobStatus.RUNNING for job in jobs)


def _configuration(config: Config) -> Finding:
    if config.source is None:
        return Finding("ok", "configuration: no file; built-in defaults and RETRYQ_* variables")
    return Finding("ok", f"configuration: {config.source}")


def _commands(config: Config) -> list[Finding]:
    configured = {name: settings for name, settings in config.workflows.items() if settings.command}
    if not configured:
        return [Finding("problem", "no workflow command configured: set [workflow] command, or RETRYQ_COMMAND")]
    findings = []
    for name, settings in configured.items():
        assert settings.command is not None
        findings.append(_locate(f"workflow {name}", settings.command[0], settings.command_origin, settings))
    return findings


def _hooks_and_metrics(config: Config) -> list[Finding]:
    """What process runs or writes besides the workflows: a broken one is only found at the worst time."""
    findings = []
    hooks = {settings.on_failure: settings for settings in config.workflows.values() if settings.on_failure}
    for hook, settings in sorted(hooks.items()):
        findings.append(_locate("on_failure", hook[0], "on_failure", settings))
    if config.metrics_file is not None:
        directory = config.metrics_file.parent
        if directory.is_dir() and os.access(directory, os.W_OK):
            findings.append(Finding("ok", f"metrics: {config.metrics_file}"))
        else:
            findings.append(
                Finding("problem", f"metrics: directory {str(directory)!r} does not exist or is not writable")
            )
    return findings


def _locate(label: str, argv0: str, origin: str, settings: WorkflowSettings) -> Finding:
    """Where a command is found, saying on which PATH, and whether cron's default PATH finds the same one.

    A login shell's PATH (a virtual environment, /usr/local/bin, ~/.local/bin) is not cron's: a
    command found here may be "not found" every five minutes under cron, or be another program.
    """
    own = "PATH" in settings.env
    try:
        found = resolve_command(argv0, origin, settings.path)
    except ConfigError as error:
        return Finding("problem", f"{label}: {error}")
    if os.sep in argv0 or (os.altsep and os.altsep in argv0) or platform.IS_WINDOWS:
        return Finding("ok", f"{label}: {found} (from {origin})")
    if own:
        return Finding("ok", f"{label}: {found} (from {origin}; on the workflow's own PATH={settings.path})")
    try:
        under_cron = resolve_command(argv0, origin, CRON_PATH)
    except ConfigError:
        return Finding(
            "warning",
            f"{label}: {found} is found on this shell's PATH but not on cron's default PATH={CRON_PATH}: "
            'under cron it fails; give its full path, set PATH= in the crontab, or env = { PATH = "…" } '
            "in the workflow",
        )
    if os.path.realpath(under_cron) != os.path.realpath(found):
        return Finding(
            "warning",
            f"{label}: {found} on this shell's PATH, but {under_cron} on cron's default PATH={CRON_PATH}: "
            "under cron another program runs; give its full path",
        )
    return Finding("ok", f"{label}: {found} (from {origin}; also found on cron's default PATH={CRON_PATH})")


def document_size_finding(location: str, size: int | None, jobs: int, *, marked: bool = False) -> Finding | None:
    """A warning when a queue rewritten whole at each change has grown past :data:`SLOW_DOCUMENT_BYTES` (past
    :data:`SLOW_MARKED_DOCUMENT_BYTES` when ``marked``: its check for invalid records reads no record)."""
    limit = SLOW_MARKED_DOCUMENT_BYTES if marked else SLOW_DOCUMENT_BYTES
    if size is None or size <= limit:
        return None
    unmarked = (
        ""
        if marked or size > SLOW_MARKED_DOCUMENT_BYTES
        else " (every command checks each of its records: it lacks the mark of retryq's last write, as on a file "
        "system without extended attributes or after an edit by hand)"
    )
    return Finding(
        "warning",
        f"queue: {location} holds {size / 1e6:.1f} MB ({plural(jobs, 'job')}); past about "
        f"{limit / 1e6:.0f} MB, each change of the file (a schedule, a result) takes more than "
        f"50 ms{unmarked}, and longer as it grows: remove finished jobs sooner (keep_days, `retryq prune`; with "
        "archive = true they are kept in its archive), or move the queue to PostgreSQL or Redis "
        "(`retryq export --archive`, then `retryq --queue postgresql://… import`)",
    )


def _queue_summary(store: Store, jobs: Sequence[JobData]) -> Finding:
    counts = Counter(job.status.value for job in jobs)
    detail = ", ".join(f"{count} {status}" for status, count in sorted(counts.items())) or "empty"
    return Finding("ok", f"queue: {store.location}: {plural(len(jobs), 'job')} ({detail})")


def _stuck(config: Config, running: list[Job], now: datetime) -> list[Finding]:
    """The running jobs whose claim no longer holds (see :mod:`retryq.record.leases`)."""
    findings = []
    for job in running:
        settings = config.settings_of(job.workflow)
        reason = stale_reason(
            job, now=now, settings=settings, lease_grace=config.lease_grace, owner_alive=platform.owner_alive
        )
        if reason is not None:
            findings.append(
                Finding(
                    "problem",
                    f"job {job.id} ({job.label}) is stuck running: {reason}; "
                    "the next `retryq process` recovers it: is cron running?",
                )
            )
    return findings


def _jobs(
    config: Config,
    jobs: Sequence[JobData],
    running: list[Job],
    *,
    now: datetime,
    overdue: timedelta,
    held: Collection[str] = (),
) -> list[Finding]:
    """``held``: workflows an upstream incident or a pause holds: their jobs wait on purpose, not for cron."""
    findings = _stuck(config, running, now)
    waiting = (job for job in jobs if job.status is JobStatus.PENDING and job.workflow not in held)
    late = sorted((job for job in waiting if now - job.execute_at > overdue), key=lambda job: job.execute_at)
    if late:
        oldest = late[0]
        findings.append(
            Finding(
                "problem",
                f"{plural(len(late), 'pending job')} due for more than {format_duration(overdue)} "
                f"(oldest {oldest.id}, due {format_utc(oldest.execute_at)}): is cron running `retryq process`?",
            )
        )
    unknown = Counter(job.workflow for job in jobs if job.status.is_open and job.workflow not in config.workflows)
    for name, count in sorted(unknown.items()):
        findings.append(
            Finding("problem", f"{plural(count, 'open job')} of workflow {name!r}, which is not configured")
        )
    commandless = Counter(
        job.workflow
        for job in jobs
        if job.status.is_open and job.workflow in config.workflows and not config.workflows[job.workflow].command
    )
    for name, count in sorted(commandless.items()):
        findings.append(
            Finding("problem", f"{plural(count, 'open job')} of workflow {name!r}, which has no command configured")
        )
    failed = [job for job in jobs if job.status is JobStatus.FAILED]
    if failed:
        latest = max(failed, key=lambda job: job.finished_at or job.execute_at)
        findings.append(
            Finding(
                "warning",
                f"{plural(len(failed), 'failed job')} kept (latest {latest.id}, {latest.label}); "
                "see `retryq list --status failed`, `retryq requeue ID`",
            )
        )
    if not findings:
        findings.append(Finding("ok", "jobs: nothing stuck, nothing overdue"))
    return findings


def _schedules(config: Config, store: Store, *, now: datetime) -> list[Finding]:
    """Each schedule: when it comes next, what became of its last occurrence, and what would keep it from running."""
    if not config.schedules:
        return []
    from ..running.recurring import schedule_statuses

    try:
        statuses = schedule_statuses(config, store, now=now)
    except RetryqError as error:
        return [Finding("problem", f"schedules: {error}")]
    findings = []
    for status in statuses:
        schedule, record = status.schedule, status.record
        name = f"schedule {schedule.name}"
        if not config.workflow(schedule.workflow).command:
            findings.append(
                Finding("problem", f"{name}: workflow {schedule.workflow!r} has no command configured: its jobs wait")
            )
            continue
        if record is not None and not record.fits(schedule):
            findings.append(
                Finding(
                    "warning",
                    f"{name}: the queue recorded it as `{record.cron}` in {record.tz}, not `{schedule.cron}` in "
                    f"{schedule.zone_name}: the next run starts it afresh (if another host reads another "
                    "configuration, make theirs the same)",
                )
            )
        upcoming = "none within 50 years" if status.next is None else format_utc(status.next)
        text = f"{name}: `{schedule.cron}` in {schedule.zone_name}, next {upcoming}"
        if record is not None and record.last is not None:
            text += f"; last {format_utc(record.last)} {status.last_outcome}"
            text += f" ({record.reason})" if record.reason else ""
        failing = status.last_outcome in ("failed", "skipped", "missed") or status.next is None
        findings.append(Finding("warning" if failing else "ok", text))
    return findings
