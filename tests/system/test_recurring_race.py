"""Real `retryq process` processes started at one tick, on each backend: every occurrence is enqueued and run once.

Six processes are started together, several rounds; each round's schedule is new and was first seen
ten minutes before, so that its latest occurrence is due for all of them at once. Whichever gets
there first enqueues and runs it; the others find it done. The workflow records each run.
"""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from retryq import RetryQueue
from retryq.running.recurring import Record
from retryq.stores import Plan, PlanResult

from ..helpers import make_config, write_script

pytestmark = pytest.mark.slow

PROCESSES = 6
ROUNDS = 3


@pytest.fixture(
    params=[
        "file",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("redis", marks=pytest.mark.redis),
    ]
)
def address(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "file":
        return str(tmp_path / ".retry-queue.json")
    return str(request.getfixturevalue(f"{request.param}_queue"))


def test_processes_at_one_tick_enqueue_and_run_each_occurrence_once(
    tmp_path: Path, retryq_bin: str, address: str
) -> None:
    write_script(tmp_path / "sync.sh", 'echo "$RETRYQ_JOB_ID $1 $2" >> runs\n')
    schedules = [f"round-{number}" for number in range(ROUNDS)]
    queue = RetryQueue(config=make_config(queue=address))
    env = {**os.environ, "PATH": f"{Path(retryq_bin).parent}:/usr/bin:/bin"}
    outputs = []
    for name in schedules:
        now = queue.store.server_now() or datetime.now(timezone.utc)
        seen = Record("* * * * *", "UTC", since=now - timedelta(minutes=10)).to_doc()
        key = f"schedule:{name}"
        (tmp_path / "retryq.toml").write_text(  # this round's schedule alone
            f'queue = "{address}"\n\n[workflows.sync]\ncommand = ["{tmp_path / "sync.sh"}", "{{client}}", "{{date}}"]\n'
            f'\n[schedules.{name}]\ncron = "* * * * *"\nworkflow = "sync"\ntz = "UTC"\n'
        )
        queue.store.update({}, plan=Plan([key], lambda docs, now, jobs, key=key, seen=seen: PlanResult({key: seen})))
        runs = [
            subprocess.Popen(
                [retryq_bin, "process"],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(PROCESSES)
        ]
        for run in runs:
            output, _ = run.communicate(timeout=300)
            assert run.returncode == 0, output
            outputs.append(output)
    log = "\n".join(outputs)
    ran = Counter(line.split()[0] for line in (tmp_path / "runs").read_text().splitlines())
    assert ran, log
    assert set(ran.values()) == {1}, f"a job ran twice: {ran}\n{log}"
    enqueued = [line for line in log.splitlines() if " enqueued as job " in line]
    occurrences = Counter(line.split("schedule ", 1)[1].split(" enqueued", 1)[0] for line in enqueued)
    assert set(occurrences.values()) == {1}, f"an occurrence was enqueued twice:\n{log}"
    jobs = queue.jobs()
    assert sorted(ran) == sorted(job.id for job in jobs)
    for name in schedules:
        record = Record.of(queue.store.state()[f"schedule:{name}"])
        assert record is not None
        assert record.job in ran, log
    queue.close()
