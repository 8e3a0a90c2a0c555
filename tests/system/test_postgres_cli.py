"""The installed command on a PostgreSQL queue: the same loop, the same output, a password never shown."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from retryq import Processor, RetryQueue
from retryq.record.backoff import constant

from .. import postgres_cluster
from ..conftest import PostgresServer
from ..helpers import FakeWorkflow, make_config, unavailable, write_script

pytestmark = pytest.mark.postgres

SECRET = "s3cr3t-Pa55"


def with_password(url: str) -> str:
    """The same URL with a password (the test cluster trusts loopback: any password is accepted)."""
    parts = urlsplit(url)
    user, host = parts.netloc.rsplit("@", 1)
    return urlunsplit((parts.scheme, f"{user}:{SECRET}@{host}", parts.path, parts.query, ""))


@pytest.fixture
def secret_queue(postgres_queue: str) -> str:
    return with_password(postgres_queue)


def retryq(retryq_bin: str, *args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(retryq_bin).parent}:/usr/bin:/bin"}
    result = subprocess.run(
        [retryq_bin, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert SECRET not in result.stdout + result.stderr, f"the password was shown by retryq {' '.join(args)}"
    return result


@pytest.mark.slow
def test_the_loop_runs_on_postgresql_and_no_output_shows_the_password(
    tmp_path: Path, retryq_bin: str, secret_queue: str
) -> None:
    # A fetcher that finds 647 of 650 the first time (and says so with `retryq report`, which finds
    # the queue through RETRYQ_QUEUE), then all 650.
    write_script(
        tmp_path / "fetch.sh",
        """
