"""What only the JSON file does with state documents: the file beside the queue, its journal, a
crash between the two files, and a state file that is corrupt or missing."""

from __future__ import annotations

import json
import stat
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retryq import JsonFileStore
from retryq.record.errors import ExitCode, QueueCorrupt
from retryq.record.models import Job, JobStatus, Owner
from retryq.stores import Claimant, ClaimRequest, Plan, PlanResult, PruneRule, StateDoc
from retryq.stores.file import sidecar

from ..helpers import T0, FakeWorkflow, invoke, make_job


def unchanged(job: Job) -> Job:
    return job


def counting(key: str = "counter") -> Plan:
    def decide(docs: Mapping[str, StateDoc], now: datetime | None, jobs: Mapping[str, Job | None]) -> PlanResult:
        return PlanResult(writes={key: {"n": docs.get(key, {}).get("n", 0) + 1, "jobs": sorted(jobs)}})

    return Plan([key], decide)


def reading(key: str = "counter") -> Plan:
    return Plan([key], lambda docs, now, jobs: PlanResult())


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / ".retry-queue.json"


def state_path(path: Path) -> Path:
    return Path(f"{path}.state.json")


def journal_path(path: Path) -> Path:
    return Path(f"{path}.state.next.json")


class Killed(BaseException):
    """Stands for a SIGKILL at one instant of a write: nothing after it runs."""


def test_a_queue_that_keeps_no_state_never_gets_a_state_file(path: Path) -> None:
    store = JsonFileStore(path)
    store.add(make_job(id="a", execute_at=T0), unchanged)
    store.add(make_job(id="b", client_id="other", execute_at=T0), unchanged, plan=reading())  # a plan that reads only
    claimant = Claimant(
        owner=Owner(host="test", pid=1), now=T0, leases={"default": timedelta(minutes=5)}, max_attempts={"default": 3}
    )
    store.claim(ClaimRequest(due_by=T0, limit=1, claimant=claimant, slots={"default": 1}), plan=reading())
    store.update({"b": lambda job: job.model_copy(update={"status": JobStatus.CANCELLED, "finished_at": T0})})
    store.prune(PruneRule(cutoffs={JobStatus.CANCELLED: T0 + timedelta(days=1)}))
    assert store.state() == {}
    assert sorted(item.name for item in path.parent.iterdir()) == [
        ".retry-queue.json",
        ".retry-queue.json.archive.jsonl",
        ".retry-queue.json.lock",
    ]


def test_the_state_file_is_a_json_object_beside_the_queue(path: Path) -> None:
    path.write_text("[]\n")
    path.chmod(0o640)
    store = JsonFileStore(path)
    store.add(make_job(id="a"), unchanged, plan=counting())
    written = json.loads(state_path(path).read_text())
    assert written["retryqState"] == 1
    assert written["documents"] == {"counter": {"n": 1, "jobs": ["a"]}}
    assert stat.S_IMODE(state_path(path).stat().st_mode) == 0o640  # the queue's own mode
    assert not journal_path(path).exists()
    store.update({}, plan=counting())  # documents alone: the queue file is not rewritten
    assert json.loads(state_path(path).read_text())["documents"]["counter"]["n"] == 2


def test_a_queue_reached_through_a_link_keeps_its_state_beside_the_real_file(tmp_path: Path) -> None:
    real = tmp_path / "data" / "queue.json"
    real.parent.mkdir()
    link = tmp_path / "queue.json"
    link.symlink_to(real)
    JsonFileStore(link).update({}, plan=counting())
    assert state_path(real).exists()
    assert JsonFileStore(real).state() == {"counter": {"n": 1, "jobs": []}}


@pytest.mark.parametrize(
    "content", ["{", "[]", '{"documents": {}}', '{"retryqState": 1, "documents": {"k": 1}}', "\xff"]
)
def test_a_corrupt_state_file_is_one_line_and_loses_no_job(path: Path, content: str) -> None:
    store = JsonFileStore(path)
    store.add(make_job(id="a"), unchanged, plan=counting())
    state_path(path).write_bytes(b"\xff" if content == "\xff" else content.encode())
    queue = path.read_bytes()
    with pytest.raises(QueueCorrupt) as raised:
        store.state()
    message = str(raised.value)
    assert raised.value.exit_code == ExitCode.DATAERR
    assert "\n" not in message
    assert message.startswith(f"{path}.state.json: not a state file: ")
    assert message.endswith("(the jobs are intact; move it aside to start the state afresh)")
    with pytest.raises(QueueCorrupt):  # a write that needs the state writes nothing
        store.update({"a": lambda job: job.model_copy(update={"follow_up_minutes": 5})}, plan=counting())
    assert path.read_bytes() == queue
    store.add(make_job(id="b", client_id="other"), unchanged)  # writes that need no state go on
    assert [job.id for job in store.load()] == ["a", "b"]
    assert any(finding.level == "problem" and finding.message == f"state: {message}" for finding in store.check())


