"""The storage interface every backend implements, and the values that cross it.

A store keeps jobs and offers a handful of atomic operations; everything a queue does is
built from them. The operations take *mutations* (pure functions ``Job -> Job | None``) rather
than new values, so that a backend applies them to the job as it is at that instant, under its
own lock or transaction, and may apply them again if it has to start the transaction over.

Beside its jobs a store keeps *state documents*: small JSON objects under keys their users choose
(``"schedule:nightly"``), shared by every process and host. They change only through a
:class:`Plan`, which a write carries and which runs inside that write's step, on the documents as
they are then, like a mutation on a job: its writes land with the job changes, or nothing does.
"""

from __future__ import annotations

__all__ = [
    "ClaimRequest",
    "Claimant",
    "Finding",
    "Insertion",
    "InvalidJob",
    "JobFilter",
    "Mutation",
    "Plan",
    "PlanResult",
    "PruneRule",
    "StateDoc",
    "Store",
    "Tally",
    "read_jobs",
    "store_time",
]

import threading
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from ..record import rules
from ..record.errors import InvalidInput
from ..record.models import Job, JobStatus, Owner, parse_statuses

if TYPE_CHECKING:
    from ..record.views import JobData

#: A change to one job: return the new job, the same job (no change), or None to remove it.
Mutation = Callable[[Job], "Job | None"]
#: A state document: a JSON object (strings, numbers, booleans, null, lists and objects only).
StateDoc = dict[str, Any]


@dataclass(frozen=True)
class PlanResult:
    """What a plan decided, applied in the step that ran it (or, with ``abort``, nothing at all).

    ``writes``: the new documents by key (None deletes one); only keys of the plan's ``keys``.
    ``mutations``: more job changes, applied in the same step after the caller's own (to the job as
    the caller's change left it). ``slots``: for a claim, caps on its free slots per workflow,
    applied before it chooses jobs (0 holds a workflow, 1 lets one job through; a workflow absent
    is unchanged); ignored by other operations. ``abort``: write nothing at all, not even the
    caller's own changes (another process got there first).
    """

    writes: Mapping[str, StateDoc | None] = field(default_factory=dict)
    mutations: Mapping[str, Mutation] = field(default_factory=dict)
    slots: Mapping[str, int] | None = None
    abort: bool = False


#: How a plan decides: ``(documents, now, jobs) -> PlanResult`` (see :class:`Plan`).
Decide = Callable[[Mapping[str, StateDoc], "datetime | None", Mapping[str, "Job | None"]], PlanResult]


@dataclass(frozen=True)
class Plan:
    """A change of state documents, decided inside a write's step from the documents as they are then.

    ``keys`` are the documents it reads and may write (None: all of them, which serialises it with
    every other plan). ``decide(docs, now, jobs)`` gets those of ``keys`` that exist (copies), the
    store's clock in the step (:meth:`Store.server_now`; None for a store without one), and what
    the caller's own changes of that step left (id -> job, None for a job removed: the results of
    ``update``/``claim``'s changes; for ``add``, the job added or the open job as ``on_open`` left
    it). It may be called again when the store starts its step over, so it must be pure; the last
    call before the operation returns is the one that was applied.
    """

    keys: Collection[str] | None
    decide: Decide

    def __post_init__(self) -> None:
        if isinstance(self.keys, str):
            raise TypeError(f"a plan's keys are a collection of keys, not one string: [{self.keys!r}]")
        if self.keys is not None:
            object.__setattr__(self, "keys", frozenset(check_state_key(key) for key in self.keys))

    def __call__(
        self, docs: Mapping[str, StateDoc], now: datetime | None, jobs: Mapping[str, Job | None]
    ) -> PlanResult:
        return self.decide(docs, now, jobs)


#: The longest state key.
MAX_STATE_KEY = 200


def check_state_key(key: object) -> str:
    """``key`` if it can name a state document: a non-empty string of printable characters, at most 200."""
    if not isinstance(key, str) or not key or len(key) > MAX_STATE_KEY or not key.isprintable():
        raise InvalidInput(f"invalid state key {key!r}: 1 to {MAX_STATE_KEY} printable characters")
    return key


