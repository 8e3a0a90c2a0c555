"""Several hosts on one server's queue: three `retryq worker`s on many jobs, one SIGKILLed mid-run, the
server restarted mid-run; nothing lost, nothing run twice at once. The simulation, shared by the
PostgreSQL and the Redis tests, which differ only in their server and how it restarts.

Each worker is a real ``retryq worker`` process with a host identity of its own (``RETRYQ_HOST``),
so that none of them may judge another's processes: a job whose worker died is taken up only once
its lease has ended, as it would be on another machine. Every run of the workflow takes a lock of
its job (``flock -n``): a run beside another run of the same job is recorded, and fails the test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from retryq import RetryQueue, Store
from retryq.record.errors import ExitCode, StoreUnavailable
from retryq.record.models import JobStatus, Outcome

from ..helpers import make_config, write_script

WORKERS = 3
#: The workflow: one lock per job (a second run of it beside the first is an overlap), its start and
#: end written down; host-0, once `arm` exists, hangs 5 s in its next run (well within the 13 s lease),
#: which is when the test kills host-0's worker: that job is mid-run, its run orphaned.
FETCH = """
exec 9>"locks/$RETRYQ_JOB_ID"
if ! flock -n 9; then echo "$RETRYQ_JOB_ID" >> overlaps; exit 1; fi
echo "$RETRYQ_JOB_ID $RETRYQ_ATTEMPT $RETRYQ_HOST" >> starts
if [ "$RETRYQ_HOST" = host-0 ] && [ -f arm ]; then touch "stuck-$RETRYQ_JOB_ID"; sleep 5; fi
sleep 0.05
echo "$RETRYQ_JOB_ID" >> ends
"""


@dataclass(frozen=True)
class Simulation:
    """What the simulation measured, for the test's last line."""

    elapsed: float
    by_host: dict[str, int]
    killed_at: int
    recovered: int
    restarted_at: int
    restart_took: float

    def describe(self, jobs: int, restart: str) -> str:
        return (
            f"\n{jobs} jobs, {WORKERS} hosts: all completed in {self.elapsed:.1f} s; runs by host {self.by_host}; "
            f"host-0 killed after {self.killed_at} runs, {self.recovered} of its jobs taken up after their lease; "
            f"{restart} after {self.restarted_at} runs (took {self.restart_took:.1f} s); 0 overlaps, 0 lost"
        )


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def simulate(
    tmp_path: Path,
    retryq_bin: str,
    *,
    queue: str,
    open_store: Callable[[], Store],
    restart: Callable[[], None],
    jobs: int,
    batch: int,
) -> Simulation:
    """Run the simulation on the queue at ``queue``; ``restart`` restarts its server; ``batch`` runs
    between the events (the kill, the restart). Asserts that nothing was lost or overlapped."""
    write_script(tmp_path / "fetch.sh", FETCH)
    (tmp_path / "locks").mkdir()
    (tmp_path / "retryq.toml").write_text(
        f'queue = "{queue}"\nlease_grace = "2s"\n\n'
        f'[workflow]\ncommand = ["{tmp_path / "fetch.sh"}", "{{client}}", "{{date}}"]\n'
        'timeout = "10s"\nkill_grace = "1s"\nmax_attempts = 3\n'
    )
    with RetryQueue(open_store(), config=make_config(queue=queue)) as scheduling:
        for number in range(jobs):
            scheduling.schedule(f"client{number:03d}", "2025-12-19", 0)

    env = {key: value for key, value in os.environ.items() if not key.startswith("RETRYQ_")}
    env["PATH"] = f"{Path(retryq_bin).parent}:/usr/bin:/bin"
    workers = []
    for number in range(WORKERS):
        with (tmp_path / f"worker-{number}.log").open("w") as log:
            workers.append(
                subprocess.Popen(
                    [retryq_bin, "worker", "--concurrency", "4"],
                    cwd=tmp_path,
                    env={**env, "RETRYQ_HOST": f"host-{number}"},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    started = time.monotonic()
    store = open_store()
    try:
        wait_for(lambda: len(lines(tmp_path / "ends")) >= batch, f"{batch} runs")
        (tmp_path / "arm").touch()
        wait_for(lambda: any(tmp_path.glob("stuck-*")), "host-0 to be mid-run")
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(timeout=60)
        killed_at = len(lines(tmp_path / "ends"))

        wait_for(lambda: len(lines(tmp_path / "ends")) >= killed_at + batch, f"{batch} more runs")
        restart_started = time.monotonic()
        restart()
        restart_took = time.monotonic() - restart_started
        restarted_at = len(lines(tmp_path / "ends"))

        def all_completed() -> bool:
            try:
                return [job.status for job in store.load()] == [JobStatus.COMPLETED] * jobs
            except StoreUnavailable:
                return False

        wait_for(all_completed, "every job to complete")
        elapsed = time.monotonic() - started
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        codes = [worker.wait(timeout=120) for worker in workers]

    final = store.load()
    store.close()
    assert codes == [-signal.SIGKILL, ExitCode.SIGTERM, ExitCode.SIGTERM], [
        (tmp_path / f"worker-{n}.log").read_text()[-2000:] for n in range(WORKERS)
    ]
    assert not (tmp_path / "overlaps").exists(), lines(tmp_path / "overlaps")

    starts = Counter(line.split()[0] for line in lines(tmp_path / "starts"))
    by_host = Counter(line.split()[2] for line in lines(tmp_path / "starts"))
    recovered = [job for job in final if any(entry.outcome is Outcome.INTERRUPTED for entry in job.history)]
    stuck = {path.name.removeprefix("stuck-") for path in tmp_path.glob("stuck-*")}
    assert len(final) == jobs
    assert stuck <= {job.id for job in recovered}
    assert 1 <= len(recovered) <= 4  # host-0's runs at the time of the kill (its concurrency)
    for job in final:
        assert [entry.outcome for entry in job.history][-1] is Outcome.SUCCEEDED
        interrupted = job in recovered
        # Every attempt ran once and none was lost; but a run of the killed host may have been stopped (its
        # watchdog stops its workflows) before the workflow wrote its first line: an attempt with no start.
        ran = len(job.history) - 1 if interrupted else len(job.history)
        assert ran <= starts[job.id] <= len(job.history), job.id
        assert len(job.history) == (2 if interrupted else 1), job.id
        assert job.history[-1].attempt == job.attempt
    return Simulation(elapsed, dict(sorted(by_host.items())), killed_at, len(recovered), restarted_at, restart_took)
