"""Running due jobs: claim under the lock, run without it, write results back.

One loop serves ``retryq process`` (run what is due, then return) and ``retryq worker``
(keep polling). Every store write both records the results that came in since the last one
and claims jobs for the free slots, so a busy run costs about one write per job.
"""

from __future__ import annotations

__all__ = ["ProcessReport", "Processor"]

import contextlib
import logging
import math
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from . import _proc, lifecycle
from .backoff import Backoff, RetryState, exponential
from .config import WorkflowSettings
from .errors import ConfigError, InvalidInput, RetryqError
from .models import Job, JobStatus, Outcome
from .notify import run_failure_hook
from .runner import Supervisor, job_invocation, resolve_command
from .stores import ClaimRequest, InvalidJob, Mutation
from .timeutil import format_duration, format_utc, utcnow

if TYPE_CHECKING:
    from .queue import RetryQueue

log = logging.getLogger("retryq")
output_log = logging.getLogger("retryq.output")

#: How long a pid record may wait to be batched with the next write (seconds).
FLUSH_INTERVAL = 0.2
#: A worker looks for runs abandoned by other processes every this many idle polls.
RECOVER_EVERY = 10
#: A worker prunes finished jobs at most this often while idle (seconds).
PRUNE_EVERY = 600.0
#: A worker refreshes its metrics file at most this often while idle (seconds).
METRICS_EVERY = 30.0
#: The worker's polling backoff, as job workers commonly poll: 2 s, × 1.5 after each idle poll, at most 30 s.
WORKER_POLL = exponential(initial=2.0, factor=1.5, max=30.0)


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
    unknown_workflows: dict[str, int] = field(default_factory=dict)
    config_errors: list[str] = field(default_factory=list)
    stopped_by: int | None = None  # the signal that stopped the run
    finished_jobs: list[tuple[Job, Outcome]] = field(default_factory=list)
    pending: int = 0  # jobs left pending when the run ended
    next_due: datetime | None = None  # the soonest of them
    invalid: list[InvalidJob] = field(default_factory=list)  # records that are not valid jobs, left as they are

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


@dataclass
class _Active:
    job: Job
    settings: WorkflowSettings