@dataclass(frozen=True)
class JobFilter:
    """Which jobs a command means: each field that is set must match.

    ``since`` keeps jobs active at or after it: ended then (finished), else started, else
    scheduled — for a failed job, when it failed.
    """

    statuses: frozenset[JobStatus] | None = None
    workflow: str | None = None
    client: str | None = None
    date: str | None = None
    since: datetime | None = None

    @classmethod
    def of(
        cls,
        *,
        status: JobStatus | str | Iterable[JobStatus | str] | None = None,
        workflow: str | None = None,
        client: str | None = None,
        date: str | None = None,
        since: datetime | None = None,
    ) -> JobFilter:
        """A filter from loose arguments: status names, an aware ``since``."""
        if since is not None and since.tzinfo is None:
            raise InvalidInput("`since` must carry a time zone")
        return cls(parse_statuses(status), workflow, client, date, since)

    @property
    def selects_all(self) -> bool:
        """Whether every job matches (no field is set)."""
        return self == _EVERYTHING

    def matches(self, job: JobData) -> bool:
        return (
            (self.statuses is None or job.status in self.statuses)
            and (self.workflow is None or job.workflow == self.workflow)
            and (self.client is None or job.client_id == self.client)
            and (self.date is None or job.date == self.date)
            and (self.since is None or rules.active_at(job) >= self.since)
        )


_EVERYTHING = JobFilter()


@dataclass(frozen=True)
class Claimant:
    """Who claims, and what a claim writes on each job (as :func:`retryq.record.rules.claimed` says).

    ``leases[w]`` is how long a claim of workflow ``w`` holds (timeout + kill grace + lease
    grace); ``max_attempts[w]`` the limit a job without its own takes.
    """

    owner: Owner
    now: datetime
    leases: Mapping[str, timedelta]
    max_attempts: Mapping[str, int]


@dataclass(frozen=True)
class ClaimRequest:
    """Which due jobs to claim: at most ``limit`` in all and ``slots[w]`` of workflow ``w``.

    Due means pending with ``executeAt <= due_by``; on a store with a clock of its own, ``executeAt``
    at most :attr:`ahead` past the store's time (see :class:`Store`). Jobs of a workflow absent from ``slots`` are
    never claimed (their workflow is unknown to this process); they stay pending for a process
    that knows it. Jobs whose id is in ``exclude`` are not claimed either (a ``process`` run
    starts each job at most once). ``caps[w]``, when given, bounds the jobs of ``w`` running at
    once in the whole store, whoever runs them (checked in the claim's own transaction). Due jobs
    are taken in :func:`retryq.record.rules.claim_order`: a job due for longer than ``max_wait``
    (by the store's time) first, then by priority, then by due time (None: by priority alone).
    """

    due_by: datetime
    limit: int
    claimant: Claimant
    slots: Mapping[str, int] = field(default_factory=dict)
    exclude: frozenset[str] = frozenset()
    caps: Mapping[str, int] = field(default_factory=dict)
    max_wait: timedelta | None = None

    @property
    def ahead(self) -> timedelta:
        """How far past the claimant's time a job counts as due (``due_window`` for ``process``, 0 for a worker)."""
        return self.due_by - self.claimant.now


@dataclass(frozen=True)
class PruneRule:
    """Which finished jobs may go: those that ended before the cutoff of their workflow and status.

    ``cutoffs`` applies to every workflow not listed in ``by_workflow``. A job ended when
    :func:`retryq.record.rules.ended_at` says. Pending and running jobs are never pruned.
    """

    cutoffs: Mapping[JobStatus, datetime]
    by_workflow: Mapping[str, Mapping[JobStatus, datetime]] = field(default_factory=dict)

    def expired(self, workflow: str, status: JobStatus, ended: datetime) -> bool:
        if not status.is_finished:
            return False
        cutoff = self.by_workflow.get(workflow, self.cutoffs).get(status)
        return cutoff is not None and ended < cutoff


@dataclass(frozen=True)
class InvalidJob:
    """A stored record that is not a valid job: left exactly as it is, never run, pruned or rewritten."""

    position: int  # 1 for the first job of the queue
    ident: str  # its id, else its client id, else "?"
    reason: str
    where: str  # the store's display name

    def __str__(self) -> str:
        return f"{self.where}: job #{self.position} ({self.ident}) is invalid: {self.reason}"


@dataclass(frozen=True)
class Insertion:
    """What :meth:`Store.insert` added: the ids of the jobs, and of the archived jobs (in their order)."""

    added: tuple[str, ...] = ()
    archived: tuple[str, ...] = ()


