"""Resolution statistics of retry chains: how many were resolved at which retry, and how fast.

A chain is one job: an inconsistency detected at ``scheduled_at``, then attempts 1, 2, … A chain
is resolved at retry *n* when it completed with ``attempt == n``, persistent when it failed, open
while pending or running. These are the follow-up metrics of the original BOAMP retry, computed from the queue and
its archive. Besides the totals, the result breaks the chains down by day of detection and by
client, by status at detection (what ``report`` judged when it asked for the chain), and bins the
times to resolution, so that a report or a dashboard never counts again.
"""

from __future__ import annotations

__all__ = [
    "UNKNOWN_STATUS",
    "DayCounts",
    "DelayBin",
    "ResolutionStats",
    "detection_status",
    "format_by_status",
    "format_stats",
    "job_history",
    "latest_copies",
    "read_history",
    "resolution_stats",
    "select_chains",
]

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from ..record.models import Job, JobStatus
from ..record.text import plural
from ..record.timeutil import format_duration

if TYPE_CHECKING:
    from ..record.views import JobData
    from ..stores import Store

J = TypeVar("J", bound="JobData")

_MICROSECOND = timedelta(microseconds=1)
#: Bin widths of the delay histogram, in microseconds: the narrowest that needs at most _MAX_BINS bins wins.
_BIN_SECONDS = (1, 2, 5, 10, 15, 30)
_BIN_MINUTES = (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080)
_BIN_WIDTHS = tuple(
    timedelta(seconds=seconds) // _MICROSECOND for seconds in (*_BIN_SECONDS, *(60 * m for m in _BIN_MINUTES))
)
_MAX_BINS = 12
#: The group of chains whose job records no verdict: scheduled without ``report`` (or before verdicts were kept).
UNKNOWN_STATUS = "unknown"
_STATUS_ORDER = ("OK", "DEGRADED", "ERROR", UNKNOWN_STATUS)


@dataclass(frozen=True)
class DayCounts:
    """The chains detected on one UTC day, by how they ended."""

    day: date
    chains: int
    resolved: int
    persistent: int
    open: int
    cancelled: int

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "date": self.day.isoformat(),
            "chains": self.chains,
            "resolved": self.resolved,
            "persistent": self.persistent,
            "open": self.open,
            "cancelled": self.cancelled,
        }


@dataclass(frozen=True)
class DelayBin:
    """How many resolved chains took at least ``start`` and less than ``end`` from detection to success."""

    start: timedelta
    end: timedelta
    count: int

    def to_json_dict(self) -> dict[str, Any]:
        return {"fromSeconds": self.start.total_seconds(), "toSeconds": self.end.total_seconds(), "count": self.count}


@dataclass(frozen=True)
class ResolutionStats:
    """Counts of retry chains by how they ended, and the time they took to resolve.

    ``by_day``, ``by_client``, ``by_status`` and ``delay_histogram`` break the same chains down;
    the statistics of each client or status carry no breakdown of their own.
    """

    chains: int
    resolved_by_attempt: dict[int, int]  # attempt number -> chains completed at it, in attempt order
    persistent: int  # failed: attempts ran out, or retrying could not help
    open: int  # pending or running: not settled yet
    cancelled: int
    delay_mean: timedelta | None  # None when no resolved chain has a finish time
    delay_median: timedelta | None
    delay_max: timedelta | None
    by_day: tuple[DayCounts, ...] = ()  # every UTC day from the first detection to today, in order
    by_client: Mapping[str, ResolutionStats] = field(default_factory=dict)  # most chains first, then by name
    delay_histogram: tuple[DelayBin, ...] = ()  # contiguous bins from 0 (or the lowest delay) to the max
    #: Status at detection (OK, DEGRADED, ERROR, then "unknown") -> its chains' statistics; groups with chains only.
    by_status: Mapping[str, ResolutionStats] = field(default_factory=dict)
    #: Ids of resolved chains whose finishedAt comes before their scheduledAt (hand-edited times): counted as
    #: resolved, left out of the times, which they would drag below zero.
    misdated: tuple[str, ...] = ()

    @property
    def resolved(self) -> int:
        """Chains completed, whatever the attempt."""
        return sum(self.resolved_by_attempt.values())

    def percent(self, count: int) -> float:
        """``count`` as a percentage of all chains; 0 when there are none."""
        return 100.0 * count / self.chains if self.chains else 0.0

    def to_json_dict(self, *, breakdowns: bool = False) -> dict[str, Any]:
        """JSON-able data: counts, percentages, delays in seconds (``null`` when none); breakdowns if asked."""
        data = self._summary_json()
        if breakdowns:
            data["byDay"] = [day.to_json_dict() for day in self.by_day]
            data["byClient"] = {client: stats._summary_json() for client, stats in self.by_client.items()}
            data["byStatus"] = {status: stats._summary_json() for status, stats in self.by_status.items()}
            data["delayHistogram"] = [bin_.to_json_dict() for bin_ in self.delay_histogram]
        return data

    def _summary_json(self) -> dict[str, Any]:
        return {
            "chains": self.chains,
            "resolved": self.resolved,
            "resolvedPercent": self.percent(self.resolved),
            # JSON object keys are strings; the attempt order is kept.
            "resolvedByAttempt": {
                str(attempt): {"count": count, "percent": self.percent(count)}
                for attempt, count in self.resolved_by_attempt.items()
            },
            "persistent": self.persistent,
            "persistentPercent": self.percent(self.persistent),
            "open": self.open,
            "openPercent": self.percent(self.open),
            "cancelled": self.cancelled,
            "cancelledPercent": self.percent(self.cancelled),
            "delaySeconds": {
                "mean": _seconds(self.delay_mean),
                "median": _seconds(self.delay_median),
                "max": _seconds(self.delay_max),
            },
            "misdated": list(self.misdated),
        }


