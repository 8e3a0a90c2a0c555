"""The contract every store passes: one suite, run against each backend."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from retryq import JsonFileStore, MemoryStore, Store
from retryq.record import lifecycle
from retryq.record.errors import OpenJobExists
from retryq.record.models import Job, JobStatus, Owner
from retryq.stores import Claimant, ClaimRequest, Insertion, JobFilter, PruneRule, Tally

from ..helpers import T0, make_job

BACKENDS = [
    "memory",
    "json",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("redis", marks=pytest.mark.redis),
]


def build(kind: str, request: pytest.FixtureRequest, *, archive: bool = True) -> Store:
    if kind == "memory":
        return MemoryStore(archive=archive)
    if kind == "json":
        return JsonFileStore(request.getfixturevalue("tmp_path") / "queue.json", archive=archive)
    if kind == "redis":
        from retryq.stores.redis import RedisStore

        # The contract's times are frozen in 2025: claims follow the claimant's clock here (tests/
        # integration/test_redis_store.py checks the server's).
        url, namespace = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_namespace")
        return RedisStore(url, namespace=namespace, archive=archive, server_clock=False)
    from retryq.stores.postgres import PostgresStore

    url, schema = request.getfixturevalue("postgres_url"), request.getfixturevalue("postgres_schema")
    return PostgresStore(url, schema=schema, archive=archive)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    chosen = build(request.param, request)
    yield chosen
    chosen.close()


def unchanged(job: Job) -> Job:
    return job


def running(job: Job) -> Job:
    return job.model_copy(update={"status": JobStatus.RUNNING, "run_id": "r1"})


def finished(status: JobStatus) -> Callable[[Job], Job]:
    return lambda job: job.model_copy(update={"status": status, "finished_at": T0})


OWNER = Owner(host="h", pid=1)
LEASE = timedelta(minutes=6)


def claim_request(due: timedelta, limit: int = 10, *, caps: dict[str, int] | None = None, **slots: int) -> ClaimRequest:
    chosen = slots or {"default": limit}
    claimant = Claimant(
        owner=OWNER, now=T0 + due, leases=dict.fromkeys(chosen, LEASE), max_attempts=dict.fromkeys(chosen, 4)
    )
    return ClaimRequest(due_by=T0 + due, limit=limit, claimant=claimant, slots=chosen, caps=caps or {})


def test_satisfies_the_protocol(store: Store) -> None:
    assert isinstance(store, Store)
    assert store.location
    store.close()


def test_starts_empty(store: Store) -> None:
    assert store.load() == []
    assert list(store.load_archive()) == []


def test_add_then_load_in_queue_order(store: Store) -> None:
    jobs = [make_job(id=f"j{i}", client_id=f"c{i}") for i in range(5)]
    for job in jobs:
        assert store.add(job, unchanged) == (job, True)
    assert store.load() == jobs


def test_add_keeps_one_open_job_per_key(store: Store) -> None:
    first = make_job(id="a")
    store.add(first, unchanged)
    again, created = store.add(make_job(id="b", delay_minutes=5), unchanged)
    assert (again, created) == (first, False)
    assert [job.id for job in store.load()] == ["a"]


def test_add_applies_on_open_to_the_existing_job(store: Store) -> None:
    store.add(make_job(id="a"), unchanged)
    store.update({"a": running})
    marked, created = store.add(make_job(id="b"), lambda job: job.model_copy(update={"follow_up_minutes": 30}))
    assert not created
    assert marked.follow_up_minutes == 30
    assert store.load()[0].follow_up_minutes == 30


@pytest.mark.parametrize(
    "other",
    [{"client_id": "other"}, {"date": "2025-12-20"}, {"workflow": "ftp"}],
)
def test_add_with_another_key_creates_a_job(store: Store, other: dict[str, object]) -> None:
    store.add(make_job(id="a"), unchanged)
    _, created = store.add(make_job(id="b", **other), unchanged)
    assert created
    assert len(store.load()) == 2


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED])
def test_a_finished_job_does_not_block_a_new_chain(store: Store, status: JobStatus) -> None:
    store.add(make_job(id="a"), unchanged)
    store.update({"a": finished(status)})
    _, created = store.add(make_job(id="b"), unchanged)
    assert created
    assert [job.status for job in store.load()] == [status, JobStatus.PENDING]


def test_update_applies_replaces_and_reports(store: Store) -> None:
    store.add(make_job(id="a"), unchanged)
    store.add(make_job(id="b", client_id="other"), unchanged)
    results = store.update({"a": running, "b": unchanged, "missing": running})
    assert set(results) == {"a", "b"}
    assert results["a"] is not None
    assert results["a"].status is JobStatus.RUNNING
    assert [job.status for job in store.load()] == [JobStatus.RUNNING, JobStatus.PENDING]


def test_update_to_none_removes_and_archives(store: Store) -> None:
    store.add(make_job(id="a"), unchanged)
    store.add(make_job(id="b", client_id="other"), unchanged)
    results = store.update({"a": lambda job: None})
    assert results == {"a": None}
    assert [job.id for job in store.load()] == ["b"]
    assert [job.id for job in store.load_archive()] == ["a"]


@pytest.mark.parametrize("kind", BACKENDS)
def test_archive_can_be_turned_off(request: pytest.FixtureRequest, kind: str) -> None:
    store = build(kind, request, archive=False)
    store.add(make_job(id="a"), unchanged)
    store.update({"a": lambda job: None})
    assert store.load() == []
    assert list(store.load_archive()) == []


def test_unknown_keys_survive_updates(store: Store) -> None:
    job = Job.model_validate({**make_job(id="a").to_json_dict(), "source": "boamp"})
    store.add(job, unchanged)
    store.update({"a": running})
    assert store.load()[0].extra_keys == {"source": "boamp"}


def claim_all(store: Store, now_offset: timedelta, limit: int = 10, **slots: int) -> list[Job]:
    claimed, _ = store.claim(claim_request(now_offset, limit, **slots))
    return claimed


def test_a_claim_writes_what_the_lifecycle_says(store: Store) -> None:
    legacy = Job.model_validate({k: v for k, v in make_job(id="a").to_json_dict().items() if k != "maxAttempts"})
    store.add(legacy, unchanged)
    [claimed] = claim_all(store, timedelta(hours=1))
    expected = lifecycle.claim(
        owner=OWNER, run_id=claimed.run_id or "", now=T0 + timedelta(hours=1), lease=LEASE, max_attempts=4
    )(legacy)
    assert claimed == expected
    assert store.load() == [expected]


def test_claim_takes_due_jobs_oldest_first(store: Store) -> None:
    store.add(make_job(id="late", client_id="c1", execute_at=T0 + timedelta(minutes=30)), unchanged)
    store.add(make_job(id="early", client_id="c2", execute_at=T0 + timedelta(minutes=10)), unchanged)
    store.add(make_job(id="future", client_id="c3", execute_at=T0 + timedelta(hours=2)), unchanged)
    claimed = claim_all(store, timedelta(hours=1))
    assert [job.id for job in claimed] == ["early", "late"]
    assert {job.id: job.status for job in store.load()} == {
        "late": JobStatus.RUNNING,
        "early": JobStatus.RUNNING,
        "future": JobStatus.PENDING,
    }
    assert claim_all(store, timedelta(hours=1)) == []  # claimed jobs are not claimed twice


def test_claim_is_due_at_exactly_execute_at(store: Store) -> None:
    store.add(make_job(id="a", execute_at=T0), unchanged)
    assert [job.id for job in claim_all(store, timedelta(0))] == ["a"]


def test_claim_respects_the_limit_and_workflow_slots(store: Store) -> None:
    for i in range(3):
        store.add(make_job(id=f"d{i}", client_id=f"c{i}", execute_at=T0 + timedelta(minutes=i)), unchanged)
        store.add(
            make_job(id=f"f{i}", client_id=f"c{i}", workflow="ftp", execute_at=T0 + timedelta(minutes=i)), unchanged
        )
    store.add(make_job(id="x", workflow="gone", execute_at=T0), unchanged)
    claimed, _ = store.claim(claim_request(timedelta(hours=1), 3, default=1, ftp=5))
    assert [job.id for job in claimed] == ["d0", "f0", "f1"]
    pending = {job.id for job in store.load() if job.status is JobStatus.PENDING}
    assert pending == {"d1", "d2", "f2", "x"}  # a workflow without slots is never claimed


def test_claim_applies_changes_in_the_same_step(store: Store) -> None:
    store.add(make_job(id="a", client_id="c1"), unchanged)
    store.add(make_job(id="b", client_id="c2"), unchanged)
    store.update({"a": running})
    claimed, results = store.claim(claim_request(timedelta(hours=1), 1), {"a": finished(JobStatus.COMPLETED)})
    assert [job.id for job in claimed] == ["b"]
    assert results["a"] is not None
    assert results["a"].status is JobStatus.COMPLETED
    assert [job.status for job in store.load()] == [JobStatus.COMPLETED, JobStatus.RUNNING]


def test_claim_with_nothing_to_do_changes_nothing(store: Store) -> None:
    assert store.claim(claim_request(timedelta(0), 0)) == ([], {})
    assert store.load() == []


def test_threads_adding_at_once_lose_nothing(store: Store) -> None:
    def add_many(worker: int) -> None:
        for i in range(25):
            store.add(make_job(id=f"w{worker}-{i}", client_id=f"w{worker}-{i}"), unchanged)

    threads = [threading.Thread(target=add_many, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len({job.id for job in store.load()}) == 100


def test_prune_removes_what_the_rule_expires_and_archives_it(store: Store) -> None:
    old, recent = T0 - timedelta(days=10), T0 - timedelta(days=1)
    store.add(make_job(id="old-done", client_id="a", status=JobStatus.COMPLETED, finished_at=old), unchanged)
    store.add(make_job(id="new-done", client_id="b", status=JobStatus.COMPLETED, finished_at=recent), unchanged)
    store.add(make_job(id="old-failed", client_id="c", status=JobStatus.FAILED, finished_at=old), unchanged)
    store.add(
        make_job(id="ftp-done", client_id="d", workflow="ftp", status=JobStatus.COMPLETED, finished_at=old), unchanged
    )
    store.add(make_job(id="old-pending", client_id="e", execute_at=old), unchanged)
    store.add(make_job(id="legacy", client_id="f", status=JobStatus.CANCELLED, execute_at=old), unchanged)
    week = T0 - timedelta(days=7)
    rule = PruneRule(
        cutoffs={JobStatus.COMPLETED: week, JobStatus.FAILED: T0 - timedelta(days=30), JobStatus.CANCELLED: week},
        by_workflow={"ftp": {JobStatus.COMPLETED: T0 - timedelta(days=60)}},
    )
    assert [job.id for job in store.prune(rule, dry_run=True)] == ["old-done", "legacy"]
    assert len(store.load()) == 6
    assert [job.id for job in store.prune(rule)] == ["old-done", "legacy"]
    assert [job.id for job in store.load()] == ["new-done", "old-failed", "ftp-done", "old-pending"]
    assert [job.id for job in store.load_archive()] == ["old-done", "legacy"]
    assert store.prune(rule) == []


def test_load_by_filter(store: Store) -> None:
    store.add(make_job(id="a", client_id="a"), unchanged)
    store.add(make_job(id="b", client_id="b", status=JobStatus.FAILED, finished_at=T0), unchanged)
    store.add(make_job(id="c", client_id="c", status=JobStatus.RUNNING), unchanged)
    store.add(make_job(id="d", client_id="a", date="2025-12-20", workflow="ftp"), unchanged)
    ids = lambda query: [job.id for job in store.load(query)]  # noqa: E731
    assert ids(JobFilter.of(status=["pending", "running"])) == ["a", "c", "d"]
    assert ids(JobFilter.of(status="failed")) == ["b"]
    assert ids(JobFilter(statuses=frozenset())) == []
    assert ids(JobFilter.of(client="a")) == ["a", "d"]
    assert ids(JobFilter.of(client="a", workflow="ftp", date="2025-12-20")) == ["d"]
    assert ids(JobFilter.of(since=T0 + timedelta(seconds=1))) == []  # all were scheduled (or ended) at T0


def test_find_by_id_prefix(store: Store) -> None:
    for ident in ("aaa1", "aaa2", "abc", "zzz"):
        store.add(make_job(id=ident, client_id=ident), unchanged)
    assert [job.id for job in store.find("aa")] == ["aaa1", "aaa2"]
    assert [job.id for job in store.find("a", limit=2)] == ["aaa1", "aaa2"]
    assert [job.id for job in store.find("zzz")] == ["zzz"]
    assert store.find("q") == []


def test_tally_counts_the_queue_and_its_archive(store: Store) -> None:
    done = make_job(id="done", client_id="a", status=JobStatus.COMPLETED, attempt=2, finished_at=T0)
    store.add(done, unchanged)
    store.add(make_job(id="p1", client_id="b", scheduled_at=T0 - timedelta(hours=2)), unchanged)
    store.add(make_job(id="p2", client_id="c", execute_at=T0 - timedelta(minutes=5)), unchanged)
    store.add(make_job(id="bad", client_id="d", status=JobStatus.FAILED, finished_at=T0), unchanged)
    store.update({"done": lambda job: None})  # to the archive
    expected = Tally.of(store.load(), store.load_archive())
    assert store.tally() == expected
    assert expected.resolutions == {("default", 2): 1}
    assert expected.failures == {"default": 1}
    assert expected.jobs == {("default", "pending"): 2, ("default", "failed"): 1}
    assert expected.oldest_scheduled == {"default": T0 - timedelta(hours=2)}
    assert expected.earliest_due == {"default": T0 - timedelta(minutes=5)}


def test_a_cap_counts_what_runs_in_the_whole_store(store: Store) -> None:
    store.add(make_job(id="elsewhere", client_id="x", status=JobStatus.RUNNING), unchanged)
    for n in range(3):
        store.add(make_job(id=f"d{n}", client_id=f"c{n}", execute_at=T0 + timedelta(minutes=n)), unchanged)
    claimed, _ = store.claim(claim_request(timedelta(hours=1), 3, caps={"default": 2}))
    assert [job.id for job in claimed] == ["d0"]  # one of the two is taken by a run of another process
    assert store.claim(claim_request(timedelta(hours=1), 3, caps={"default": 2})) == ([], {})


def test_a_write_never_leaves_two_open_jobs_for_one_key(store: Store) -> None:
    """Enforced by the store inside its write, not checked by callers on a snapshot."""
    store.add(make_job(id="a"), unchanged)
    store.update({"a": finished(JobStatus.FAILED)})
    store.add(make_job(id="b"), unchanged)  # a new chain for the same key

    def reopen(job: Job) -> Job:
        return job.model_copy(update={"status": JobStatus.PENDING})

    with pytest.raises(OpenJobExists) as raised:
        store.update({"a": reopen, "b": running})
    assert set(raised.value.job_ids) == {"a", "b"}
    assert [job.status for job in store.load()] == [JobStatus.FAILED, JobStatus.PENDING]  # nothing written
    store.update({"b": finished(JobStatus.CANCELLED)})
    assert store.update({"a": reopen})["a"] is not None  # once the other is settled, it may reopen


def test_insert_adds_jobs_as_they_are_once(store: Store) -> None:
    store.add(make_job(id="here", client_id="a"), unchanged)
    odd = Job.model_validate({**make_job(id="odd", client_id="o").to_json_dict(), "legacyNote": "kept"})
    jobs = [
        make_job(id="here", client_id="a", date="2025-12-01"),  # its id is taken: skipped, whatever it holds
        make_job(id="run", client_id="b", status=JobStatus.RUNNING, run_id="r9", started_at=T0),
        make_job(id="done", client_id="a", status=JobStatus.COMPLETED, attempt=3, finished_at=T0),
        odd,
    ]
    old = make_job(id="old", client_id="z", status=JobStatus.FAILED, finished_at=T0 - timedelta(days=9))
    assert store.insert(jobs, [old], dry_run=True) == Insertion(("run", "done", "odd"), ("old",))
    assert [job.id for job in store.load()] == ["here"]
    assert list(store.load_archive()) == []
    assert store.insert(jobs, [old]) == Insertion(("run", "done", "odd"), ("old",))
    assert store.load() == [make_job(id="here", client_id="a"), *jobs[1:]]
    assert store.load()[-1].extra_keys == {"legacyNote": "kept"}
    assert list(store.load_archive()) == [old]
    assert store.insert(jobs, [old]) == Insertion()  # again: nothing new
    assert len(store.load()) == 4


def test_insert_refuses_a_second_open_job_for_a_key_and_adds_nothing(store: Store) -> None:
    store.add(make_job(id="open"), unchanged)
    batch = [make_job(id="fine", client_id="other"), make_job(id="clash", status=JobStatus.RUNNING)]
    with pytest.raises(OpenJobExists, match="job open is already open for balthazar 2025-12-19") as raised:
        store.insert(batch)
    assert set(raised.value.job_ids) == {"clash", "open"}
    assert [job.id for job in store.load()] == ["open"]
    finished_one = make_job(id="settled", status=JobStatus.FAILED, finished_at=T0)
    assert store.insert([finished_one]) == Insertion(("settled",))  # a finished job of the key is no clash


@pytest.mark.parametrize("kind", BACKENDS)
def test_insert_archives_nothing_when_archiving_is_off(kind: str, request: pytest.FixtureRequest) -> None:
    chosen = build(kind, request, archive=False)
    old = make_job(id="old", status=JobStatus.FAILED, finished_at=T0)
    assert chosen.insert([], [old]) == Insertion()
    assert list(chosen.load_archive()) == []
    chosen.close()


def another_handle(store: Store, request: pytest.FixtureRequest) -> Store:
    """The same jobs through a handle of their own: another file lock, another database connection."""
    if isinstance(store, JsonFileStore):
        return JsonFileStore(store.path)
    if isinstance(store, MemoryStore):
        return store
    if type(store).__name__ == "RedisStore":
        from retryq.stores.redis import RedisStore

        assert isinstance(store, RedisStore)
        return RedisStore(store.address, namespace=store.namespace, server_clock=False)
    from retryq.stores.postgres import PostgresStore

    assert isinstance(store, PostgresStore)
    return PostgresStore(store.address, schema=store.schema)


def test_claimants_at_once_never_get_the_same_job(store: Store, request: pytest.FixtureRequest) -> None:
    for n in range(120):
        store.add(make_job(id=f"j{n:03}", client_id=f"c{n}", execute_at=T0 + timedelta(seconds=n)), unchanged)
    handles = [another_handle(store, request) for _ in range(4)]
    start = threading.Barrier(len(handles))
    taken: list[list[str]] = [[] for _ in handles]

    def claim_until_empty(number: int) -> None:
        start.wait()
        while True:
            claimed, _ = handles[number].claim(claim_request(timedelta(hours=1), 3))
            if not claimed:
                return
            taken[number].extend(job.id for job in claimed)

    threads = [threading.Thread(target=claim_until_empty, args=(number,)) for number in range(len(handles))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    every = [ident for ids in taken for ident in ids]
    assert sorted(every) == [f"j{n:03}" for n in range(120)], "a job was claimed twice, or never"
    for handle in handles:
        if handle is not store:
            handle.close()


def test_racing_adds_for_one_key_create_one_job(store: Store, request: pytest.FixtureRequest) -> None:
    handles = [another_handle(store, request) for _ in range(6)]
    start = threading.Barrier(len(handles))
    created: list[bool] = []

    def add(number: int) -> None:
        start.wait()
        _, new = handles[number].add(make_job(id=f"racer{number}"), unchanged)
        created.append(new)

    threads = [threading.Thread(target=add, args=(number,)) for number in range(len(handles))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(created) == [False] * 5 + [True]
    assert len(store.load()) == 1
    for handle in handles:
        if handle is not store:
            handle.close()


def test_a_filter_with_nothing_set_selects_all() -> None:
    assert JobFilter.of().selects_all
    assert JobFilter.of(status=None, client=None).selects_all
    assert not JobFilter.of(status="pending").selects_all
    assert not JobFilter(statuses=frozenset()).selects_all  # no status at all: selects nothing
