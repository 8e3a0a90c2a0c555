"""The due order a document store keeps between claims: the same choices as choosing among every
record afresh, and a claim that looks at the first pending records of each workflow only."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from retryq.record import rules
from retryq.record.models import Job, JobStatus, Owner
from retryq.stores import Claimant, ClaimRequest, MemoryStore
from retryq.stores import document as document_module

from ..helpers import T0, make_job

OWNER = Owner(host="h", pid=1)


def request(
    slots: dict[str, int], *, limit: int = 2, exclude: frozenset[str] = frozenset(), now_minutes: int = 0
) -> ClaimRequest:
    now = T0 + timedelta(minutes=now_minutes)
    claimant = Claimant(
        owner=OWNER,
        now=now,
        leases=dict.fromkeys(slots, timedelta(minutes=5)),
        max_attempts=dict.fromkeys(slots, 3),
    )
    return ClaimRequest(
        due_by=now + timedelta(hours=2),
        limit=limit,
        claimant=claimant,
        slots=slots,
        exclude=exclude,
        max_wait=timedelta(minutes=30),
    )


def random_jobs(rng: random.Random, count: int) -> list[Job]:
    return [
        make_job(
            id=f"j{n}",
            client_id=f"c{n}",
            workflow=rng.choice(["default", "other"]),
            priority=rng.choice([0, 0, 1, 5]),
            execute_at=T0 + timedelta(minutes=rng.randrange(-90, 240)),
        )
        for n in range(count)
    ]


def back_to_pending(minutes: int) -> object:
    def change(job: Job) -> Job:
        return job.model_copy(
            update={
                "status": JobStatus.PENDING,
                "owner": None,
                "run_id": None,
                "execute_at": T0 + timedelta(minutes=minutes),
            }
        )

    return change


@pytest.mark.parametrize("seed", range(8))
def test_claims_choose_as_a_fresh_store_would(seed: int) -> None:
    rng = random.Random(seed)
    store = MemoryStore(random_jobs(rng, 60))
    taken: set[str] = set()
    for step in range(25):
        ask = request(
            {"default": rng.choice([0, 1, 2]), "other": rng.choice([1, 2])},
            exclude=frozenset(taken),
            limit=rng.choice([1, 2, 3]),
            now_minutes=step * 7,
        )
        fresh = MemoryStore(store.load())  # no order kept: every record looked at
        expected, _ = fresh.claim(ask)
        changes = {}
        if taken and rng.random() < 0.5:  # a result puts a claimed job back to pending, later
            changes[rng.choice(sorted(taken))] = back_to_pending(rng.randrange(0, 200))
        if changes:
            store.update(changes)  # type: ignore[arg-type]
            fresh = MemoryStore(store.load())
            expected, _ = fresh.claim(ask)
        claimed, _ = store.claim(ask)
        assert [job.id for job in claimed] == [job.id for job in expected], step
        taken.update(job.id for job in claimed)


def test_a_claim_looks_at_the_first_pending_records_of_each_workflow_only(monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore(
        [make_job(id=f"j{n}", client_id=f"c{n}", execute_at=T0 + timedelta(minutes=n)) for n in range(50)]
    )
    seen: list[int] = []
    real = rules.choose

    def counting(candidates, **options):  # type: ignore[no-untyped-def]
        candidates = list(candidates)
        seen.append(len(candidates))
        return real(candidates, **options)

    monkeypatch.setattr(document_module.rules, "choose", counting)
    for n in range(5):
        [job], _ = store.claim(request({"default": 1}, limit=1))
        assert job.id == f"j{n}"
    assert max(seen) <= 1, seen