def test_a_newer_state_file_asks_for_a_newer_retryq(path: Path) -> None:
    state_path(path).write_text('{"retryqState": 2, "documents": {}}')
    with pytest.raises(QueueCorrupt, match=r"format 2, newer than this retryq reads \(1\): upgrade retryq"):
        JsonFileStore(path).state()


def test_doctor_names_a_corrupt_state_file(cli: CliRunner, workflow: FakeWorkflow) -> None:
    env = {"RETRYQ_COMMAND": workflow.command}
    invoke(cli, "schedule", "balthazar", "2025-12-19", env=env)
    Path(".retry-queue.json.state.json").write_text("{")
    result = invoke(cli, "doctor", env=env)
    assert result.exit_code == 1
    assert (
        "problem: state: .retry-queue.json.state.json: not a state file: Expecting property name enclosed in "
        "double quotes: line 1 column 2 (char 1) (the jobs are intact; move it aside to start the state afresh)"
    ) in result.stdout.splitlines()
    listed = invoke(cli, "list", env=env)
    assert listed.exit_code == 0
    assert "balthazar" in listed.stdout


def test_doctor_counts_the_documents(cli: CliRunner, workflow: FakeWorkflow) -> None:
    JsonFileStore(".retry-queue.json").update({}, plan=counting())
    result = invoke(cli, "doctor", env={"RETRYQ_COMMAND": workflow.command})
    assert "ok: state: 1 document in .retry-queue.json.state.json" in result.stdout.splitlines()


def test_a_missing_state_file_is_an_empty_state_and_loses_no_job(path: Path) -> None:
    store = JsonFileStore(path)
    store.add(make_job(id="a"), unchanged, plan=counting())
    state_path(path).unlink()
    assert store.state() == {}
    assert [job.id for job in store.load()] == ["a"]
    store.update({}, plan=counting())
    assert store.state() == {"counter": {"n": 1, "jobs": []}}


# -- a crash between the two files -------------------------------------------------------------------


def crash_at(monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """Make the next write stop dead ``where``: before the queue's rename (``queue``), or after it (``settle``)."""
    if where == "settle":

        def killed(source: Path, target: Path) -> None:
            raise Killed

        monkeypatch.setattr(sidecar, "rename_durably", killed)
        return
    from retryq.stores.file import store as module

    original = module.replace_file

    def replace(target: Path, data: bytes, **options: object) -> None:
        if target.name.endswith(".json") and not target.name.endswith(".state.json"):
            raise Killed
        original(target, data, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(module, "replace_file", replace)


def test_a_crash_after_the_queue_is_replaced_keeps_the_whole_change(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    JsonFileStore(path).add(make_job(id="a"), unchanged, plan=counting())
    with monkeypatch.context() as patched:
        crash_at(patched, "settle")
        with pytest.raises(Killed):
            JsonFileStore(path).add(make_job(id="b", client_id="other"), unchanged, plan=counting())
    assert journal_path(path).exists()
    store = JsonFileStore(path)  # another process, after the crash
    assert [job.id for job in store.load()] == ["a", "b"]
    assert store.state() == {"counter": {"n": 2, "jobs": ["b"]}}  # the journal is the state: the queue holds its jobs
    store.add(make_job(id="c", client_id="third"), unchanged)  # any change settles it first
    assert not journal_path(path).exists()
    assert json.loads(state_path(path).read_text())["documents"] == {"counter": {"n": 2, "jobs": ["b"]}}


def test_a_crash_before_the_queue_is_replaced_keeps_nothing_of_it(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    JsonFileStore(path).add(make_job(id="a"), unchanged, plan=counting())
    with monkeypatch.context() as patched:
        crash_at(patched, "queue")
        with pytest.raises(Killed):
            JsonFileStore(path).add(make_job(id="b", client_id="other"), unchanged, plan=counting())
    assert journal_path(path).exists()
    store = JsonFileStore(path)
    assert [job.id for job in store.load()] == ["a"]
    assert store.state() == {"counter": {"n": 1, "jobs": ["a"]}}
    store.update({}, plan=counting())
    assert not journal_path(path).exists()
    assert store.state() == {"counter": {"n": 2, "jobs": []}}


def test_a_journal_that_is_not_whole_was_never_committed(path: Path) -> None:
    store = JsonFileStore(path)
    store.add(make_job(id="a"), unchanged, plan=counting())
    journal_path(path).write_text('{"retryqState": 1, "queue": "sha256:')
    assert store.state() == {"counter": {"n": 1, "jobs": ["a"]}}
    store.add(make_job(id="b", client_id="other"), unchanged)
    assert not journal_path(path).exists()