@dataclass
class Tally:
    """What metrics count, counted by the store: the live jobs by workflow and status, the pending
    ones' oldest ``scheduledAt`` and earliest ``executeAt``, and over the archive and the queue alike
    (the latest copy of each job) the attempts by outcome, the resolutions by attempt, the failures."""

    jobs: Counter[tuple[str, str]] = field(default_factory=Counter)  # (workflow, status)
    oldest_scheduled: dict[str, datetime] = field(default_factory=dict)
    earliest_due: dict[str, datetime] = field(default_factory=dict)
    attempts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (workflow, outcome)
    resolutions: Counter[tuple[str, int]] = field(default_factory=Counter)  # (workflow, attempt)
    failures: Counter[str] = field(default_factory=Counter)  # workflow

    @classmethod
    def of(cls, live: Iterable[Job], archived: Iterable[Job] = ()) -> Tally:
        """Count jobs given as models (what a store that holds documents does)."""
        tally = cls()
        live_by_id = {job.id: job for job in live}
        for job in live_by_id.values():
            tally.jobs[(job.workflow, job.status.value)] += 1
            if job.status is JobStatus.PENDING:
                _keep_min(tally.oldest_scheduled, job.workflow, job.scheduled_at)
                _keep_min(tally.earliest_due, job.workflow, job.execute_at)
        for job in {**{job.id: job for job in archived}, **live_by_id}.values():
            tally.add_history(job)
        return tally

    def add_history(self, job: Job) -> None:
        for entry in job.history:
            self.attempts[(job.workflow, entry.outcome.value)] += 1
        if job.status is JobStatus.COMPLETED:
            self.resolutions[(job.workflow, job.attempt)] += 1
        elif job.status is JobStatus.FAILED:
            self.failures[job.workflow] += 1


def _keep_min(values: dict[str, datetime], key: str, value: datetime) -> None:
    if key not in values or value < values[key]:
        values[key] = value


@dataclass(frozen=True)
class Finding:
    """One line of a health check; a ``problem`` needs a human."""

    level: Literal["ok", "warning", "problem"]
    message: str


