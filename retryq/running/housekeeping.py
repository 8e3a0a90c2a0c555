"""What a processor does besides running jobs: recovering abandoned claims, pruning, and handing
its report to the reporters it was given (metrics, a dashboard: :mod:`retryq.reporting.writers`).

One rule decides whether a running job is abandoned (:func:`stale_reason`); recovery in
``process`` and the stuck-job check of ``doctor`` both use it. One rule decides which finished
jobs go (:func:`prune_rule`); ``process`` and ``retryq prune`` both use it.
"""

from __future__ import annotations

__all__ = [
    "MAX_KEEP_DAYS",
    "Housekeeping",
    "Reporter",
    "describe_skew",
    "give_back_unheard_of",
    "lease_end",
    "prune_rule",
    "recover_abandoned",
    "run_is_over",
    "stale_reason",
    "store_time",
]

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from ..record import lifecycle
from ..record.errors import InvalidInput
from ..record.models import Job, JobStatus, Owner
from ..record.timeutil import format_duration, format_utc, utcnow
from ..settings.config import Config, WorkflowSettings
from ..settings.declaration import MAX_KEEP_DAYS
from ..stores import JobFilter, PruneRule, Store
from . import platform
from .claims import OWN_CLAIMS, OwnClaims

if TYPE_CHECKING:
    from .summary import ProcessReport

log = logging.getLogger("retryq")

#: A hundred years: finished jobs kept longer than that are kept for ever in practice.
#: A worker looks for runs abandoned by other processes (and hosts) this often, busy or idle (seconds).
RECOVER_EVERY = 30.0
#: A worker prunes finished jobs this often (seconds).
PRUNE_EVERY = 600.0

OwnerCheck = Callable[[Owner], "bool | None"]


class Reporter(Protocol):
    """Something that turns a run's report into an output (a metrics file, a page): called at the
    end of each run, and by a worker every ``every`` seconds. A failure is its own to log."""

    every: float

    def __call__(self, report: ProcessReport) -> None: ...


def lease_end(job: Job, settings: WorkflowSettings, lease_grace: timedelta) -> datetime | None:
    """When a running job's lease ends: as recorded, but never after its start plus what the
    configuration allows a run (timeout, kill grace, lease grace): a lease until 2100 is not a lease."""
    allowed = None if job.started_at is None else job.started_at + settings.timeout + settings.kill_grace + lease_grace
    ends = [end for end in (job.lease_until, allowed) if end is not None]
    return min(ends, default=None)


def stale_reason(
    job: Job, *, now: datetime, settings: WorkflowSettings, lease_grace: timedelta, owner_alive: OwnerCheck
) -> str | None:
    """Why a running job is abandoned by its runner (a phrase for logs), or None while its claim holds.

    A runner on this host is asked directly: gone, or alive and holding the job while its lease
    lasts (a live runner whose lease ended may never have heard of its claim). A runner elsewhere
    is judged by its lease, bounded by the configuration; and a job that started further in the
    future than ``lease_grace`` (the clock skew hosts may have) is not trusted at all.
    """
    owner = job.owner
    holder = f"{owner.host}:{owner.pid}" if owner is not None else "an unknown runner"
    if owner is not None:
        alive = owner_alive(owner)
        if alive is True:  # the same host, the same clock: its lease alone says whether it holds
            end = lease_end(job, settings, lease_grace)
            if end is None or end >= now:
                return None
            return (
                f"lease of {holder} expired at {format_utc(end)}, though it is alive "
                "(the reply to its claim was lost, or it is stuck)"
            )
        if alive is False:
            return f"runner {holder} is gone"
    if job.started_at is not None and job.started_at > now + lease_grace:
        return (
            f"started in the future ({format_utc(job.started_at)}, more than lease_grace ahead): "
            f"the clock of {holder} is ahead, or the file was edited; its lease is not trusted"
        )
    end = lease_end(job, settings, lease_grace)
    if end is None:
        return f"running for {holder} with no lease"
    if end >= now:
        return None
    if job.lease_until is not None and job.lease_until > end:
        return (
            f"holds a lease until {format_utc(job.lease_until)}, beyond what the configuration allows "
            f"(start + timeout + kill_grace + lease_grace = {format_utc(end)}, passed)"
        )
    return f"lease of {holder} expired at {format_utc(end)}"


