"""The queue as a Python fetcher uses it: ``RetryQueue().schedule("balthazar", "2025-12-19", 60)``."""

from __future__ import annotations

__all__ = ["FetchReport", "RetryQueue", "ScheduleResult"]

import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from . import lifecycle
from .config import Config, load_config
from .errors import ConfigError, InvalidInput, JobNotFound, JobStateError
from .jsonstore import JsonFileStore
from .models import Job, JobStatus, validate_client_id, validate_date
from .store import PruneRule, Store
from .timeutil import format_duration, parse_delay, to_utc, utcnow

if TYPE_CHECKING:
    from .inconsistency import Assessment
    from .processor import Processor, ProcessReport
    from .runner import RunResult

DEFAULT_DELAY_MINUTES = 60
#: A hundred years: finished jobs kept longer than that are kept for ever in practice.
MAX_KEEP_DAYS = 36_500


@dataclass(frozen=True)
class ScheduleResult:
    """What :meth:`RetryQueue.schedule` did.

    ``created``: a new job; ``exists``: a pending job of the same workflow, client and date was
    already there (nothing added); ``follow_up``: that job is running right now, and its next
    attempt was requested for when the run ends.
    """

    job: Job
    outcome: Literal["created", "exists", "follow_up"]

    @property
    def created(self) -> bool:
        return self.outcome == "created"


@dataclass(frozen=True)
class FetchReport:
    """What :meth:`RetryQueue.report_fetch` found and did: the assessment, and the retry if one was needed."""

    assessment: Assessment
    retry: ScheduleResult | None

    @property
    def delay_minutes(self) -> int | None:
        if self.retry is None:
            return None
        job = self.retry.job
        return job.follow_up_minutes if self.retry.outcome == "follow_up" else job.delay_minutes


