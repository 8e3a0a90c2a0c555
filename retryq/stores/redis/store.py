"""The Redis store: one queue shared by several hosts, every change one Lua script on the server.

A job is its record (as the JSON file would hold it) and a few index entries the scripts keep (see
:mod:`.scripts`). A claim is one script call, whatever the batch: it picks the due jobs of each
workflow up to its free slots (and its global cap), by the server's clock, and marks them claimed.
Every other change is a pure mutation applied here to the job as read, then written by a script
that first checks that no job changed since (its version): if one did, nothing is written and the
change is made again on a fresh read. The versions of the jobs this process wrote last are kept, so
that writing the result of a run it claimed takes one round trip, not two. A change that carries a
plan reads its state documents first (one round trip more), and writes them in the same commit
(see :mod:`.state`).
"""

from __future__ import annotations

__all__ = ["DEFAULT_NAMESPACE", "RedisStore"]

import json
import logging
import threading
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from ...record import rules
from ...record.errors import ConfigError, OpenJobExists, StoreUnavailable
from ...record.limits import LOCK_TIMEOUT
from ...record.models import Job, JobStatus, describe_validation_error
from ..base import ClaimRequest, Finding, Insertion, InvalidJob, JobFilter, Mutation, Plan, PruneRule, StateDoc, Tally
from ..plans import capped, checked_keys, decide
from .address import NAMESPACE, NAMESPACE_RULE, parse
from .checks import findings
from .connection import Connection, first_line
from .records import claim_arguments, from_ms, meta_of, with_claim
from .scripts import SCHEMA_VERSION
from .state import Snapshot, Write, arguments, chain, expectations, snapshot

log = logging.getLogger("retryq")

DEFAULT_NAMESPACE = "retryq"
#: How many times a change is made again when another process changed one of its jobs meanwhile.
CONFLICT_RETRIES = 100
#: How many jobs' versions are remembered between writes.
CACHE_SIZE = 10_000


class _Conflict(Exception):
    """A job changed between the read and the write: read again, apply again."""


