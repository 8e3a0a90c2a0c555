"""What the dashboard shows, gathered in one place from a store: statistics, open and failed jobs, recurring
jobs, findings."""

from __future__ import annotations

__all__ = ["DashboardData", "collect", "page_mode"]

from dataclasses import dataclass
from datetime import datetime, timedelta

from ...record.models import Job, JobStatus
from ...record.timeutil import to_utc
from ...running.recurring import ScheduleStatus, schedule_statuses
from ...settings.config import Config
from ...stores import Store
from ..doctor import Finding, diagnose
from ..incidents import IncidentStats, upstream_stats
from ..stats import ResolutionStats, job_history, resolution_stats, select_chains


@dataclass(frozen=True)
class DashboardData:
    """Everything the page shows, as of ``generated_at``; rendering formats it and counts nothing."""

    generated_at: datetime
    location: str  # the store's, for the title
    since: timedelta | None  # the filters the statistics and the job lists share
    client: str | None
    workflow: str | None
    stats: ResolutionStats
    open_jobs: tuple[Job, ...]  # pending or running chains, soonest due first
    failed_jobs: tuple[Job, ...]  # persistent chains, most recently failed first
    findings: tuple[Finding, ...]  # doctor's, in its order
    upstream: IncidentStats | None = None  # upstream incidents and pauses, under the same filters
    schedules: tuple[ScheduleStatus, ...] = ()  # the recurring jobs of the configuration, by name


def collect(
    config: Config,
    store: Store,
    *,
    now: datetime,
    since: timedelta | None = None,
    client: str | None = None,
    workflow: str | None = None,
    overdue: timedelta = timedelta(minutes=15),
) -> DashboardData:
    """Read the queue and its archive once, and gather the statistics, job lists and findings of the page.

    The open and failed jobs are the chains the statistics count as open and persistent, under
    the same filters, so that the lists and the counts always agree.
    """
    now = to_utc(now)
    jobs = job_history(store)
    chains = select_chains(jobs, now=now, since=since, client=client, workflow=workflow)
    return DashboardData(
        generated_at=now,
        location=store.location,
        since=since,
        client=client,
        workflow=workflow,
        stats=resolution_stats(jobs, now=now, since=since, client=client, workflow=workflow),
        open_jobs=tuple(sorted((job for job in chains if job.status.is_open), key=lambda job: job.execute_at)),
        failed_jobs=tuple(
            sorted(
                (job for job in chains if job.status is JobStatus.FAILED),
                key=lambda job: job.finished_at or job.execute_at,
                reverse=True,
            )
        ),
        findings=tuple(diagnose(config, store, now=now, overdue=overdue)),
        upstream=upstream_stats(store, jobs, now=now, since=since, client=client, workflow=workflow),
        schedules=tuple(schedule_statuses(config, store, now=now)),
    )


def page_mode(config: Config, store: Store) -> int:
    """The page file's mode: ``dashboard_mode`` when configured, else the queue file's, else 0600.

    The page shows what the queue holds (clients, errors, the workflows' output tails): by default
    it is exactly as readable as the queue file, whatever the umask.
    """
    if config.dashboard_mode is not None:
        return config.dashboard_mode
    mode = getattr(store, "file_mode", None)  # only a store kept in a file has one (a database has grants)
    return mode if isinstance(mode, int) else 0o600