def latest_copies(jobs: Iterable[J]) -> list[J]:
    """One job per id, the last copy winning: pass archived jobs before live ones (a job archived, then
    requeued or archived twice by a crash between the two writes, appears more than once)."""
    return list({job.id: job for job in jobs}.values())


def job_history(store: Store) -> list[Job]:
    """Every job the queue has known, once each: its archive, then its live jobs, a live copy winning."""
    return latest_copies([*store.load_archive(), *store.load()])


def read_history(store: Store) -> list[JobData]:
    """:func:`job_history` for reading only: the live jobs as read-only views where the store offers them."""
    from ..stores import read_jobs

    return latest_copies([*store.load_archive(), *read_jobs(store)])


def select_chains(
    jobs: Iterable[J],
    *,
    now: datetime,
    since: timedelta | None = None,
    client: str | None = None,
    workflow: str | None = None,
) -> list[J]:
    """The chains :func:`resolution_stats` counts: one job per id (the last copy wins), within the filters."""
    try:
        cutoff = None if since is None else now - since
    except OverflowError:  # a window reaching before year 1 keeps everything
        cutoff = None
    return [
        job
        for job in latest_copies(jobs)
        if (cutoff is None or job.scheduled_at >= cutoff)
        and (client is None or job.client_id == client)
        and (workflow is None or job.workflow == workflow)
    ]


def resolution_stats(
    jobs: Iterable[JobData],
    *,
    now: datetime,
    since: timedelta | None = None,
    client: str | None = None,
    workflow: str | None = None,
) -> ResolutionStats:
    """Compute the statistics of the chains in ``jobs`` that match the filters.

    The same id may come twice (archive and live queue): the last copy wins, so pass the
    archived jobs before the live ones. ``since`` keeps chains detected at or after ``now - since``.
    """
    chains = select_chains(jobs, now=now, since=since, client=client, workflow=workflow)
    per_client: defaultdict[str, list[JobData]] = defaultdict(list)
    per_status: defaultdict[str, list[JobData]] = defaultdict(list)
    for job in chains:
        per_client[job.client_id].append(job)
        per_status[detection_status(job)].append(job)
    ranked = sorted(per_client.items(), key=lambda item: (-len(item[1]), item[0]))
    summary = _summarize(chains)
    return ResolutionStats(
        **summary,
        by_day=_by_day(chains, today=now.astimezone(timezone.utc).date()),
        by_client={name: ResolutionStats(**_summarize(jobs_of)) for name, jobs_of in ranked},
        delay_histogram=_histogram(_delays(chains)),
        by_status={
            name: ResolutionStats(**_summarize(per_status[name])) for name in _STATUS_ORDER if name in per_status
        },
    )


def detection_status(job: JobData) -> str:
    """The status ``report`` judged when it asked for ``job``'s chain: OK, DEGRADED, ERROR, or "unknown"."""
    return job.detection.status if job.detection is not None else UNKNOWN_STATUS


