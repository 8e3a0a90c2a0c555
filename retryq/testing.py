"""The contract every store passes, as a pytest class that a backend's tests subclass with one fixture.

The module is long because it is the whole contract in one class, as huey's ``StorageTests`` is: a
backend proves itself by subclassing it, never by editing a list of backends::

    from retryq.testing import StoreContract

    class TestMyStore(StoreContract):
        @pytest.fixture
        def new_store(self, tmp_path):
            return lambda archive=True: MyStore(tmp_path / "jobs", archive=archive)

``new_store(archive=...)`` returns a new, empty store each time it is called (the contract closes
them). A backend on a server subclasses :class:`ServerStoreContract` and adds the fixtures that
cut its connections and name a server that is down. Beside the operations themselves, the
contract runs the store and :mod:`retryq.record.rules` on the same generated queues and checks
that they claim the same jobs in the same order: a backend that decides in its own language
(SQL, Lua) is held to the one written definition. The state documents a store keeps beside its
jobs, and the plans that change them in the same step as jobs, are part of it (:class:`StateContract`,
which :class:`StoreContract` includes): racing handles, aborts, slots, all or nothing; so are the
recurring jobs built on them (:class:`RecurringContract`: one job per occurrence, however many handles
look at once), and the claim order of priorities and ``max_wait``.

pytest is imported here, and only here: it is a test dependency, and nothing in retryq imports
this module.
"""

from __future__ import annotations

__all__ = ["IncidentContract", "RecurringContract", "ServerStoreContract", "StateContract", "StoreContract"]

import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from .queue import RetryQueue
from .record import rules
from .record.breakerstate import BreakerSettings, Incident, WorkflowState, state_key
from .record.errors import ExitCode, InvalidInput, OpenJobExists, StoreUnavailable
from .record.models import Job, JobStatus, Owner
from .running.processor import Processor
from .running.runner import RunResult, Supervisor
from .running.summary import ProcessReport
from .settings.config import Config, WorkflowSettings
from .stores import (
    Claimant,
    ClaimRequest,
    Insertion,
    JobFilter,
    Plan,
    PlanResult,
    PruneRule,
    StateDoc,
    Store,
    Tally,
    open_store,
)

T0 = datetime(2025, 12, 19, 10, 0, tzinfo=timezone.utc)
OWNER = Owner(host="contract", pid=1)
LEASE = timedelta(minutes=6)
NewStore = Callable[..., Store]


def store_time(store: Store, claimant_time: datetime) -> datetime:
    """The time a claim is judged by: the store's own clock where it has one, else the claimant's."""
    return store.server_now() or claimant_time


def job(**fields: Any) -> Job:
    """A pending job for balthazar 2025-12-19, due an hour after :data:`T0`; any field may be given."""
    values: dict[str, Any] = {
        "id": "job1",
        "client_id": "balthazar",
        "date": "2025-12-19",
        "scheduled_at": T0,
        "execute_at": T0 + timedelta(hours=1),
        "delay_minutes": 60,
        **fields,
    }
    return Job(**values)


def unchanged(job: Job) -> Job:
    return job


def running(job: Job) -> Job:
    return job.model_copy(update={"status": JobStatus.RUNNING, "run_id": "r1"})


def finished(status: JobStatus) -> Callable[[Job], Job]:
    return lambda job: job.model_copy(update={"status": status, "finished_at": T0})


def claim_request(due: timedelta, limit: int = 10, *, caps: dict[str, int] | None = None, **slots: int) -> ClaimRequest:
    chosen = slots or {"default": limit}
    claimant = Claimant(
        owner=OWNER, now=T0 + due, leases=dict.fromkeys(chosen, LEASE), max_attempts=dict.fromkeys(chosen, 4)
    )
    return ClaimRequest(due_by=T0 + due, limit=limit, claimant=claimant, slots=chosen, caps=caps or {})


def run_together(count: int, work: Callable[[int], None], *, timeout: float = 120) -> None:
    """Run ``work(0)`` … ``work(count - 1)`` in threads that start at once; re-raise the first error."""
    start = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(number: int) -> None:
        try:
            start.wait(timeout=timeout)
            work(number)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(number,)) for number in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a thread is still running"
    if errors:
        raise errors[0]


# -- state documents and the plans that change them ------------------------------------------------

Seen = dict[str, Any]


def writing(**docs: StateDoc | None) -> Plan:
    """A plan that writes ``docs`` (None deletes), whatever it finds."""
    return Plan(list(docs), lambda found, now, jobs: PlanResult(writes=docs))


def counting(key: str, calls: list[int]) -> Plan:
    """A plan that adds one to ``docs[key]["n"]``, and notes each call's new value in ``calls``."""

    def decide(docs: Mapping[str, StateDoc], now: datetime | None, jobs: Mapping[str, Job | None]) -> PlanResult:
        calls.append(docs.get(key, {}).get("n", 0) + 1)
        return PlanResult(writes={key: {"n": calls[-1]}})

    return Plan([key], decide)


def recording(seen: Seen, result: PlanResult | None = None, keys: list[str] | None = None) -> Plan:
    """A plan that records what it was given (its last call) and returns ``result``."""

    def decide(docs: Mapping[str, StateDoc], now: datetime | None, jobs: Mapping[str, Job | None]) -> PlanResult:
        seen.update(docs=dict(docs), now=now, jobs=dict(jobs))
        return result or PlanResult()

    return Plan(keys, decide)


ABORT = PlanResult(abort=True)


