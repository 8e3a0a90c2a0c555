"""Redis crashes: what it acknowledged survives a SIGKILL (append-only file, fsync always), a `process`
rides out a restart of the server, and a claim whose runner vanished is taken up after its lease."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from retryq import RetryQueue
from retryq.record.models import JobStatus, Outcome, Owner
from retryq.record.timeutil import utcnow
from retryq.stores import Claimant, ClaimRequest
from retryq.stores.redis import RedisStore

from .. import redis_server
from ..conftest import RedisServer
from ..helpers import make_config, write_script

pytestmark = [pytest.mark.slow, pytest.mark.redis]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_every_acknowledged_schedule_survives_a_sigkill_of_the_server(own_redis: Callable[..., RedisServer]) -> None:
    server = own_redis()
    assert server.directory is not None
    queue = RetryQueue(server.url, config=make_config(queue=server.url))
    acknowledged = [queue.schedule(f"client{number:03d}", "2025-12-19", 0).job.id for number in range(300)]
    redis_server.kill(server.directory)  # no shutdown, no final write: what the append-only file has is all
    redis_server.restart(server.directory)
    assert sorted(job.id for job in queue.store.load()) == sorted(acknowledged)
    queue.close()


def test_a_process_run_loses_no_result_when_the_server_restarts(
    own_redis: Callable[..., RedisServer], tmp_path: Path, retryq_bin: str
) -> None:
    server = own_redis()
    assert server.directory is not None
    write_script(tmp_path / "fetch.sh", 'echo "$RETRYQ_JOB_ID" >> starts\nsleep 0.2\necho "$RETRYQ_JOB_ID" >> ends\n')
    (tmp_path / "retryq.toml").write_text(
        f'queue = "{server.url}"\n\n[workflow]\ncommand = ["{tmp_path / "fetch.sh"}", "{{client}}", "{{date}}"]\n'
    )
    queue = RetryQueue(server.url, config=make_config(queue=server.url))
    for number in range(40):
        queue.schedule(f"client{number:03d}", "2025-12-19", 0)
    env = {key: value for key, value in os.environ.items() if not key.startswith("RETRYQ_")}
    run = subprocess.Popen(
        [retryq_bin, "process", "--concurrency", "4"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: len(lines(tmp_path / "ends")) >= 8, "8 runs")
        redis_server.kill(server.directory)
        redis_server.restart(server.directory)
        output, _ = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, output
    jobs = queue.store.load()
    assert [job.status for job in jobs] == [JobStatus.COMPLETED] * 40, output
    starts = lines(tmp_path / "starts")
    assert sorted(starts) == sorted(job.id for job in jobs)  # each ran once: no result lost, none run twice
    queue.close()


def test_a_claim_whose_runner_vanished_is_taken_up_after_its_lease(
    redis_queue: str, tmp_path: Path, retryq_bin: str
) -> None:
    write_script(tmp_path / "fetch.sh", 'echo "$RETRYQ_JOB_ID" >> starts\n')
    (tmp_path / "retryq.toml").write_text(
        f'queue = "{redis_queue}"\nlease_grace = "1s"\n\n'
        f'[workflow]\ncommand = ["{tmp_path / "fetch.sh"}", "{{client}}", "{{date}}"]\n'
        'timeout = "1s"\nkill_grace = "1s"\n'
    )
    queue = RetryQueue(redis_queue, config=make_config(queue=redis_queue))
    job = queue.schedule("acme", "2025-12-19", 0).job
    # Claimed by a host that then vanished (its reply lost, or the host gone): nobody will report it.
    now = utcnow()
    claimant = Claimant(
        owner=Owner(host="vanished-host", pid=4242),
        now=now,
        leases={"default": timedelta(seconds=3)},
        max_attempts={"default": 3},
    )
    [claimed], _ = queue.store.claim(ClaimRequest(due_by=now, limit=1, claimant=claimant, slots={"default": 1}))
    assert claimed.id == job.id
    env = {key: value for key, value in os.environ.items() if not key.startswith("RETRYQ_")}
    env["RETRYQ_HOST"] = "another-host"

    def completed() -> bool:
        subprocess.run([retryq_bin, "process"], cwd=tmp_path, env=env, capture_output=True, timeout=120, check=False)
        return queue.store.load()[0].status is JobStatus.COMPLETED

    wait_for(completed, "the job to be recovered and run", timeout=120)
    [done] = queue.store.load()
    assert [entry.outcome for entry in done.history] == [Outcome.INTERRUPTED, Outcome.SUCCEEDED]
    assert lines(tmp_path / "starts") == [job.id]
    queue.close()


def test_a_queue_keeps_every_key_under_its_namespace(own_redis: Callable[..., RedisServer]) -> None:
    """A server shared by several queues (or with RQ, BullMQ, Celery) stays tidy: nothing outside the prefix."""
    import redis

    server = own_redis()
    queue = RetryQueue(RedisStore(server.url, namespace="billing"), config=make_config())
    queue.schedule("acme", "2025-12-19", 0)
    client = redis.Redis.from_url(server.url)
    assert client.keys("*")
    assert all(key.startswith(b"{billing}:") for key in client.keys("*"))
    client.close()
    queue.close()
