"""The queue as a Python fetcher uses it: ``RetryQueue().schedule("balthazar", "2025-12-19", 60)``.

A little long because it is the library's whole surface, one method per verb of the command line,
each a thin call into the wings below.
"""

from __future__ import annotations

__all__ = ["BulkResult", "FetchReport", "RetryQueue", "ScheduleResult", "Skipped"]

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from .record import lifecycle, rules
from .record.errors import InvalidInput, JobNotFound, JobStateError, OpenJobExists
from .record.models import OPEN_STATUSES, Job, JobKey, JobStatus, validate_max_attempts, validate_priority
from .record.text import plural
from .record.timeutil import format_utc, parse_delay, to_utc, utcnow, wait_in_words
from .settings.config import Config, load_config
from .stores import JobFilter, Store, open_store

if TYPE_CHECKING:
    from .record.breakerstate import Incident, Pause
    from .record.inconsistency import Assessment, Decision
    from .running.recurring import ScheduleStatus

log = logging.getLogger("retryq")

DEFAULT_DELAY_MINUTES = 60


@dataclass(frozen=True)
class ScheduleResult:
    """What :meth:`RetryQueue.schedule` did.

    ``created``: a new job; ``exists``: a pending job of the same workflow, client and date was
    already there (nothing added); ``follow_up``: that job is running right now, and its next
    attempt was requested for when the run ends. ``next_due`` is when the job runs next: its
    ``executeAt``, or for a follow-up the earliest time of the next attempt (None when the
    running attempt is the last: the job will end failed). ``reason``: why that delay, when a verdict chose it.
    """

    job: Job
    outcome: Literal["created", "exists", "follow_up"]
    next_due: datetime | None = None
    reason: str = ""

    @property
    def created(self) -> bool:
        return self.outcome == "created"

    def describe(self, limit: int) -> str:
        """One line saying what was done, for logs (``limit``: the job's number of attempts)."""
        job = self.job
        if self.outcome == "created":
            why = f" ({self.reason})" if self.reason else ""
            when = wait_in_words(job.execute_at - job.scheduled_at, job.delay_minutes)
            return (
                f"retry scheduled {when}{why}: job {job.id}, due {format_utc(job.execute_at)}, "
                f"attempt {job.attempt} of {limit}"
            )
        if self.outcome == "exists":
            return f"a retry is already pending: job {job.id}, due {format_utc(job.execute_at)}; nothing added"
        if self.next_due is None:
            return f"running its last attempt ({job.attempt} of {limit}): job {job.id} will end failed"
        why = f", {self.reason}" if self.reason else ""
        return (
            f"running now: attempt {job.attempt + 1} of {limit} will be due {format_utc(self.next_due)} at the "
            f"earliest ({plural(job.follow_up_minutes or 0, 'minute')} after this one{why}; job {job.id})"
        )


@dataclass(frozen=True)
class FetchReport:
    """What :meth:`RetryQueue.report_fetch` found and did: the assessment, the retry and the delay chosen for it."""

    assessment: Assessment
    retry: ScheduleResult | None
    decision: Decision | None = None  # None when nothing is missing; a retry already pending keeps its own time

    @property
    def delay_minutes(self) -> int | None:
        if self.retry is None:
            return None
        job = self.retry.job
        return job.follow_up_minutes if self.retry.outcome == "follow_up" else job.delay_minutes

    @property
    def next_due(self) -> datetime | None:
        """When the retry comes (None without one, or when the running attempt was the last)."""
        return None if self.retry is None else self.retry.next_due


@dataclass(frozen=True)
class Skipped:
    """A job a bulk operation left alone, and why."""

    job: Job
    reason: str


@dataclass(frozen=True)
class BulkResult:
    """What a bulk ``cancel`` or ``requeue`` did (or, in a dry run, would do)."""

    done: list[Job]
    skipped: list[Skipped]
    dry_run: bool = False