def run_is_over(job: Job, settings: WorkflowSettings, now: datetime, *, owner_alive: OwnerCheck) -> bool:
    """Whether nothing of the job's interrupted run can still be running, stopping it here if need be.

    A run of this machine is searched for by its ``RETRYQ_RUN_ID`` and stopped: only processes
    that carry it are ever signalled, never the recorded pid, which the file cannot prove is the
    run's. A run of another machine cannot be seen from here: its expired lease, which covers its
    timeout and kill grace, stands in; so it does where processes cannot be searched (no /proc).
    """
    if job.owner is None or job.run_id is None or owner_alive(job.owner) is None:
        return True
    if platform.searchable():
        return platform.stop_run_processes(job.run_id, settings.kill_grace.total_seconds(), settle=True)
    expired = job.lease_until is None or job.lease_until < now
    return expired


def recover_abandoned(
    store: Store,
    config: Config,
    *,
    now: datetime,
    owner_alive: OwnerCheck = platform.owner_alive,
    running: Sequence[Job] | None = None,
    skip: Callable[[Job], bool] | None = None,
) -> int:
    """Close the attempts of running jobs whose runner is gone, once their processes are gone too.

    Each counts as an interrupted attempt (a job that kills its runner cannot loop for ever);
    returns how many jobs were recovered. ``running`` are the running jobs if just read; jobs that
    ``skip`` says are not to be judged here (this process's own claims, see
    :meth:`Housekeeping.recover`) are left alone.
    """
    if running is None:
        running = store.load(JobFilter.of(status=JobStatus.RUNNING))
    stale: dict[str, tuple[Job, str]] = {}
    for job in running:
        if skip is not None and skip(job):
            continue
        settings = config.settings_of(job.workflow)
        reason = stale_reason(job, now=now, settings=settings, lease_grace=config.lease_grace, owner_alive=owner_alive)
        if reason is None:
            continue
        if not run_is_over(job, settings, now, owner_alive=owner_alive):
            log.error("%s, but its workflow may still run here; left running", reason, extra={"job": job})
            continue
        stale[job.id] = (job, reason)
    if not stale:
        return 0
    recovered: set[str] = set()  # as the last application of each mutation said (a store may apply one again)

    def recovering(job: Job) -> Job:
        seen, reason = stale[job.id]
        settings = config.settings_of(job.workflow)
        new = lifecycle.recover(seen.run_id, now, settings, reason, due_window=config.due_window)(job)
        if new is job:  # recovered meanwhile by another process, or ended
            recovered.discard(job.id)
        else:
            recovered.add(job.id)
        return new

    store.update(dict.fromkeys(stale, recovering))
    for ident in sorted(recovered, key=list(stale).index):  # only what this process recovered: another may have
        job, reason = stale[ident]
        log.warning("%s; attempt #%d counted as interrupted", reason, job.attempt, extra={"job": job})
    return len(recovered)


def store_time(store: Store, host_now: datetime) -> tuple[datetime, timedelta]:
    """The time leases are judged by (the store's own clock where it has one, else the host's), and how
    far the host's clock is ahead of it (negative: behind)."""
    server = store.server_now()
    if server is None:
        return host_now, timedelta(0)
    return server, host_now - server


def describe_skew(skew: timedelta, location: str) -> str:
    """A phrase for a host's clock that is ``skew`` ahead of (or behind) the clock of the store at ``location``."""
    shown = format_duration(timedelta(seconds=round(abs(skew).total_seconds())))
    return f"this host's clock is {shown} {'ahead of' if skew > timedelta(0) else 'behind'} the clock of {location}"


def give_back_unheard_of(store: Store, jobs: Sequence[Job]) -> int:
    """Undo the claims of ``jobs``, which this process made but never heard of (see
    :mod:`retryq.running.claims`): pending again, no attempt counted. Returns how many it undid."""
    if not jobs:
        return 0
    seen = {job.id: job for job in jobs}
    undone: set[str] = set()  # as the last application of each mutation said (a store may apply one again)

    def undo(job: Job) -> Job:
        before = seen[job.id]
        assert before.run_id is not None
        new = lifecycle.unclaim(before.run_id)(job)
        (undone.add if new is not job else undone.discard)(job.id)
        return new

    store.update(dict.fromkeys(seen, undo))
    for ident in sorted(undone, key=list(seen).index):
        log.warning(
            "claimed by this process, which never heard of the claim (its reply was lost); "
            "given back, no attempt counted",
            extra={"job": seen[ident]},
        )
    return len(undone)