class StateContract:
    """State documents beside the jobs, and plans: part of :class:`StoreContract` (same fixtures)."""

    def test_state_starts_empty(self, store: Store) -> None:
        assert store.state() == {}
        assert store.state(["schedule:nightly"]) == {}

    def test_state_round_trip(self, store: Store, reopen: Callable[[Store], Store]) -> None:
        nightly: StateDoc = {
            "last": "2025-12-19T03:00:00Z",
            "values": [1, 2.5, None, True, "é ☃"],
            "nested": {"a": {"b": []}},
        }
        assert store.update({}, plan=writing(**{"schedule:nightly": nightly, "workflow:ftp": {"paused": False}})) == {}
        assert store.state() == {"schedule:nightly": nightly, "workflow:ftp": {"paused": False}}
        assert store.state(["workflow:ftp", "missing"]) == {"workflow:ftp": {"paused": False}}
        assert reopen(store).state(["schedule:nightly"]) == {"schedule:nightly": nightly}  # shared by every handle
        store.update({}, plan=writing(**{"workflow:ftp": None, "never:there": None}))
        assert store.state() == {"schedule:nightly": nightly}
        assert store.load() == []  # state is not jobs

    def test_a_plan_gets_copies_of_the_documents_of_its_keys(self, store: Store) -> None:
        store.update({}, plan=writing(a={"n": 1}, b={"n": 2}))
        seen: Seen = {}

        def meddle(docs: Mapping[str, StateDoc], now: datetime | None, jobs: Mapping[str, Job | None]) -> PlanResult:
            seen["docs"] = {key: dict(doc) for key, doc in docs.items()}
            for doc in docs.values():
                doc["n"] = 99  # a copy: the store keeps what it holds
            return PlanResult()

        store.update({}, plan=Plan(["a", "missing"], meddle))
        assert seen["docs"] == {"a": {"n": 1}}
        store.update({}, plan=Plan(None, meddle))
        assert seen["docs"] == {"a": {"n": 1}, "b": {"n": 2}}
        assert store.state() == {"a": {"n": 1}, "b": {"n": 2}}

    def test_a_plans_writes_and_mutations_land_with_the_job_changes(self, store: Store) -> None:
        store.add(job(id="a"), unchanged)
        store.add(job(id="b", client_id="other"), unchanged)
        seen: Seen = {}
        plan = recording(
            seen, PlanResult(writes={"k": {"v": 1}}, mutations={"b": finished(JobStatus.CANCELLED)}), keys=["k"]
        )
        results = store.update({"a": running, "missing": running}, plan=plan)
        assert {ident: each.status for ident, each in seen["jobs"].items()} == {"a": JobStatus.RUNNING}
        assert {ident: each and each.status for ident, each in results.items()} == {
            "a": JobStatus.RUNNING,
            "b": JobStatus.CANCELLED,
        }
        assert [each.status for each in store.load()] == [JobStatus.RUNNING, JobStatus.CANCELLED]
        assert store.state() == {"k": {"v": 1}}

    def test_a_plans_mutation_comes_after_the_callers_change_of_the_same_job(self, store: Store) -> None:
        store.add(job(id="a"), unchanged)
        marked = PlanResult(mutations={"a": lambda each: each.model_copy(update={"follow_up_minutes": 7})})
        results = store.update({"a": running}, plan=Plan([], lambda docs, now, jobs: marked))
        [stored] = store.load()
        assert (stored.status, stored.follow_up_minutes) == (JobStatus.RUNNING, 7)
        assert results == {"a": stored}

    def test_a_plans_mutation_may_remove_a_job(self, store: Store) -> None:
        store.add(job(id="a"), unchanged)
        store.add(job(id="b", client_id="other"), unchanged)
        gone = PlanResult(writes={"k": {}}, mutations={"b": lambda each: None})
        assert store.update({}, plan=Plan(["k"], lambda docs, now, jobs: gone)) == {"b": None}
        assert [each.id for each in store.load()] == ["a"]
        assert [each.id for each in store.load_archive()] == ["b"]

    def test_an_open_job_conflict_writes_no_state(self, store: Store) -> None:
        store.add(job(id="a"), unchanged)
        store.update({"a": finished(JobStatus.FAILED)})
        store.add(job(id="b"), unchanged)

        def reopen(each: Job) -> Job:
            return each.model_copy(update={"status": JobStatus.PENDING})

        with pytest.raises(OpenJobExists):
            store.update({"a": reopen}, plan=writing(k={"v": 1}))
        with pytest.raises(OpenJobExists):  # a conflict of the plan's own mutation: the same
            store.update({}, plan=Plan(["k"], lambda docs, now, jobs: PlanResult({"k": {}}, {"a": reopen})))
        assert store.state() == {}
        assert [each.status for each in store.load()] == [JobStatus.FAILED, JobStatus.PENDING]

    def test_a_plan_that_aborts_writes_nothing(self, store: Store) -> None:
        store.add(job(id="a", execute_at=T0), unchanged)
        aborting = Plan(["k"], lambda docs, now, jobs: PlanResult(writes={"k": {}}, abort=True))
        assert store.update({"a": running}, plan=aborting) == {}
        assert store.claim(claim_request(timedelta(hours=1)), {"a": finished(JobStatus.CANCELLED)}, plan=aborting) == (
            [],
            {},
        )
        assert [each.status for each in store.load()] == [JobStatus.PENDING]
        assert store.state() == {}

    def test_an_add_whose_plan_aborts_adds_nothing(self, store: Store) -> None:
        aborting = Plan([], lambda docs, now, jobs: ABORT)
        assert store.add(job(id="a"), unchanged, plan=aborting) == (job(id="a"), False)
        assert store.load() == []
        store.add(job(id="a"), unchanged)
        marked = store.add(job(id="b"), lambda each: each.model_copy(update={"follow_up_minutes": 5}), plan=aborting)
        assert marked == (job(id="a"), False)  # the open job as it is: on_open's change is not written either
        assert store.load() == [job(id="a")]

    def test_an_adds_plan_sees_what_the_add_did(self, store: Store) -> None:
        seen: Seen = {}
        plan = recording(seen, PlanResult(writes={"schedule:s": {"last": "occ1"}}), keys=["schedule:s"])
        assert store.add(job(id="a"), unchanged, plan=plan) == (job(id="a"), True)
        assert seen["jobs"] == {"a": job(id="a")}
        assert store.state() == {"schedule:s": {"last": "occ1"}}
        marked, created = store.add(
            job(id="b"), lambda each: each.model_copy(update={"follow_up_minutes": 5}), plan=recording(seen)
        )
        assert not created
        assert marked.follow_up_minutes == 5
        assert seen["jobs"] == {"a": marked}  # the open job, as on_open left it
        assert seen["docs"] == {"schedule:s": {"last": "occ1"}}
        assert store.load() == [marked]

    def test_slots_from_a_plan_hold_a_workflow_or_let_one_through(self, store: Store) -> None:
        for n in range(3):
            store.add(job(id=f"d{n}", client_id=f"d{n}", execute_at=T0), unchanged)
            store.add(job(id=f"f{n}", client_id=f"f{n}", workflow="ftp", execute_at=T0), unchanged)

        def claim(slots: dict[str, int]) -> list[str]:
            plan = Plan([], lambda docs, now, jobs: PlanResult(slots=slots))
            claimed, _ = store.claim(claim_request(timedelta(hours=1), 10, default=2, ftp=5), plan=plan)
            return sorted(each.id for each in claimed)

        assert claim({"ftp": 0, "unknown": 3}) == ["d0", "d1"]  # ftp held; a workflow not claimed is ignored
        assert claim({"ftp": 1}) == ["d2", "f0"]
        assert claim({"ftp": 9}) == ["f1", "f2"]  # a cap above the claimant's slots changes nothing

    def test_two_hosts_never_both_let_a_probe_through(self, store: Store, reopen: Callable[[Store], Store]) -> None:
        for n in range(6):
            store.add(job(id=f"f{n}", client_id=f"f{n}", workflow="ftp", execute_at=T0), unchanged)
        handles = [reopen(store) for _ in range(4)]

        def probe_once(
            docs: Mapping[str, StateDoc], now: datetime | None, jobs: Mapping[str, Job | None]
        ) -> PlanResult:
            if "probe" in docs.get("breaker:ftp", {}):
                return PlanResult(slots={"ftp": 0})
            return PlanResult(writes={"breaker:ftp": {"probe": True}}, slots={"ftp": 1})

        taken: list[str] = []

        def claim(number: int) -> None:
            for _ in range(3):
                claimed, _ = handles[number].claim(
                    claim_request(timedelta(hours=1), 5, ftp=5), plan=Plan(["breaker:ftp"], probe_once)
                )
                taken.extend(each.id for each in claimed)

        run_together(len(handles), claim)
        assert len(taken) == 1
        assert store.state() == {"breaker:ftp": {"probe": True}}

    def test_racing_plans_on_one_key_lose_no_change(self, store: Store, reopen: Callable[[Store], Store]) -> None:
        handles = [reopen(store), reopen(store)]
        applied: list[list[int]] = [[], []]

        def count(number: int) -> None:
            for _ in range(50):
                calls: list[int] = []
                handles[number].update({}, plan=counting("counter", calls))
                applied[number].append(calls[-1])  # the last call is the one applied

        run_together(len(handles), count)
        assert store.state() == {"counter": {"n": 100}}
        assert sorted(applied[0] + applied[1]) == list(range(1, 101))

    def test_racing_plans_over_overlapping_keys_lose_nothing(
        self, store: Store, reopen: Callable[[Store], Store]
    ) -> None:
        """Plans over several keys, named in any order, and over every document: no change lost, no deadlock."""
        handles = [reopen(store) for _ in range(3)]
        rng = random.Random(20251222)  # noqa: S311  (generated test data, the same on every run)
        subsets = [[rng.sample(["a", "b", "c"], k=rng.randint(1, 3)) for _ in range(15)] for _ in handles]
        for ops in subsets:
            ops[rng.randrange(len(ops))] = []  # one plan over every document, per handle
        expected = Counter(key for ops in subsets for keys in ops for key in (keys or ["a", "b", "c"]))

        def bump(keys: list[str]) -> Plan:
            def decide(
                docs: Mapping[str, StateDoc], now: datetime | None, jobs: Mapping[str, Job | None]
            ) -> PlanResult:
                names = keys or ["a", "b", "c"]
                return PlanResult(writes={key: {"n": docs.get(key, {}).get("n", 0) + 1} for key in names})

            return Plan(keys or None, decide)

        def work(number: int) -> None:
            for keys in subsets[number]:
                handles[number].update({}, plan=bump(keys))

        run_together(len(handles), work)
        assert store.state() == {key: {"n": count} for key, count in expected.items()}

    def test_racing_adds_record_one_occurrence_once(self, store: Store, reopen: Callable[[Store], Store]) -> None:
        handles = [reopen(store) for _ in range(6)]

        def once(docs: Mapping[str, StateDoc], now: datetime | None, jobs: Mapping[str, Job | None]) -> PlanResult:
            if docs.get("schedule:nightly", {}).get("last") == "2025-12-19T03:00":
                return ABORT
            [added] = jobs
            return PlanResult(writes={"schedule:nightly": {"last": "2025-12-19T03:00", "job": added}})

        created: list[bool] = []

        def add(number: int) -> None:
            occurrence = job(id=f"occ{number}", client_id=f"host{number}")  # keys differ: only the plan dedupes
            created.append(handles[number].add(occurrence, unchanged, plan=Plan(["schedule:nightly"], once))[1])

        run_together(len(handles), add)
        assert sorted(created) == [False] * 5 + [True]
        [winner] = store.load()
        assert store.state() == {"schedule:nightly": {"last": "2025-12-19T03:00", "job": winner.id}}

    def test_a_plan_sees_the_stores_clock_where_it_has_one(self, store: Store) -> None:
        seen: Seen = {}
        before = store.server_now()
        store.update({}, plan=recording(seen))
        after = store.server_now()
        if before is None:
            assert seen["now"] is None
            return
        assert after is not None
        assert before <= seen["now"] <= after
        assert seen["now"].utcoffset() == timedelta(0)

    @pytest.mark.parametrize(
        "bad",
        [{"k": ("a", "tuple")}, {"k": float("nan")}, {"k": {1, 2}}, {1: "a key that is not a string"}, ["a list"]],
    )
    def test_a_plan_that_writes_what_is_not_json_fails_and_writes_nothing(self, store: Store, bad: object) -> None:
        store.add(job(id="a"), unchanged)
        plan = Plan(["k"], lambda docs, now, jobs: PlanResult(writes={"k": bad}))  # type: ignore[dict-item]
        with pytest.raises(ValueError, match="state document 'k'"):
            store.update({"a": running}, plan=plan)
        assert [each.status for each in store.load()] == [JobStatus.PENDING]
        assert store.state() == {}

    def test_a_plan_writes_only_the_keys_it_names(self, store: Store) -> None:
        plan = Plan(["mine"], lambda docs, now, jobs: PlanResult(writes={"mine": {}, "theirs": {}}))
        with pytest.raises(ValueError, match="'theirs', which is not among its keys"):
            store.update({}, plan=plan)
        assert store.state() == {}
        with pytest.raises(InvalidInput, match="invalid state key"):
            Plan(["a\nb"], lambda docs, now, jobs: PlanResult())
        with pytest.raises(InvalidInput, match="invalid state key"):
            store.state([""])
        with pytest.raises(TypeError, match="not one string"):
            Plan("mine", lambda docs, now, jobs: PlanResult())


