"""Many real processes on one queue file: nothing lost, nothing run twice, the file always valid."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from retryq import JsonFileStore
from retryq.record.models import JobStatus

from ..helpers import write_script

pytestmark = pytest.mark.slow

SCHEDULER = textwrap.dedent(
    """
    import sys
    from retryq import Config, RetryQueue
    path, worker, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    queue = RetryQueue(path, config=Config())
    for number in range(count):
        result = queue.schedule(f"w{worker}-{number}", "2025-12-19", 0)
        assert result.created, result
    """
)

PROCESSOR = textwrap.dedent(
    """
    import sys, time
    from datetime import timedelta
    from retryq import JobStatus, Processor, RetryQueue
    from retryq.settings.config import Config, WorkflowSettings
    path, command, expected, concurrency = sys.argv[1], sys.argv[2:-2], int(sys.argv[-2]), int(sys.argv[-1])
    settings = WorkflowSettings("default", command=tuple(command), command_origin="test", concurrency=concurrency)
    queue = RetryQueue(path, config=Config(workflows={"default": settings}, concurrency=concurrency))
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        Processor(queue.store, queue.config, prune=False).run()
        jobs = queue.jobs()
        if len(jobs) >= expected and all(job.status is JobStatus.COMPLETED for job in jobs):
            break
        time.sleep(0.05)
    """
)


class FileWatcher:
    """Reads the queue file over and over while others write it; every read must parse."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.reads = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> FileWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                text = self.path.read_text()
            except FileNotFoundError:
                continue
            try:
                if not isinstance(json.loads(text), list):
                    self.errors.append("not a list")
            except ValueError as error:
                self.errors.append(str(error))
            self.reads += 1
            time.sleep(0.005)


def spawn(code: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code, *args])


def wait_all(processes: list[subprocess.Popen[bytes]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for process in processes:
        assert process.wait(timeout=max(1.0, deadline - time.monotonic())) == 0


def test_four_processes_scheduling_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / ".retry-queue.json"
    with FileWatcher(path) as watcher:
        wait_all([spawn(SCHEDULER, str(path), str(worker), "100") for worker in range(4)], timeout=120)
    jobs = JsonFileStore(path).load()
    assert len(jobs) == 400
    assert len({job.client_id for job in jobs}) == 400
    assert len({job.id for job in jobs}) == 400
    assert watcher.errors == []
    assert watcher.reads > 0


def test_eight_schedulers_and_two_processors_run_every_job_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / ".retry-queue.json"
    ran = tmp_path / "ran.log"
    # O_APPEND writes of one short line are atomic: the log cannot interleave.
    workflow = write_script(tmp_path / "record.sh", f'printf "%s\\n" "$RETRYQ_JOB_ID" >> {ran}\n')
    with FileWatcher(path) as watcher:
        schedulers = [spawn(SCHEDULER, str(path), str(worker), "250") for worker in range(8)]
        processors = [spawn(PROCESSOR, str(path), str(workflow), "2000", "4") for _ in range(2)]
        wait_all(schedulers, timeout=240)
        wait_all(processors, timeout=300)
    jobs = JsonFileStore(path).load()
    assert len(jobs) == 2000
    assert Counter(job.status for job in jobs) == {JobStatus.COMPLETED: 2000}
    runs = Counter(ran.read_text().split())
    assert len(runs) == 2000, "some job never ran"
    assert max(runs.values()) == 1, f"jobs ran twice: {[job for job, n in runs.items() if n > 1][:5]}"
    assert set(runs) == {job.id for job in jobs}
    assert watcher.errors == []


def test_overlapping_process_runs_never_run_a_job_twice(tmp_path: Path) -> None:
    path = tmp_path / ".retry-queue.json"
    ran = tmp_path / "ran.log"
    guard = tmp_path / "guard.py"
    guard.write_text(
        textwrap.dedent(
            f"""
            import fcntl, os, sys, time
            job = os.environ["RETRYQ_JOB_ID"]
            fd = os.open({str(tmp_path)!r} + "/" + job + ".lock", os.O_CREAT | os.O_RDWR)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print("CONCURRENT", job, file=open({str(ran)!r}, "a"))
                sys.exit(1)
            with open({str(ran)!r}, "a") as log:
                log.write(job + "\\n")
            time.sleep(0.02)
            """
        )
    )
    wait_all([spawn(SCHEDULER, str(path), "0", "120")], timeout=60)
    processors = [spawn(PROCESSOR, str(path), sys.executable, "-S", str(guard), "120", "3") for _ in range(4)]
    wait_all(processors, timeout=240)
    lines = ran.read_text().splitlines()
    assert not [line for line in lines if line.startswith("CONCURRENT")]
    assert Counter(lines).most_common(1)[0][1] == 1
    assert len(lines) == 120