def prune_rule(config: Config, now: datetime, keep_days: int | None = None) -> PruneRule:
    """Which finished jobs go: those older than their workflow's ``keep_days`` (per status), or ``keep_days``."""
    if keep_days is not None and (isinstance(keep_days, bool) or not 0 <= keep_days <= MAX_KEEP_DAYS):
        raise InvalidInput(f"keep days must be between 0 and {MAX_KEEP_DAYS}, not {keep_days}")

    def cutoffs(days: Mapping[JobStatus, int]) -> dict[JobStatus, datetime]:
        return {status: now - timedelta(days=keep_days if keep_days is not None else n) for status, n in days.items()}

    return PruneRule(
        cutoffs=cutoffs(config.workflow().keep_days),  # also for workflows no longer configured
        by_workflow={name: cutoffs(settings.keep_days) for name, settings in config.workflows.items()},
    )


class Housekeeping:
    """Recovery, pruning and reporting for a processor: at the start and end of a run, and now and then in a worker."""

    def __init__(
        self,
        store: Store,
        config: Config,
        *,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        keep_days: int | None = None,
        prune: bool = True,
        reporters: Sequence[Reporter] = (),
        claims: OwnClaims = OWN_CLAIMS,
    ) -> None:
        self.store = store
        self.claims = claims
        self.config = config
        self.clock = clock
        self.monotonic = monotonic
        self.keep_days = keep_days
        self.pruning = prune
        self.reporters = tuple(reporters)
        self._reported_at = [-math.inf] * len(self.reporters)
        self._pruned_at = -math.inf
        self._recovered_at = -math.inf
        self._skew_told = False

    def recover(self, report: ProcessReport) -> None:
        """Give back this process's claims that it never heard of, then recover the abandoned ones of others."""
        self._recovered_at = self.monotonic()
        now = self.now()
        with self.claims.claiming():
            running = self.store.load(JobFilter.of(status=JobStatus.RUNNING))
            unheard_of = [job for job in running if self.claims.unheard_of(job)]
        report.released += give_back_unheard_of(self.store, unheard_of)
        report.recovered += recover_abandoned(
            self.store, self.config, now=now, running=running, skip=self.claims.of_this_process
        )

    def now(self) -> datetime:
        """The time leases are judged by: the store's clock where it has one (see :func:`store_time`).

        A host whose clock is off from it by more than ``lease_grace`` is told so, once: its claims
        still follow the store's clock, but the times of its results and of the next attempts it
        schedules follow its own.
        """
        now, skew = store_time(self.store, self.clock())
        if abs(skew) > self.config.lease_grace and not self._skew_told:
            self._skew_told = True
            log.warning(
                "%s (more than lease_grace): claims and leases follow the store's clock, "
                "the times this host writes follow its own; set its time right (NTP)",
                describe_skew(skew, self.store.location),
            )
        return now

    def prune(self, report: ProcessReport) -> None:
        if not self.pruning:
            return
        self._pruned_at = self.monotonic()
        rule = prune_rule(self.config, self.clock(), self.keep_days)
        report.pruned += len(self.store.prune(rule))

    def periodic(self, report: ProcessReport) -> None:
        """A worker's chores, busy or idle, each at its own pace: abandoned runs, pruning, reporters.

        Recovery does not wait for the worker to be idle: on a queue shared by busy hosts, a job
        whose host died is taken up again soon after its lease ends.
        """
        if self.monotonic() - self._recovered_at >= RECOVER_EVERY:
            self.recover(report)
        if self.monotonic() - self._pruned_at >= PRUNE_EVERY:
            self.prune(report)
        for index, reporter in enumerate(self.reporters):
            if self.monotonic() - self._reported_at[index] >= reporter.every:
                self._report(index, report)

    def conclude(self, report: ProcessReport) -> None:
        """The run is over: claims of this process that it never heard of go back (a stopped worker's
        too), then what is left pending, when it ends, and the reporters."""
        with self.claims.claiming():
            open_jobs = self.store.load(JobFilter.of(status=(JobStatus.PENDING, JobStatus.RUNNING)))
            unheard_of = [job for job in open_jobs if self.claims.unheard_of(job)]
        if unheard_of:
            report.released += give_back_unheard_of(self.store, unheard_of)
            open_jobs = self.store.load(JobFilter.of(status=JobStatus.PENDING))
        waiting = [job.execute_at for job in open_jobs if job.status is JobStatus.PENDING]
        report.pending, report.next_due = len(waiting), min(waiting, default=None)
        report.finished_at = self.clock()
        for index in range(len(self.reporters)):
            self._report(index, report)

    def _report(self, index: int, report: ProcessReport) -> None:
        self._reported_at[index] = self.monotonic()
        self.reporters[index](report)