class IncidentContract:
    """Upstream incidents and pauses, shared through the store: part of :class:`StoreContract` (same fixtures).

    Processors run with scripted runs (nothing is executed): every run of a held-up upstream exits 75.
    """

    def test_two_processes_see_one_incident(self, store: Store, reopen: Callable[[Store], Store]) -> None:
        for n in range(4):
            store.add(job(id=f"j{n}", client_id=f"c{n}", execute_at=T0 + timedelta(seconds=n)), unchanged)
        config = breaker_config(failures=2)
        first = run_processor(store, config, exit_code=75)
        assert (first.processed, first.given_back) == (2, 2)
        other = reopen(store)
        [incident] = RetryQueue(other, config=config).incidents()
        assert (incident.workflow, incident.failures, incident.held, incident.given_back) == ("default", 2, 4, 2)
        second = run_processor(other, config, exit_code=0)
        assert (second.processed, second.held) == (0, {"default": 4})  # held there too: no probe due yet
        assert [each.attempt for each in other.load()] == [1, 1, 1, 1]  # and no attempt was counted

    def test_a_pause_by_one_host_holds_every_host(self, store: Store, reopen: Callable[[Store], Store]) -> None:
        store.add(job(id="ftp", client_id="f", workflow="ftp", execute_at=T0), unchanged)
        store.add(job(id="other", client_id="o", execute_at=T0), unchanged)
        config = breaker_config(failures=2, ftp=None)
        RetryQueue(store, config=config).pause("ftp", reason="maintenance")
        other = reopen(store)
        report = run_processor(other, config, exit_code=0)
        assert (report.succeeded, report.held) == (1, {"ftp": 1})
        assert {each.id: each.status for each in store.load()} == {
            "ftp": JobStatus.PENDING,
            "other": JobStatus.COMPLETED,
        }
        lifted, closed = RetryQueue(other, config=config).resume("ftp")
        assert (lifted is not None, closed) == (True, None)
        assert run_processor(store, config, exit_code=0).succeeded == 1

    def test_one_probe_at_a_time_across_hosts(self, store: Store, tmp_path: Any) -> None:
        """Four processes (real ones, each with its own handle) run at once while a probe is due: one probes."""
        variables = store.environment()
        if not variables:
            pytest.skip("this store lives in one process")
        for n in range(6):
            store.add(job(id=f"j{n}", client_id=f"c{n}", execute_at=T0 + timedelta(seconds=n)), unchanged)
        opened = (store.server_now() or datetime.now(timezone.utc)) - timedelta(hours=1)
        held = WorkflowState(incident=Incident("default-1", "default", opened, 5, {"exit 75": 5}))
        store.update(
            {},
            plan=Plan(
                [state_key("default")], lambda docs, now, jobs: PlanResult({state_key("default"): held.to_doc()})
            ),
        )
        started = tmp_path / "started"
        go = tmp_path / "go"
        children = [probe_host(variables, started, go) for _ in range(4)]
        go.touch()
        for child in children:
            assert child.wait(timeout=120) == 0, child.stderr.read() if child.stderr else ""
        assert started.read_text().splitlines() == ["probe"]  # one run in all, whoever got there first
        [incident] = RetryQueue(store, config=breaker_config()).incidents()
        assert (incident.probes, incident.given_back, incident.held) == (1, 1, 6)
        assert [each.status for each in store.load()] == [JobStatus.PENDING] * 6


class RecurringContract:
    """Recurring jobs: the step that enqueues a schedule's occurrences, on this store, from several handles at once.

    Part of :class:`StoreContract` (same fixtures). The step judges time by the store's clock where it has one.
    """

    def test_handles_at_one_tick_enqueue_one_job_per_occurrence(
        self, store: Store, reopen: Callable[[Store], Store]
    ) -> None:
        from .running.recurring import Record, Recurring
        from .settings.config import Config, Schedule

        schedule = Schedule("every-minute", "* * * * *", tz="UTC")
        config = Config(schedules={schedule.name: schedule})
        now = store_time(store, datetime.now(timezone.utc))
        seen = Record(schedule.cron, "UTC", since=now - timedelta(minutes=10))  # seen ten minutes ago
        store.update({}, plan=writing(**{schedule.state_key: seen.to_doc()}))
        handles = [reopen(store) for _ in range(6)]
        enqueued: list[Job] = []
        steps = [Recurring(handle, config, clock=lambda: datetime.now(timezone.utc)) for handle in handles]
        run_together(len(steps), lambda number: enqueued.extend(steps[number].enqueue()))
        [job] = store.load()
        assert [each.id for each in enqueued] == [job.id]
        record = Record.of(store.state()[schedule.state_key])
        assert record is not None
        assert record.job == job.id  # recorded with its job: once, whichever handle got there first
        assert record.last is not None
        assert job.date == record.last.date().isoformat()
        assert (job.client_id, job.workflow) == ("every-minute", "default")

    def test_a_step_that_decided_from_a_record_moved_on_since_writes_nothing(
        self, store: Store, reopen: Callable[[Store], Store]
    ) -> None:
        """A slower process read the record before a faster one enqueued (and ran) the occurrence: the slower
        one's plan finds the record changed, and adds nothing, though the occurrence's client and date are free."""
        from .running.recurring import Record, Recurring
        from .settings.config import Config, Schedule

        schedule = Schedule("every-minute", "* * * * *", tz="UTC")
        config = Config(schedules={schedule.name: schedule})
        now = store_time(store, datetime.now(timezone.utc))
        store.update(
            {}, plan=writing(**{schedule.state_key: Record("* * * * *", "UTC", now - timedelta(minutes=10)).to_doc()})
        )
        stale = store.state()
        [job] = Recurring(store, config, clock=lambda: datetime.now(timezone.utc)).enqueue()
        store.update({job.id: finished(JobStatus.COMPLETED)})
        slower = Recurring(_Stale(reopen(store), stale), config, clock=lambda: datetime.now(timezone.utc))
        assert slower.enqueue() == []
        assert [each.id for each in store.load()] == [job.id]