n=$(( $(cat count 2>/dev/null || echo 0) + 1 )); echo $n > count
printf '%s\\n' "${RETRYQ_QUEUE:-unset}|${RETRYQ_QUEUE_FILE:-unset}" >> seen
if [ $n -eq 1 ]; then exec retryq report "$1" "$2" --total 650 --fetched 647 --delay 0; fi
exec retryq report "$1" "$2" --total 650 --fetched 650
""",
    )
    (tmp_path / "retryq.toml").write_text(
        f'queue = "{secret_queue}"\n\n[workflow]\ncommand = ["{tmp_path / "fetch.sh"}", "{{client}}", "{{date}}"]\n'
    )
    scheduled = retryq(retryq_bin, "schedule", "balthazar", "2025-12-19", "0", cwd=tmp_path)
    assert scheduled.returncode == 0, scheduled.stderr

    first = retryq(retryq_bin, "process", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "rescheduled 1" in first.stdout
    second = retryq(retryq_bin, "process", "--verbose", cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "succeeded 1" in second.stdout

    [job] = json.loads(retryq(retryq_bin, "list", "--json", cwd=tmp_path).stdout)
    assert (job["status"], job["attempt"], [entry["outcome"] for entry in job["history"]]) == (
        "completed",
        2,
        ["incomplete", "succeeded"],
    )
    assert (tmp_path / "seen").read_text().splitlines() == [f"{secret_queue}|unset"] * 2  # the child's own address

    doctor = retryq(retryq_bin, "doctor", cwd=tmp_path)
    schema = secret_queue.rsplit("%3D", 1)[1]
    assert f"database reachable, schema {schema} at version 3" in doctor.stdout
    for command in (["show", job["id"][:8]], ["stats"], ["export", "--archive"], ["prune", "--dry-run"]):
        assert retryq(retryq_bin, *command, cwd=tmp_path).returncode == 0, command
    # The same, with the address given on the command line instead.
    (tmp_path / "retryq.toml").unlink()
    listed = retryq(retryq_bin, "--queue", secret_queue, "list", cwd=tmp_path)
    assert "balthazar" in listed.stdout
    assert "completed" in listed.stdout


@pytest.mark.slow
def test_an_unreachable_database_is_one_line_and_exit_75(tmp_path: Path, retryq_bin: str) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://retryq:{SECRET}@127.0.0.1:{port}/postgres"
    for command in (["schedule", "balthazar", "2025-12-19", "60"], ["process"]):
        result = retryq(retryq_bin, "--queue", url, *command, cwd=tmp_path)
        assert result.returncode == 75, result.stderr
        assert result.stderr.count("\n") == 1
        assert result.stderr.startswith(f"retryq: error: postgresql://retryq@127.0.0.1:{port}/postgres: cannot reach")


def test_a_malformed_address_is_a_configuration_error(tmp_path: Path, retryq_bin: str) -> None:
    result = retryq(retryq_bin, "--queue", f"postgresql://u:{SECRET}@127.0.0.1/db?bogus=1", "list", cwd=tmp_path)
    assert result.returncode == 78
    assert "not a valid PostgreSQL address" in result.stderr
    assert result.stderr.count("\n") == 1


# -- a worker wakes when a job becomes due -----------------------------------------------------------


@pytest.fixture
def listening_worker(postgres_queue: str, workflow: FakeWorkflow) -> Iterator[tuple[RetryQueue, Processor]]:
    """A worker on the database that would poll once an hour: only a notification can wake it sooner."""
    config = make_config(workflow.argv(), queue=postgres_queue)
    processor = Processor(RetryQueue(config=config).store, config)
    thread = threading.Thread(
        target=processor.run, kwargs={"worker": True, "poll": constant(3600), "handle_signals": False}
    )
    thread.start()
    try:
        yield RetryQueue(config=config), processor
    finally:
        processor.request_stop()
        thread.join(timeout=60)
        processor.store.close()
        assert not thread.is_alive()


def _listening(url: str, channel: str) -> bool:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query = %s", (f'LISTEN "{channel}"',)
        ).fetchone()
    return bool(row and row[0])


def wait_for(condition: object, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_an_idle_worker_wakes_when_a_job_is_scheduled_due_now(
    listening_worker: tuple[RetryQueue, Processor], workflow: FakeWorkflow, postgres_queue: str, postgres_schema: str
) -> None:
    queue, _ = listening_worker
    wait_for(lambda: _listening(postgres_queue, f"retryq_{postgres_schema}"), "the worker to listen")
    queue.schedule("balthazar", "2025-12-19", 0)
    wait_for(lambda: len(workflow.calls()) == 1, "the worker to run the job", timeout=120)
    wait_for(lambda: queue.jobs()[0].status.value == "completed", "the result to be written")
    queue.schedule("acme", "2025-12-19", 0)  # and again, on the same listening connection
    wait_for(lambda: len(workflow.calls()) == 2, "the worker to run the second job", timeout=120)
    queue.store.close()


@pytest.mark.slow
def test_a_server_restart_during_a_run_loses_nothing(
    tmp_path: Path, retryq_bin: str, postgres_server: PostgresServer, postgres_queue: str
) -> None:
    """The connection is lost while the workflow runs; the server is back before the lease ends: the result is kept."""
    if postgres_server.directory is None:
        unavailable("this test restarts the server: set RETRYQ_TEST_POSTGRES_DIR to its cluster directory")
    write_script(tmp_path / "fetch.sh", "touch started\nwhile [ ! -f go ]; do sleep 0.05; done\n")
    (tmp_path / "retryq.toml").write_text(
        f'queue = "{postgres_queue}"\n[workflow]\ncommand = ["{tmp_path / "fetch.sh"}"]\ntimeout = "10m"\n'
    )
    assert retryq(retryq_bin, "schedule", "balthazar", "2025-12-19", "0", cwd=tmp_path).returncode == 0
    env = {**os.environ, "PATH": f"{Path(retryq_bin).parent}:/usr/bin:/bin"}
    with subprocess.Popen(
        [retryq_bin, "process"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as running:
        wait_for((tmp_path / "started").exists, "the workflow to start")
        postgres_cluster.restart(postgres_server.directory)
        (tmp_path / "go").touch()
        output, _ = running.communicate(timeout=300)
    assert running.returncode == 0, output
    assert "cannot reach the database" in output  # the connection was lost, and found again
    [job] = json.loads(retryq(retryq_bin, "list", "--json", cwd=tmp_path).stdout)
    assert (job["status"], [entry["outcome"] for entry in job["history"]]) == ("completed", ["succeeded"])
