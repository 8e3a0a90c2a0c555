"""Resolution statistics of retry chains: how many were resolved at which retry, and how fast.

A chain is one job: an inconsistency detected at ``scheduled_at``, then attempts 1, 2, … A chain
is resolved at retry *n* when it completed with ``attempt == n``, persistent when it failed, open
while pending or running. These are the follow-up metrics of the original BOAMP retry, computed from the queue and
its archive.
"""

from __future__ import annotations

__all__ = ["ResolutionStats", "format_stats", "resolution_stats"]

import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .models import Job, JobStatus
from .timeutil import format_duration

_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class ResolutionStats:
    """Counts of retry chains by how they ended, and the time they took to resolve."""

    chains: int
    resolved_by_attempt: dict[int, int]  # attempt number -> chains completed at it, in attempt order
    persistent: int  # failed: attempts ran out, or retrying could not help
    open: int  # pending or running: not settled yet
    cancelled: int
    delay_mean: timedelta | None  # None when no resolved chain has a finish time
    delay_median: timedelta | None
    delay_max: timedelta | None

    @property
    def resolved(self) -> int:
        """Chains completed, whatever the attempt."""
        return sum(self.resolved_by_attempt.values())

    def percent(self, count: int) -> float:
        """``count`` as a percentage of all chains; 0 when there are none."""
        return 100.0 * count / self.chains if self.chains else 0.0

    def to_json_dict(self) -> dict[str, Any]:
        """Plain JSON-able data: counts, percentages, and delays in seconds (``null`` when none)."""
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
        }


def resolution_stats(
    jobs: Iterable[Job],
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
    try:
        cutoff = None if since is None else now - since
    except OverflowError:  # a window reaching before year 1 keeps everything
        cutoff = None
    chains = [
        job
        for job in _latest_by_id(jobs)
        if (cutoff is None or job.scheduled_at >= cutoff)
        and (client is None or job.client_id == client)
        and (workflow is None or job.workflow == workflow)
    ]
    by_status = Counter(job.status for job in chains)
    completed = [job for job in chains if job.status is JobStatus.COMPLETED]
    by_attempt = Counter(job.attempt for job in completed)
    # Whole microseconds keep the arithmetic exact; statistics would reject timedelta itself.
    delays = [(job.finished_at - job.scheduled_at) // _MICROSECOND for job in completed if job.finished_at is not None]
    return ResolutionStats(
        chains=len(chains),
        resolved_by_attempt=dict(sorted(by_attempt.items())),
        persistent=by_status[JobStatus.FAILED],
        open=by_status[JobStatus.PENDING] + by_status[JobStatus.RUNNING],
        cancelled=by_status[JobStatus.CANCELLED],
        delay_mean=timedelta(microseconds=statistics.mean(delays)) if delays else None,
        delay_median=timedelta(microseconds=statistics.median(delays)) if delays else None,
        delay_max=timedelta(microseconds=max(delays)) if delays else None,
    )


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
    return lines


def _latest_by_id(jobs: Iterable[Job]) -> list[Job]:
    """One job per id, the last copy winning."""
    return list({job.id: job for job in jobs}.values())


def _seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()
