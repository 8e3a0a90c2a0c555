"""What one ``process`` (or ``worker``) run did: read by the CLI, the metrics and the dashboard."""

from __future__ import annotations

__all__ = ["ProcessReport"]

from dataclasses import dataclass, field
from datetime import datetime

from ..record.models import Job, Outcome
from ..stores import InvalidJob


@dataclass
class ProcessReport:
    """What one ``process`` run did."""

    started_at: datetime
    finished_at: datetime | None = None
    succeeded: int = 0
    retrying: int = 0  # attempts that failed and were rescheduled
    failed: int = 0  # jobs that ended failed (attempts exhausted, or a no-retry exit code)
    released: int = 0  # jobs given back untouched (stop requested, or the command could not start)
    recovered: int = 0  # jobs found running with their runner gone
    lost_claims: int = 0  # results discarded because another process had recovered the job
    pruned: int = 0
    enqueued: int = 0  # occurrences of schedules this run enqueued (running/recurring.py)
    unknown_workflows: dict[str, int] = field(default_factory=dict)
    config_errors: list[str] = field(default_factory=list)
    stopped_by: int | None = None  # the signal that stopped the run
    finished_jobs: list[tuple[Job, Outcome]] = field(default_factory=list)
    pending: int = 0  # jobs left pending when the run ended
    next_due: datetime | None = None  # the soonest of them (but those of a held workflow, which wait for it)
    invalid: list[InvalidJob] = field(default_factory=list)  # records that are not valid jobs, left as they are
    given_back: int = 0  # failed attempts given back for an upstream incident (not counted)
    held: dict[str, int] = field(default_factory=dict)  # workflow -> its due jobs held (an incident, a pause)

    @property
    def processed(self) -> int:
        """Runs that ended with a result (succeeded, or failed whether retried or not)."""
        return self.succeeded + self.retrying + self.failed

    @property
    def eventful(self) -> bool:
        """Something ran, was recovered or given back, or went wrong: worth a line (and a cron mail)."""
        return bool(
            self.processed
            or self.released
            or self.recovered
            or self.lost_claims
            or self.config_errors
            or self.unknown_workflows
            or self.invalid
            or self.stopped_by is not None
        )