class _Stale:
    """A handle whose :meth:`state` answers what another read found earlier (everything else is the store's)."""

    def __init__(self, store: Store, docs: Mapping[str, StateDoc]) -> None:
        self._store, self._docs = store, dict(docs)

    def state(self, keys: Any = None) -> dict[str, StateDoc]:
        return {key: doc for key, doc in self._docs.items() if keys is None or key in keys}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


class StoreContract(StateContract, IncidentContract, RecurringContract):
    """What every :class:`~retryq.stores.Store` does: subclass it and give the ``new_store`` fixture."""

    #: How many generated queues the agreement with the rules is checked on.
    generated_queues = 30

    @pytest.fixture
    def new_store(self) -> NewStore:
        """A function that returns a new, empty store: ``new_store(archive=True)``. Give it in the subclass."""
        raise NotImplementedError("a StoreContract subclass gives the new_store fixture")

    @pytest.fixture
    def make_store(self, new_store: NewStore) -> Iterator[NewStore]:
        made: list[Store] = []

        def make(**options: Any) -> Store:
            made.append(new_store(**options))
            return made[-1]

        yield make
        for each in made:
            each.close()

    @pytest.fixture
    def store(self, make_store: NewStore) -> Store:
        return make_store()

    @pytest.fixture
    def reopen(self) -> Iterator[Callable[[Store], Store]]:
        """Another handle on the same jobs, opened from what the store gives a workflow (its environment):
        another file lock, another connection. A store that cannot be reopened (memory) is itself."""
        opened: list[Store] = []

        def handle(store: Store) -> Store:
            variables = store.environment()
            if not variables:
                return store
            opened.append(open_store(variables["RETRYQ_QUEUE"], namespace=variables.get("RETRYQ_NAMESPACE")))
            return opened[-1]

        yield handle
        for each in opened:
            each.close()

    # -- the basics ------------------------------------------------------------------------------

    def test_satisfies_the_protocol(self, store: Store) -> None:
        assert isinstance(store, Store)
        assert store.location

    def test_starts_empty(self, store: Store) -> None:
        assert store.load() == []
        assert list(store.load_archive()) == []
        assert store.invalid() == []

    def test_add_then_load_in_queue_order(self, store: Store) -> None:
        jobs = [job(id=f"j{i}", client_id=f"c{i}") for i in range(5)]
        for each in jobs:
            assert store.add(each, unchanged) == (each, True)
        assert store.load() == jobs

    def test_a_workflow_reopens_the_same_jobs_from_the_environment(
        self, store: Store, reopen: Callable[[Store], Store]
    ) -> None:
        store.add(job(id="a"), unchanged)
        variables = store.environment()
        assert all(isinstance(value, str) for value in variables.values())
        assert not variables or "RETRYQ_QUEUE" in variables
        assert [each.id for each in reopen(store).load()] == ["a"]

    # -- one open job per workflow, client and date ----------------------------------------------

    def test_add_keeps_one_open_job_per_key(self, store: Store) -> None:
        first = job(id="a")
        store.add(first, unchanged)
        again, created = store.add(job(id="b", delay_minutes=5), unchanged)
        assert (again, created) == (first, False)
        assert [each.id for each in store.load()] == ["a"]

    def test_add_applies_on_open_to_the_existing_job(self, store: Store) -> None:
        store.add(job(id="a"), unchanged)
        store.update({"a": running})
        marked, created = store.add(job(id="b"), lambda each: each.model_copy(update={"follow_up_minutes": 30}))
        assert not created
        assert marked.follow_up_minutes == 30
        assert store.load()[0].follow_up_minutes == 30

    @pytest.mark.parametrize("other", [{"client_id": "other"}, {"date": "2025-12-20"}, {"workflow": "ftp"}])
    def test_add_with_another_key_creates_a_job(self, store: Store, other: dict[str, object]) -> None:
        store.add(job(id="a"), unchanged)
        _, created = store.add(job(id="b", **other), unchanged)
        assert created
        assert len(store.load()) == 2

    @pytest.mark.parametrize("status", sorted(rules.FINISHED_STATUSES))
    def test_a_finished_job_does_not_block_a_new_chain(self, store: Store, status: JobStatus) -> None:
        store.add(job(id="a"), unchanged)
        store.update({"a": finished(status)})
        _, created = store.add(job(id="b"), unchanged)
        assert created
        assert [each.status for each in store.load()] == [status, JobStatus.PENDING]

    def test_a_write_never_leaves_two_open_jobs_for_one_key(self, store: Store) -> None:
        """Enforced by the store inside its write, not checked by callers on a snapshot."""
        store.add(job(id="a"), unchanged)
        store.update({"a": finished(JobStatus.FAILED)})
        store.add(job(id="b"), unchanged)  # a new chain for the same key

        def reopen(each: Job) -> Job:
            return each.model_copy(update={"status": JobStatus.PENDING})

        with pytest.raises(OpenJobExists) as raised:
            store.update({"a": reopen, "b": running})
        assert set(raised.value.job_ids) == {"a", "b"}
        assert [each.status for each in store.load()] == [JobStatus.FAILED, JobStatus.PENDING]  # nothing written
        store.update({"b": finished(JobStatus.CANCELLED)})
        assert store.update({"a": reopen})["a"] is not None  # once the other is settled, it may reopen

    def test_key_conflicts_agree_with_the_rules_on_generated_changes(self, make_store: NewStore) -> None:
        """A change that would leave two open jobs of one key is refused whole; any other is written."""
        rng = random.Random(20251221)  # noqa: S311  (generated test data, the same on every run)
        for case in range(self.generated_queues):
            store = make_store()
            jobs, open_keys = [], set()
            for n in range(rng.randint(1, 12)):
                each = job(id=f"k{case}-{n}", client_id=f"c{rng.randint(0, 3)}", status=rng.choice(list(JobStatus)))
                if each.status.is_open and each.key in open_keys:
                    each = each.model_copy(update={"status": JobStatus.FAILED, "finished_at": T0})
                open_keys.update([each.key] if each.status.is_open else [])
                jobs.append(each)
            store.insert(jobs)
            targets = {each.id: rng.choice(list(JobStatus)) for each in rng.sample(jobs, k=rng.randint(1, len(jobs)))}
            after = {each.id: each.model_copy(update={"status": targets.get(each.id, each.status)}) for each in jobs}
            held = Counter(each.key for each in after.values() if each.status.is_open)
            conflict = any(count > 1 for count in held.values())
            changes = {
                ident: (lambda each, to=to: each.model_copy(update={"status": to})) for ident, to in targets.items()
            }
            if conflict:
                with pytest.raises(OpenJobExists):
                    store.update(changes)
                assert store.load() == jobs, f"generated change #{case}: a refused change wrote something"
            else:
                store.update(changes)
                assert store.load() == list(after.values()), f"generated change #{case}"

    def test_racing_adds_for_one_key_create_one_job(self, store: Store, reopen: Callable[[Store], Store]) -> None:
        handles = [reopen(store) for _ in range(6)]
        created: list[bool] = []
        run_together(len(handles), lambda n: created.append(handles[n].add(job(id=f"racer{n}"), unchanged)[1]))
        assert sorted(created) == [False] * 5 + [True]
        assert len(store.load()) == 1

    def test_threads_adding_at_once_lose_nothing(self, store: Store) -> None:
        def add_many(worker: int) -> None:
            for i in range(25):
                store.add(job(id=f"w{worker}-{i}", client_id=f"w{worker}-{i}"), unchanged)

        run_together(4, add_many)
        assert len({each.id for each in store.load()}) == 100

    # -- updates and removals --------------------------------------------------------------------

    def test_update_applies_replaces_and_reports(self, store: Store) -> None:
        store.add(job(id="a"), unchanged)
        store.add(job(id="b", client_id="other"), unchanged)
        results = store.update({"a": running, "b": unchanged, "missing": running})
        assert set(results) == {"a", "b"}
        assert results["a"] is not None
        assert results["a"].status is JobStatus.RUNNING
        assert [each.status for each in store.load()] == [JobStatus.RUNNING, JobStatus.PENDING]

    def test_update_to_none_removes_and_archives(self, store: Store) -> None:
        store.add(job(id="a"), unchanged)
        store.add(job(id="b", client_id="other"), unchanged)
        assert store.update({"a": lambda each: None}) == {"a": None}
        assert [each.id for each in store.load()] == ["b"]
        assert [each.id for each in store.load_archive()] == ["a"]

    def test_archive_can_be_turned_off(self, make_store: NewStore) -> None:
        store = make_store(archive=False)
        store.add(job(id="a"), unchanged)
        store.update({"a": lambda each: None})
        assert store.load() == []
        assert list(store.load_archive()) == []

    def test_unknown_keys_survive_updates(self, store: Store) -> None:
        store.add(Job.model_validate({**job(id="a").to_json_dict(), "source": "boamp"}), unchanged)
        store.update({"a": running})
        assert store.load()[0].extra_keys == {"source": "boamp"}

    # -- claims ----------------------------------------------------------------------------------

    def test_a_claim_writes_what_the_rules_say(self, store: Store) -> None:
        legacy = Job.model_validate({k: v for k, v in job(id="a").to_json_dict().items() if k != "maxAttempts"})
        store.add(legacy, unchanged)
        before = store_time(store, T0 + timedelta(hours=1))
        [claimed], _ = store.claim(claim_request(timedelta(hours=1)))
        assert claimed.started_at is not None
        assert before <= claimed.started_at <= store_time(store, T0 + timedelta(hours=1))
        expected = rules.claimed(
            legacy, owner=OWNER, run_id=claimed.run_id or "", now=claimed.started_at, lease=LEASE, max_attempts=4
        )
        assert claimed == expected
        assert store.load() == [expected]

    def test_claim_takes_due_jobs_oldest_first(self, store: Store) -> None:
        now = store_time(store, T0 + timedelta(hours=1))
        store.add(job(id="late", client_id="c1", execute_at=now - timedelta(minutes=30)), unchanged)
        store.add(job(id="early", client_id="c2", execute_at=now - timedelta(minutes=50)), unchanged)
        store.add(job(id="future", client_id="c3", execute_at=now + timedelta(hours=1)), unchanged)
        claimed, _ = store.claim(claim_request(timedelta(hours=1)))
        assert [each.id for each in claimed] == ["early", "late"]
        statuses = {each.id: each.status for each in store.load()}
        assert statuses == {"late": JobStatus.RUNNING, "early": JobStatus.RUNNING, "future": JobStatus.PENDING}
        assert store.claim(claim_request(timedelta(hours=1))) == ([], {})  # claimed jobs are not claimed twice

    def test_a_claim_follows_the_stores_own_clock_where_it_has_one(self, store: Store) -> None:
        """A server's store (PostgreSQL, Redis) judges due times and leases by its clock, whatever the
        claimant's says; a file or memory has no clock of its own, and the claimant's is the only one."""
        reference = store.server_now()
        if reference is None:
            reference = datetime.now(timezone.utc)
        else:
            assert reference.utcoffset() == timedelta(0)
            assert abs(reference - datetime.now(timezone.utc)) < timedelta(minutes=5)  # a server on this machine
        store.add(job(id="due", client_id="c1", execute_at=reference - timedelta(seconds=1)), unchanged)
        store.add(job(id="soon", client_id="c2", execute_at=reference + timedelta(minutes=5)), unchanged)
        ahead = reference + timedelta(minutes=10)  # a claimant whose clock is 10 minutes ahead, looking 1 minute ahead
        claimant = Claimant(owner=OWNER, now=ahead, leases={"default": LEASE}, max_attempts={"default": 4})
        claimed, _ = store.claim(
            ClaimRequest(due_by=ahead + timedelta(minutes=1), limit=10, claimant=claimant, slots={"default": 10})
        )
        if store.server_now() is None:
            assert sorted(each.id for each in claimed) == ["due", "soon"]
            assert {each.started_at for each in claimed} == {ahead}
            return
        [first] = claimed
        assert first.id == "due"
        assert first.started_at is not None
        assert first.lease_until is not None
        assert reference <= first.started_at <= (store.server_now() or ahead)
        assert first.lease_until == first.started_at + LEASE

    def test_claim_is_due_at_exactly_execute_at(self, store: Store) -> None:
        store.add(job(id="a", execute_at=T0), unchanged)
        assert [each.id for each in store.claim(claim_request(timedelta(0)))[0]] == ["a"]

    def test_claim_respects_the_limit_and_workflow_slots(self, store: Store) -> None:
        for i in range(3):
            store.add(job(id=f"d{i}", client_id=f"c{i}", execute_at=T0 + timedelta(minutes=i)), unchanged)
            store.add(
                job(id=f"f{i}", client_id=f"c{i}", workflow="ftp", execute_at=T0 + timedelta(minutes=i)), unchanged
            )
        store.add(job(id="x", workflow="gone", execute_at=T0), unchanged)
        claimed, _ = store.claim(claim_request(timedelta(hours=1), 3, default=1, ftp=5))
        assert [each.id for each in claimed] == ["d0", "f0", "f1"]
        pending = {each.id for each in store.load() if each.status is JobStatus.PENDING}
        assert pending == {"d1", "d2", "f2", "x"}  # a workflow without slots is never claimed

    def test_claim_applies_changes_in_the_same_step(self, store: Store) -> None:
        store.add(job(id="a", client_id="c1"), unchanged)
        store.add(job(id="b", client_id="c2"), unchanged)
        store.update({"a": running})
        claimed, results = store.claim(claim_request(timedelta(hours=1), 1), {"a": finished(JobStatus.COMPLETED)})
        assert [each.id for each in claimed] == ["b"]
        assert results["a"] is not None
        assert results["a"].status is JobStatus.COMPLETED
        assert [each.status for each in store.load()] == [JobStatus.COMPLETED, JobStatus.RUNNING]

    def test_claim_with_nothing_to_do_changes_nothing(self, store: Store) -> None:
        assert store.claim(claim_request(timedelta(0), 0)) == ([], {})
        assert store.load() == []

    def test_a_cap_counts_what_runs_in_the_whole_store(self, store: Store) -> None:
        store.add(job(id="elsewhere", client_id="x", status=JobStatus.RUNNING), unchanged)
        for n in range(3):
            store.add(job(id=f"d{n}", client_id=f"c{n}", execute_at=T0 + timedelta(minutes=n)), unchanged)
        claimed, _ = store.claim(claim_request(timedelta(hours=1), 3, caps={"default": 2}))
        assert [each.id for each in claimed] == ["d0"]  # one of the two is taken by a run of another process
        assert store.claim(claim_request(timedelta(hours=1), 3, caps={"default": 2})) == ([], {})

    def test_claims_agree_with_the_rules_on_generated_queues(self, make_store: NewStore) -> None:
        """Due order, ties in queue order, slots, caps, exclusions and limits: the store's answer is the rules'."""
        rng = random.Random(20251219)  # noqa: S311  (generated test data, the same on every run)
        for case in range(self.generated_queues):
            store = make_store()
            generated = generated_queue(rng, case)
            request = generated_request(rng, generated)
            clock = store.server_now()
            if clock is not None:  # a store with a clock of its own judges by it: the test moves to its time
                generated, request = shifted(generated, request, clock - request.claimant.now)
            store.insert(generated)
            queue = store.load()
            claimed, _ = store.claim(request)
            expected = rules_answer(queue, request)
            assert [each.id for each in claimed] == [each.id for each in expected], f"generated queue #{case}"
            claimant, before = request.claimant, {each.id: each for each in queue}
            for each in claimed:
                assert each.started_at is not None
                assert each == rules.claimed(
                    before[each.id],
                    owner=claimant.owner,
                    run_id=each.run_id or "",
                    now=claimant.now if clock is None else each.started_at,
                    lease=claimant.leases[each.workflow],
                    max_attempts=claimant.max_attempts[each.workflow],
                ), f"generated queue #{case}: {each.id}"

    # -- priorities ------------------------------------------------------------------------------

    def test_a_jobs_priority_is_kept_by_every_write(self, store: Store) -> None:
        store.add(job(id="a", priority=7, execute_at=T0), unchanged)
        store.insert([job(id="b", client_id="b", priority=-100)])
        store.update({"b": running})
        [claimed], _ = store.claim(claim_request(timedelta(hours=1), 5))
        assert (claimed.id, claimed.priority) == ("a", 7)
        assert [(each.id, each.priority) for each in store.load()] == [("a", 7), ("b", -100)]
        store.update({"a": lambda each: None})
        assert [each.priority for each in store.load_archive()] == [7]

    def test_claims_take_the_highest_priority_first_then_the_oldest_due(self, store: Store) -> None:
        now = store_time(store, T0 + timedelta(hours=1))
        for ident, minutes, priority in (
            ("low-old", 50, 0),
            ("high-new", 5, 10),
            ("high-old", 30, 10),
            ("top", 1, 100),
            ("below", 55, -3),
            ("low-new", 20, 0),
        ):
            due = now - timedelta(minutes=minutes)
            store.add(job(id=ident, client_id=ident, execute_at=due, priority=priority), unchanged)
        claimed, _ = store.claim(claim_request(timedelta(hours=1), 4))
        assert [each.id for each in claimed] == ["top", "high-old", "high-new", "low-old"]
        claimed, _ = store.claim(claim_request(timedelta(hours=1), 4))
        assert [each.id for each in claimed] == ["low-new", "below"]

    def test_a_job_due_longer_than_max_wait_goes_before_higher_priorities_due_after_it(
        self, make_store: NewStore
    ) -> None:
        """The starvation bound: by the store's time, whatever the claimant's clock says."""

        def claims(max_wait: timedelta | None) -> list[str]:
            store = make_store()
            now = store_time(store, T0 + timedelta(hours=1))
            for ident, minutes, priority in (("patient", 90, -50), ("urgent", 10, 50), ("urgent-older", 100, 50)):
                due = now - timedelta(minutes=minutes)
                store.add(job(id=ident, client_id=ident, execute_at=due, priority=priority), unchanged)
            request = replace(claim_request(timedelta(hours=1), 1), max_wait=max_wait)
            return [store.claim(request)[0][0].id for _ in range(3)]

        assert claims(timedelta(hours=1)) == ["urgent-older", "patient", "urgent"]
        assert claims(None) == ["urgent-older", "urgent", "patient"]
        assert claims(timedelta(hours=2)) == ["urgent-older", "urgent", "patient"]  # nobody waited that long

    def test_claimants_at_once_never_get_the_same_job(self, store: Store, reopen: Callable[[Store], Store]) -> None:
        for n in range(120):
            store.add(job(id=f"j{n:03}", client_id=f"c{n}", execute_at=T0 + timedelta(seconds=n)), unchanged)
        handles = [reopen(store) for _ in range(4)]
        taken: list[list[str]] = [[] for _ in handles]

        def claim_until_empty(number: int) -> None:
            while claimed := handles[number].claim(claim_request(timedelta(hours=1), 3))[0]:
                taken[number].extend(each.id for each in claimed)

        run_together(len(handles), claim_until_empty)
        every = [ident for ids in taken for ident in ids]
        assert sorted(every) == [f"j{n:03}" for n in range(120)], "a job was claimed twice, or never"

    # -- moving jobs in --------------------------------------------------------------------------

    def test_insert_adds_jobs_as_they_are_once(self, store: Store) -> None:
        store.add(job(id="here", client_id="a"), unchanged)
        odd = Job.model_validate({**job(id="odd", client_id="o").to_json_dict(), "legacyNote": "kept"})
        jobs = [
            job(id="here", client_id="a", date="2025-12-01"),  # its id is taken: skipped, whatever it holds
            job(id="run", client_id="b", status=JobStatus.RUNNING, run_id="r9", started_at=T0),
            job(id="done", client_id="a", status=JobStatus.COMPLETED, attempt=3, finished_at=T0),
            odd,
        ]
        old = job(id="old", client_id="z", status=JobStatus.FAILED, finished_at=T0 - timedelta(days=9))
        assert store.insert(jobs, [old], dry_run=True) == Insertion(("run", "done", "odd"), ("old",))
        assert [each.id for each in store.load()] == ["here"]
        assert list(store.load_archive()) == []
        assert store.insert(jobs, [old]) == Insertion(("run", "done", "odd"), ("old",))
        assert store.load() == [job(id="here", client_id="a"), *jobs[1:]]
        assert store.load()[-1].extra_keys == {"legacyNote": "kept"}
        assert list(store.load_archive()) == [old]
        assert store.insert(jobs, [old]) == Insertion()  # again: nothing new
        assert len(store.load()) == 4

    def test_insert_refuses_a_second_open_job_for_a_key_and_adds_nothing(self, store: Store) -> None:
        store.add(job(id="open"), unchanged)
        batch = [job(id="fine", client_id="other"), job(id="clash", status=JobStatus.RUNNING)]
        with pytest.raises(OpenJobExists, match="job open is already open for balthazar 2025-12-19") as raised:
            store.insert(batch)
        assert set(raised.value.job_ids) == {"clash", "open"}
        assert [each.id for each in store.load()] == ["open"]
        settled = job(id="settled", status=JobStatus.FAILED, finished_at=T0)
        assert store.insert([settled]) == Insertion(("settled",))  # a finished job of the key is no clash

    def test_insert_archives_nothing_when_archiving_is_off(self, make_store: NewStore) -> None:
        store = make_store(archive=False)
        old = job(id="old", status=JobStatus.FAILED, finished_at=T0)
        assert store.insert([], [old]) == Insertion()
        assert list(store.load_archive()) == []

    def test_racing_inserts_add_each_job_once(self, store: Store, reopen: Callable[[Store], Store]) -> None:
        jobs = [job(id=f"imp{n:02}", client_id=f"c{n}") for n in range(30)]
        handles = [reopen(store) for _ in range(4)]
        added: list[tuple[str, ...]] = []
        run_together(len(handles), lambda n: added.append(handles[n].insert(jobs).added))
        assert sorted(ident for ids in added for ident in ids) == [each.id for each in jobs]
        assert [each.id for each in store.load()] == [each.id for each in jobs]

    def test_racing_inserts_of_one_key_open_one_job(self, store: Store, reopen: Callable[[Store], Store]) -> None:
        handles = [reopen(store) for _ in range(4)]
        outcomes: list[str] = []

        def insert(number: int) -> None:
            try:
                handles[number].insert([job(id=f"k{number}"), job(id=f"other{number}", client_id=f"o{number}")])
                outcomes.append("added")
            except OpenJobExists:
                outcomes.append("refused")

        run_together(len(handles), insert)
        assert sorted(outcomes) == ["added", "refused", "refused", "refused"]
        assert len(store.load()) == 2  # the winner's two jobs, and nothing of the others (all or nothing)

    # -- reading and pruning ---------------------------------------------------------------------

    def test_prune_removes_what_the_rule_expires_and_archives_it(self, store: Store) -> None:
        old, recent = T0 - timedelta(days=10), T0 - timedelta(days=1)
        store.add(job(id="old-done", client_id="a", status=JobStatus.COMPLETED, finished_at=old), unchanged)
        store.add(job(id="new-done", client_id="b", status=JobStatus.COMPLETED, finished_at=recent), unchanged)
        store.add(job(id="old-failed", client_id="c", status=JobStatus.FAILED, finished_at=old), unchanged)
        store.add(
            job(id="ftp-done", client_id="d", workflow="ftp", status=JobStatus.COMPLETED, finished_at=old), unchanged
        )
        store.add(job(id="old-pending", client_id="e", execute_at=old), unchanged)
        # Ended when the rules say: no finishedAt nor startedAt (a record of the original scripts): its executeAt.
        store.add(job(id="legacy", client_id="f", status=JobStatus.CANCELLED, execute_at=old), unchanged)
        week = T0 - timedelta(days=7)
        rule = PruneRule(
            cutoffs={JobStatus.COMPLETED: week, JobStatus.FAILED: T0 - timedelta(days=30), JobStatus.CANCELLED: week},
            by_workflow={"ftp": {JobStatus.COMPLETED: T0 - timedelta(days=60)}},
        )
        assert [each.id for each in store.prune(rule, dry_run=True)] == ["old-done", "legacy"]
        assert len(store.load()) == 6
        assert [each.id for each in store.prune(rule)] == ["old-done", "legacy"]
        assert [each.id for each in store.load()] == ["new-done", "old-failed", "ftp-done", "old-pending"]
        assert [each.id for each in store.load_archive()] == ["old-done", "legacy"]
        assert store.prune(rule) == []

    def test_prunes_agree_with_the_rules_on_generated_queues(self, make_store: NewStore) -> None:
        """When a job ended (finishedAt, else startedAt, else executeAt), by workflow and status."""
        rng = random.Random(20251220)  # noqa: S311  (generated test data, the same on every run)
        for case in range(self.generated_queues):
            store = make_store()
            jobs = []
            for n in range(rng.randint(0, 16)):
                status = rng.choice(list(JobStatus))
                times = {name: T0 - timedelta(days=rng.randint(0, 20)) for name in ("finished_at", "started_at")}
                kept = {name: when for name, when in times.items() if rng.random() < 0.6 and status.is_finished}
                when = T0 - timedelta(days=rng.randint(0, 20))
                jobs.append(
                    job(
                        id=f"p{case}-{n}",
                        client_id=f"c{n}",
                        workflow=rng.choice(WORKFLOWS),
                        status=status,
                        execute_at=when,
                        **kept,
                    )
                )
            store.insert(jobs)
            cutoffs = {status: T0 - timedelta(days=rng.randint(0, 20)) for status in rules.FINISHED_STATUSES}
            by_workflow = {"ftp": {JobStatus.COMPLETED: T0 - timedelta(days=rng.randint(0, 20))}}
            rule = PruneRule(cutoffs=cutoffs, by_workflow=by_workflow if rng.random() < 0.5 else {})
            queue = store.load()
            expected = [each.id for each in queue if rule.expired(each.workflow, each.status, rules.ended_at(each))]
            assert [each.id for each in store.prune(rule, dry_run=True)] == expected, f"generated queue #{case}"
            assert [each.id for each in store.prune(rule)] == expected, f"generated queue #{case}"
            assert [each.id for each in store.load()] == [each.id for each in queue if each.id not in expected]

    def test_load_by_filter(self, store: Store) -> None:
        store.add(job(id="a", client_id="a"), unchanged)
        store.add(job(id="b", client_id="b", status=JobStatus.FAILED, finished_at=T0), unchanged)
        store.add(job(id="c", client_id="c", status=JobStatus.RUNNING), unchanged)
        store.add(job(id="d", client_id="a", date="2025-12-20", workflow="ftp"), unchanged)

        def ids(query: JobFilter) -> list[str]:
            return [each.id for each in store.load(query)]

        assert ids(JobFilter.of(status=["pending", "running"])) == ["a", "c", "d"]
        assert ids(JobFilter.of(status="failed")) == ["b"]
        assert ids(JobFilter(statuses=frozenset())) == []
        assert ids(JobFilter.of(client="a")) == ["a", "d"]
        assert ids(JobFilter.of(client="a", workflow="ftp", date="2025-12-20")) == ["d"]
        assert ids(JobFilter.of(since=T0 + timedelta(seconds=1))) == []  # all were scheduled (or ended) at T0

    def test_find_by_id_prefix(self, store: Store) -> None:
        for ident in ("aaa1", "aaa2", "abc", "zzz"):
            store.add(job(id=ident, client_id=ident), unchanged)
        assert [each.id for each in store.find("aa")] == ["aaa1", "aaa2"]
        assert [each.id for each in store.find("a", limit=2)] == ["aaa1", "aaa2"]
        assert [each.id for each in store.find("zzz")] == ["zzz"]
        assert store.find("q") == []

    def test_tally_counts_the_queue_and_its_archive(self, store: Store) -> None:
        store.add(job(id="done", client_id="a", status=JobStatus.COMPLETED, attempt=2, finished_at=T0), unchanged)
        store.add(job(id="p1", client_id="b", scheduled_at=T0 - timedelta(hours=2)), unchanged)
        store.add(job(id="p2", client_id="c", execute_at=T0 - timedelta(minutes=5)), unchanged)
        store.add(job(id="bad", client_id="d", status=JobStatus.FAILED, finished_at=T0), unchanged)
        store.update({"done": lambda each: None})  # to the archive
        expected = Tally.of(store.load(), store.load_archive())
        assert store.tally() == expected
        assert expected.resolutions == {("default", 2): 1}
        assert expected.failures == {"default": 1}
        assert expected.jobs == {("default", "pending"): 2, ("default", "failed"): 1}
        assert expected.oldest_scheduled == {"default": T0 - timedelta(hours=2)}
        assert expected.earliest_due == {"default": T0 - timedelta(minutes=5)}


