"""On a server backend (PostgreSQL, Redis) the server's clock judges claims and leases: a host whose clock is
off neither runs a job early nor takes over a live lease, and it says so once (log, doctor)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from retryq import Processor
from retryq.record.models import JobStatus, Owner
from retryq.record.timeutil import utcnow
from retryq.reporting.doctor import diagnose
from retryq.stores import Store, open_store

from ..helpers import FakeWorkflow, make_config, make_job

AHEAD = timedelta(minutes=10)


def server_time(store: Store) -> datetime:
    now = store.server_now()
    assert now is not None
    return now


@pytest.fixture(
    params=[pytest.param("postgres", marks=pytest.mark.postgres), pytest.param("redis", marks=pytest.mark.redis)]
)
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    if request.param == "postgres":
        url, namespace = request.getfixturevalue("postgres_url"), request.getfixturevalue("postgres_schema")
    else:
        url, namespace = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_namespace")
    opened = open_store(url, namespace=namespace)
    yield opened
    opened.close()


def jobs_now_early_and_held(store: Store, now: datetime) -> None:
    """Due now; due in 5 minutes; running on another host, its lease ending in 4 minutes."""
    store.insert(
        [
            make_job(id="due", client_id="due", execute_at=now - timedelta(seconds=1)),
            make_job(id="early", client_id="early", execute_at=now + timedelta(minutes=5)),
            make_job(
                id="held",
                client_id="held",
                status=JobStatus.RUNNING,
                owner=Owner(host="another-host", pid=99),
                run_id="held",
                started_at=now - timedelta(minutes=1),
                lease_until=now + timedelta(minutes=4),
            ),
        ]
    )


@pytest.mark.parametrize("worker", [False, True])
def test_a_host_ten_minutes_ahead_neither_runs_a_job_early_nor_takes_a_live_lease(
    store: Store, workflow: FakeWorkflow, caplog: pytest.LogCaptureFixture, worker: bool
) -> None:
    jobs_now_early_and_held(store, server_time(store))
    processor = Processor(store, make_config(workflow.argv()), clock=lambda: utcnow() + AHEAD, prune=False)
    if worker:  # stops as soon as it has nothing left to run
        processor.supervisor.wait = stop_when_idle(processor, processor.supervisor.wait)  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="retryq"):
        report = processor.run(worker=worker, handle_signals=False)
    assert [call["client"] for call in workflow.calls()] == ["due"]
    jobs = {job.id: job for job in store.load()}
    assert {ident: job.status for ident, job in jobs.items()} == {
        "due": JobStatus.COMPLETED,
        "early": JobStatus.PENDING,
        "held": JobStatus.RUNNING,
    }
    assert jobs["held"].run_id == "held"
    assert report.recovered == 0
    started = jobs["due"].history[-1]
    assert jobs["due"].started_at is not None
    assert jobs["due"].started_at < server_time(store)
    assert started.attempt == 1
    skew = [record.getMessage() for record in caplog.records if "clock" in record.getMessage()]
    assert len(skew) == 1, skew
    assert skew[0].startswith("this host's clock is 10m ahead of the clock of ")


def stop_when_idle(processor: Processor, wait):  # type: ignore[no-untyped-def]
    def waiting(timeout: float | None = None):  # type: ignore[no-untyped-def]
        ended = wait(timeout)
        if ended:
            processor.request_stop()
        return ended

    return waiting


def test_doctor_reports_a_host_clock_off_from_the_servers_and_judges_leases_by_the_server(
    store: Store, workflow: FakeWorkflow
) -> None:
    now = server_time(store)
    jobs_now_early_and_held(store, now)
    config = make_config(workflow.argv())
    messages = [(finding.level, finding.message) for finding in diagnose(config, store, now=utcnow() + AHEAD)]
    [(level, message)] = [entry for entry in messages if "clock" in entry[1]]
    assert level == "problem"
    assert message.startswith("clock: this host's clock is 10m ahead of the clock of "), message
    assert not [message for _, message in messages if "is stuck" in message], messages
    in_step = [(finding.level, finding.message) for finding in diagnose(config, store, now=utcnow())]
    assert not [entry for entry in in_step if entry[0] != "ok" and "clock" in entry[1]], in_step
