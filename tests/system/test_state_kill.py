"""SIGKILL of a process in the middle of many writes that change jobs and state documents together:
the queue file and its state file always agree, after every kill, for readers and writers alike."""

from __future__ import annotations

import hashlib
import json
import random
import selectors
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import pytest

from retryq import JsonFileStore
from retryq.record.models import Job
from retryq.stores import Plan, PlanResult, StateDoc

pytestmark = pytest.mark.slow

# Two kinds of steps, each one write: add job k<n> and count it; or mark job k<m> (a plan's own
# mutation) and count the mark. After any kill, the counts must be exactly what the queue holds.
WRITER = """
import sys
from datetime import datetime, timezone
from retryq import JsonFileStore
from retryq.record.models import Job
from retryq.stores import Plan, PlanResult

T0 = datetime(2025, 12, 19, 10, 0, tzinfo=timezone.utc)
store = JsonFileStore(sys.argv[1])

def counter(docs):
    return docs.get("counter", {"jobs": 0, "marks": 0})

def add_step(docs, now, jobs):
    doc = counter(docs)
    [added] = jobs
    if added != f"k{doc['jobs']}":
        return PlanResult(abort=True)  # the count moved since it was read: not this step's job
    return PlanResult(writes={"counter": {**doc, "jobs": doc["jobs"] + 1}})

def mark_step(docs, now, jobs):
    doc = counter(docs)
    if doc["marks"] >= doc["jobs"]:
        return PlanResult()
    mark = lambda job: job.model_copy(update={"follow_up_minutes": 1})
    return PlanResult(writes={"counter": {**doc, "marks": doc["marks"] + 1}}, mutations={f"k{doc['marks']}": mark})

for step in range(10**9):
    if step % 3 == 2:
        store.update({}, plan=Plan(["counter"], mark_step))
    else:
        n = store.state(["counter"]).get("counter", {"jobs": 0})["jobs"]
        job = Job(id=f"k{n}", client_id=f"c{n}", date="2025-12-19", scheduled_at=T0, execute_at=T0, delay_minutes=0)
        store.add(job, lambda job: job, plan=Plan(["counter"], add_step))
    if step == 0:
        print("writing", flush=True)
"""


def consistent(path: Path) -> tuple[int, int]:
    """Check that the queue and its state agree, as a reader sees them; return the counts."""
    json.loads(path.read_text())  # the queue parses
    store = JsonFileStore(path)
    jobs = store.load()
    counter = store.state().get("counter", {"jobs": 0, "marks": 0})
    assert [job.id for job in jobs] == [f"k{n}" for n in range(counter["jobs"])], "jobs and their count disagree"
    marked = [job.id for job in jobs if job.follow_up_minutes == 1]
    assert marked == [f"k{n}" for n in range(counter["marks"])], "marks and their count disagree"
    return counter["jobs"], counter["marks"]


def noop(docs: Mapping[str, StateDoc], now: datetime | None, jobs: Mapping[str, Job | None]) -> PlanResult:
    return PlanResult()


def test_sigkills_between_the_queue_and_its_state_never_split_a_write(tmp_path: Path) -> None:
    path = tmp_path / "queue.json"
    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent(WRITER))
    journal = Path(f"{path}.state.next.json")
    rng = random.Random(20251222)
    kills, journals, counts = 0, {"committed": 0, "dropped": 0}, (0, 0)
    while kills < 40 or journals["committed"] + journals["dropped"] < 3:
        assert kills < 400, f"the campaign does not converge: {kills} kills, journals left {journals}"
        writer = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE)
        assert writer.stdout is not None
        with selectors.DefaultSelector() as waiting:
            waiting.register(writer.stdout, selectors.EVENT_READ)
            assert waiting.select(timeout=120), "the writer never wrote"
        assert writer.stdout.readline() == b"writing\n"
        time.sleep(rng.uniform(0, 0.3))  # where the kill lands, not a measure of anything
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=60)
        writer.stdout.close()
        kills += 1
        left = journal.exists()
        before = consistent(path)  # as a reader sees it, before any writer settles the journal
        if left:
            queue_digest = json.loads(journal.read_text())["queue"]
            committed = queue_digest == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
            journals["committed" if committed else "dropped"] += 1
        JsonFileStore(path).update({}, plan=Plan(["counter"], noop))  # a writer settles what the kill left
        assert not journal.exists()
        assert consistent(path) == before
        assert before[0] >= counts[0] and before[1] >= counts[1], "a kill undid what was written"  # noqa: PT018
        counts = before
    print(f"kills {kills}, journals left {journals}, jobs and marks {counts}")  # shown with -s
    assert counts[0] > 0
    assert counts[1] > 0