class ServerStoreContract(StoreContract):
    """The contract of a store on a server, which may go away: give also ``cut_connections`` (a function
    that drops every connection the store holds, as a server restart does) and ``unreachable`` (a store,
    and the secret its address holds, on a server that is down; its retries should not sleep)."""

    @pytest.fixture
    def cut_connections(self) -> Callable[[Store], None]:
        raise NotImplementedError("a ServerStoreContract subclass gives the cut_connections fixture")

    @pytest.fixture
    def unreachable(self) -> tuple[Store, str]:
        raise NotImplementedError("a ServerStoreContract subclass gives the unreachable fixture")

    def test_a_server_that_is_down_is_a_temporary_error_in_one_line(self, unreachable: tuple[Store, str]) -> None:
        store, secret = unreachable
        with pytest.raises(StoreUnavailable) as raised:
            store.add(job(), unchanged)
        message = str(raised.value)
        assert raised.value.exit_code == ExitCode.TEMPFAIL
        assert "\n" not in message
        assert store.location in message
        assert not secret or secret not in message

    def test_a_lost_connection_is_found_again_and_nothing_is_lost(
        self, store: Store, cut_connections: Callable[[Store], None]
    ) -> None:
        for n in range(5):
            store.add(job(id=f"j{n}", client_id=f"c{n}", execute_at=T0), unchanged)
        cut_connections(store)
        claimed, _ = store.claim(claim_request(timedelta(hours=1), 2))
        cut_connections(store)
        store.update({claimed[0].id: finished(JobStatus.COMPLETED)})
        cut_connections(store)
        statuses = Counter(each.status for each in store.load())
        assert statuses == {JobStatus.PENDING: 3, JobStatus.RUNNING: 1, JobStatus.COMPLETED: 1}

    def test_a_plan_whose_connection_is_cut_is_applied_once(
        self, store: Store, cut_connections: Callable[[Store], None]
    ) -> None:
        store.add(job(id="a"), unchanged)
        calls: list[int] = []

        def decide(docs: Mapping[str, StateDoc], now: datetime | None, jobs: Mapping[str, Job | None]) -> PlanResult:
            calls.append(docs.get("counter", {}).get("n", 0) + 1)
            if len(calls) == 1:
                cut_connections(store)  # in the middle of the step, before anything of it is written
            return PlanResult(writes={"counter": {"n": calls[-1]}}, mutations={"a": running})

        store.update({}, plan=Plan(["counter"], decide))
        assert calls[-1] == 1
        assert store.state() == {"counter": {"n": 1}}
        assert [each.status for each in store.load()] == [JobStatus.RUNNING]

    def test_claims_while_connections_drop_never_hand_a_job_twice(
        self, store: Store, reopen: Callable[[Store], Store], cut_connections: Callable[[Store], None]
    ) -> None:
        for n in range(60):
            store.add(job(id=f"j{n:03}", client_id=f"c{n}", execute_at=T0 + timedelta(seconds=n)), unchanged)
        handles = [reopen(store) for _ in range(3)]
        taken: list[str] = []
        done = threading.Event()

        def sabotage() -> None:
            # Twenty cuts over two seconds: a claim's own retries (about 8 s) always outlast them.
            for _ in range(20):
                if done.wait(0.1):
                    return
                cut_connections(store)

        def claim_until_empty(number: int) -> None:
            while claimed := handles[number].claim(claim_request(timedelta(hours=1), 2))[0]:
                taken.extend(each.id for each in claimed)

        saboteur = threading.Thread(target=sabotage)
        saboteur.start()
        try:
            run_together(len(handles), claim_until_empty, timeout=300)
        finally:
            done.set()
            saboteur.join(timeout=60)
        assert len(taken) == len(set(taken)), "a job was handed to two claimants"
        # A claim whose commit's reply was lost is held by no one until its lease ends: running, not pending.
        assert {each.status for each in store.load()} == {JobStatus.RUNNING}