def format_stats(stats: ResolutionStats) -> list[str]:
    """The statistics as lines of text, one count per line, for a terminal or a log."""
    lines = [f"inconsistencies detected: {stats.chains}"]
    lines += [
        f"resolved at retry {attempt}: {count} ({stats.percent(count):.1f}%)"
        for attempt, count in stats.resolved_by_attempt.items()
    ]
    lines += [
        f"persistent (failed): {stats.persistent} ({stats.percent(stats.persistent):.1f}%)",
        f"still open: {stats.open}",
        f"cancelled: {stats.cancelled}",
    ]
    if stats.delay_mean is None or stats.delay_median is None or stats.delay_max is None:
        # Jobs completed by the original scripts carry no finishedAt: resolved, but not timed.
        lines.append("time to resolution: " + ("not recorded" if stats.resolved else "none resolved"))
    else:
        lines.append(
            f"time to resolution: mean {format_duration(stats.delay_mean)}, "
            f"median {format_duration(stats.delay_median)}, max {format_duration(stats.delay_max)}"
        )
    if stats.misdated:
        shown = ", ".join(stats.misdated[:5]) + ("…" if len(stats.misdated) > 5 else "")
        lines.append(
            f"left out of the time to resolution: {plural(len(stats.misdated), 'chain')} whose finishedAt "
            f"comes before its scheduledAt (hand-edited times?): {shown}"
        )
    return lines


def format_by_status(stats: ResolutionStats) -> list[str]:
    """The statistics of each status at detection, as indented blocks under a heading, for ``stats --by status``."""
    lines = ["by status at detection:" + ("" if stats.by_status else " no chains")]
    for status, group in stats.by_status.items():
        label = "unknown (scheduled without report)" if status == UNKNOWN_STATUS else status
        lines.append(f"{label}: {group.chains} {'chain' if group.chains == 1 else 'chains'}")
        lines += [f"  {line}" for line in format_stats(group)[1:]]  # the count is on the heading
    return lines


def _summarize(chains: list[JobData]) -> dict[str, Any]:
    """The fields of :class:`ResolutionStats` that count ``chains`` as a whole."""
    by_status = Counter(job.status for job in chains)
    by_attempt = Counter(job.attempt for job in chains if job.status is JobStatus.COMPLETED)
    delays = _delays(chains)
    return {
        "chains": len(chains),
        "resolved_by_attempt": dict(sorted(by_attempt.items())),
        "persistent": by_status[JobStatus.FAILED],
        "open": by_status[JobStatus.PENDING] + by_status[JobStatus.RUNNING],
        "cancelled": by_status[JobStatus.CANCELLED],
        # sum / len of whole numbers is statistics.mean's exact result, rounded once, without its fractions.
        "delay_mean": timedelta(microseconds=sum(delays) / len(delays)) if delays else None,
        "delay_median": timedelta(microseconds=statistics.median(delays)) if delays else None,
        "delay_max": timedelta(microseconds=max(delays)) if delays else None,
        "misdated": tuple(
            job.id
            for job in chains
            if job.status is JobStatus.COMPLETED and job.finished_at is not None and job.finished_at < job.scheduled_at
        ),
    }


def _delays(chains: Iterable[JobData]) -> list[int]:
    """Microseconds from detection to success of each resolved chain that records when it finished (after it began)."""
    # Whole microseconds keep the arithmetic exact; statistics would reject timedelta itself.
    return [
        (job.finished_at - job.scheduled_at) // _MICROSECOND
        for job in chains
        if job.status is JobStatus.COMPLETED and job.finished_at is not None and job.finished_at >= job.scheduled_at
    ]


def _by_day(chains: list[JobData], *, today: date) -> tuple[DayCounts, ...]:
    """Counts per UTC day of detection; days without any chain are listed too, so that a chart keeps its scale."""
    if not chains:
        return ()
    counts: defaultdict[date, Counter[JobStatus]] = defaultdict(Counter)
    for job in chains:
        counts[job.scheduled_at.date()][job.status] += 1
    first, last = min(counts), max(*counts, today)
    days = []
    for offset in range((last - first).days + 1):
        day = first + timedelta(days=offset)
        by_status = counts.get(day, Counter())
        days.append(
            DayCounts(
                day=day,
                chains=by_status.total(),
                resolved=by_status[JobStatus.COMPLETED],
                persistent=by_status[JobStatus.FAILED],
                open=by_status[JobStatus.PENDING] + by_status[JobStatus.RUNNING],
                cancelled=by_status[JobStatus.CANCELLED],
            )
        )
    return tuple(days)


def _histogram(delays: list[int]) -> tuple[DelayBin, ...]:
    """Delays (in microseconds) in at most _MAX_BINS bins of a round width, starting at 0."""
    if not delays:
        return ()
    low, high = 0, max(delays)  # no delay is negative: chains that say so are left out (misdated)
    width = next((w for w in _BIN_WIDTHS if high // w - low // w < _MAX_BINS), None)
    if width is None:  # beyond 12 weeks: whole weeks
        week = _BIN_WIDTHS[-1]
        width = -(-(high - low + 1) // (_MAX_BINS * week)) * week
    counts = Counter(delay // width for delay in delays)
    return tuple(
        DelayBin(start=timedelta(microseconds=n * width), end=timedelta(microseconds=(n + 1) * width), count=counts[n])
        for n in range(low // width, high // width + 1)
    )


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()
