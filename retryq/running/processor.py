"""Running due jobs: claim under the lock, run without it, write results back.

One loop serves ``retryq process`` (run what is due, then return) and ``retryq worker`` (keep
polling). Every store write both records the results that came in since the last one and claims
jobs for the free slots, so a busy run costs about one write per job. What happens between jobs
(recovering abandoned claims, pruning, reporting) is :mod:`retryq.running.housekeeping`'s; the
changes that wait for the next write are :mod:`retryq.running.pending`'s.
"""

from __future__ import annotations

__all__ = ["Change", "Processor"]

import contextlib
import logging
import signal
import threading
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from ..record import lifecycle
from ..record.backoff import Backoff, RetryState, exponential
from ..record.errors import RetryqError, StoreUnavailable
from ..record.models import Job, JobStatus, Outcome
from ..record.text import plural
from ..record.timeutil import format_utc
from ..settings.config import Config, WorkflowSettings
from ..stores import Claimant, ClaimRequest, JobFilter, Store
from . import platform
from .breaker import Breaker
from .claims import OWN_CLAIMS
from .commands import invocation
from .housekeeping import Housekeeping
from .notify import FailureHooks
from .options import ProcessorOptions
from .pending import Active as _Active
from .pending import Change
from .pending import Pending as _Pending
from .recurring import Recurring
from .runner import Supervisor, runnable_commands
from .summary import ProcessReport

log = logging.getLogger("retryq")
output_log = logging.getLogger("retryq.output")

#: How long a pid record may wait to be batched with the next write (seconds).
FLUSH_INTERVAL = 0.2
#: The worker's polling backoff, as job workers commonly poll: 2 s, × 1.5 after each idle poll, at most 30 s.
WORKER_POLL = exponential(initial=2.0, factor=1.5, max=30.0)
#: How long to wait before writing again when the store is out of reach (its own retries came first).
OUTAGE_WAIT = exponential(initial=2.0, factor=2.0, max=30.0)