# -- generated queues, and what the rules say of them ------------------------------------------------

WORKFLOWS = ("default", "ftp", "api")


def generated_queue(rng: random.Random, case: int) -> list[Job]:
    """Up to 24 jobs of three workflows (and one no claimant runs), in every status, due within a
    few minutes of each other, half of them with a priority: ties of priority and ``executeAt`` are
    common, so queue order decides them."""
    jobs = []
    for n in range(rng.randint(0, 24)):
        status = rng.choices(list(JobStatus), weights=[6, 2, 1, 1, 1])[0]
        fields: dict[str, Any] = {
            "id": f"g{case}-{n:02}",
            "client_id": f"c{n}",
            "workflow": rng.choice([*WORKFLOWS, "gone"]),
            "execute_at": T0 + timedelta(minutes=rng.randint(-4, 4)),
            "status": status,
        }
        if status is JobStatus.RUNNING:
            fields.update(run_id=f"r{n}", started_at=T0, owner=OWNER)
        elif status.is_finished:
            fields["finished_at"] = T0
        if rng.random() < 0.2:
            fields["max_attempts"] = None  # a record of the original scripts: the claim gives it its workflow's
        if rng.random() < 0.5:  # a few priorities, often equal, at both ends too; else the default 0
            fields["priority"] = rng.choice([-100, -5, 0, 3, 3, 10, 100])
        jobs.append(job(**fields))
    return jobs