class RetryQueue:
    """A deferred retry queue over a :class:`~retryq.stores.Store`.

    With no arguments it finds its configuration and queue as the ``retryq`` command does
    (``retryq.toml``, ``RETRYQ_*`` variables, ``.retry-queue.json``). Pass ``config=Config()`` to
    ignore the environment, and a path, a server's URL or a store to choose where jobs
    live. Usable as a context manager, which closes the store.
    """

    def __init__(self, store: Store | str | os.PathLike[str] | None = None, *, config: Config | None = None) -> None:
        self.config = config if config is not None else load_config()
        if store is None or isinstance(store, (str, os.PathLike)):
            store = open_store(
                self.config.queue if store is None else store,
                lock_timeout=self.config.lock_timeout.total_seconds(),
                archive=self.config.archive,
                namespace=self.config.namespace if store is None else None,
            )
        self.store: Store = store

    def close(self) -> None:
        """Release the store's resources (a database connection); the queue is not used afterwards."""
        self.store.close()

    def __enter__(self) -> RetryQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        priority: int | None = None,
        now: datetime | None = None,
    ) -> ScheduleResult:
        """Ask for the workflow to run for ``client`` and ``date`` in ``delay`` minutes (or ``at`` a time).

        ``delay`` is also the wait between attempts under the default ``fixed`` backoff. If a
        pending job of the same workflow, client and date exists, nothing is added (it keeps its
        priority). ``priority`` (-100 to 100; default: the workflow's, 0 unless configured): among
        due jobs, higher runs first.
        """
        now = to_utc(now or utcnow())
        settings = self.config.scheduling_workflow(workflow)
        key = JobKey.of(client, date, settings.name)
        minutes = parse_delay(DEFAULT_DELAY_MINUTES if delay is None else delay)
        limit = settings.max_attempts if max_attempts is None else validate_max_attempts(max_attempts)
        if at is not None and at.tzinfo is None:
            raise InvalidInput("`at` must carry a time zone")
        job = lifecycle.new_job(key, delay_minutes=minutes, now=now, max_attempts=limit, execute_at=at)
        rank = settings.priority if priority is None else validate_priority(priority)
        job = job.model_copy(update={"priority": rank}) if rank else job
        follow_up = minutes if at is None else max(0, int((to_utc(at) - now).total_seconds() // 60))
        stored, created = self.store.add(job, lifecycle.on_duplicate(follow_up))
        if created:
            return ScheduleResult(stored, "created", stored.execute_at)
        if stored.status is not JobStatus.RUNNING:
            return ScheduleResult(stored, "exists", stored.execute_at)
        next_due = None
        if stored.attempt < self.config.attempts_limit(stored) and stored.follow_up_minutes is not None:
            wait = timedelta(minutes=stored.follow_up_minutes)
            next_due = lifecycle.next_due(stored, wait, now=now, due_window=self.config.due_window)
        return ScheduleResult(stored, "follow_up", next_due)

    def report_fetch(
        self,
        client: str,
        date: str,
        *,
        total: int,
        fetched: int,
        delay: int | str | timedelta | None = None,
        workflow: str | None = None,
        priority: int | None = None,
        now: datetime | None = None,
    ) -> FetchReport:
        """Judge a fetch (``fetched`` of ``total``) and schedule a retry whenever something is missing.

        Without ``delay``, ``[report] delay`` picks it for the verdict; from inside a retry run, the retry is that
        run's follow-up (no duplicate), spaced by the workflow's backoff
        (:func:`~retryq.record.inconsistency.decide_delay`). ``priority`` is the retry's, as in :meth:`schedule`.
        The chain's first verdict is recorded on its job. Logs one line on the ``retryq`` logger: INFO when
        complete, WARNING when something is missing within the tolerance (or more came than announced), ERROR beyond.
        """
        from .record.inconsistency import Decision, FetchStatus, assess, decide_delay, record_detection

        JobKey.of(client, date)  # refused before anything is judged
        assessment = assess(total, fetched, self.config.thresholds)
        retry = decision = None
        if assessment.needs_retry:
            settings = self.config.scheduling_workflow(workflow)
            # The retry is the next attempt of a run in progress for this key (a follow-up), else the first.
            running = self.store.load(JobFilter.of(status="running", workflow=settings.name, client=client, date=date))
            attempt = running[0].attempt + 1 if running else 1
            if delay is None:
                decision = decide_delay(assessment, self.config.thresholds.policy, attempt, settings.backoff)
            else:
                decision = Decision(parse_delay(delay), "as asked")
            retry = self.schedule(client, date, decision.minutes, workflow=workflow, priority=priority, now=now)
            if retry.outcome != "exists":  # a pending retry keeps what it was scheduled with
                mark = record_detection(assessment, decision, retry.job.attempt + int(retry.outcome == "follow_up"))
                marked = self.store.update({retry.job.id: mark}).get(retry.job.id)
                retry = replace(retry, job=marked or retry.job, reason=decision.reason)
            if assessment.status is FetchStatus.ERROR:  # an upstream incident, maybe (docs/incidents.md)
                from .running.pauses import report_error

                report_error(self.store, self.config, retry.job.workflow, retry.job.id, now=to_utc(now or utcnow()))
        report = FetchReport(assessment, retry, decision)
        level = {FetchStatus.OK: logging.INFO, FetchStatus.DEGRADED: logging.WARNING, FetchStatus.ERROR: logging.ERROR}
        text = assessment.describe()
        if retry is not None:
            text += "; " + retry.describe(self.config.attempts_limit(retry.job))
        severity = logging.WARNING if assessment.surplus else level[assessment.status]
        log.log(severity, "%s", text, extra={"label": f"{client} {date}"})
        return report

    # -- reading -----------------------------------------------------------------------------

    def jobs(
        self,
        *,
        status: JobStatus | str | Iterable[JobStatus | str] | None = None,
        workflow: str | None = None,
        client: str | None = None,
        date: str | None = None,
        since: datetime | None = None,
    ) -> list[Job]:
        """The jobs in queue order, optionally filtered (``since``: active at or after, see :class:`JobFilter`)."""
        return self.select(JobFilter.of(status=status, workflow=workflow, client=client, date=date, since=since))

    def select(self, query: JobFilter) -> list[Job]:
        """The jobs ``query`` matches, in queue order."""
        return self.store.load(query)

    def get(self, ident: str) -> Job:
        """The job whose id is ``ident`` or starts with it (a unique prefix, as git takes them)."""
        ident = ident.strip()
        if not ident:
            raise InvalidInput("a job id (or a unique prefix of one) is required")
        matches = self.store.find(ident)
        exact = [job for job in matches if job.id == ident]
        if exact:
            return exact[0]
        if not matches:
            raise JobNotFound(f"no job with id {ident!r}")
        if len(matches) > 1:
            shown = ", ".join(job.id for job in matches[:5])
            raise JobNotFound(f"job id prefix {ident!r} is ambiguous: {shown}{'…' if len(matches) > 5 else ''}")
        return matches[0]

    def schedules(self, *, now: datetime | None = None) -> list[ScheduleStatus]:
        """The recurring jobs of the configuration (``[schedules.NAME]``), by name: each one's next occurrence
        and what became of its last (what ``retryq schedules`` shows); reading only."""
        from .running.recurring import schedule_statuses

        return schedule_statuses(self.config, self.store, now=to_utc(now or utcnow()))

    def due(self, now: datetime | None = None) -> list[Job]:
        """Pending jobs whose time has come, in the order claims take them (:func:`rules.claim_order`)."""
        now = to_utc(now or utcnow())
        pending = self.store.load(JobFilter.of(status=JobStatus.PENDING))
        overdue = rules.overdue_cutoff(now, self.config.max_wait)
        due = [(job, n) for n, job in enumerate(pending) if job.execute_at <= now]
        return [
            job
            for job, _ in sorted(due, key=lambda d: rules.claim_order(d[0].execute_at, d[1], d[0].priority, overdue))
        ]

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

    def cancel_matching(self, query: JobFilter, *, dry_run: bool = False, now: datetime | None = None) -> BulkResult:
        """Cancel every pending job ``query`` matches (its statuses, if given, must be ``pending`` only)."""
        now = to_utc(now or utcnow())
        if query.statuses is None:
            query = replace(query, statuses=frozenset({JobStatus.PENDING}))
        if query.statuses != frozenset({JobStatus.PENDING}):
            raise InvalidInput("only pending jobs can be cancelled (a running job is left to its run)")
        targets = self.select(query)
        if dry_run or not targets:
            return BulkResult(targets, [], dry_run)
        results = self.store.update({job.id: lifecycle.cancel(now) for job in targets})
        done = [job for job in results.values() if job is not None and job.status is JobStatus.CANCELLED]
        late = [Skipped(job, "started meanwhile") for job in targets if job.id not in {d.id for d in done}]
        return BulkResult(done, late)

    def requeue(
        self,
        ident: str,
        *,
        delay: int | str | timedelta = 0,
        max_attempts: int | None = None,
        now: datetime | None = None,
    ) -> Job:
        """Put a failed or cancelled job back to pending with fresh attempts, due after ``delay`` minutes.

        Refused (:class:`OpenJobExists`) when another job of the same workflow, client and date is
        open: the store enforces one open job per key, so that the same fetch never runs twice.
        """
        now = to_utc(now or utcnow())
        job = self.get(ident)
        if job.status not in rules.REQUEUEABLE_STATUSES:
            raise JobStateError(f"job {job.id} is {job.status.value}; only failed or cancelled jobs can be requeued")
        mutation = _requeue(now, delay, max_attempts)
        result = self.store.update({job.id: mutation}).get(job.id)
        if result is None or result.status is not JobStatus.PENDING:
            raise JobStateError(f"job {job.id} changed while it was being requeued; look again")
        return result

    def requeue_matching(
        self,
        query: JobFilter,
        *,
        delay: int | str | timedelta = 0,
        max_attempts: int | None = None,
        dry_run: bool = False,
        now: datetime | None = None,
    ) -> BulkResult:
        """Requeue every failed (or cancelled) job ``query`` matches, the latest of each key only.

        A job whose workflow, client and date already has an open job is skipped, as is an older
        finished job of a key whose latest one is requeued: one chain per key at a time.
        """
        now = to_utc(now or utcnow())
        if query.statuses is None:
            query = replace(query, statuses=frozenset({JobStatus.FAILED}))
        if not query.statuses or not query.statuses <= rules.REQUEUEABLE_STATUSES:
            raise InvalidInput("only failed or cancelled jobs can be requeued")
        mutation = _requeue(now, delay, max_attempts)
        open_keys = {job.key: job for job in self.store.load(JobFilter(statuses=OPEN_STATUSES))}
        chosen: dict[tuple[str, str, str], Job] = {}
        skipped: list[Skipped] = []
        for job in sorted(self.select(query), key=rules.ended_at, reverse=True):
            if job.key in open_keys:
                skipped.append(Skipped(job, f"job {open_keys[job.key].id} is already open for this key"))
            elif job.key in chosen:
                skipped.append(Skipped(job, f"job {chosen[job.key].id}, later, is requeued for this key"))
            else:
                chosen[job.key] = job
        if dry_run or not chosen:
            return BulkResult(list(chosen.values()), skipped, dry_run)
        while True:
            try:
                results = self.store.update({job.id: mutation for job in chosen.values()})
                break
            except OpenJobExists as clash:  # a schedule landed meanwhile: leave that key alone, write the rest
                job = next(job for job in chosen.values() if job.id in clash.job_ids)
                del chosen[job.key]
                skipped.append(Skipped(job, str(clash)))
                if not chosen:
                    return BulkResult([], skipped)
        done = [job for job in results.values() if job is not None and job.status is JobStatus.PENDING]
        ids = {job.id for job in done}
        skipped += [Skipped(job, "changed meanwhile") for job in chosen.values() if job.id not in ids]
        return BulkResult(done, skipped)

    def prune(self, *, now: datetime | None = None, keep_days: int | None = None, dry_run: bool = False) -> list[Job]:
        """Remove completed, failed and cancelled jobs that ended more than ``keep_days`` ago.

        Without ``keep_days``, each workflow's retention applies (``keep_days`` in the config,
        per status). Removed jobs go to the archive first when archiving is on.
        """
        now = to_utc(now or utcnow())
        return self.store.prune(self.config.prune_rule(now, keep_days), dry_run=dry_run)

    # -- upstream incidents and pauses (docs/incidents.md) ------------------------------------------

    def pause(
        self, workflow: str, *, until: datetime | None = None, reason: str | None = None, now: datetime | None = None
    ) -> Pause:
        """Hold ``workflow``'s jobs on every host (none starts, no probe) until ``until``, or :meth:`resume`."""
        from .running.pauses import by_whom, pause

        return pause(
            self.store, self.config, workflow, now=to_utc(now or utcnow()), until=until, reason=reason, by=by_whom()
        )

    def resume(self, workflow: str, *, now: datetime | None = None) -> tuple[Pause | None, Incident | None]:
        """Lift ``workflow``'s pause and close its open incident (the upstream is back); what was lifted and closed."""
        from .running.pauses import resume

        return resume(self.store, self.config, workflow, now=to_utc(now or utcnow()))

    def incidents(self, *, closed: bool = False, now: datetime | None = None) -> list[Incident]:
        """The open incidents, each with the jobs it holds now (with ``closed``, the ones kept since closed too)."""
        from .reporting.incidents import incidents

        return incidents(self.store, self.config, now=to_utc(now or utcnow()), closed=closed)

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
            JobKey.of(client, date)
            jobs = [job for job in self.jobs(client=client, date=date, workflow=workflow) if job.status.is_open]
            if not jobs:
                raise JobNotFound(f"no pending job for {client} {date}")
        for job in jobs:
            if job.status not in statuses:
                wanted = " or ".join(sorted(status.value for status in statuses))
                raise JobStateError(f"job {job.id} is {job.status.value}, not {wanted}")
        return jobs


def _requeue(now: datetime, delay: int | str | timedelta, max_attempts: int | None) -> lifecycle._Mutation:
    if max_attempts is not None:
        validate_max_attempts(max_attempts)
    return lifecycle.requeue(now, now + timedelta(minutes=parse_delay(delay)), max_attempts)
