"""A claim whose COMMIT reply is lost (PostgreSQL): committed on the server, never heard of by its claimant.

A proxy between retryq and the server swallows the reply to the first claim's COMMIT (see
``tests/pg_proxy.py``); retryq tries again on a new connection and claims other jobs. The job of
the lost claim must not stay ``running`` for ever, and must never be counted as an attempt: it
never ran.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from retryq.record.models import JobStatus, Outcome
from retryq.record.timeutil import utcnow
from retryq.stores.postgres import PostgresStore

from ..helpers import FakeWorkflow, make_job
from ..pg_proxy import CommitReplyLoser

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[CommitReplyLoser]:
    started = CommitReplyLoser.in_front_of(postgres_url)
    yield started
    started.close()


@pytest.fixture
def store(postgres_url: str, postgres_schema: str) -> Iterator[PostgresStore]:
    opened = PostgresStore(postgres_url, schema=postgres_schema)
    yield opened
    opened.close()


def two_due_jobs(store: PostgresStore, tmp_path: Path, workflow: FakeWorkflow) -> None:
    """ "lost" (due first: the first claim takes it) and "other", one attempt each; a config that runs one at a time."""
    now = utcnow()
    store.insert(
        [
            make_job(id="lost", client_id="lost", execute_at=now.replace(year=now.year - 1), max_attempts=1),
            make_job(id="other", client_id="other", execute_at=now.replace(year=now.year - 1).replace(second=59)),
        ]
    )
    (tmp_path / "retryq.toml").write_text(
        f'concurrency = 1\n\n[workflow]\ncommand = ["{workflow.path}", "{{client}}", "{{date}}"]\nmax_attempts = 1\n'
    )


def environment(queue: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("RETRYQ_")}
    return {**env, "RETRYQ_QUEUE": queue}


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def process(retryq_bin: str, cwd: Path, queue: str) -> subprocess.CompletedProcess[str]:
    """One `retryq process` run on ``queue`` (through the proxy or not)."""
    return subprocess.run(
        [retryq_bin, "process"],
        cwd=cwd,
        env=environment(queue),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_process_gives_back_a_claim_it_never_heard_of_and_the_next_run_runs_it(
    tmp_path: Path,
    retryq_bin: str,
    postgres_queue: str,
    proxy: CommitReplyLoser,
    store: PostgresStore,
    workflow: FakeWorkflow,
) -> None:
    two_due_jobs(store, tmp_path, workflow)
    proxy.arm()
    first = process(retryq_bin, tmp_path, proxy.address(postgres_queue))
    assert proxy.lost.is_set(), "the proxy lost no reply: the test proved nothing"
    assert first.returncode == 0, first.stderr
    jobs = {job.id: job for job in store.load()}
    assert [call["client"] for call in workflow.calls()] == ["other"]
    assert (jobs["lost"].status, jobs["lost"].history, jobs["lost"].owner) == (JobStatus.PENDING, (), None), (
        first.stderr
    )

    second = process(retryq_bin, tmp_path, postgres_queue)
    assert second.returncode == 0, second.stderr
    [lost] = [job for job in store.load() if job.id == "lost"]
    assert [call["client"] for call in workflow.calls()] == ["other", "lost"]
    assert lost.status is JobStatus.COMPLETED  # max_attempts = 1: one attempt, which ran
    assert [entry.outcome for entry in lost.history] == [Outcome.SUCCEEDED]


def test_a_worker_gives_back_a_claim_it_never_heard_of_at_the_latest_when_stopped(
    tmp_path: Path,
    retryq_bin: str,
    postgres_queue: str,
    proxy: CommitReplyLoser,
    store: PostgresStore,
    workflow: FakeWorkflow,
) -> None:
    two_due_jobs(store, tmp_path, workflow)
    proxy.arm()
    with (tmp_path / "worker.log").open("w") as log:
        worker = subprocess.Popen(
            [retryq_bin, "worker"],
            cwd=tmp_path,
            env=environment(proxy.address(postgres_queue)),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: "other" in [call["client"] for call in workflow.calls()], "the other job to run")
        assert proxy.lost.is_set(), "the proxy lost no reply: the test proved nothing"
        wait_for(lambda: {job.id: job.status for job in store.load()}["other"] is JobStatus.COMPLETED, "its result")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=120) == 128 + signal.SIGTERM
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    [lost] = [job for job in store.load() if job.id == "lost"]
    runs = [call["client"] for call in workflow.calls()].count("lost")
    log_text = (tmp_path / "worker.log").read_text()
    assert lost.status is not JobStatus.RUNNING, log_text
    assert Outcome.INTERRUPTED not in [entry.outcome for entry in lost.history], log_text
    # Given back when stopped (never ran), or already given back and run by the worker's own recovery.
    assert (lost.status, runs) in ((JobStatus.PENDING, 0), (JobStatus.COMPLETED, 1)), log_text
    assert len(lost.history) == runs