@runtime_checkable
class Store(Protocol):
    """Where jobs live. Each method is atomic with respect to every other process and host.

    **Whose clock.** A store on a server (PostgreSQL, Redis) has a clock of its own, which every host
    sharing it reads alike: :meth:`server_now` gives it, and :meth:`claim` judges by it, inside the
    claim's own step, whatever the claimant's clock says: a job is due when its ``executeAt`` is at
    most :attr:`ClaimRequest.ahead` past the store's time, and a claim's ``startedAt`` is the store's
    time, its lease ending ``claimant.leases[w]`` later. Callers judge the leases of running jobs
    (recovery, ``doctor``) by :meth:`server_now` too. A store without a clock (the file, memory)
    returns None and takes the claimant's ``now``: the host's clock is the only one there is.
    """

    @property
    def location(self) -> str:
        """Where the jobs are, for messages (a path, a URL without its password)."""

    @property
    def address(self) -> str | None:
        """Where a child process finds the same jobs again (``RETRYQ_QUEUE``); None if it cannot."""

    def environment(self) -> dict[str, str]:
        """The variables a workflow's own ``retryq`` needs to reopen this store, whatever its working
        directory (``RETRYQ_QUEUE``, and what the backend adds); empty when no other process can."""

    def load(self, query: JobFilter | None = None) -> list[Job]:
        """The valid jobs ``query`` matches (all without one), in queue order, as one consistent snapshot."""

    def find(self, prefix: str, limit: int = 6) -> list[Job]:
        """The jobs whose id starts with ``prefix`` (at most ``limit``, in id order)."""

    def invalid(self) -> list[InvalidJob]:
        """The records that are not valid jobs; every other operation leaves them exactly as they are."""

    def load_archive(self) -> Iterator[Job]:
        """Jobs removed by pruning, the latest copy of each, oldest first (empty when archiving is off)."""

    def tally(self) -> Tally:
        """The counts metrics need, over the queue and its archive."""

    def state(self, keys: Collection[str] | None = None) -> dict[str, StateDoc]:
        """The state documents (all, or those of ``keys`` that exist), as one consistent snapshot."""

    def add(self, job: Job, on_open: Mutation, *, plan: Plan | None = None) -> tuple[Job, bool]:
        """Insert ``job`` unless an open (pending or running) job has the same key.

        If one has, ``on_open`` is applied to it instead and ``(that job, False)`` is returned;
        otherwise ``(job, True)``. Racing adds for one key create exactly one job.

        With ``plan``, it runs in the same step once the outcome is known (its ``jobs`` hold the job
        added, or the open job as ``on_open`` left it), and its writes and mutations land with the
        add. If it aborts, nothing is written (not even ``on_open``'s change) and the result is
        ``(the open job of the key as it is, False)``, or ``(job, False)`` when there is none.
        """

    def insert(self, jobs: Sequence[Job], archived: Sequence[Job] = (), *, dry_run: bool = False) -> Insertion:
        """Add jobs exactly as they are (a queue moved from another store), in one step.

        A job whose id the queue holds is skipped, as is an archived job whose id the archive holds
        (or every archived job, when archiving is off): inserting twice adds nothing the second
        time. An open job whose key another open job of the queue holds raises
        :class:`~retryq.record.errors.OpenJobExists`, and nothing is added. With ``dry_run``, nothing is
        added either way. The caller makes sure ``jobs`` itself holds one id and one open job per key.
        """

    def update(self, changes: Mapping[str, Mutation], *, plan: Plan | None = None) -> dict[str, Job | None]:
        """Apply each mutation to the job with that id; return the results (ids not found are left out).

        A job removed (mutation returned None) is archived first when archiving is on. A change
        that would leave two open jobs with one key raises :class:`~retryq.record.errors.OpenJobExists`
        and writes nothing (no state either).

        With ``plan``, it runs in the same step after ``changes`` (its ``jobs`` are their results);
        its mutations are applied next and their results join the returned ones. If it aborts,
        nothing is written and the result is empty. ``update({}, plan=plan)`` changes state alone.
        """

    def claim(
        self, request: ClaimRequest, changes: Mapping[str, Mutation] | None = None, *, plan: Plan | None = None
    ) -> tuple[list[Job], dict[str, Job | None]]:
        """Apply ``changes`` as :meth:`update` does, then claim due jobs for ``request.claimant``; return both.

        Due means pending with ``executeAt <= request.due_by``; they are taken in
        :func:`retryq.record.rules.claim_order` (priority, then the oldest ``executeAt``, a job
        waiting longer than ``request.max_wait`` before them all), and returned in that order. Two
        claimants never get the same job. Doing both in one step lets a processor write the results
        of finished runs and claim the next jobs with a single write.

        With ``plan``, it runs as in :meth:`update`, and its ``slots`` cap the claim's free slots
        before it chooses jobs, in the same step: two claimants never both get what a plan lets
        through once. If it aborts, nothing is written or claimed: ``([], {})``.
        """

    def prune(self, rule: PruneRule, *, dry_run: bool = False) -> list[Job]:
        """Remove the finished jobs ``rule`` expires (archiving them first when archiving is on); return them.

        With ``dry_run``, return them and remove nothing.
        """

    def check(self) -> list[Finding]:
        """What ``doctor`` should know about the storage itself: can it be written, is anything left over."""

    def server_now(self) -> datetime | None:
        """The store's own clock (UTC), where it has one (a server's: PostgreSQL ``clock_timestamp()``,
        Redis ``TIME``); None where the host's clock is the only one (a file, memory)."""

    def wait_for_work(self, seconds: float, stop: threading.Event) -> None:
        """Wait up to ``seconds`` for a job to become due (or ``stop`` to be set); an idle worker's wait."""

    def close(self) -> None:
        """Release what the store holds (connections); it is not used afterwards."""


def store_time(store: Store, host_now: datetime) -> tuple[datetime, timedelta]:
    """The time leases are judged by (the store's own clock where it has one, else the host's), and how
    far the host's clock is ahead of it (negative: behind)."""
    server = store.server_now()
    if server is None:
        return host_now, timedelta(0)
    return server, host_now - server


def read_jobs(store: Store, query: JobFilter | None = None) -> Sequence[JobData]:
    """The jobs ``query`` matches, for reading only: read-only views where the store offers them, else its jobs.

    A store may offer ``load_views(query)``: every job as a :class:`~retryq.record.views.JobView`,
    without a model per job, or None when it cannot vouch for them (a record that is not a valid
    job, which :meth:`Store.load` and :meth:`Store.invalid` then read precisely). The JSON file
    store does: it is what lets `list`, `stats` and `doctor` read a large file quickly.
    """
    fast = getattr(store, "load_views", None)
    views = fast(query) if fast is not None else None
    return store.load(query) if views is None else views