class RetryQueue:
    """A deferred retry queue over a :class:`~retryq.store.Store`.

    With no arguments it finds its configuration and queue file as the ``retryq`` command
    does (``retryq.toml``, ``RETRYQ_*`` variables, ``.retry-queue.json``). Pass ``config=Config()``
    to ignore the environment, and a path or a store to choose where jobs live.
    """

    def __init__(self, store: Store | str | os.PathLike[str] | None = None, *, config: Config | None = None) -> None:
        self.config = config if config is not None else load_config()
        if store is None or isinstance(store, (str, os.PathLike)):
            path = store if store is not None else self.config.queue_file
            store = JsonFileStore(
                path, lock_timeout=self.config.lock_timeout.total_seconds(), archive=self.config.archive
            )
        self.store: Store = store

    def __repr__(self) -> str:
        return f"RetryQueue({self.store!r})"

    # -- adding ------------------------------------------------------------------------------

    def schedule(
        self,
        client: str,
        date: str,
        delay: int | str | timedelta | None = None,
        *,
        at: datetime | None = None,
        workflow: str | None = None,
        max_attempts: int | None = None,
        now: datetime | None = None,
    ) -> ScheduleResult:
        """Ask for the workflow to run for ``client`` and ``date`` in ``delay`` minutes (or ``at`` a time).

        ``delay`` is also the wait between attempts under the default ``fixed`` backoff. If a
        pending job of the same workflow, client and date exists, nothing is added.
        """
        now = to_utc(now or utcnow())
        settings = self.config.scheduling_workflow(workflow)
        validate_client_id(client)
        validate_date(date)
        minutes = parse_delay(DEFAULT_DELAY_MINUTES if delay is None else delay)
        if max_attempts is not None and (isinstance(max_attempts, bool) or not 1 <= max_attempts <= 100):
            raise InvalidInput(f"max attempts must be between 1 and 100, not {max_attempts!r}")
        if at is not None and at.tzinfo is None:
            raise InvalidInput("`at` must carry a time zone")
        job = lifecycle.new_job(
            client,
            date,
            delay_minutes=minutes,
            now=now,
            workflow=settings.name,
            max_attempts=max_attempts or settings.max_attempts,
            execute_at=at,
        )
        follow_up = minutes if at is None else max(0, int((to_utc(at) - now).total_seconds() // 60))
        stored, created = self.store.add(job, lifecycle.on_duplicate(follow_up))
        if created:
            return ScheduleResult(stored, "created")
        return ScheduleResult(stored, "follow_up" if stored.status is JobStatus.RUNNING else "exists")

    def report_fetch(
        self,
        client: str,
        date: str,
        *,
        total: int,
        fetched: int,
        delay: int | str | timedelta | None = None,
        workflow: str | None = None,
        now: datetime | None = None,
    ) -> FetchReport:
        """Judge a fetch (``fetched`` of ``total``) and schedule a retry whenever something is missing.

        The delay defaults to ``[report] delay`` of the config (60 minutes). Called from inside a
        retry run, the retry becomes that run's follow-up, so the chain goes on without a duplicate.
        """
        from .inconsistency import assess

        validate_client_id(client)
        validate_date(date)
        assessment = assess(total, fetched, self.config.thresholds)
        retry = None
        if assessment.needs_retry:
            wait = self.config.thresholds.delay if delay is None else delay
            retry = self.schedule(client, date, wait, workflow=workflow, now=now)
        return FetchReport(assessment, retry)

    # -- reading -----------------------------------------------------------------------------

    def jobs(
        self,
        *,
        status: JobStatus | str | Iterable[JobStatus | str] | None = None,
        workflow: str | None = None,
        client: str | None = None,
        date: str | None = None,
    ) -> list[Job]:
        """The jobs in queue order, optionally filtered."""
        wanted = _statuses(status)
        return [
            job
            for job in self.store.load(wanted)
            if (workflow is None or job.workflow == workflow)
            and (client is None or job.client_id == client)
            and (date is None or job.date == date)
        ]

    def get(self, ident: str) -> Job:
        """The job whose id is ``ident`` or starts with it (a unique prefix, as git takes them)."""
        return _pick_by_prefix(self.store.load(), ident)

    def due(self, now: datetime | None = None) -> list[Job]:
        """Pending jobs whose time has come, oldest first: what ``process`` would run."""
        now = to_utc(now or utcnow())
        due = [job for job in self.store.load({JobStatus.PENDING}) if job.execute_at <= now]
        return sorted(due, key=lambda job: job.execute_at)

    # -- changing ----------------------------------------------------------------------------

    def cancel(
        self,
        ident: str | None = None,
        *,
        client: str | None = None,
        date: str | None = None,
        workflow: str | None = None,
        now: datetime | None = None,
    ) -> list[Job]:
        """Cancel a pending job, by id (or unique prefix) or by client and date; it is kept as ``cancelled``.

        A running job is not cancelled under its runner's feet: :class:`JobStateError` says so.
        """
        now = to_utc(now or utcnow())
        targets = self._select(ident, client=client, date=date, workflow=workflow, statuses={JobStatus.PENDING})
        results = self.store.update({job.id: lifecycle.cancel(now) for job in targets})
        cancelled = [job for job in results.values() if job is not None and job.status is JobStatus.CANCELLED]
        if len(cancelled) < len(targets):
            raise JobStateError("the job changed while it was being cancelled (it has just started?); look again")
        return cancelled

    def requeue(
        self,
        ident: str,
        *,
        delay: int | str | timedelta = 0,
        max_attempts: int | None = None,
        now: datetime | None = None,
    ) -> Job:
        """Put a failed or cancelled job back to pending with fresh attempts, due after ``delay`` minutes."""
        now = to_utc(now or utcnow())
        job = self.get(ident)
        if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
            raise JobStateError(f"job {job.id} is {job.status.value}; only failed or cancelled jobs can be requeued")
        if max_attempts is not None and not 1 <= max_attempts <= 100:
            raise InvalidInput(f"max attempts must be between 1 and 100, not {max_attempts!r}")
        # One open job per key: requeueing beside a newer pending chain would run the same fetch twice.
        # (Checked on a snapshot: a schedule landing in between would at worst cause one extra run.)
        rival = [
            other
            for other in self.jobs(workflow=job.workflow, client=job.client_id, date=job.date)
            if other.status.is_open
        ]
        if rival:
            raise JobStateError(f"job {rival[0].id} is already {rival[0].status.value} for {job.client_id} {job.date}")
        execute_at = now + timedelta(minutes=parse_delay(delay))
        result = self.store.update({job.id: lifecycle.requeue(now, execute_at, max_attempts)}).get(job.id)
        if result is None or result.status is not JobStatus.PENDING:
            raise JobStateError(f"job {job.id} changed while it was being requeued; look again")
        return result

    def prune(self, *, now: datetime | None = None, keep_days: int | None = None, dry_run: bool = False) -> list[Job]:
        """Remove completed, failed and cancelled jobs that ended more than ``keep_days`` ago.

        Without ``keep_days``, each workflow's retention applies (``keep_days`` in the config,
        per status). Removed jobs go to the archive first when archiving is on.
        """
        now = to_utc(now or utcnow())
        if keep_days is not None and not 0 <= keep_days <= MAX_KEEP_DAYS:
            raise InvalidInput(f"keep days must be between 0 and {MAX_KEEP_DAYS}, not {keep_days}")

        def cutoffs(days: Mapping[JobStatus, int]) -> dict[JobStatus, datetime]:
            return {
                status: now - timedelta(days=keep_days if keep_days is not None else n) for status, n in days.items()
            }

        rule = PruneRule(
            cutoffs=cutoffs(self.config.workflow().keep_days),  # also for workflows no longer configured
            by_workflow={name: cutoffs(settings.keep_days) for name, settings in self.config.workflows.items()},
        )
        return self.store.prune(rule, dry_run=dry_run)

    # -- running -----------------------------------------------------------------------------

    def run_now(
        self,
        client: str,
        date: str,
        *,
        workflow: str | None = None,
        timeout: timedelta | None = None,
        capture_output: bool = False,
        on_line: Callable[[str, str], None] | None = None,
        handle_signals: bool = True,
    ) -> RunResult:
        """Run the workflow for ``client`` and ``date`` now, outside the queue, and wait for it.

        The output goes straight to this process's stdout and stderr unless ``capture_output``.
        SIGINT or SIGTERM stop the workflow's process group (the result says ``stopped``).
        """
        from . import _proc
        from .runner import Supervisor, invocation, resolve_command

        settings = self.config.workflow(workflow)
        validate_client_id(client)
        validate_date(date)
        if not settings.command:
            raise ConfigError(f"workflow {settings.name!r} has no command configured")
        resolve_command(settings.command[0], settings.command_origin, settings.path)
        if timeout is not None and timeout <= timedelta(0):
            raise InvalidInput(f"timeout must be more than 0 seconds, not {format_duration(timeout)}")
        run_id = uuid.uuid4().hex
        argv, env = invocation(
            settings.command,
            client=client,
            date=date,
            attempt=1,
            max_attempts=settings.max_attempts,
            job_id="",
            workflow=settings.name,
            run_id=run_id,
            queue_file=self.store.location,
            config_file=str(self.config.source) if self.config.source else None,
            env=settings.env,
        )
        supervisor = Supervisor(on_line=on_line)
        limit = (settings.timeout if timeout is None else timeout).total_seconds()
        received: list[int] = []

        def on_signal(signum: int) -> None:
            received.append(signum)
            supervisor.stop_all(immediately=len(received) > 1)

        stop = _proc.stop_signals(on_signal) if handle_signals else nullcontext()
        with stop:
            try:
                supervisor.start(
                    run_id,
                    argv,
                    env,
                    timeout=limit,
                    kill_grace=settings.kill_grace.total_seconds(),
                    capture=capture_output,
                )
            except OSError as error:
                raise ConfigError(f"workflow command {argv[0]!r} could not start: {error.strerror or error}") from None
            while True:
                for _, result in supervisor.wait():
                    return replace(result, stop_signal=received[0]) if received else result

    def processor(self, **options: Any) -> Processor:
        """A :class:`~retryq.processor.Processor` over this queue (options as its constructor takes)."""
        from .processor import Processor

        return Processor(self, **options)

    def process(self, **options: Any) -> ProcessReport:
        """Run every due job once, as ``retryq process`` does, and return what happened."""
        return self.processor(**options).run()

    def _select(
        self,
        ident: str | None,
        *,
        client: str | None,
        date: str | None,
        workflow: str | None,
        statuses: set[JobStatus],
    ) -> list[Job]:
        """The jobs an id or a client and date designate, all in one of ``statuses``."""
        if (ident is None) == (client is None or date is None):
            raise InvalidInput("give a job id, or a client and a date")
        if ident is not None:
            jobs = [self.get(ident)]
        else:
            assert client is not None
            assert date is not None
            validate_client_id(client)
            validate_date(date)
            jobs = [job for job in self.jobs(client=client, date=date, workflow=workflow) if job.status.is_open]
            if not jobs:
                raise JobNotFound(f"no pending job for {client} {date}")
        for job in jobs:
            if job.status not in statuses:
                wanted = " or ".join(sorted(status.value for status in statuses))
                raise JobStateError(f"job {job.id} is {job.status.value}, not {wanted}")
        return jobs


def _statuses(status: JobStatus | str | Iterable[JobStatus | str] | None) -> set[JobStatus] | None:
    if status is None:
        return None
    items = [status] if isinstance(status, (str, JobStatus)) else list(status)
    try:
        return {JobStatus(item) for item in items}
    except ValueError:
        known = ", ".join(s.value for s in JobStatus)
        raise InvalidInput(f"unknown status in {items!r} (known: {known})") from None


def _pick_by_prefix(jobs: list[Job], ident: str) -> Job:
    ident = ident.strip()
    if not ident:
        raise InvalidInput("a job id (or a unique prefix of one) is required")
    exact = [job for job in jobs if job.id == ident]
    if exact:
        return exact[0]
    matches = [job for job in jobs if job.id.startswith(ident)]
    if not matches:
        raise JobNotFound(f"no job with id {ident!r}")
    if len(matches) > 1:
        shown = ", ".join(job.id for job in matches[:5])
        raise JobNotFound(f"job id prefix {ident!r} is ambiguous: {shown}{'…' if len(matches) > 5 else ''}")
    return matches[0]