class Processor:
    """Runs due jobs of a :class:`~retryq.queue.RetryQueue`.

    ``concurrency`` caps runs at once (a workflow may also cap its own); ``timeout``
    overrides every workflow's timeout. ``clock``, ``monotonic`` and ``sleep`` (the worker's idle
    wait; by default an interruptible wait) are injectable so that tests never wait for real time.
    """

    def __init__(
        self,
        queue: RetryQueue,
        *,
        concurrency: int | None = None,
        timeout: timedelta | None = None,
        workflows: list[str] | None = None,
        keep_days: int | None = None,
        prune: bool = True,
        on_finished: Callable[[Job, Outcome], None] | None = None,
        metrics_file: str | os.PathLike[str] | None = None,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self.queue = queue
        self.store = queue.store
        self.config = queue.config
        self.concurrency = concurrency or self.config.concurrency
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if timeout is not None and timeout <= timedelta(0):
            raise InvalidInput(f"timeout must be more than 0 seconds, not {format_duration(timeout)}")
        self.only = set(workflows) if workflows else None
        if timeout is not None:
            for name, settings in self.config.workflows.items():
                # Other processes judge a run's lease by the configured timeout (a lease is never
                # trusted beyond it): a longer run would look abandoned to them and run twice.
                if settings.command and (self.only is None or name in self.only) and timeout > settings.timeout:
                    raise InvalidInput(
                        f"--timeout {format_duration(timeout)} is longer than the timeout of workflow {name!r} "
                        f"({format_duration(settings.timeout)}): other retryq processes would take the run for "
                        "abandoned; raise `timeout` in the configuration instead"
                    )
        self.timeout = timeout
        self.keep_days = keep_days
        self.prune = prune
        self.on_finished = on_finished
        self.metrics_file = metrics_file if metrics_file is not None else self.config.metrics_file
        self._metrics_written = -math.inf
        self._pruned_at = -math.inf
        self.clock = clock
        self.monotonic = monotonic
        self.sleep = sleep
        self.owner = _proc.current_owner()
        self._supervisor = Supervisor(on_line=self._output, now=clock, monotonic=monotonic)
        self._active: dict[str, _Active] = {}
        self._stop_signal: int | None = None
        self._stop_event = threading.Event()
        self._commands: dict[str, tuple[str, ...]] = {}
        self._hooks: list[threading.Thread] = []
        self._pending = _Changes()  # written with the next claim: results, pid records, releases
        self._claimed: set[str] = set()  # a `process` run starts each job at most once

    # -- public ------------------------------------------------------------------------------

    def run(self, *, worker: bool = False, poll: Backoff = WORKER_POLL, handle_signals: bool = True) -> ProcessReport:
        """Run due jobs until none is left (or, as a worker, until stopped); return the report."""
        report = ProcessReport(started_at=self.clock())
        with _proc.stop_signals(self._on_signal) if handle_signals else contextlib.nullcontext():
            report.invalid = self.store.invalid()
            for problem in report.invalid:
                log.warning("%s; left as it is", problem)
            self._resolve_commands(report)
            self._recover(report)
            try:
                self._loop(report, worker=worker, poll=poll)
            except BaseException:
                self._abandon()
                raise
        if self.prune and self._stop_signal is None:
            self._prune(report)
        waiting = [job.execute_at for job in self.store.load({JobStatus.PENDING})]
        report.pending, report.next_due = len(waiting), min(waiting, default=None)
        for hook in self._hooks:
            # Each hook bounds itself by on_failure_timeout; this only waits for them to end.
            hook.join()
        report.finished_at = self.clock()
        report.stopped_by = self._stop_signal
        self._write_metrics(report)
        return report

    def request_stop(self, signum: int = signal.SIGTERM) -> None:
        """Stop claiming, terminate running workflows and give their jobs back (a second call kills)."""
        again = self._stop_signal is not None
        self._stop_signal = self._stop_signal or signum
        self._stop_event.set()
        self._supervisor.stop_all(immediately=again)

    # -- the loop ----------------------------------------------------------------------------

    def _loop(self, report: ProcessReport, *, worker: bool, poll: Backoff) -> None:
        idle_polls = 0
        while True:
            pending = self._pending
            slots = self._free_slots() if not self._stop_event.is_set() else {}
            claimed: list[Job] = []
            if pending or slots:
                now = self.clock()
                claimed, results = self.store.claim(
                    self._claim_request(now, slots, worker=worker), self._claimer(now), pending.mutations()
                )
                self._claimed.update(job.id for job in claimed)
                log.debug("wrote %d change(s), claimed %d job(s)", len(pending.kinds), len(claimed))
                self._confirm(pending, results, report)
                pending = self._pending = _Changes()
                for job in claimed:
                    # A signal came while we were claiming, or this workflow's command failed to start.
                    if self._stop_event.is_set() or job.workflow not in self._commands:
                        assert job.run_id is not None
                        pending.add(job.id, "release", lifecycle.release(job.run_id, self.clock()))
                    else:
                        self._start(job, pending, report)
            if claimed:
                idle_polls = 0
            if not self._active:
                if pending:
                    continue  # write what is left (releases) before deciding
                if self._stop_event.is_set() or not worker:
                    return
                idle_polls += 1
                if idle_polls % RECOVER_EVERY == 0:
                    self._recover(report)
                if self.prune and self.monotonic() - self._pruned_at >= PRUNE_EVERY:
                    self._prune(report)
                if self.monotonic() - self._metrics_written >= METRICS_EVERY:
                    self._write_metrics(report)
                self._sleep(poll(RetryState(idle_polls)))
                continue
            # With free slots, look again for due jobs now and then; otherwise wait for a run to end.
            wait = FLUSH_INTERVAL if pending else (poll(RetryState(1)) if self._free_slots() else None)
            for key, result in self._supervisor.wait(wait):
                active = self._active.pop(key)
                if (leftovers := result.describe_leftovers()) is not None:
                    log.warning("%s", leftovers, extra={"job": active.job})
                pending.add(
                    active.job.id,
                    "finish",
                    lifecycle.finish(key, result, active.settings, due_window=self.config.due_window),
                )

    def _abandon(self) -> None:
        """The loop failed (disk full, lock timeout…): stop every run and try to give its job back.

        Workflows run in sessions of their own and would outlive this process; their jobs would
        then wait for a recovery that counts an attempt. If giving them back fails too, that
        recovery is still what happens, and the original error is the one reported.
        """
        changes = self._pending.mutations()  # results not yet written are worth keeping too
        self._supervisor.stop_all(immediately=True)
        deadline = self.monotonic() + 10
        while self._active and self.monotonic() < deadline:
            for key, _ in self._supervisor.wait(1.0):
                active = self._active.pop(key)
                changes[active.job.id] = lifecycle.release(key, self.clock())
        if not changes:
            return
        try:
            self.store.update(changes)
        except RetryqError as error:
            log.error("could not give %d job(s) back: %s; the next process recovers them", len(changes), error)

    def _prune(self, report: ProcessReport) -> None:
        self._pruned_at = self.monotonic()
        report.pruned += len(self.queue.prune(now=self.clock(), keep_days=self.keep_days))

    def _sleep(self, seconds: float) -> None:
        if self.sleep is None:
            self._stop_event.wait(seconds)  # a stop request ends the wait at once
        else:
            self.sleep(seconds)

    def _claim_request(self, now: datetime, slots: dict[str, int], *, worker: bool) -> ClaimRequest:
        """What is due: for `process`, up to ``due_window`` ahead and not already run by this process;
        a worker follows each job's own time, the same job again included."""
        limit = self.concurrency - len(self._active)
        if worker:
            return ClaimRequest(due_by=now, limit=limit, slots=slots)
        return ClaimRequest(
            due_by=now + self.config.due_window, limit=limit, slots=slots, exclude=frozenset(self._claimed)
        )

    def _claimer(self, now: datetime) -> Mutation:
        """Mark a job claimed by this process; the lease covers its timeout, kill grace and lease grace."""

        def mark(job: Job) -> Job:
            settings = self._settings(job.workflow)
            lease = self._timeout(settings) + settings.kill_grace + self.config.lease_grace
            return lifecycle.claim(
                owner=self.owner, run_id=uuid.uuid4().hex, now=now, lease=lease, max_attempts=settings.max_attempts
            )(job)

        return mark

    def _free_slots(self) -> dict[str, int]:
        free_total = self.concurrency - len(self._active)
        if free_total <= 0:
            return {}
        slots = {}
        for name in self._commands:
            busy = sum(1 for active in self._active.values() if active.settings.name == name)
            cap = self._settings(name).concurrency or self.concurrency  # a workflow's own cap, if it has one
            free = min(cap, self.concurrency) - busy
            if free > 0:
                slots[name] = free
        return slots

    def _start(self, job: Job, pending: _Changes, report: ProcessReport) -> None:
        assert job.run_id is not None
        settings = self._settings(job.workflow)
        argv, env = job_invocation(
            self._commands[job.workflow],
            job,
            run_id=job.run_id,
            queue_file=self.store.location,
            config_file=str(self.config.source) if self.config.source else None,
            env=settings.env,
        )
        log.info("start: %s", " ".join(argv), extra={"job": job})
        try:
            pid = self._supervisor.start(
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
            pending.add(job.id, "release", lifecycle.release(job.run_id, self.clock()))
            return
        # The result is judged with the timeout that was applied (--timeout overrides the config's).
        self._active[job.run_id] = _Active(job, replace(settings, timeout=self._timeout(settings)))
        pending.add(job.id, "pid", lifecycle.record_pid(job.run_id, pid))

    def _confirm(self, pending: _Changes, results: Mapping[str, Job | None], report: ProcessReport) -> None:
        """Report the results just written; a result for a job recovered meanwhile was not applied."""
        for job_id, kind in pending.kinds.items():
            applied = job_id in pending.applied
            job = results.get(job_id)
            if kind == "release" and applied:
                report.released += 1
            elif kind == "finish" and job is not None:
                if not applied:
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
            log.warning("%s; failed after %d attempt(s)", _first_line(job.last_error), attempt, extra={"job": shown})
            self._notify(job)
        else:
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

    def _notify(self, job: Job) -> None:
        """Run the workflow's on_failure command beside the loop, which must not wait for it."""
        settings = self._settings(job.workflow)
        command = settings.on_failure
        if not command:
            return
        hook = threading.Thread(
            target=run_failure_hook,
            args=(job, command),
            kwargs={
                "timeout": self.config.on_failure_timeout,
                "queue_file": self.store.location,
                "config_file": str(self.config.source) if self.config.source else None,
                "env": settings.env,
            },
            name=f"retryq-hook-{job.id}",
        )
        hook.start()
        self._hooks.append(hook)

    def _write_metrics(self, report: ProcessReport) -> None:
        """Refresh the Prometheus file, if one is configured; a failure is logged, never fatal."""
        if self.metrics_file is None:
            return
        from .metrics import render_metrics, write_metrics

        self._metrics_written = self.monotonic()
        try:
            text = render_metrics(
                self.store.load(),
                self.store.load_archive(),
                now=self.clock(),
                report=report,
                workflows=self.config.workflows,
            )
            write_metrics(self.metrics_file, text)
        except RetryqError as error:
            log.error("metrics not written: %s", error)

    # -- recovery ----------------------------------------------------------------------------

    def _recover(self, report: ProcessReport) -> None:
        """Close the attempts of running jobs whose runner is gone (see :mod:`retryq.housekeeping`)."""
        from .housekeeping import recover_abandoned

        report.recovered += recover_abandoned(self.store, self.config, now=self.clock())

    # -- helpers -----------------------------------------------------------------------------

    def _resolve_commands(self, report: ProcessReport) -> None:
        configured = {name: s for name, s in self.config.workflows.items() if s.command}
        if not configured:
            raise ConfigError(
                "no workflow command configured: set [workflow] command in retryq.toml, or RETRYQ_COMMAND"
            )
        for name, settings in configured.items():
            if self.only is not None and name not in self.only:
                continue
            assert settings.command is not None
            try:
                resolve_command(settings.command[0], settings.command_origin, settings.path)
            except ConfigError as error:
                report.config_errors.append(str(error))
                log.error("%s; its jobs stay pending", error)
                continue
            self._commands[name] = settings.command
        commandless: dict[str, int] = {}
        for job in self.store.load(statuses={JobStatus.PENDING}):
            if job.workflow not in self.config.workflows:
                report.unknown_workflows[job.workflow] = report.unknown_workflows.get(job.workflow, 0) + 1
            elif job.workflow not in configured and (self.only is None or job.workflow in self.only):
                commandless[job.workflow] = commandless.get(job.workflow, 0) + 1
        for name, count in sorted(report.unknown_workflows.items()):
            log.warning("%d pending job(s) of workflow %r, which is not configured; left pending", count, name)
        for name, count in sorted(commandless.items()):
            # Configured but with nothing to run: a configuration error, not a retired workflow.
            message = f"{count} pending job(s) of workflow {name!r}, which has no command configured; left pending"
            report.config_errors.append(message)
            log.error("%s", message)

    def _settings(self, name: str) -> WorkflowSettings:
        return self.config.settings_of(name)

    def _timeout(self, settings: WorkflowSettings) -> timedelta:
        return self.timeout if self.timeout is not None else settings.timeout

    def _output(self, label: str, line: str) -> None:
        output_log.info("| %s", line, extra={"label": label})

    def _on_signal(self, signum: int) -> None:
        log.warning("received %s: stopping", signal.Signals(signum).name)
        self.request_stop(signum)


def _first_line(text: str | None) -> str:
    return (text or "").split("\n", 1)[0]


class _Changes:
    """Mutations waiting for the next write, what each is for, and which of them took effect."""

    def __init__(self) -> None:
        self.kinds: dict[str, str] = {}
        self.applied: set[str] = set()
        self._mutations: dict[str, Mutation] = {}

    def __bool__(self) -> bool:
        return bool(self._mutations)

    def add(self, job_id: str, kind: str, mutation: Mutation) -> None:
        # A finish replaces a pid record not yet written: the pid no longer matters.
        self.kinds[job_id] = kind
        self._mutations[job_id] = mutation

    def mutations(self) -> dict[str, Mutation]:
        def tracked(job_id: str, mutation: Mutation) -> Mutation:
            def apply(job: Job) -> Job | None:
                new = mutation(job)
                if new is not job:
                    self.applied.add(job_id)
                return new

            return apply

        return {job_id: tracked(job_id, mutation) for job_id, mutation in self._mutations.items()}
