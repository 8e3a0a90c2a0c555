"""The processor's steps besides running jobs: giving back claims it never heard of, recovering
abandoned ones, pruning, and handing its report to the reporters it was given (metrics, a
dashboard: :mod:`retryq.reporting.writers`). The rules they apply live with the record (whether a
claim still holds: :mod:`retryq.record.leases`) and the configuration (which finished jobs go:
:meth:`retryq.Config.prune_rule`); this module applies them, with the processor's options.
"""

from __future__ import annotations

__all__ = [
    "Housekeeping",
    "give_back_unheard_of",
    "recover_abandoned",
    "run_is_over",
]

import logging
import math
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from ..record import lifecycle
from ..record.leases import OwnerCheck, describe_skew, stale_reason
from ..record.models import Job, JobStatus
from ..settings.config import Config, WorkflowSettings
from ..stores import JobFilter, Plan, Store, store_time
from . import platform
from .claims import OWN_CLAIMS, OwnClaims
from .options import ProcessorOptions

if TYPE_CHECKING:
    from .breaker import Breaker
    from .summary import ProcessReport

log = logging.getLogger("retryq")

#: A worker looks for runs abandoned by other processes (and hosts) this often, busy or idle (seconds).
RECOVER_EVERY = 30.0
#: A worker prunes finished jobs this often (seconds).
PRUNE_EVERY = 600.0


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
    plan: Callable[[Collection[str], Iterable[str]], Plan | None] | None = None,
) -> int:
    """Close the attempts of running jobs whose runner is gone, once their processes are gone too.

    Each counts as an interrupted attempt (a job that kills its runner cannot loop for ever);
    returns how many jobs were recovered. ``running`` are the running jobs if just read; jobs that
    ``skip`` says are not to be judged here (this process's own claims, see
    :meth:`Housekeeping.recover`) are left alone. ``plan(recovered, workflows)`` gives the plan the
    write carries (the breaker's: an interrupted attempt counts toward an upstream incident).
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

    workflows = {job.workflow for job, _ in stale.values()}
    store.update(dict.fromkeys(stale, recovering), plan=None if plan is None else plan(recovered, workflows))
    for ident in sorted(recovered, key=list(stale).index):  # only what this process recovered: another may have
        job, reason = stale[ident]
        log.warning("%s; attempt #%d counted as interrupted", reason, job.attempt, extra={"job": job})
    return len(recovered)


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


class Housekeeping:
    """Recovery, pruning and reporting for a processor: at the start and end of a run, and now and then in a worker."""

    def __init__(
        self,
        store: Store,
        config: Config,
        options: ProcessorOptions,
        claims: OwnClaims = OWN_CLAIMS,
        breaker: Breaker | None = None,
    ) -> None:
        self.store, self.config, self.options, self.claims = store, config, options, claims
        self.breaker = breaker
        self.clock, self.monotonic = options.clock, options.monotonic
        self._reported_at = [-math.inf] * len(options.reporters)
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
            self.store,
            self.config,
            now=now,
            running=running,
            skip=self.claims.of_this_process,
            plan=None if self.breaker is None else self.breaker.recovery_plan,
        )
        if self.breaker is not None:
            self.breaker.recovered(report)

    def now(self) -> datetime:
        """The time leases are judged by: the store's clock where it has one (see :func:`~retryq.stores.store_time`).

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
        if not self.options.prune:
            return
        self._pruned_at = self.monotonic()
        rule = self.config.prune_rule(self.clock(), self.options.keep_days)
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
        for index, reporter in enumerate(self.options.reporters):
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
        waiting = [job for job in open_jobs if job.status is JobStatus.PENDING]
        report.pending = len(waiting)
        # Jobs of a held workflow (an incident, a pause) wait for its release, not for their time.
        report.next_due = min((job.execute_at for job in waiting if job.workflow not in report.held), default=None)
        report.finished_at = self.clock()
        for index in range(len(self.options.reporters)):
            self._report(index, report)

    def _report(self, index: int, report: ProcessReport) -> None:
        self._reported_at[index] = self.monotonic()
        self.options.reporters[index](report)
