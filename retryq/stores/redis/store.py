"""The Redis store: one queue shared by several hosts, every change one Lua script on the server.

A job is its record (as the JSON file would hold it) and a few index entries the scripts keep (see
:mod:`.scripts`). A claim is one script call, whatever the batch: it picks the due jobs of each
workflow up to its free slots (and its global cap), by the server's clock, and marks them claimed.
Every other change is a pure mutation applied here to the job as read, then written by a script
that first checks that no job changed since (its version): if one did, nothing is written and the
change is made again on a fresh read. The versions of the jobs this process wrote last are kept, so
that writing the result of a run it claimed takes one round trip, not two.
"""

from __future__ import annotations

__all__ = ["DEFAULT_NAMESPACE", "RedisStore"]

import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import ValidationError

from ...record import rules
from ...record.errors import ConfigError, OpenJobExists, StoreUnavailable
from ...record.limits import LOCK_TIMEOUT
from ...record.models import Job, JobStatus, describe_validation_error
from ...record.timeutil import format_utc
from ..base import ClaimRequest, Finding, Insertion, InvalidJob, JobFilter, Mutation, PruneRule, Tally
from .address import NAMESPACE, NAMESPACE_RULE, parse
from .checks import ClockWatch, findings
from .connection import Connection, first_line
from .scripts import SCHEMA_VERSION

log = logging.getLogger("retryq")

DEFAULT_NAMESPACE = "retryq"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)
#: How many times a change is made again when another process changed one of its jobs meanwhile.
CONFLICT_RETRIES = 100
#: How many jobs' versions are remembered between writes.
CACHE_SIZE = 10_000
# The claim's fields, laid over the record on reading: (record key, overlay key).
_OVERLAY = (("runId", "r"), ("startedAt", "s"), ("leaseUntil", "l"))


def to_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _MS


def from_ms(ms: int | str) -> datetime:
    return _EPOCH + timedelta(milliseconds=int(ms))


def due_score(job: Job, priority_band: int = 0) -> str:
    """Where a pending job sorts among its workflow's: its band first, then its due time (see :mod:`.scripts`)."""
    return str(priority_band * 2**43 + to_ms(job.execute_at))


def meta_of(job: Job) -> dict[str, str]:
    """What the scripts index a job by (its version is theirs to keep)."""
    return {"s": job.status.value, "w": job.workflow, "k": " ".join(job.key), "e": due_score(job)}


class _Conflict(Exception):
    """A job changed between the read and the write: read again, apply again."""


