"""The Redis store against a real server: its clock, its faults, its persistence, its wake-ups."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from retryq.record.errors import ConfigError, StoreUnavailable
from retryq.record.models import JobStatus, Owner
from retryq.record.timeutil import utcnow
from retryq.stores import Claimant, ClaimRequest, Finding
from retryq.stores.redis import RedisStore
from retryq.stores.redis.connection import Connection

from ..conftest import RedisServer
from ..helpers import invoke, make_job

pytestmark = pytest.mark.redis

OWNER = Owner(host="h", pid=1)


def unchanged(job: Any) -> Any:
    return job


@pytest.fixture
def store(redis_url: str, redis_namespace: str) -> Iterator[RedisStore]:
    opened = RedisStore(redis_url, namespace=redis_namespace)
    yield opened
    opened.close()


def request_at(now_offset: timedelta, *, limit: int = 10) -> ClaimRequest:
    """A claim by a host whose clock reads the real time plus ``now_offset``."""
    now = utcnow() + now_offset
    claimant = Claimant(owner=OWNER, now=now, leases={"default": timedelta(minutes=5)}, max_attempts={"default": 3})
    return ClaimRequest(due_by=now, limit=limit, claimant=claimant, slots={"default": limit})


# -- the server's clock ------------------------------------------------------------------------


def test_a_host_ten_minutes_ahead_does_not_run_a_job_early(store: RedisStore) -> None:
    store.add(make_job(id="soon", execute_at=utcnow() + timedelta(minutes=5)), unchanged)
    claimed, _ = store.claim(request_at(timedelta(minutes=10)))
    assert claimed == []  # due in 5 minutes by the server's clock, whatever this host's says
    assert store.load()[0].status is JobStatus.PENDING


def test_a_claim_is_stamped_with_the_servers_time_and_lease(store: RedisStore) -> None:
    store.add(make_job(id="due", execute_at=utcnow() - timedelta(minutes=1)), unchanged)
    before = utcnow()
    [claimed], _ = store.claim(request_at(timedelta(minutes=10)))
    after = utcnow()
    assert claimed.started_at is not None
    assert claimed.lease_until is not None
    # Within the round trip of the server's clock (the same machine's), not ten minutes ahead.
    assert before - timedelta(seconds=5) <= claimed.started_at <= after + timedelta(seconds=5)
    assert claimed.lease_until - claimed.started_at == timedelta(minutes=5)


# -- faults ------------------------------------------------------------------------------------


def test_an_unreachable_server_is_tried_again_then_exit_75_in_one_line(tmp_path: Path) -> None:
    from tests.redis_server import _free_port

    slept: list[float] = []
    store = RedisStore(f"redis://:hunter2@127.0.0.1:{_free_port()}/0", connect_attempts=4, sleep=slept.append)
    with pytest.raises(StoreUnavailable) as raised:
        store.load()
    assert slept == [0.25, 0.5, 1.0]
    assert raised.value.exit_code == 75
    message = str(raised.value)
    assert message.startswith("redis://127.0.0.1:")
    assert "cannot reach Redis" in message
    assert "\n" not in message
    assert "hunter2" not in message


def test_a_database_the_server_lacks_is_exit_78_at_once(redis_url: str) -> None:
    slept: list[float] = []
    store = RedisStore(redis_url.rsplit("/", 1)[0] + "/99", sleep=slept.append)
    with pytest.raises(ConfigError, match="the server has no database 99") as raised:
        store.load()
    assert raised.value.exit_code == 78
    assert slept == []


def test_a_wrong_or_missing_password_is_exit_78_at_once_and_never_shown(
    own_redis: Callable[..., RedisServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = own_redis(password="right-pass")  # noqa: S106 - a throwaway test server
    bare = server.url.replace(":right-pass@", "")
    for url in (server.url.replace("right-pass", "wrong-pass"), bare):
        slept: list[float] = []
        with pytest.raises(ConfigError) as raised:
            RedisStore(url, sleep=slept.append).load()
        assert slept == []
        assert "wrong-pass" not in str(raised.value)
        assert "right-pass" not in str(raised.value)
    monkeypatch.setenv("REDISCLI_AUTH", "right-pass")
    store = RedisStore(bare)
    assert store.load() == []
    assert "right-pass" not in store.location
    store.close()


def test_without_the_driver_every_command_says_which_extra_to_install(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "from retryq.cli import main\n"
        "sys.argv = ['retryq', '--queue', 'redis://:hunter2@127.0.0.1:1/0', sys.argv[1]]\n"
        "main()\n"
    )
    # `doctor` says it too, and exits 78 as every other command does.
    for command, code_expected in (("list", 78), ("process", 78), ("doctor", 78)):
        result = subprocess.run(
            [sys.executable, "-c", code, command], capture_output=True, text=True, cwd=tmp_path, timeout=120
        )
        assert result.returncode == code_expected, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "pip install 'retryq[redis]'" in lines[0]
        assert "hunter2" not in result.stderr + result.stdout


def test_a_claim_whose_reply_was_lost_gets_the_same_jobs_when_sent_again(
    store: RedisStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    for number in range(4):
        store.add(make_job(id=f"j{number}", client_id=f"c{number}", execute_at=utcnow()), unchanged)
    [first], _ = store.claim(request_at(timedelta(0), limit=1))
    done = lambda job: job.model_copy(update={"status": JobStatus.COMPLETED, "finished_at": utcnow()})  # noqa: E731
    run = Connection.run

    def reply_lost_once(self: Connection, work: Callable[[Any], Any], **options: Any) -> Any:
        run(self, work, **options)  # the server acted; its reply never came back
        return run(self, work, **options)  # sent again by the retry, as after a lost connection

    monkeypatch.setattr(Connection, "run", reply_lost_once)
    claimed, results = store.claim(request_at(timedelta(0), limit=2), {first.id: done})
    monkeypatch.setattr(Connection, "run", run)
    assert sorted(job.id for job in claimed) == ["j1", "j2"]
    assert results[first.id] is not None
    assert results[first.id].status is JobStatus.COMPLETED
    assert {job.id: job.status for job in store.load()} == {
        "j0": JobStatus.COMPLETED,  # the result written once
        "j1": JobStatus.RUNNING,
        "j2": JobStatus.RUNNING,  # nothing claimed that the claimant does not know of
        "j3": JobStatus.PENDING,
    }
    store.update({"j1": done})  # what it wrote is read afresh: no stale version is used


def test_a_write_that_raced_another_is_made_again_on_the_fresh_job(redis_url: str, store: RedisStore) -> None:
    store.add(make_job(id="a"), unchanged)
    other = RedisStore(redis_url, namespace=store.namespace)
    store.update({"a": lambda job: job.model_copy(update={"follow_up_minutes": 5})})  # remembered here
    other.update({"a": lambda job: job.model_copy(update={"delay_minutes": 99})})  # changed elsewhere since
    store.update({"a": lambda job: job.model_copy(update={"follow_up_minutes": 7})})
    [job] = store.load()
    assert (job.follow_up_minutes, job.delay_minutes) == (7, 99)  # neither change lost
    other.close()


def test_a_record_that_is_not_a_job_is_kept_reported_and_skipped(redis_url: str, store: RedisStore) -> None:
    import redis

    store.add(make_job(id="good", execute_at=utcnow()), unchanged)
    client = redis.Redis.from_url(redis_url)
    client.hset(f"{{{store.namespace}}}:rec", "bad", '{"clientId": "x", "status": "pending"}')
    [problem] = store.invalid()
    assert (problem.position, problem.ident) == (2, "bad")
    assert [job.id for job in store.load()] == ["good"]
    claimed, _ = store.claim(request_at(timedelta(0)))
    assert [job.id for job in claimed] == ["good"]
    assert client.hget(f"{{{store.namespace}}}:rec", "bad") == b'{"clientId": "x", "status": "pending"}'
    client.close()


# -- waking up ---------------------------------------------------------------------------------


def test_an_idle_worker_wakes_when_a_due_job_is_added(redis_url: str, store: RedisStore) -> None:
    stop = threading.Event()
    woke = threading.Event()

    def idle() -> None:
        store.wait_for_work(600, stop)  # far longer than the test lets it wait
        woke.set()

    waiter = threading.Thread(target=idle)
    waiter.start()
    other = RedisStore(redis_url, namespace=store.namespace)
    try:
        # Added again until the waiter hears one: its subscription may not be in place for the first.
        for number in range(600):
            other.add(make_job(id=f"n{number}", client_id=f"c{number}", execute_at=utcnow()), unchanged)
            if woke.wait(0.1):
                break
        assert woke.is_set(), "an idle worker slept through the jobs added"
    finally:
        stop.set()
        waiter.join(timeout=60)
        other.close()


# -- what doctor reads from the server ---------------------------------------------------------


def test_doctor_reads_what_the_server_keeps(own_redis: Callable[..., RedisServer]) -> None:
    import redis

    server = own_redis()
    store = RedisStore(server.url)
    assert [finding.level for finding in store.check()] == [
        "ok",
        "ok",
    ]  # reachable, persistence (the clock: doctor, for every server)
    client = redis.Redis.from_url(server.url)
    client.config_set("appendfsync", "everysec")
    persistence = store.check()[1]
    assert persistence.level == "warning"
    assert "up to a second" in persistence.message
    client.config_set("appendonly", "no")
    assert "appendonly no" in store.check()[1].message
    client.config_set("maxmemory-policy", "allkeys-lru")
    assert (
        Finding(
            "problem",
            "queue: maxmemory-policy allkeys-lru: Redis may evict jobs when memory runs short; "
            "set maxmemory-policy noeviction",
        )
        in store.check()
    )
    client.close()
    store.close()


def test_doctor_says_when_it_cannot_tell(own_redis: Callable[..., RedisServer]) -> None:
    server = own_redis(settings=['rename-command CONFIG ""'])
    store = RedisStore(server.url)
    persistence = store.check()[1]
    assert persistence.level == "warning"
    assert persistence.message.startswith("queue: cannot tell whether Redis keeps acknowledged jobs")
    store.close()


def test_the_command_line_on_redis(cli: CliRunner, redis_queue: str, tmp_path: Path) -> None:
    scheduled = invoke(cli, "--queue", redis_queue, "schedule", "acme", "2025-12-19", "0")
    assert scheduled.exit_code == 0, scheduled.output
    listed = invoke(cli, "--queue", redis_queue, "list", "--json")
    assert listed.exit_code == 0, listed.output
    [job] = json.loads(listed.stdout)
    assert (job["clientId"], job["status"]) == ("acme", "pending")
    doctor = invoke(cli, "--queue", redis_queue, "doctor")
    assert "appendfsync always" in doctor.stdout


def test_a_local_server_through_its_unix_socket(own_redis: Callable[..., RedisServer]) -> None:
    server = own_redis()
    assert server.directory is not None
    store = RedisStore(f"unix://{server.directory / 'redis.sock'}?db=2&namespace=local")
    store.add(make_job(id="a"), unchanged)
    assert [job.id for job in store.load()] == ["a"]
    assert store.location == f"unix://{server.directory / 'redis.sock'}?db=2&namespace=local"
    store.close()
    tcp = RedisStore(server.url.rsplit("/", 1)[0] + "/2", namespace="local")
    assert [job.id for job in tcp.load()] == ["a"]  # the same database, reached over TCP
    tcp.close()


def test_a_server_over_tls(own_redis: Callable[..., RedisServer], tmp_path: Path) -> None:
    from tests.redis_server import _free_port

    certificate, key = tmp_path / "server.pem", tmp_path / "server.key"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(certificate)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if made.returncode != 0:
        pytest.skip(f"openssl cannot make a certificate here: {made.stderr.strip()[:200]}")
    port = _free_port()
    own_redis(
        settings=[
            f"tls-port {port}",
            f"tls-cert-file {certificate}",
            f"tls-key-file {key}",
            f"tls-ca-cert-file {certificate}",
            "tls-auth-clients no",
        ]
    )
    store = RedisStore(f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={certificate}")
    store.add(make_job(id="a"), unchanged)
    assert [job.id for job in store.load()] == ["a"]
    store.close()


def test_a_claim_skips_the_jobs_this_run_already_started_however_many(store: RedisStore) -> None:
    start = utcnow() - timedelta(minutes=10)
    for number in range(40):
        job = make_job(id=f"j{number:02}", client_id=f"c{number}", execute_at=start + timedelta(seconds=number))
        store.add(job, unchanged)
    request = request_at(timedelta(0), limit=5)
    excluded = frozenset(f"j{number:02}" for number in range(30))
    claimed, _ = store.claim(
        ClaimRequest(request.due_by, request.limit, request.claimant, request.slots, exclude=excluded)
    )
    assert [job.id for job in claimed] == ["j30", "j31", "j32", "j33", "j34"]


# -- state documents -------------------------------------------------------------------------------


def test_state_documents_and_their_versions_are_kept_in_hashes(
    store: RedisStore, redis_url: str, redis_namespace: str
) -> None:
    import redis

    from retryq.stores import Plan, PlanResult

    store.update({}, plan=Plan(["k"], lambda docs, now, jobs: PlanResult(writes={"k": {"v": 1}})))
    store.update({}, plan=Plan(["k"], lambda docs, now, jobs: PlanResult(writes={"k": None})))
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        prefix = "{" + redis_namespace + "}"
        assert client.hgetall(f"{prefix}:state") == {}
        assert client.hgetall(f"{prefix}:statev") == {"k": "2"}  # a deleted key keeps its version
        assert client.get(f"{prefix}:statever") == "2"
    finally:
        client.close()


def test_a_job_a_plan_saw_that_changed_before_the_commit_makes_the_step_again(
    store: RedisStore, redis_url: str, redis_namespace: str
) -> None:
    """The caller's change left the job as it was (nothing to write), but the plan decided from it:
    its version is checked by the commit, and the step is made again on what is there now."""
    from retryq.stores import Plan, PlanResult

    store.add(make_job(id="a"), unchanged)
    other = RedisStore(redis_url, namespace=redis_namespace)
    seen: list[JobStatus] = []

    def decide(docs: Any, now: Any, jobs: Any) -> PlanResult:
        seen.append(jobs["a"].status)
        if len(seen) == 1:  # between this step's read and its commit, another host starts the job
            other.update({"a": lambda job: job.model_copy(update={"status": JobStatus.RUNNING, "run_id": "r"})})
        return PlanResult(writes={"k": {"status": jobs["a"].status.value}})

    store.update({"a": unchanged}, plan=Plan(["k"], decide))
    other.close()
    assert seen == [JobStatus.PENDING, JobStatus.RUNNING]
    assert store.state() == {"k": {"status": "running"}}