class RedisStore:
    """Jobs in Redis, safe across hosts, processes and restarts of the server (as far as its persistence goes).

    ``url`` is ``redis://[[user]:password@]host[:port][/db]``, ``rediss://…`` (TLS) or
    ``unix:///path/redis.sock?db=N``; without a password in it, ``$REDISCLI_AUTH`` gives one. The
    keys start with ``{namespace}:`` (the option, else the URL's ``?namespace=``, else ``retryq``), so
    that several queues share one server.
    ``server_clock`` (the default) judges due times and lease ends by the server's ``TIME``; off, by
    the claimant's ``now`` (tests that freeze time).
    """

    def __init__(
        self,
        url: str,
        *,
        lock_timeout: float = LOCK_TIMEOUT.total_seconds(),
        archive: bool = True,
        namespace: str | None = None,
        connect_attempts: int = 6,
        sleep: Callable[[float], object] | None = None,
        server_clock: bool = True,
    ) -> None:
        parsed = parse(url)
        self.address = url
        self.location = parsed.display
        namespace = namespace or parsed.namespace or DEFAULT_NAMESPACE
        if not NAMESPACE.fullmatch(namespace):
            raise ConfigError(f"invalid namespace {namespace!r}: {NAMESPACE_RULE}")
        self.namespace = namespace
        self.archive = archive
        self.server_clock = server_clock
        self._prefix = "{" + namespace + "}"
        self.channel = f"{self._prefix}:due"
        self._db = Connection(parsed, timeout=lock_timeout, attempts=connect_attempts, sleep=sleep)
        self._versions: dict[str, tuple[int, Job]] = {}
        self._versions_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RedisStore({self.location!r}, namespace={self.namespace!r})"

    def environment(self) -> dict[str, str]:
        """The URL (its password with it: prefer ``$REDISCLI_AUTH``) and the key prefix."""
        return {"RETRYQ_QUEUE": self.address, "RETRYQ_NAMESPACE": self.namespace}

    def server_now(self) -> datetime | None:
        """The server's ``TIME``, which judges due times and leases (None when ``server_clock`` is off)."""
        if not self.server_clock:
            return None
        seconds, micros = self._db.run(lambda client: client.time())
        return from_ms(int(seconds) * 1000 + int(micros) // 1000)  # in milliseconds, as the scripts stamp claims

    def close(self) -> None:
        self._db.close()

    # -- talking to the server -----------------------------------------------------------------

    def _script(self, script: Any, args: Sequence[Any]) -> Any:
        return self._db.run(lambda _: script(keys=[self._prefix], args=[args[0], SCHEMA_VERSION, *args[1:]]))

    def _rows(self, mode: str, *values: str) -> list[tuple[str, str, str, str]]:
        flat = self._script(self._db.read, [mode, *values])
        return [(flat[i], flat[i + 1], flat[i + 2], flat[i + 3]) for i in range(0, len(flat), 4)]

    def _decode(self, row: Sequence[str]) -> tuple[Job | None, int, str]:
        """The job of a row, its version, and (when it is not a valid job) why not."""
        _, text, claim, meta = row[:4]
        version = 0
        try:
            version = int(json.loads(meta)["v"]) if meta else 0
            record = json.loads(text)
            if not isinstance(record, dict):
                return None, version, "not a JSON object"
            if claim:
                record = with_claim(record, json.loads(claim))
            return Job.model_validate(record), version, ""
        except ValidationError as error:
            return None, version, describe_validation_error(error)
        except (ValueError, KeyError, TypeError) as error:  # not JSON, or written by hand
            return None, version, first_line(error)

    def _jobs(self, rows: Sequence[Sequence[str]], *, remember: bool = False) -> list[tuple[Job, int]]:
        found = []
        for row in rows:
            job, version, _ = self._decode(row)
            if job is not None:
                found.append((job, version))
        if remember:
            self._remember(found)
        return found

    def _remember(self, jobs: Sequence[tuple[Job, int]]) -> None:
        with self._versions_lock:
            if len(self._versions) + len(jobs) > CACHE_SIZE:
                self._versions.clear()
            for job, version in jobs:
                self._versions[job.id] = (version, job)

    def _forget(self, ids: Sequence[str]) -> None:
        with self._versions_lock:
            for ident in ids:
                self._versions.pop(ident, None)

    def _current(self, ids: Sequence[str], *, cached: bool) -> dict[str, tuple[Job, int]]:
        """The valid jobs among ``ids`` with their versions: those this process wrote last, else read."""
        known: dict[str, tuple[Job, int]] = {}
        if cached:
            with self._versions_lock:
                for ident in ids:
                    if ident in self._versions:
                        version, job = self._versions[ident]
                        known[ident] = (job, version)
        missing = [ident for ident in ids if ident not in known]
        if missing:
            for job, version in self._jobs(self._rows("ids", *missing)):
                known[job.id] = (job, version)
        return known

    # -- reading -------------------------------------------------------------------------------

    def load(self, query: JobFilter | None = None) -> list[Job]:
        if query is not None and query.statuses is not None:
            rows = self._rows("status", *sorted(status.value for status in query.statuses)) if query.statuses else []
        else:
            rows = self._rows("all")
        jobs = [job for job, _ in self._jobs(rows)]
        return [job for job in jobs if query is None or query.matches(job)]

    def find(self, prefix: str, limit: int = 6) -> list[Job]:
        ids = [
            str(ident)
            for ident in self._db.run(
                lambda client: client.zrangebylex(f"{self._prefix}:ids", f"[{prefix}", f"[{prefix}\xff", 0, limit)
            )
        ]
        if not ids:
            return []
        jobs = {job.id: job for job, _ in self._jobs(self._rows("ids", *ids))}
        return [jobs[ident] for ident in ids if ident in jobs]

    def invalid(self) -> list[InvalidJob]:
        found = []
        for number, row in enumerate(self._rows("all"), 1):
            job, _, reason = self._decode(row)
            if job is None:
                found.append(InvalidJob(number, row[0], reason, self.location))
        return found

    def load_archive(self) -> Iterator[Job]:
        if not self.archive:
            return iter(())

        def read(client: Any) -> tuple[list[str], dict[str, str]]:
            with client.pipeline(transaction=True) as pipe:
                pipe.zrange(f"{self._prefix}:arcorder", 0, -1)
                pipe.hgetall(f"{self._prefix}:arc")
                order, records = pipe.execute()
            return order, records

        order, records = self._db.run(read)
        return iter([Job.model_validate_json(records[ident]) for ident in order if ident in records])

    def tally(self) -> Tally:
        return Tally.of(self.load(), self.load_archive())

    def state(self, keys: Collection[str] | None = None) -> dict[str, StateDoc]:
        return self._snapshot(checked_keys(keys)).docs

    def _snapshot(self, keys: Collection[str] | None, open_key: str = "") -> Snapshot:
        """The documents of ``keys`` (all: None) with their versions and the server's clock, in one script."""
        reply = self._script(self._db.read, arguments(keys, open_key))
        return snapshot(reply, keys, server_clock=self.server_clock)

    def check(self) -> list[Finding]:
        try:
            return findings(self._db, self._prefix)
        except (StoreUnavailable, ConfigError) as error:
            return [Finding("problem", f"queue: {error}")]

    def wait_for_work(self, seconds: float, stop: threading.Event) -> None:
        """Wait for a script's message that a job is due now, ``stop``, or ``seconds``."""
        self._db.wait(self.channel, seconds, stop)

    # -- writing -------------------------------------------------------------------------------

    def add(self, job: Job, on_open: Mutation, *, plan: Plan | None = None) -> tuple[Job, bool]:
        if plan is not None:
            return self._add_planned(job, on_open, plan)
        for _ in range(CONFLICT_RETRIES):
            reply = self._script(self._db.add, [job.id, job.to_json_line(), json.dumps(meta_of(job))])
            if reply[0] == "added":
                self._remember([(job, int(reply[1]))])
                return job, True
            decoded = self._jobs([reply[1]])
            if not decoded:
                raise OpenJobExists(f"the open job {reply[1][0]} of this key is not a valid job (see retryq doctor)")
            [(found, version)] = decoded
            if reply[0] == "exists" or found.id == job.id:  # our own add, whose reply an earlier try lost
                return found, True
            updated = on_open(found)
            if updated is None:
                raise ValueError("on_open must return a job")
            if updated is found:
                return found, False
            try:
                self._commit({found.id: (found, version, updated)})
            except _Conflict:
                continue
            return updated, False
        raise StoreUnavailable(f"{self.location}: too many concurrent changes to one job; try again")

    def insert(self, jobs: Sequence[Job], archived: Sequence[Job] = (), *, dry_run: bool = False) -> Insertion:
        payload = {
            "jobs": [{"id": job.id, "rec": job.to_json_line(), "meta": meta_of(job)} for job in jobs],
            "archived": [{"id": job.id, "rec": job.to_json_line()} for job in archived],
            "archive": int(self.archive),
            "dry": int(dry_run),
        }
        reply = self._script(self._db.insert, [json.dumps(payload)])
        if reply[0] == "open":
            job = next(job for job in jobs if job.id == reply[1])
            raise rules.key_conflict(job, [reply[2]]) or OpenJobExists(f"job {reply[2]} is already open for this key")
        return Insertion(tuple(reply[1]), tuple(reply[2]))

    def update(self, changes: Mapping[str, Mutation], *, plan: Plan | None = None) -> dict[str, Job | None]:
        if not changes and plan is None:
            return {}
        return self._change(changes, None, plan)[1]

    def claim(
        self, request: ClaimRequest, changes: Mapping[str, Mutation] | None = None, *, plan: Plan | None = None
    ) -> tuple[list[Job], dict[str, Job | None]]:
        return self._change(changes or {}, request, plan)

    def prune(self, rule: PruneRule, *, dry_run: bool = False) -> list[Job]:
        finished = [status.value for status in JobStatus if status.is_finished]
        for _ in range(CONFLICT_RETRIES):
            found = self._jobs(self._rows("status", *finished))
            doomed = [
                (job, version) for job, version in found if rule.expired(job.workflow, job.status, rules.ended_at(job))
            ]
            if dry_run or not doomed:
                return [job for job, _ in doomed]
            try:
                self._commit({job.id: (job, version, None) for job, version in doomed})
            except _Conflict:
                continue
            return [job for job, _ in doomed]
        raise StoreUnavailable(f"{self.location}: too many concurrent changes while pruning; try again")

    # -- the parts of a change -----------------------------------------------------------------

    def _change(
        self, changes: Mapping[str, Mutation], request: ClaimRequest | None, plan: Plan | None = None
    ) -> tuple[list[Job], dict[str, Job | None]]:
        """Apply ``changes`` (and claim, with ``request``) in one script; again from a fresh read on a conflict.

        With ``plan``, its documents are read first, and the commit checks that neither they nor the jobs
        it saw changed since, and writes its decision with the jobs.
        """
        claim = None if request is None else claim_arguments(request, server_clock=self.server_clock)
        token = None if claim is None else uuid.uuid4().hex  # the same for every try: a lost reply is replayed
        for attempt in range(CONFLICT_RETRIES):
            read = None if plan is None else self._snapshot(plan.keys)
            current = self._current(list(changes), cached=attempt == 0) if changes else {}
            results: dict[str, Job | None] = {}
            writes: dict[str, Write] = {}
            for ident, (job, version) in current.items():
                new = changes[ident](job)
                results[ident] = new
                if new is not job:
                    writes[ident] = (job, version, new)
            state, checks = None, {}
            if plan is not None and read is not None:
                decision = decide(plan, read.docs, read.now, results)
                if decision.abort:
                    return [], {}
                seen = chain(decision, writes, current, results, self._fetch)
                checks = {ident: version for ident, (_, version) in seen.items() if ident not in writes}
                if request is not None:
                    claim = claim_arguments(
                        replace(request, slots=capped(request.slots, decision.slots)), server_clock=self.server_clock
                    )
                state = expectations(read, decision) if decision.texts or writes or claim else None
            if not writes and claim is None and state is None:
                return [], results
            try:
                claimed = self._commit(writes, claim, token, state=state, checks=checks)
            except _Conflict:
                continue
            return claimed, results
        raise StoreUnavailable(f"{self.location}: too many concurrent changes to the same jobs; try again")

    def _add_planned(self, job: Job, on_open: Mutation, plan: Plan) -> tuple[Job, bool]:
        """:meth:`add` with a plan: the key's open job read with the documents, then one commit of it all."""
        for _ in range(CONFLICT_RETRIES):
            read = self._snapshot(plan.keys, " ".join(job.key))
            holder, version = None, 0
            if read.holder:
                decoded = self._jobs([read.holder])
                if not decoded:
                    raise OpenJobExists(
                        f"the open job {read.holder[0]} of this key is not a valid job (see retryq doctor)"
                    )
                [(holder, version)] = decoded
            outcome, created = job, True
            writes: dict[str, Write] = {job.id: (job, 0, job)}
            if holder is not None:
                updated = holder if holder.id == job.id else on_open(holder)  # ours: an earlier try's reply was lost
                if updated is None:
                    raise ValueError("on_open must return a job")
                outcome, created = updated, holder.id == job.id
                writes = {} if updated is holder else {holder.id: (holder, version, updated)}
            decision = decide(plan, read.docs, read.now, {outcome.id: outcome})
            if decision.abort:
                return (holder or job, created and holder is not None)
            results: dict[str, Job | None] = {outcome.id: outcome}
            seen = chain(
                decision, writes, {} if holder is None else {holder.id: (holder, version)}, results, self._fetch
            )
            checks = {ident: number for ident, (_, number) in seen.items() if ident not in writes}
            try:
                self._commit(writes, state=expectations(read, decision), checks=checks)
            except _Conflict:
                continue
            except OpenJobExists as error:
                if holder is None and error.job_ids[:1] == (job.id,):
                    continue  # another add of the key came first: read it
                raise
            return results.get(outcome.id) or outcome, created
        raise StoreUnavailable(f"{self.location}: too many concurrent changes to one job; try again")

    def _fetch(self, ids: list[str]) -> dict[str, tuple[Job, int]]:
        return self._current(ids, cached=False)

    def _commit(
        self,
        writes: Mapping[str, Write],
        claim: dict[str, Any] | None = None,
        token: str | None = None,
        *,
        state: dict[str, Any] | None = None,
        checks: Mapping[str, int] | None = None,
    ) -> list[Job]:
        """Write ``writes`` (id → (job as read, its version, new job or None to remove)) and claim; with
        ``state``, check the documents' versions and write them; ``checks``: jobs whose versions must not have moved."""
        ops: list[dict[str, Any]] = [
            {"id": ident, "v": version, "check": True} for ident, version in (checks or {}).items()
        ]
        for ident, (old, version, new) in writes.items():
            if new is None:
                ops.append({"id": ident, "v": version, "del": True, "arc": old.to_json_line()})
            else:
                ops.append({"id": ident, "v": version, "rec": new.to_json_line(), "meta": meta_of(new)})
        payload: dict[str, Any] = {"ops": ops, "archive": int(self.archive)}
        if claim is not None:
            payload["claim"] = claim
        if state is not None:
            payload["state"] = state
        if token is not None:
            payload["token"] = token
        reply = self._script(self._db.commit, [json.dumps(payload)])
        if reply[0] == "conflict":
            self._forget(list(writes))
            raise _Conflict(reply[1])
        if reply[0] == "open":
            job = writes[reply[1]][2]
            assert job is not None
            raise rules.key_conflict(job, [reply[2]]) or OpenJobExists(f"job {reply[2]} is already open for this key")
        # A claim sent again after its reply was lost returns what it claimed, but no versions: the
        # jobs it wrote then are read afresh next time.
        versions = dict(zip(reply[1][::2], reply[1][1::2], strict=True))
        self._forget([ident for ident in writes if ident not in versions])
        self._remember(
            [(new, int(versions[ident])) for ident, (_, _, new) in writes.items() if ident in versions and new]
        )
        claimed = self._jobs(reply[2], remember=True)  # in the order the script took them (rules.claim_order)
        return [job for job, _ in claimed]
