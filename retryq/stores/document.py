"""Stores that read and rewrite all their jobs at once (the JSON file, memory), and the in-memory store.

A queue of 10,000 jobs is scanned on every write, but a write touches only a few jobs: the rest
stay as a line of text and a handful of scanned fields, and are never validated. A record that
turns out not to be a valid job is skipped by every operation and written back byte for byte.
"""

from __future__ import annotations

__all__ = ["DocumentStore"]

import threading
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

from ..record import rules
from ..record.models import Job, JobStatus
from .base import ClaimRequest, Finding, Insertion, InvalidJob, JobFilter, Mutation, Plan, PruneRule, StateDoc, Tally
from .dueorder import DueOrder
from .entry import _Entry, _positions, open_job_of
from .plans import Decision, capped, checked_keys, decide, merged, selected

R = TypeVar("R")


@dataclass
class _Write:
    """What a transaction writes: the new records (None: the jobs are unchanged), the jobs it removes
    (for the archive), and the new state documents (None: unchanged)."""

    entries: list[_Entry] | None
    removed: list[Job]
    state: dict[str, StateDoc] | None = None


@dataclass
class _Step:
    """A transaction's work so far: the records, the results of job changes, the jobs removed."""

    entries: list[_Entry]
    results: dict[str, Job | None]
    removed: list[Job]
    changed: bool
    state: dict[str, StateDoc] | None = None  # new state documents, once a plan wrote some

    def write(self) -> _Write | None:
        if not self.changed and self.state is None:
            return None
        return _Write(self.entries if self.changed else None, self.removed, self.state)


#: A transaction: from the current records, a result and what to write (None: nothing).
Transaction = Callable[[list[_Entry]], tuple[R, "_Write | None"]]


