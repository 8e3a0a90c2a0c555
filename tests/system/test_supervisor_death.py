"""A workflow never outlives the process that supervises it by more than kill_grace.

A worker SIGKILLed (as by the OOM killer) cannot stop its workflows itself: each run is tied to
its life, and its whole process group goes down with it (SIGTERM, SIGKILL after kill_grace). So a
lease covers the run across hosts: when another host takes the job up after the lease, nothing
of the first run is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from retryq import RetryQueue
from retryq.record.models import JobStatus
from retryq.running.platform import pid_alive
from retryq.stores.postgres import PostgresStore

from ..helpers import make_config, write_script

pytestmark = pytest.mark.slow


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def group_members(pgid: int) -> list[int]:
    """The live processes of a process group (from /proc: zombies do not count)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[2] == str(pgid) and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def clean_environment(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("RETRYQ_")}
    return {**env, **extra}


def test_a_sigkilled_worker_takes_its_workflows_whole_group_down_within_kill_grace(
    tmp_path: Path, retryq_bin: str
) -> None:
    # The workflow, the grandchild it starts in its group, and one that leaves the group (setsid) all
    # ignore SIGTERM: only SIGKILL ends them.
    write_script(
        tmp_path / "stubborn.sh",
        "trap '' TERM\n"
        "setsid sh -c 'echo $$ > escaped.tmp && mv escaped.tmp escaped; exec sleep 1000' &\n"
        "sleep 1000 &\n"
        "cut -d' ' -f5 /proc/$$/stat > group.tmp && mv group.tmp group\n"  # field 5: the process group
        "wait\n",
    )
    (tmp_path / "retryq.toml").write_text(
        f'[workflow]\ncommand = ["{tmp_path / "stubborn.sh"}"]\ntimeout = "1h"\nkill_grace = "1s"\n'
    )
    env = clean_environment()
    subprocess.run([retryq_bin, "schedule", "balthazar", "2025-12-19", "0"], cwd=tmp_path, env=env, check=True)
    worker = subprocess.Popen([retryq_bin, "worker"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL)
    pgid = escaped = 0
    try:
        wait_for((tmp_path / "group").exists, "the workflow to start")
        wait_for((tmp_path / "escaped").exists, "the escaped grandchild to start")
        pgid, escaped = int((tmp_path / "group").read_text()), int((tmp_path / "escaped").read_text())
        wait_for(lambda: len(group_members(pgid)) >= 2, "the grandchild to start")
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=60)
        killed_at = time.monotonic()
        wait_for(lambda: not group_members(pgid), "the workflow's group to go", timeout=120)
        wait_for(lambda: not pid_alive(escaped), "the process that left the group to go", timeout=120)
        took = time.monotonic() - killed_at
        print(f"\nthe workflow's group was gone {took:.2f} s after the worker's SIGKILL (kill_grace 1 s)")
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        if pgid and group_members(pgid):
            os.killpg(pgid, signal.SIGKILL)
        if escaped and pid_alive(escaped):
            os.kill(escaped, signal.SIGKILL)


@pytest.mark.postgres
def test_two_workers_on_one_database_never_run_one_job_twice_at_once_when_one_is_sigkilled(
    tmp_path: Path, retryq_bin: str, postgres_queue: str, postgres_schema: str, postgres_url: str
) -> None:
    # On host-a, each run takes far longer than its timeout allows: only its supervisor would stop it.
    # Each run records its start and its end (on SIGTERM too) with its own pid. Its output goes to a
    # file: once its supervisor is dead, a write to the output pipe would kill it (SIGPIPE) unrecorded.
    write_script(
        tmp_path / "fetch.sh",
        'exec >> "output-$$" 2>&1\n'
        'stamp() { echo "$1 $RETRYQ_JOB_ID $$ $(date +%s.%N)" >> runs; }\n'
        "trap 'trap \"\" TERM; stamp end; exit 143' TERM\n"
        "stamp start\n"
        'if [ "$RETRYQ_HOST" = host-a ]; then sleep 600 & wait $!; fi\n'
        "stamp end\n",
    )
    (tmp_path / "retryq.toml").write_text(
        f'queue = "{postgres_queue}"\nlease_grace = "1s"\n\n'
        f'[workflow]\ncommand = ["{tmp_path / "fetch.sh"}"]\ntimeout = "4s"\nkill_grace = "1s"\nmax_attempts = 5\n'
    )
    queue = RetryQueue(config=make_config(queue=postgres_queue))
    for number in range(2):
        queue.schedule(f"client{number}", "2025-12-19", 0)
    queue.store.close()
    store = PostgresStore(postgres_url, schema=postgres_schema)

    def starts() -> list[str]:
        runs = tmp_path / "runs"
        return [line for line in runs.read_text().splitlines() if line.startswith("start")] if runs.exists() else []

    workers = {}
    try:
        for host in ("host-a", "host-b"):
            workers[host] = subprocess.Popen(
                [retryq_bin, "worker", "--concurrency", "2"],
                cwd=tmp_path,
                env=clean_environment(RETRYQ_HOST=host),
                stdout=(tmp_path / f"{host}.log").open("w"),
                stderr=subprocess.STDOUT,
            )
            if host == "host-a":  # host-a takes both jobs; then host-b joins
                wait_for(lambda: len(starts()) == 2, "host-a to start both jobs")
        workers["host-a"].send_signal(signal.SIGKILL)
        workers["host-a"].wait(timeout=60)
        wait_for(
            lambda: [job.status for job in store.load()] == [JobStatus.COMPLETED] * 2,
            "host-b to take both jobs up after their lease",
        )
    finally:
        for worker in workers.values():
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
                worker.wait(timeout=60)
        store.close()
        stop_runs_left(tmp_path / "runs")

    intervals: dict[str, list[tuple[float, float]]] = {}
    opened: dict[str, tuple[str, float]] = {}
    runs_text = (tmp_path / "runs").read_text()
    for line in runs_text.splitlines():
        kind, job, pid, stamp = line.split()
        if kind == "start":
            opened[pid] = (job, float(stamp))
        else:
            assert pid in opened, runs_text
            job, started = opened.pop(pid)
            intervals.setdefault(job, []).append((started, float(stamp)))
    assert not opened, f"runs that never ended (still running, or killed without a word): {runs_text}"
    for job, runs in intervals.items():
        runs.sort()
        assert len(runs) == 2, (job, runs)
        (_, first_end), (second_start, _) = runs
        assert first_end <= second_start, f"job {job}: two runs at once {runs}"


def stop_runs_left(runs: Path) -> None:
    """Whatever run of this test is still going (a failure) is not left behind: its group is killed."""
    if not runs.exists():
        return
    for line in runs.read_text().splitlines():
        pid = int(line.split()[2])
        try:
            if Path(f"/proc/{pid}/environ").read_bytes().find(b"RETRYQ_RUN_ID=") >= 0:
                os.killpg(os.getpgid(pid), signal.SIGKILL)
        except OSError:
            continue