class RedisStore:
    """Jobs in Redis, safe across hosts, processes and restarts of the server (as far as its persistence goes).

    ``url`` is ``redis://[[user]:password@]host[:port][/db]``, ``rediss://…`` (TLS) or
    ``unix:///path/redis.sock?db=N``; without a password in it, ``$REDISCLI_AUTH`` gives one. The
    keys start with ``{namespace}:`` (the option, else the URL's ``?namespace=``, else ``retryq``), so
    that several queues share one server.
    ``server_clock`` (the default) judges due times and lease ends by the server's ``TIME``; off, by
    the claimant's ``now`` (tests that freeze time). A host whose clock is more than ``max_skew``
    seconds off the server's says so once.
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
        max_skew: float = 2.0,
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
        self._clock = ClockWatch(self.location, max_skew)
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
                record = _with_claim(record, json.loads(claim))
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

    def check(self) -> list[Finding]:
        try:
            return findings(self._db, self._prefix, self._clock)
        except (StoreUnavailable, ConfigError) as error:
            return [Finding("problem", f"queue: {error}")]

    def wait_for_work(self, seconds: float, stop: threading.Event) -> None:
        """Wait for a script's message that a job is due now, ``stop``, or ``seconds``."""
        self._db.wait(self.channel, seconds, stop)

    # -- writing -------------------------------------------------------------------------------

    def add(self, job: Job, on_open: Mutation) -> tuple[Job, bool]:
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

    def update(self, changes: Mapping[str, Mutation]) -> dict[str, Job | None]:
        if not changes:
            return {}
        return self._change(changes, None)[1]

    def claim(
        self, request: ClaimRequest, changes: Mapping[str, Mutation] | None = None
    ) -> tuple[list[Job], dict[str, Job | None]]:
        self._clock.watch(self._db)
        return self._change(changes or {}, request)

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
        self, changes: Mapping[str, Mutation], request: ClaimRequest | None
    ) -> tuple[list[Job], dict[str, Job | None]]:
        """Apply ``changes`` (and claim, with ``request``) in one script; again from a fresh read on a conflict."""
        claim = None if request is None else self._claim_arguments(request)
        token = None if claim is None else uuid.uuid4().hex  # the same for every try: a lost reply is replayed
        for attempt in range(CONFLICT_RETRIES):
            current = self._current(list(changes), cached=attempt == 0) if changes else {}
            results: dict[str, Job | None] = {}
            writes: dict[str, tuple[Job, int, Job | None]] = {}
            for ident, (job, version) in current.items():
                new = changes[ident](job)
                results[ident] = new
                if new is not job:
                    writes[ident] = (job, version, new)
            if not writes and claim is None:
                return [], results
            try:
                claimed = self._commit(writes, claim, token)
            except _Conflict:
                continue
            return claimed, results
        raise StoreUnavailable(f"{self.location}: too many concurrent changes to the same jobs; try again")

    def _claim_arguments(self, request: ClaimRequest) -> dict[str, Any] | None:
        claimant = request.claimant
        workflows = [
            {
                "name": name,
                "free": free,
                "cap": request.caps.get(name, -1),
                "lease": claimant.leases[name] // _MS,
                "max": claimant.max_attempts[name],
            }
            for name, free in request.slots.items()
            if free > 0
        ]
        if request.limit <= 0 or not workflows:
            return None
        arguments = {
            "limit": request.limit,
            "ahead": (request.due_by - claimant.now) // _MS,
            "workflows": workflows,
            "exclude": list(request.exclude),
            "owner": claimant.owner.to_json_line(),
            "runs": [uuid.uuid4().hex for _ in range(request.limit)],
        }
        if not self.server_clock:
            arguments["now"] = to_ms(claimant.now)
        return arguments

    def _commit(
        self,
        writes: Mapping[str, tuple[Job, int, Job | None]],
        claim: dict[str, Any] | None = None,
        token: str | None = None,
    ) -> list[Job]:
        """Write ``writes`` (id → (job as read, its version, new job or None to remove)) and claim."""
        ops: list[dict[str, Any]] = []
        for ident, (old, version, new) in writes.items():
            if new is None:
                ops.append({"id": ident, "v": version, "del": True, "arc": old.to_json_line()})
            else:
                ops.append({"id": ident, "v": version, "rec": new.to_json_line(), "meta": meta_of(new)})
        payload: dict[str, Any] = {"ops": ops, "archive": int(self.archive)}
        if claim is not None:
            payload["claim"] = claim
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
        claimed = self._jobs(reply[2], remember=True)
        claimed.sort(key=lambda pair: pair[0].execute_at)
        return [job for job, _ in claimed]


def _with_claim(record: dict[str, Any], claim: Mapping[str, Any]) -> dict[str, Any]:
    """The record with the claim laid over it, as :func:`retryq.record.lifecycle.claim` writes it."""
    record = dict(record)
    values: dict[str, Any] = {
        "status": JobStatus.RUNNING.value,
        "owner": json.loads(claim["o"]),
        "runId": claim["r"],
        "startedAt": format_utc(from_ms(claim["s"])),
        "finishedAt": None,
        "leaseUntil": format_utc(from_ms(claim["l"])),
        "workflowPid": None,
        "followUpMinutes": None,
        "maxAttempts": record.get("maxAttempts") or claim["m"],
    }
    for key, value in values.items():
        if key in record or value is not None:
            record[key] = value
    return record
