"""SIGTERM and SIGINT to a real `retryq process` or `retryq run`: workflows stopped, jobs given back."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from retryq import JsonFileStore
from retryq.record.models import JobStatus, Outcome
from retryq.running.platform import pid_alive

from ..helpers import write_script

pytestmark = pytest.mark.slow


def wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


@pytest.fixture
def long_workflow(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "workflow.pid"
    script = write_script(tmp_path / "long.sh", f"echo $$ > {marker}.tmp && mv {marker}.tmp {marker}\nsleep 60\n")
    return script, marker


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_gives_the_running_job_back_unchanged(
    tmp_path: Path, retryq_bin: str, long_workflow: tuple[Path, Path], sig: signal.Signals, code: int
) -> None:
    script, marker = long_workflow
    env = {**os.environ, "RETRYQ_COMMAND": str(script)}
    subprocess.run([retryq_bin, "schedule", "balthazar", "2025-12-19", "0"], env=env, check=True, capture_output=True)
    process = subprocess.Popen([retryq_bin, "process"], env=env, stdout=subprocess.PIPE, text=True)
    wait_for(marker)
    workflow_pid = int(marker.read_text())
    process.send_signal(sig)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == code
    assert f"warning: received {sig.name}: stopping" in output
    assert "given back 1" in output
    assert not pid_alive(workflow_pid)
    [job] = JsonFileStore(tmp_path / ".retry-queue.json").load()
    assert (job.status, job.attempt, job.owner, job.run_id) == (JobStatus.PENDING, 1, None, None)
    assert job.history[-1].outcome is Outcome.STOPPED


def test_a_stopped_job_runs_on_the_next_process(
    tmp_path: Path, retryq_bin: str, long_workflow: tuple[Path, Path]
) -> None:
    script, marker = long_workflow
    env = {**os.environ, "RETRYQ_COMMAND": str(script)}
    subprocess.run([retryq_bin, "schedule", "balthazar", "2025-12-19", "0"], env=env, check=True, capture_output=True)
    first = subprocess.Popen([retryq_bin, "process"], env=env, stdout=subprocess.DEVNULL)
    wait_for(marker)
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=30) == 143
    marker.unlink()
    quick = write_script(tmp_path / "quick.sh", "exit 0\n")
    subprocess.run([retryq_bin, "process"], env={**env, "RETRYQ_COMMAND": str(quick)}, check=True, capture_output=True)
    [job] = JsonFileStore(tmp_path / ".retry-queue.json").load()
    assert (job.status, job.attempt) == (JobStatus.COMPLETED, 1)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_to_run_stops_the_workflow(
    tmp_path: Path, retryq_bin: str, long_workflow: tuple[Path, Path], sig: signal.Signals, code: int
) -> None:
    script, marker = long_workflow
    process = subprocess.Popen(
        [retryq_bin, "run", "balthazar", "2025-12-19"], env={**os.environ, "RETRYQ_COMMAND": str(script)}
    )
    wait_for(marker)
    process.send_signal(sig)
    assert process.wait(timeout=30) == code
    assert not pid_alive(int(marker.read_text()))