def generated_request(rng: random.Random, queue: list[Job]) -> ClaimRequest:
    slots = {name: rng.randint(0, 4) for name in WORKFLOWS if rng.random() < 0.8}
    caps = {name: rng.randint(0, 3) for name in slots if rng.random() < 0.3}
    ids = [each.id for each in queue]
    exclude = frozenset(rng.sample(ids, k=min(len(ids), rng.randint(0, 3))))
    now = T0 + timedelta(minutes=rng.randint(-3, 3))
    claimant = Claimant(
        owner=Owner(host="generated", pid=2),
        now=now,
        leases={name: timedelta(minutes=rng.randint(1, 30)) for name in slots},
        max_attempts={name: rng.randint(1, 5) for name in slots},
    )
    # Generated times are whole minutes: a max_wait of whole minutes and a half never puts a job on its edge.
    max_wait = None if rng.random() < 0.3 else timedelta(minutes=rng.randint(0, 6), seconds=30)
    return ClaimRequest(
        due_by=now + timedelta(minutes=rng.choice([0, 0, 1])),
        limit=rng.randint(0, 8),
        claimant=claimant,
        slots=slots,
        exclude=exclude,
        caps=caps,
        max_wait=max_wait,
    )


def shifted(queue: list[Job], request: ClaimRequest, by: timedelta) -> tuple[list[Job], ClaimRequest]:
    """The same queue and request, every time ``by`` later (to the time of a store with its own clock).

    Generated times are whole minutes apart, so the seconds a server's clock moves while the test
    runs never change which jobs are due.
    """
    times = ("scheduled_at", "execute_at", "started_at", "finished_at")
    moved = [
        each.model_copy(update={name: value + by for name in times if (value := getattr(each, name)) is not None})
        for each in queue
    ]
    claimant = replace(request.claimant, now=request.claimant.now + by)
    return moved, replace(request, due_by=request.due_by + by, claimant=claimant)


