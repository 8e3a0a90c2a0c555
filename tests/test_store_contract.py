"""The contract every store passes: one suite, run against each backend."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from retryq import JsonFileStore, MemoryStore, Store
from retryq.errors import OpenJobExists
from retryq.models import Job, JobStatus
from retryq.stores import ClaimRequest, PruneRule

from .helpers import T0, make_job

BACKENDS = ["memory", "json"]


def build(kind: str, directory: Path, *, archive: bool = True) -> Store:
    if kind == "memory":
        return MemoryStore(archive=archive)
    return JsonFileStore(directory / "queue.json", archive=archive)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    return build(request.param, tmp_path)


def unchanged(job: Job) -> Job:
    return job


def running(job: Job) -> Job:
    return job.model_copy(update={"status": JobStatus.RUNNING, "run_id": "r1"})


def finished(status: JobStatus) -> Callable[[Job], Job]:
    return lambda job: job.model_copy(update={"status": status, "finished_at": T0})


def test_satisfies_the_protocol(store: Store) -> None:
    assert isinstance(store, Store)
    assert store.location


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
def test_archive_can_be_turned_off(tmp_path: Path, kind: str) -> None:
    store = build(kind, tmp_path, archive=False)
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
    request = ClaimRequest(due_by=T0 + now_offset, limit=limit, slots=slots or {"default": limit})
    claimed, _ = store.claim(request, running)
    return claimed


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
    request = ClaimRequest(due_by=T0 + timedelta(hours=1), limit=3, slots={"default": 1, "ftp": 5})
    claimed, _ = store.claim(request, running)
    assert [job.id for job in claimed] == ["d0", "f0", "f1"]
    pending = {job.id for job in store.load() if job.status is JobStatus.PENDING}
    assert pending == {"d1", "d2", "f2", "x"}  # a workflow without slots is never claimed


def test_claim_applies_changes_in_the_same_step(store: Store) -> None:
    store.add(make_job(id="a", client_id="c1"), unchanged)
    store.add(make_job(id="b", client_id="c2"), unchanged)
    store.update({"a": running})
    claimed, results = store.claim(
        ClaimRequest(due_by=T0 + timedelta(hours=1), limit=1, slots={"default": 1}),
        running,
        {"a": finished(JobStatus.COMPLETED)},
    )
    assert [job.id for job in claimed] == ["b"]
    assert results["a"] is not None
    assert results["a"].status is JobStatus.COMPLETED
    assert [job.status for job in store.load()] == [JobStatus.COMPLETED, JobStatus.RUNNING]


def test_claim_with_nothing_to_do_changes_nothing(store: Store) -> None:
    assert store.claim(ClaimRequest(due_by=T0, limit=0), running) == ([], {})
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


def test_load_by_status(store: Store) -> None:
    store.add(make_job(id="a", client_id="a"), unchanged)
    store.add(make_job(id="b", client_id="b", status=JobStatus.FAILED), unchanged)
    store.add(make_job(id="c", client_id="c", status=JobStatus.RUNNING), unchanged)
    assert [job.id for job in store.load({JobStatus.PENDING, JobStatus.RUNNING})] == ["a", "c"]
    assert [job.id for job in store.load([JobStatus.FAILED])] == ["b"]
    assert store.load(set()) == []


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
