"""SIGKILL at random moments: the file always parses, nothing acknowledged is lost, no job runs
beside an orphan of its earlier run, and every interrupted job runs again after recovery."""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import textwrap
import time
from collections import defaultdict, deque
from pathlib import Path

import pytest

from retryq import JsonFileStore
from retryq.record.models import JobStatus, Outcome

from .test_concurrency import FileWatcher

pytestmark = pytest.mark.slow

GUARD = """
import fcntl, os, random, sys, time
job, run = os.environ["RETRYQ_JOB_ID"], os.environ["RETRYQ_RUN_ID"]
log = {log!r}
fd = os.open({locks!r} + "/" + job + ".lock", os.O_CREAT | os.O_RDWR)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    with open(log, "a") as out:
        out.write(f"CONCURRENT {{job}} {{run}}\\n")
    sys.exit(1)
with open(log, "a") as out:
    out.write(f"start {{job}} {{run}} {{time.time()}}\\n")
time.sleep(random.uniform(0, 0.25))
with open(log, "a") as out:
    out.write(f"end {{job}} {{run}} {{time.time()}}\\n")
"""


def test_a_hundred_sigkills_lose_nothing_and_never_overlap(tmp_path: Path, retryq_bin: str) -> None:
    queue_path = tmp_path / ".retry-queue.json"
    log = tmp_path / "runs.log"
    locks = tmp_path / "locks"
    locks.mkdir()
    guard = tmp_path / "guard.py"
    guard.write_text(textwrap.dedent(GUARD.format(log=str(log), locks=str(locks))))
    (tmp_path / "retryq.toml").write_text(
        textwrap.dedent(
            f"""
            concurrency = 3
            timeout = "30s"
            kill_grace = "1s"
            max_attempts = 100

            [workflow]
            command = [{json.dumps(sys.executable)}, "-S", {json.dumps(str(guard))}]
            """
        )
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("RETRYQ_")}
    rng = random.Random(20251219)
    acknowledged: set[str] = set()
    kills = {"schedule": 0, "process": 0}
    number = 0

    def run(args: list[str], kill_after: float) -> tuple[int | None, float]:
        """Run retryq; SIGKILL it after ``kill_after`` seconds unless it ended; return its code and duration."""
        started = time.monotonic()
        process = subprocess.Popen([retryq_bin, *args], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL)
        try:
            return process.wait(timeout=kill_after), time.monotonic() - started
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            return None, time.monotonic() - started

    # Kill windows follow how long each command takes on this machine *now* (a loaded machine is
    # several times slower), so that kills land anywhere from start-up to the last write.
    # Measured by runs left alone (the ones that escape a kill are the short ones: a biased sample).
    pace = {"schedule": Pace(), "process": Pace()}

    def calibrate() -> None:
        nonlocal number
        number += 1
        code, took = run(["schedule", f"c{number}", "2025-12-19", "0", "--max-attempts", "100"], 120)
        assert code == 0
        acknowledged.add(f"c{number}")
        pace["schedule"].add(took)
        pace["process"].add(run(["process", "--no-prune"], 120)[1])

    for _ in range(3):
        calibrate()
    with FileWatcher(queue_path) as watcher:
        while sum(kills.values()) < 120:
            number += 1
            assert number < 2000, f"the campaign does not converge: {kills}, pace {pace}"
            if number % 10 == 0:
                calibrate()
            if rng.random() < 0.5:
                command, client = "schedule", f"c{number}"
                args = ["schedule", client, "2025-12-19", "0", "--max-attempts", "100"]
            else:
                command, client, args = "process", "", ["process", "--no-prune"]
            code, _ = run(args, pace[command].kill_after(rng))
            kills[command] += code is None
            if command == "schedule" and code == 0:
                acknowledged.add(client)
            if queue_path.exists():
                json.loads(queue_path.read_text())  # parses after every kill
        # Now let `process` finish undisturbed: recovery, then the re-runs.
        for _ in range(30):
            assert run(["process", "--no-prune"], 120)[0] == 0
            jobs = JsonFileStore(queue_path).load()
            if all(job.status is JobStatus.COMPLETED for job in jobs):
                break

    assert kills["schedule"] >= 20
    assert kills["process"] >= 20
    assert watcher.errors == []
    jobs = JsonFileStore(queue_path).load()
    assert acknowledged <= {job.client_id for job in jobs}, "a schedule that exited 0 was lost"
    assert {job.status for job in jobs} == {JobStatus.COMPLETED}

    records = log.read_text().splitlines()
    assert not [line for line in records if line.startswith("CONCURRENT")], "a job ran beside an orphan"
    intervals: dict[str, list[tuple[float, float]]] = defaultdict(list)
    starts: dict[str, float] = {}
    for line in records:
        kind, job, run_id, stamp = line.split()
        if kind == "start":
            starts[run_id] = float(stamp)
        else:
            intervals[job].append((starts.pop(run_id), float(stamp)))
    for job_runs in intervals.values():
        assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(sorted(job_runs)))

    interrupted = [job for job in jobs if any(a.outcome is Outcome.INTERRUPTED for a in job.history)]
    assert interrupted, "no run was killed mid-flight; the campaign proved nothing"
    for job in interrupted:
        last_interrupt = max(i for i, a in enumerate(job.history) if a.outcome is Outcome.INTERRUPTED)
        assert job.history[-1].outcome is Outcome.SUCCEEDED
        assert len(job.history) > last_interrupt + 1
    assert _no_leftover_workflows(guard)
    print(  # shown with -s: what the campaign did
        f"kills {kills}, acknowledged {len(acknowledged)}, jobs {len(jobs)}, "
        f"interrupted {len(interrupted)}, runs {len(intervals)}, records {len(records)}, pace {pace}"
    )


class Pace:
    """How long a command takes here lately: the median of its last uninterrupted runs."""

    def __init__(self) -> None:
        self.samples: deque[float] = deque(maxlen=9)

    def add(self, seconds: float) -> None:
        self.samples.append(seconds)

    def kill_after(self, rng: random.Random) -> float:
        """A random moment from early start-up to a while after a typical run ends (about half get killed)."""
        typical = statistics.median(self.samples)
        return rng.uniform(0.3 * typical, 1.5 * typical)

    def __repr__(self) -> str:
        return f"median {statistics.median(self.samples):.3f}s of {len(self.samples)}"


def _no_leftover_workflows(guard: Path) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        alive = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if str(guard).encode() in (entry / "cmdline").read_bytes():
                        alive.append(entry.name)
                except OSError:
                    continue
        if not alive:
            return True
        time.sleep(0.1)
    return False