def rules_answer(queue: list[Job], request: ClaimRequest) -> list[Job]:
    """The jobs a claim takes from ``queue`` (in queue order), in order, as :mod:`retryq.record.rules` says."""
    running = Counter(each.workflow for each in queue if each.status is JobStatus.RUNNING)
    return rules.choose(
        [
            (each.execute_at, position, each.status.value, each.workflow, each.id, each)
            for position, each in enumerate(queue)
        ],
        due_by=request.due_by,
        free=rules.free_slots(request.slots, request.caps, running),
        limit=request.limit,
        exclude=request.exclude,
        priority=lambda each: each.priority,
        overdue_before=rules.overdue_cutoff(request.claimant.now, request.max_wait),
    )


# -- upstream incidents: scripted runs, and a host in a process of its own -------------------------------------


class ScriptedRuns(Supervisor):
    """Runs nothing: each run ends at the next wait with ``exit_code``; ``started`` notes each start in a file."""

    def __init__(self, exit_code: int, started: Any = None) -> None:
        self.exit_code, self.started = exit_code, started
        self.running: list[str] = []

    def start(self, key: str, argv: Any, env: Any, *, timeout: float, kill_grace: float, **_: Any) -> int:
        self.running.append(key)
        if self.started is not None:
            with open(self.started, "a", encoding="utf-8") as notes:  # one line, appended whole
                notes.write("probe\n")
        return 4242

    def wait(self, timeout: float | None = None) -> list[tuple[str, RunResult]]:
        now = datetime.now(timezone.utc)
        ended = [(key, RunResult(started_at=now, finished_at=now, exit_code=self.exit_code)) for key in self.running]
        self.running.clear()
        return ended

    def stop_all(self, *, immediately: bool = False) -> None:
        self.running.clear()


def breaker_config(failures: int = 5, **workflows: BreakerSettings | None) -> Config:
    """The default workflow with a breaker (and any other workflow named, with the breaker given, or none)."""
    breaker = BreakerSettings(failures, timedelta(minutes=10), timedelta(minutes=15), timedelta(hours=12))
    made = {
        name: WorkflowSettings(name, command=("true",), command_origin="contract", breaker=settings)
        for name, settings in {"default": breaker, **workflows}.items()
    }
    return Config(workflows=made)


def run_processor(store: Store, config: Config, *, exit_code: int, started: Any = None) -> ProcessReport:
    """A `process` run on ``store`` whose runs all end with ``exit_code``."""
    processor = Processor(store, config, supervisor=ScriptedRuns(exit_code, started), prune=False)
    return processor.run(handle_signals=False)


def probe_host(variables: Mapping[str, str], started: Any, go: Any) -> Any:
    """A process of its own that opens the store from ``variables``, waits for the file ``go``, and runs
    `process` once with runs that fail (what it starts is noted in ``started``)."""
    import os
    import subprocess
    import sys

    code = "import sys; from retryq.testing import probe_host_main; probe_host_main(*sys.argv[1:])"
    return subprocess.Popen(
        [sys.executable, "-c", code, str(started), str(go)],
        env={**os.environ, **variables},
        stderr=subprocess.PIPE,
        text=True,
    )


def probe_host_main(started: str, go: str) -> None:
    """:func:`probe_host`'s process."""
    import os
    import time
    from pathlib import Path

    deadline = time.monotonic() + 60
    while not Path(go).exists():  # all start together, however long each took to start
        if time.monotonic() > deadline:
            raise SystemExit("never told to go")
        time.sleep(0.01)
    store = open_store(os.environ["RETRYQ_QUEUE"], namespace=os.environ.get("RETRYQ_NAMESPACE"))
    try:
        run_processor(store, breaker_config(), exit_code=75, started=started)
    finally:
        store.close()