class Processor:
    """Runs the due jobs of ``store`` with the workflows of ``config``, as ``options`` say.

    The options are one :class:`~retryq.running.options.ProcessorOptions`; keyword arguments build
    it (``Processor(store, config, concurrency=4)``), or change the one given.
    """

    def __init__(self, store: Store, config: Config, options: ProcessorOptions | None = None, **changes: Any) -> None:
        self.store = store
        self.config = config
        self.options = options = replace(options or ProcessorOptions(), **changes)
        self.concurrency = options.concurrency or config.concurrency
        self.only = options.workflows
        self.timeout = None if options.timeout is None else config.check_timeout_override(options.timeout, self.only)
        self.on_finished = options.on_finished
        self.clock, self.monotonic, self.sleep = options.clock, options.monotonic, options.sleep
        self.breaker = Breaker(store, config, clock=options.clock)  # upstream incidents and pauses
        self.housekeeping = Housekeeping(store, config, options, OWN_CLAIMS, breaker=self.breaker)
        self.claims = self.housekeeping.claims
        self.recurring = Recurring(store, config, clock=options.clock, monotonic=options.monotonic, only=self.only)
        self.owner = platform.current_owner()
        self.supervisor = options.supervisor or Supervisor(
            on_line=self._output, now=options.clock, monotonic=options.monotonic
        )
        self._active: dict[str, _Active] = {}
        self._stop_signal: int | None = None
        self._stop_event = threading.Event()
        self._commands: dict[str, tuple[str, ...]] = {}
        self._hooks = FailureHooks(config, queue=store.environment())
        self._batch: dict[str, _Pending] = {}  # written with the next claim: results, pid records, releases
        self._claimed: set[str] = set()  # a `process` run starts each job at most once

    # -- public ------------------------------------------------------------------------------

    def run(self, *, worker: bool = False, poll: Backoff = WORKER_POLL, handle_signals: bool = True) -> ProcessReport:
        """Run due jobs until none is left (or, as a worker, until stopped); return the report."""
        report = ProcessReport(started_at=self.clock())
        with platform.stop_signals(self._on_signal) if handle_signals else contextlib.nullcontext():
            self._start_up(report, worker=worker)
            for problem in report.invalid:
                log.warning("%s; left as it is", problem)
            try:
                self._loop(report, worker=worker, poll=poll)
            except BaseException:
                self._abandon()
                raise
        if self._stop_signal is None:
            self.housekeeping.prune(report)
        self.breaker.conclude(report)
        self._hooks.wait()
        report.stopped_by = self._stop_signal
        self.housekeeping.conclude(report)
        return report

    def request_stop(self, signum: int = signal.SIGTERM) -> None:
        """Stop claiming, terminate running workflows and give their jobs back (a second call kills)."""
        again = self._stop_signal is not None
        self._stop_signal = self._stop_signal or signum
        self._stop_event.set()
        self.supervisor.stop_all(immediately=again)

    # -- the loop ----------------------------------------------------------------------------

    def _start_up(self, report: ProcessReport, *, worker: bool, outages: int = 0) -> None:
        """What a run reads first; a worker waits for a store out of reach (`process` exits 75: cron runs it again)."""
        while not self._stop_event.is_set():
            try:
                report.invalid = self.store.invalid()
                self.housekeeping.recover(report)
                report.enqueued += len(self.recurring.enqueue())  # the schedules' due occurrences, run below
                self._resolve_commands(report)  # after both: what they left pending counts too
                return
            except StoreUnavailable as error:
                if not worker:
                    raise
                log.warning("%s; waiting for it", error)
                self._sleep(OUTAGE_WAIT(RetryState(outages := outages + 1)))

    def _loop(self, report: ProcessReport, *, worker: bool, poll: Backoff) -> None:
        idle_polls = outages = 0
        while True:
            try:
                if worker and not self._stop_event.is_set():
                    self.housekeeping.periodic(report)
                    report.enqueued += len(self.recurring.periodic())
                if self._write_and_claim(report, worker=worker):
                    idle_polls = 0
                outages = 0
            except StoreUnavailable as error:
                outages += 1
                if not self._active and not worker:
                    raise  # nothing runs, nothing to keep: exit 75, the next cron run tries again
                self._ride_out(error, OUTAGE_WAIT(RetryState(outages)))
                continue
            if self._active:
                self._collect(self._wait_time(poll))
                continue
            if self._batch:
                continue  # write what is left (jobs given back) before deciding
            if self._stop_event.is_set() or not worker:
                return
            idle_polls += 1
            self._sleep(poll(RetryState(idle_polls)))

    def _ride_out(self, error: StoreUnavailable, pause: float) -> None:
        """The store is out of reach: runs go on, their results wait until it is back (a job recovered
        meanwhile by another process, its lease over, has its late result discarded: never two runs at once)."""
        log.warning(
            "%s; %s still running, their results are written once it is back", error, plural(len(self._active), "run")
        )
        if self._active:
            self._collect(pause)
        else:
            self._sleep(pause)

    def _write_and_claim(self, report: ProcessReport, *, worker: bool) -> list[Job]:
        """One store write: the changes waiting, and claims for the free slots. Returns the jobs claimed."""
        batch = self._batch
        slots = {} if self._stop_event.is_set() else self._free_slots()
        if not batch and not slots:
            return []
        now = self.clock()
        request = self._claim_request(now, slots, worker=worker)
        with self.claims.claiming():  # what this process claims is noted before anyone looks (see .claims)
            claimed, results = self.store.claim(
                request,
                {job_id: pending.apply for job_id, pending in batch.items()},
                plan=self.breaker.plan(batch, request),
            )
            self.claims.hold(job.run_id for job in claimed if job.run_id is not None)
        self._batch = {}  # written (until then, a failure leaves them for _abandon to give back)
        self.claims.drop(pending.run_id for pending in batch.values() if pending.change is not Change.RECORD_PID)
        log.debug("wrote %s, claimed %s", plural(len(batch), "change"), plural(len(claimed), "job"))
        self._claimed.update(job.id for job in claimed)
        self._confirm(batch, results, report)
        self.breaker.written(batch, claimed, results, report)
        for job in claimed:
            assert job.run_id is not None
            # A signal came while we were claiming, or this workflow's command failed to start.
            if self._stop_event.is_set() or job.workflow not in self._commands:
                self._give_back(job.id, job.run_id)
            else:
                self._start(job, report)
        return claimed

    def _collect(self, wait: float | None) -> None:
        for run_id, result in self.supervisor.wait(wait):
            active = self._active.pop(run_id)
            if (leftovers := result.describe_leftovers()) is not None:
                log.warning("%s", leftovers, extra={"job": active.job})
            finish = lifecycle.finish(run_id, result, active.settings, due_window=self.config.due_window)
            # A result replaces a pid record not yet written: the pid no longer matters.
            self._batch[active.job.id] = _Pending(Change.FINISH, run_id, finish)

    def _wait_time(self, poll: Backoff) -> float | None:
        """How long to wait for a run to end: briefly when changes wait to be written; while slots are
        free, until it is time to look for newly due jobs; else until a run ends."""
        if self._batch:
            return FLUSH_INTERVAL
        return poll(RetryState(1)) if self._free_slots() else None

    def _give_back(self, job_id: str, run_id: str) -> None:
        self._batch[job_id] = _Pending(Change.RELEASE, run_id, lifecycle.release(run_id, self.clock()))

    def _abandon(self) -> None:
        """The loop failed (disk full, lock timeout…): stop every run and try to give its job back.

        Left alone, the workflows would be stopped by the watchdog only once this process exits, and
        their jobs would wait for a recovery that counts an attempt. If giving them back fails too,
        that recovery is still what happens, and the original error is the one reported.
        """
        self.supervisor.stop_all(immediately=True)
        deadline = self.monotonic() + 10
        while self._active and self.monotonic() < deadline:
            for run_id, _ in self.supervisor.wait(1.0):
                self._give_back(self._active.pop(run_id).job.id, run_id)
        if not self._batch:  # results not yet written are worth keeping too
            return
        try:
            self.store.update({job_id: pending.apply for job_id, pending in self._batch.items()})
            self.claims.drop(pending.run_id for pending in self._batch.values())
        except RetryqError as error:
            log.error(
                "could not give %s back: %s; the next process recovers them", plural(len(self._batch), "job"), error
            )

    def _sleep(self, seconds: float) -> None:
        if self.sleep is None:
            # A stop request ends the wait at once; so does a job scheduled due now, where the store can tell.
            self.store.wait_for_work(seconds, self._stop_event)
        else:
            self.sleep(seconds)

    # -- claims ------------------------------------------------------------------------------

    def _claim_request(self, now: datetime, slots: dict[str, int], *, worker: bool) -> ClaimRequest:
        """What is due: for `process`, up to ``due_window`` ahead and not already run by this process;
        a worker follows each job's own time, the same job again included. A claim's lease covers
        the run's timeout, kill grace and lease grace."""
        settings = {name: self.config.settings_of(name) for name in slots}
        claimant = Claimant(
            owner=self.owner,
            now=now,
            leases={
                name: self._timeout(each) + each.kill_grace + self.config.lease_grace for name, each in settings.items()
            },
            max_attempts={name: each.max_attempts for name, each in settings.items()},
        )
        caps = (
            {name: each.concurrency for name, each in settings.items() if each.concurrency}
            if self.config.global_concurrency
            else {}
        )
        limit = self.concurrency - len(self._active)
        max_wait = self.config.max_wait  # priorities never starve a job for longer
        if worker:
            return ClaimRequest(due_by=now, limit=limit, claimant=claimant, slots=slots, caps=caps, max_wait=max_wait)
        return ClaimRequest(
            due_by=now + self.config.due_window,
            limit=limit,
            claimant=claimant,
            slots=slots,
            exclude=frozenset(self._claimed),
            caps=caps,
            max_wait=max_wait,
        )

    def _free_slots(self) -> dict[str, int]:
        free_total = self.concurrency - len(self._active)
        if free_total <= 0:
            return {}
        slots = {}
        for name in self._commands:
            busy = sum(1 for active in self._active.values() if active.settings.name == name)
            cap = self.config.settings_of(name).concurrency or self.concurrency  # a workflow's own cap, if any
            free = min(cap, self.concurrency) - busy
            if free > 0:
                slots[name] = free
        return slots

    # -- runs --------------------------------------------------------------------------------

    def _start(self, job: Job, report: ProcessReport) -> None:
        assert job.run_id is not None
        settings = self.config.settings_of(job.workflow)
        argv, env = invocation(
            self._commands[job.workflow],
            job.key,
            job=job,
            run_id=job.run_id,
            queue=self.store.environment(),
            config_file=str(self.config.source) if self.config.source else None,
            env=settings.env,
        )
        log.info("start: %s", " ".join(argv), extra={"job": job})
        try:
            pid = self.supervisor.start(
                job.run_id,
                argv,
                env,
                timeout=self._timeout(settings).total_seconds(),
                kill_grace=settings.kill_grace.total_seconds(),
                label=job.label,
            )
        except OSError as error:
            message = f"workflow {job.workflow!r} could not start {argv[0]!r}: {error.strerror or error}"
            log.error("%s; job left pending", message, extra={"job": job})
            report.config_errors.append(message)
            self._commands.pop(job.workflow, None)  # do not try this command again in this run
            self._give_back(job.id, job.run_id)
            return
        # The result is judged with the timeout that was applied (--timeout shortens the config's).
        self._active[job.run_id] = _Active(job, replace(settings, timeout=self._timeout(settings)))
        self._batch[job.id] = _Pending(Change.RECORD_PID, job.run_id, lifecycle.record_pid(job.run_id, pid))

    def _confirm(self, batch: Mapping[str, _Pending], results: Mapping[str, Job | None], report: ProcessReport) -> None:
        """Report the results just written; a result for a job recovered meanwhile was not applied."""
        for job_id, pending in batch.items():
            job = results.get(job_id)
            if pending.change is Change.RELEASE and pending.held:
                report.released += 1
            elif pending.change is Change.FINISH and job is not None:
                if not pending.held:
                    report.lost_claims += 1
                    log.warning("result discarded: another process recovered this job meanwhile", extra={"job": job})
                elif job.history and job.history[-1].outcome is Outcome.STOPPED:
                    report.released += 1
                    log.info("stopped; job given back without counting the attempt", extra={"job": job})
                else:
                    self._announce(job, job.history[-1].outcome, report)

    def _announce(self, job: Job, outcome: Outcome, report: ProcessReport) -> None:
        attempt = job.history[-1].attempt
        shown = job.model_copy(update={"attempt": attempt})
        if job.status is JobStatus.COMPLETED:
            report.succeeded += 1
            log.info("succeeded", extra={"job": shown})
        elif job.status is JobStatus.FAILED:
            report.failed += 1
            log.warning(
                "%s; failed after %s", _first_line(job.last_error), plural(attempt, "attempt"), extra={"job": shown}
            )
            self._hooks.notify(job)
        elif not self.breaker.announce(job, shown, report):  # given back for an incident, or waiting for one
            report.retrying += 1
            log.info(
                "%s; attempt #%d at %s",
                _first_line(job.last_error),
                job.attempt,
                format_utc(job.execute_at),
                extra={"job": shown},
            )
        report.finished_jobs.append((job, outcome))
        if self.on_finished is not None:
            self.on_finished(job, outcome)

    # -- configuration -----------------------------------------------------------------------

    def _resolve_commands(self, report: ProcessReport) -> None:
        pending = self.store.load(JobFilter.of(status=JobStatus.PENDING))
        runnable = runnable_commands(self.config, self.only, pending)
        self._commands = runnable.commands
        report.config_errors.extend(runnable.config_errors)
        report.unknown_workflows.update(runnable.unknown_workflows)

    def _timeout(self, settings: WorkflowSettings) -> timedelta:
        return self.timeout if self.timeout is not None else settings.timeout

    def _output(self, label: str, line: str) -> None:
        output_log.info("| %s", line, extra={"label": label})

    def _on_signal(self, signum: int) -> None:
        log.warning("received %s: stopping", signal.Signals(signum).name)
        self.request_stop(signum)


def _first_line(text: str | None) -> str:
    return (text or "").split("\n", 1)[0]