class DocumentStore:
    """The store operations for backends that read and rewrite all records at once.

    Subclasses provide :meth:`_read` (the current records), :meth:`_read_state` (the state
    documents) and :meth:`_transact`, which runs a transaction under their lock, writes what it
    returns, and may run it again from a fresh read (the JSON file does when its lock file was
    taken away): transactions are pure. A transaction with a plan reads the state under that lock.
    """

    location: str = "memory"
    address: str | None = None
    #: The due order the last claim left, and the records it holds (see :mod:`.dueorder`).
    _order: tuple[list[_Entry], DueOrder, list[str | None]] | None = None

    def _transact(self, transaction: Transaction[R]) -> R:
        raise NotImplementedError

    @property
    def _archives(self) -> bool:
        """Whether removed jobs are archived."""
        raise NotImplementedError

    def _read(self) -> list[_Entry]:
        raise NotImplementedError

    def _read_state(self) -> dict[str, StateDoc]:
        """The state documents as they are (a transaction calls it under the lock); never changed in place."""
        raise NotImplementedError

    def state(self, keys: Collection[str] | None = None) -> dict[str, StateDoc]:
        return selected(self._read_state(), checked_keys(keys))

    def load_archive(self) -> Iterator[Job]:
        raise NotImplementedError

    def load(self, query: JobFilter | None = None) -> list[Job]:
        if query is None:
            jobs = (entry.decoded() for entry in self._read())
            return [job for job in jobs if job is not None]
        wanted = None if query.statuses is None else {status.value for status in query.statuses}
        found = []
        for entry in self._read():
            workflow, client, date = entry.key
            # Compared on the scanned fields first: only the records that may match are validated.
            if (
                (wanted is None or entry.status in wanted)
                and (query.workflow is None or workflow == query.workflow)
                and (query.client is None or client == query.client)
                and (query.date is None or date == query.date)
            ):
                job = entry.decoded()
                if job is not None and query.matches(job):
                    found.append(job)
        return found

    def find(self, prefix: str, limit: int = 6) -> list[Job]:
        jobs = (entry.decoded() for entry in self._read() if (entry.job_id() or "").startswith(prefix))
        return sorted((job for job in jobs if job is not None), key=lambda job: job.id)[:limit]

    def invalid(self) -> list[InvalidJob]:
        found = (entry.invalid(self.location) for entry in self._read())
        return [problem for problem in found if problem is not None]

    def tally(self) -> Tally:
        return Tally.of(self.load(), self.load_archive())

    def check(self) -> list[Finding]:
        return []

    def server_now(self) -> datetime | None:
        return None  # a file has no clock of its own: claims take the claimant's

    def wait_for_work(self, seconds: float, stop: threading.Event) -> None:
        stop.wait(seconds)  # a file cannot tell when a job is added: polling it is

    def close(self) -> None:
        """Nothing is held between operations."""

    def environment(self) -> dict[str, str]:
        return {} if self.address is None else {"RETRYQ_QUEUE": self.address}

    def add(self, job: Job, on_open: Mutation, *, plan: Plan | None = None) -> tuple[Job, bool]:
        return self._transact(self._adding(job, on_open, plan))

    def _adding(self, job: Job, on_open: Mutation, plan: Plan | None) -> Transaction[tuple[Job, bool]]:
        def transaction(current: list[_Entry]) -> tuple[tuple[Job, bool], _Write | None]:
            existing, outcome = None, job
            found = open_job_of(enumerate(current), job.key, on_open)  # adding never decodes the whole queue
            if found is None:
                step = _Step([*current, _Entry.of(job)], {job.id: job}, [], True)
            else:
                position, existing, outcome = found
                step = _Step(current, {existing.id: outcome}, [], outcome is not existing)  # current is ours
                if step.changed:
                    step.entries[position] = _Entry.of(outcome)
            if plan is not None and self._plan(plan, step) is None:
                return (existing or job, False), None
            # What the plan's mutations left of the job, if they changed it (and did not remove it).
            return (step.results.get(outcome.id) or outcome, existing is None), step.write()

        return transaction

    def insert(self, jobs: Sequence[Job], archived: Sequence[Job] = (), *, dry_run: bool = False) -> Insertion:
        def transaction(current: list[_Entry]) -> tuple[Insertion, _Write | None]:
            present = {entry.job_id() for entry in current}
            new = [job for job in jobs if job.id not in present]
            self._check_one_open_per_key(current, [job for job in new if job.status.is_open])
            kept = {job.id for job in self.load_archive()} if archived and self._archives else set()
            new_archived = [job for job in archived if job.id not in kept] if self._archives else []
            insertion = Insertion(tuple(job.id for job in new), tuple(job.id for job in new_archived))
            if dry_run or not (new or new_archived):
                return insertion, None
            return insertion, _Write([*current, *map(_Entry.of, new)], new_archived)

        return self._transact(transaction)

    def update(self, changes: Mapping[str, Mutation], *, plan: Plan | None = None) -> dict[str, Job | None]:
        if not changes and plan is None:
            return {}

        def transaction(current: list[_Entry]) -> tuple[dict[str, Job | None], _Write | None]:
            step = _Step(*self._apply(current, changes))
            if plan is not None and self._plan(plan, step) is None:
                return {}, None
            return step.results, step.write()

        return self._transact(transaction)

    def claim(
        self, request: ClaimRequest, changes: Mapping[str, Mutation] | None = None, *, plan: Plan | None = None
    ) -> tuple[list[Job], dict[str, Job | None]]:
        claimant = request.claimant

        def transaction(current: list[_Entry]) -> tuple[tuple[list[Job], dict[str, Job | None]], _Write | None]:
            order, idents = self._order_of(current)
            touched = _positions(current, changes or {}, idents)
            step = _Step(*self._apply(current, changes or {}, touched))
            asked = request
            if plan is not None:
                planned = self._plan(plan, step)
                if planned is None:
                    return ([], {}), None
                asked = replace(request, slots=capped(request.slots, planned.slots))
                if planned.mutations:
                    order = None  # changes of their own: sorted again below
            entries, claimed = step.entries, []
            if order is not None and len(entries) == len(current):
                order.replace(touched, current, entries)
            else:
                order, idents = DueOrder(entries), None
            before = entries.copy()
            chosen = self._due(entries, asked, order)
            for position, job in chosen:
                new = rules.claimed(
                    job,
                    owner=claimant.owner,
                    run_id=uuid.uuid4().hex,
                    now=claimant.now,
                    lease=claimant.leases[job.workflow],
                    max_attempts=claimant.max_attempts[job.workflow],
                )
                entries[position] = _Entry.of(new)
                claimed.append(new)
                step.changed = True
            order.replace((position for position, _ in chosen), before, entries)
            # For the next claim, if the records are still these (claims and results keep every id in its place).
            self._order = (entries, order, [entry.ident for entry in entries] if idents is None else idents)
            return (claimed, step.results), step.write()

        return self._transact(transaction)

    def prune(self, rule: PruneRule, *, dry_run: bool = False) -> list[Job]:
        def expired(entry: _Entry) -> bool:
            if entry.status not in rules.FINISHED_VALUES or entry.key[0] is None:
                return False
            ended = entry.ended_at()
            # Checked on the scanned fields first: only the records that go are validated.
            if ended is None or not rule.expired(entry.key[0], JobStatus(entry.status), ended):
                return False
            return entry.decoded() is not None  # a record that is not a valid job is never removed

        if dry_run:
            return [entry.job(self.location) for entry in self._read() if expired(entry)]

        def transaction(current: list[_Entry]) -> tuple[list[Job], _Write | None]:
            verdicts = [expired(entry) for entry in current]
            removed = [entry.job(self.location) for entry, gone in zip(current, verdicts, strict=True) if gone]
            if not removed:
                return [], None
            return removed, _Write([entry for entry, gone in zip(current, verdicts, strict=True) if not gone], removed)

        return self._transact(transaction)

    def _plan(self, plan: Plan, step: _Step) -> Decision | None:
        """Run ``plan`` on the state as it is (under the lock); add what it decided to ``step``. None: it aborts."""
        state = self._read_state()
        decision = decide(plan, state, None, step.results)  # a file or memory has no clock of its own
        if decision.abort:
            return None
        if decision.mutations:
            entries, results, removed, changed = self._apply(step.entries, decision.mutations)
            step.entries, step.changed = entries, step.changed or changed
            step.results.update(results)
            step.removed.extend(removed)
        step.state = merged(state, decision.writes)
        return decision

    def _apply(
        self, entries: list[_Entry], changes: Mapping[str, Mutation], positions: list[int] | None = None
    ) -> tuple[list[_Entry], dict[str, Job | None], list[Job], bool]:
        """Apply mutations; return the new entries, the results, the removed jobs, and whether anything changed."""
        results: dict[str, Job | None] = {}
        removed: list[Job] = []
        if not changes:
            return entries.copy(), results, removed, False
        changed = False
        kept, gone = entries.copy(), set()
        opened: list[Job] = []
        for position in _positions(entries, changes) if positions is None else positions:
            job = entries[position].decoded()
            if job is None:  # not a job that a change can apply to
                continue
            new = changes[job.id](job)
            results[job.id] = new
            if new is None:
                removed.append(job)
                gone.add(position)
                changed = True
            elif new is not job:
                kept[position] = _Entry.of(new)
                changed = True
                if rules.opens_a_key(job, new):
                    opened.append(new)
        if gone:
            kept = [entry for position, entry in enumerate(kept) if position not in gone]
        if opened:
            self._check_one_open_per_key(kept, opened)
        return kept, results, removed, changed

    def _check_one_open_per_key(self, entries: list[_Entry], opened: list[Job]) -> None:
        """Refuse a write that reopens a job beside another open job of the same key (nothing is written)."""
        wanted = {job.key for job in opened}
        holders: dict[tuple[object, ...], list[str]] = {}
        for entry in entries:
            if entry.is_open and entry.key in wanted and (ident := entry.job_id()) is not None:
                holders.setdefault(entry.key, []).append(ident)
        for job in opened:
            conflict = rules.key_conflict(job, holders.get(job.key, []))
            if conflict is not None:
                raise conflict

    def _order_of(self, current: list[_Entry]) -> tuple[DueOrder | None, list[str | None] | None]:
        """The due order kept from the last claim and the ids of its records, when ``current`` holds the
        very records it left (compared by identity, at C speed). Taken: a claim that fails keeps none."""
        kept, self._order = self._order, None
        return (kept[1], kept[2]) if kept is not None and kept[0] == current else (None, None)

    def _due(self, entries: list[_Entry], request: ClaimRequest, order: DueOrder) -> list[tuple[int, Job]]:
        """The records to claim, as :func:`retryq.record.rules.choose` chooses them, among the first of
        each group of ``order`` (see :mod:`.dueorder`); only the chosen are validated."""
        exclude = request.exclude
        running = Counter(entry.key[0] for entry in entries if entry.status == rules.RUNNING) if request.caps else {}
        free = rules.free_slots(request.slots, request.caps, running)
        chosen = rules.choose(
            order.candidates(entries, request, free),
            due_by=request.due_by,
            free=free,
            limit=request.limit,
            exclude=exclude,
            accept=lambda position: entries[position].decoded() is not None,
            priority=lambda position: entries[position].priority(),
            overdue_before=rules.overdue_cutoff(request.claimant.now, request.max_wait),
        )
        return [(position, entries[position].job(self.location)) for position in chosen]
