"""Running due jobs with real workflow processes: outcomes, chains, timeouts, concurrency, stop, recovery."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from retryq import JsonFileStore, Processor, RetryQueue
from retryq.record.backoff import constant
from retryq.record.errors import ConfigError
from retryq.record.models import JobStatus, Outcome, Owner
from retryq.record.timeutil import utcnow
from retryq.running.platform import current_owner, process_start

from ..helpers import LEGACY_FILE, FakeWorkflow, fake_workflow, make_config, make_job, process, write_script


def open_queue(tmp_path: Path, command: list[str] | None, **settings: object) -> RetryQueue:
    return RetryQueue(JsonFileStore(tmp_path / ".retry-queue.json"), config=make_config(command, **settings))


def test_a_legacy_file_is_processed_as_is(tmp_path: Path, workflow: FakeWorkflow) -> None:
    (tmp_path / ".retry-queue.json").write_text(LEGACY_FILE)
    queue = open_queue(tmp_path, workflow.argv())
    report = process(queue)
    assert (report.processed, report.succeeded, report.failed) == (1, 1, 0)
    [call] = workflow.calls()
    assert call["argv"] == "balthazar 2025-12-19"
    [job] = json.loads((tmp_path / ".retry-queue.json").read_text())
    original = json.loads(LEGACY_FILE)[0]
    assert {key: job[key] for key in original if key != "status"} == {
        k: v for k, v in original.items() if k != "status"
    }
    assert job["status"] == "completed"


def test_only_due_jobs_run_oldest_first(queue: RetryQueue, workflow: FakeWorkflow) -> None:
    queue.schedule("later", "2025-12-19", 0, at=_ago(minutes=1))
    queue.schedule("sooner", "2025-12-19", 0, at=_ago(minutes=10))
    queue.schedule("future", "2025-12-19", 30)
    report = process(queue)
    assert [call["client"] for call in workflow.calls()] == ["sooner", "later"]
    assert report.succeeded == 2
    assert {job.client_id: job.status for job in queue.jobs()}["future"] is JobStatus.PENDING


def test_the_workflow_gets_its_arguments_and_environment(queue: RetryQueue, workflow: FakeWorkflow) -> None:
    job = queue.schedule("balthazar", "2025-12-19", 0).job
    process(queue)
    [call] = workflow.calls()
    assert call == {
        "argv": "balthazar 2025-12-19",
        "attempt": "1",
        "job_id": job.id,
        "client": "balthazar",
        "date": "2025-12-19",
        "run_id": call["run_id"],
    }
    assert len(call["run_id"]) == 32


def test_a_chain_ends_completed_at_the_third_attempt(tmp_path: Path, workflow: FakeWorkflow) -> None:
    workflow.exits(75, 75, 0)
    queue = open_queue(tmp_path, workflow.argv())
    queue.schedule("balthazar", "2025-12-19", 0)
    reports = [process(queue) for _ in range(3)]  # one attempt per process run, even with no delay
    assert [call["attempt"] for call in workflow.calls()] == ["1", "2", "3"]
    assert [(r.retrying, r.succeeded, r.failed) for r in reports] == [(1, 0, 0), (1, 0, 0), (0, 1, 0)]
    [job] = queue.jobs()
    assert (job.status, job.attempt) == (JobStatus.COMPLETED, 3)
    assert [a.outcome for a in job.history] == [Outcome.INCOMPLETE, Outcome.INCOMPLETE, Outcome.SUCCEEDED]


def test_the_delay_between_attempts_follows_the_policy(tmp_path: Path, workflow: FakeWorkflow) -> None:
    workflow.exits(75)
    queue = open_queue(tmp_path, workflow.argv())
    first = queue.schedule("balthazar", "2025-12-19", 60, at=_ago(seconds=20)).job
    process(queue)
    [job] = queue.jobs()
    assert (job.status, job.attempt) == (JobStatus.PENDING, 2)
    assert job.execute_at == first.execute_at + timedelta(minutes=60)  # from the due time, not the run's end


def test_a_workflow_that_always_exits_75_fails_after_max_attempts(tmp_path: Path, workflow: FakeWorkflow) -> None:
    workflow.exits(75, 75, 75, 75)
    queue = open_queue(tmp_path, workflow.argv(), max_attempts=3)
    queue.schedule("balthazar", "2025-12-19", 0)
    reports = [process(queue) for _ in range(4)]
    [job] = queue.jobs()
    assert (job.status, job.attempt, len(workflow.calls())) == (JobStatus.FAILED, 3, 3)
    assert [r.failed for r in reports] == [0, 0, 1, 0]
    assert job.last_error is not None
    assert "fetching balthazar 2025-12-19 (attempt 3)" in job.last_error


def test_exit_77_fails_at_once(tmp_path: Path, workflow: FakeWorkflow) -> None:
    workflow.exits(77)
    queue = open_queue(tmp_path, workflow.argv())
    queue.schedule("balthazar", "2025-12-19", 0)
    process(queue)
    [job] = queue.jobs()
    assert (job.status, job.attempt, job.last_exit_code, len(workflow.calls())) == (JobStatus.FAILED, 1, 77, 1)
    assert job.history[-1].outcome is Outcome.FATAL


def test_a_timeout_kills_the_whole_group_and_counts(tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"
    script = write_script(
        tmp_path / "slow.sh",
        f"""
sleep 60 &
echo $! > {marker}
trap '' TERM   # ignore SIGTERM: only SIGKILL after the grace period ends it
sleep 60
""",
    )
    queue = open_queue(
        tmp_path, [str(script)], timeout=timedelta(seconds=0.5), kill_grace=timedelta(seconds=0.5), max_attempts=1
    )
    queue.schedule("balthazar", "2025-12-19", 0)
    report = process(queue)
    [job] = queue.jobs()
    assert (job.status, report.failed) == (JobStatus.FAILED, 1)
    assert job.history[-1].outcome is Outcome.TIMEOUT
    assert job.last_exit_code == 128 + signal.SIGKILL
    child = int(marker.read_text())
    assert not _alive(child), "the workflow's background child outlived it"


def test_the_lease_covers_timeout_and_grace(tmp_path: Path) -> None:
    seen = tmp_path / "seen.json"
    script = write_script(tmp_path / "peek.sh", f'cat "$RETRYQ_QUEUE_FILE" > {seen}\n')
    queue = open_queue(tmp_path, [str(script)], timeout=timedelta(minutes=5), kill_grace=timedelta(seconds=10))
    queue.schedule("balthazar", "2025-12-19", 0)
    process(queue)
    [during] = json.loads(seen.read_text())
    assert during["status"] == "running"
    assert during["owner"]["pid"] == os.getpid()
    started, lease = (_ts(during["startedAt"]), _ts(during["leaseUntil"]))
    assert lease - started == timedelta(minutes=5, seconds=10 + 60)


def test_concurrency_runs_several_at_once_and_no_more(tmp_path: Path) -> None:
    running = tmp_path / "running"
    running.mkdir()
    peak = tmp_path / "peak.log"
    script = write_script(
        tmp_path / "busy.sh",
        f"""
touch {running}/$1
ls {running} | wc -l >> {peak}
i=0
while [ $(ls {running} | wc -l) -lt 3 ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done
sleep 0.2
rm {running}/$1
""",
    )
    queue = open_queue(tmp_path, [str(script), "{client}"], concurrency=3)
    for number in range(6):
        queue.schedule(f"c{number}", "2025-12-19", 0)
    report = process(queue)
    assert report.succeeded == 6
    counts = [int(line) for line in peak.read_text().split()]
    assert max(counts) == 3


def test_graceful_stop_gives_the_job_back(tmp_path: Path) -> None:
    started = tmp_path / "started"
    script = write_script(tmp_path / "long.sh", f"touch {started}\nsleep 60\n")
    queue = open_queue(tmp_path, [str(script)])
    queue.schedule("balthazar", "2025-12-19", 0)
    processor = Processor(queue.store, queue.config)

    def stop_when_started() -> None:
        deadline = time.monotonic() + 20
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        processor.request_stop(signal.SIGTERM)

    threading.Thread(target=stop_when_started, daemon=True).start()
    report = processor.run(handle_signals=False)
    assert (report.stopped_by, report.released, report.processed) == (signal.SIGTERM, 1, 0)
    [job] = queue.jobs()
    assert (job.status, job.attempt, job.owner, job.run_id) == (JobStatus.PENDING, 1, None, None)
    assert job.history[-1].outcome is Outcome.STOPPED


def test_a_job_whose_runner_died_is_recovered_and_run_again(tmp_path: Path, workflow: FakeWorkflow) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    owner = current_owner().model_copy(update={"pid": dead.pid, "started": 1})
    store = JsonFileStore(tmp_path / ".retry-queue.json")
    store.add(_running_job(owner, delay_minutes=0), lambda job: job)
    queue = open_queue(tmp_path, workflow.argv())
    report = process(queue)
    assert (report.recovered, report.succeeded) == (1, 1)
    [job] = queue.jobs()
    assert (job.status, job.attempt) == (JobStatus.COMPLETED, 2)
    assert [a.outcome for a in job.history] == [Outcome.INTERRUPTED, Outcome.SUCCEEDED]
    assert job.history[0].output_tail == f"runner {owner.host}:{dead.pid} is gone"


def test_an_orphan_of_the_earlier_run_is_stopped_before_the_next(tmp_path: Path, workflow: FakeWorkflow) -> None:
    run_id = "0" * 32
    orphan = subprocess.Popen(["sleep", "60"], env={**os.environ, "RETRYQ_RUN_ID": run_id}, start_new_session=True)
    try:
        owner = Owner(host=current_owner().host, pid=orphan.pid + 100_000, boot_id=current_owner().boot_id)
        JsonFileStore(tmp_path / ".retry-queue.json").add(
            _running_job(owner, run_id=run_id, delay_minutes=0), lambda job: job
        )
        queue = open_queue(tmp_path, workflow.argv())
        report = process(queue)
        assert orphan.wait(timeout=10) == -signal.SIGTERM
        assert report.recovered == 1
        assert len(workflow.calls()) == 1
    finally:
        if orphan.poll() is None:
            orphan.kill()


def test_a_live_owners_job_is_left_alone_while_its_lease_lasts(tmp_path: Path, workflow: FakeWorkflow) -> None:
    live = subprocess.Popen(["sleep", "600"])
    try:
        owner = current_owner().model_copy(update={"pid": live.pid, "started": process_start(live.pid)})
        JsonFileStore(tmp_path / ".retry-queue.json").add(_running_job(owner), lambda job: job)
        report = process(open_queue(tmp_path, workflow.argv()))
    finally:
        live.kill()
        live.wait()
    assert (report.recovered, report.released, workflow.calls()) == (0, 0, [])


def test_a_live_owners_job_past_its_lease_is_recovered(tmp_path: Path, workflow: FakeWorkflow) -> None:
    # Its runner never heard of the claim (a lost reply), or is stuck: the lease is what holds the job.
    live = subprocess.Popen(["sleep", "600"])
    try:
        owner = current_owner().model_copy(update={"pid": live.pid, "started": process_start(live.pid)})
        store = JsonFileStore(tmp_path / ".retry-queue.json")
        store.add(_running_job(owner, lease=-timedelta(minutes=1), delay_minutes=0), lambda job: job)
        report = process(open_queue(tmp_path, workflow.argv()))
        assert live.poll() is None  # only processes that carry the run's id are ever signalled
    finally:
        live.kill()
        live.wait()
    assert (report.recovered, len(workflow.calls())) == (1, 1)
    [job] = store.load()
    assert [entry.outcome for entry in job.history] == [Outcome.INTERRUPTED, Outcome.SUCCEEDED]


def test_an_expired_lease_on_another_host_is_recovered(tmp_path: Path, workflow: FakeWorkflow) -> None:
    store = JsonFileStore(tmp_path / ".retry-queue.json")
    owner = Owner(host="another-host", pid=1)
    store.add(_running_job(owner, lease=-timedelta(minutes=1), delay_minutes=0), lambda job: job)
    store.add(_running_job(owner, id="j2", client_id="other", lease=timedelta(hours=1)), lambda job: job)
    report = process(open_queue(tmp_path, workflow.argv()))
    assert report.recovered == 1
    statuses = {job.id: job.status for job in store.load()}
    assert statuses == {"job1": JobStatus.COMPLETED, "j2": JobStatus.RUNNING}


def test_a_job_two_processes_recover_at_once_is_counted_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from retryq.running.housekeeping import recover_abandoned

    store = JsonFileStore(tmp_path / ".retry-queue.json")
    store.add(_running_job(Owner(host="another-host", pid=1), lease=-timedelta(minutes=1)), lambda job: job)
    config = make_config(["true"])

    class SeenBeforeTheOtherWrote(JsonFileStore):
        """Both processes read the job running; the other one writes its recovery first."""

        def load(self, query=None):  # type: ignore[no-untyped-def]
            snapshot = super().load(query)
            assert recover_abandoned(store, config, now=utcnow()) == 1
            return snapshot

    caplog.set_level(logging.WARNING, logger="retryq")
    assert recover_abandoned(SeenBeforeTheOtherWrote(store.path), config, now=utcnow()) == 0
    assert len([r for r in caplog.records if "counted as interrupted" in r.getMessage()]) == 1
    [job] = store.load()
    assert [entry.outcome for entry in job.history] == [Outcome.INTERRUPTED]


def test_a_follow_up_from_inside_the_run_continues_the_chain(tmp_path: Path, retryq_bin: str) -> None:
    script = write_script(
        tmp_path / "fetch.sh",
        f'{retryq_bin} schedule "$1" "$2" 30 > /dev/null || exit 1\nexit 0\n',
    )
    queue = open_queue(tmp_path, [str(script), "{client}", "{date}"])
    first = queue.schedule("balthazar", "2025-12-19", 0).job
    report = process(queue)
    [job] = queue.jobs()  # no duplicate
    assert (job.status, job.attempt, report.retrying) == (JobStatus.PENDING, 2, 1)
    assert job.execute_at == first.execute_at + timedelta(minutes=30)  # 30 minutes after the attempt was due
    assert job.history[-1].outcome is Outcome.INCOMPLETE


def test_a_result_for_a_job_recovered_meanwhile_is_discarded(tmp_path: Path) -> None:
    steal = tmp_path / "steal.py"
    steal.write_text(
        "import os\n"
        "from retryq import JsonFileStore\n"
        "store = JsonFileStore(os.environ['RETRYQ_QUEUE_FILE'])\n"
        "from retryq.record.models import Owner\n"
        "stolen = {'run_id': 'x', 'owner': Owner(host='another-host', pid=7)}\n"
        "store.update({os.environ['RETRYQ_JOB_ID']: lambda job: job.model_copy(update=stolen)})\n"
    )
    queue = open_queue(tmp_path, [sys.executable, str(steal)])
    queue.schedule("balthazar", "2025-12-19", 0)
    report = process(queue)
    assert (report.lost_claims, report.succeeded) == (1, 0)
    [job] = queue.jobs()
    assert (job.status, job.run_id) == (JobStatus.RUNNING, "x")


def test_a_command_that_cannot_start_leaves_the_job_pending(tmp_path: Path) -> None:
    script = tmp_path / "broken.sh"
    script.write_text("#!/nonexistent/interpreter\n")
    script.chmod(0o755)
    queue = open_queue(tmp_path, [str(script)])
    queue.schedule("balthazar", "2025-12-19", 0)
    report = process(queue)
    assert report.config_errors
    assert "could not start" in report.config_errors[0]
    [job] = queue.jobs()
    assert (job.status, job.attempt, job.history) == (JobStatus.PENDING, 1, ())


def test_a_missing_command_is_reported_and_nothing_is_consumed(tmp_path: Path) -> None:
    queue = open_queue(tmp_path, ["/nonexistent/fetch"])
    queue.schedule("balthazar", "2025-12-19", 0)
    report = process(queue)
    assert report.config_errors == ["command '/nonexistent/fetch' does not exist (from test)"]
    [job] = queue.jobs()
    assert (job.status, job.attempt) == (JobStatus.PENDING, 1)


def test_no_command_at_all_is_a_config_error(tmp_path: Path) -> None:
    queue = open_queue(tmp_path, None)
    queue.schedule("balthazar", "2025-12-19", 0)
    with pytest.raises(ConfigError, match="no workflow command configured"):
        process(queue)
    assert queue.jobs()[0].status is JobStatus.PENDING


def test_a_job_of_an_unconfigured_workflow_stays_pending(
    tmp_path: Path, workflow: FakeWorkflow, caplog: pytest.LogCaptureFixture
) -> None:
    JsonFileStore(tmp_path / ".retry-queue.json").add(make_job(workflow="retired", execute_at=_ago()), lambda job: job)
    with caplog.at_level(logging.INFO, logger="retryq"):
        report = process(open_queue(tmp_path, workflow.argv()))
    assert report.unknown_workflows == {"retired": 1}
    assert "1 pending job of workflow 'retired', which is not configured; left pending" in caplog.messages


def test_output_lines_are_logged_with_the_jobs_label(queue: RetryQueue, caplog: pytest.LogCaptureFixture) -> None:
    queue.schedule("balthazar", "2025-12-19", 0)
    with caplog.at_level(logging.INFO, logger="retryq"):
        process(queue)
    lines = [(r.name, getattr(r, "label", None), r.getMessage()) for r in caplog.records if r.name == "retryq.output"]
    assert lines == [("retryq.output", "balthazar 2025-12-19 #1", "| fetching balthazar 2025-12-19 (attempt 1)")]


def test_finished_jobs_are_pruned_after_a_run(tmp_path: Path, workflow: FakeWorkflow) -> None:
    store = JsonFileStore(tmp_path / ".retry-queue.json")
    store.add(make_job(id="old", status=JobStatus.COMPLETED, finished_at=_ago(days=8)), lambda job: job)
    store.add(make_job(id="recent", client_id="b", status=JobStatus.FAILED, finished_at=_ago(days=2)), lambda job: job)
    store.add(make_job(id="waiting", client_id="c", execute_at=_ago(days=30) + timedelta(days=60)), lambda job: job)
    report = process(open_queue(tmp_path, workflow.argv()))
    assert report.pruned == 1
    assert [job.id for job in store.load()] == ["recent", "waiting"]
    assert [job.id for job in store.load_archive()] == ["old"]


def _running_job(owner: Owner, *, run_id: str = "r" * 32, lease: timedelta = timedelta(hours=1), **fields: object):  # type: ignore[no-untyped-def]
    now = _ago()
    return make_job(
        status=JobStatus.RUNNING,
        owner=owner,
        run_id=run_id,
        started_at=now,
        lease_until=now + lease,
        execute_at=now,
        **fields,
    )


def _ago(**delta: float):  # type: ignore[no-untyped-def]
    from retryq.record.timeutil import utcnow

    return utcnow() - timedelta(**delta)


def _ts(text: str):  # type: ignore[no-untyped-def]
    from retryq.record.timeutil import parse_utc

    return parse_utc(text)


def _alive(pid: int) -> bool:
    from retryq.running.platform import pid_alive

    return pid_alive(pid)


__all__ = ["fake_workflow", "process_start"]


def test_the_hourly_chain_replays_with_the_policys_delays(tmp_path: Path, workflow: FakeWorkflow) -> None:
    """75, 75, then 0: completed at attempt 3, each attempt the job's 60 minutes after the previous one."""
    from datetime import datetime, timezone

    workflow.exits(75, 75, 0)
    queue = open_queue(tmp_path, workflow.argv())
    now = [datetime(2025, 12, 19, 10, 0, tzinfo=timezone.utc)]
    queue.schedule("balthazar", "2025-12-19", 60, now=now[0])
    for minutes in range(0, 200, 5):  # cron, every 5 minutes, from 10:00 to 13:15
        now[0] = datetime(2025, 12, 19, 10, 0, tzinfo=timezone.utc) + timedelta(minutes=minutes)
        process(queue, clock=lambda: now[0], prune=False)
    [job] = queue.jobs()
    assert (job.status, job.attempt) == (JobStatus.COMPLETED, 3)
    assert [(a.started_at.strftime("%H:%M"), a.outcome) for a in job.history] == [
        ("11:00", Outcome.INCOMPLETE),
        ("12:00", Outcome.INCOMPLETE),
        ("13:00", Outcome.SUCCEEDED),
    ]


def test_two_jobs_of_a_command_that_cannot_start_both_stay_pending(tmp_path: Path) -> None:
    script = tmp_path / "broken.sh"
    script.write_text("#!/nonexistent/interpreter\n")
    script.chmod(0o755)
    queue = open_queue(tmp_path, [str(script)], concurrency=2)
    queue.schedule("a", "2025-12-19", 0)
    queue.schedule("b", "2025-12-19", 0)
    report = process(queue)
    assert len(report.config_errors) == 1
    assert [(job.status, job.attempt, job.owner) for job in queue.jobs()] == [(JobStatus.PENDING, 1, None)] * 2


def test_a_store_failure_mid_run_stops_the_workflows_and_gives_their_jobs_back(tmp_path: Path) -> None:
    from retryq.record.errors import StoreIOError

    marker = tmp_path / "workflow.pid"
    script = write_script(tmp_path / "slow.sh", f"echo $$ > {marker}\nsleep 60\n")
    queue = open_queue(tmp_path, [str(script)])
    queue.schedule("balthazar", "2025-12-19", 0)
    store = queue.store
    original = store.claim
    calls = {"n": 0}

    def failing_claim(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 2:  # the write after the workflow started: the disk is full now
            raise StoreIOError("disk full")
        return original(*args, **kwargs)  # type: ignore[arg-type]

    store.claim = failing_claim  # type: ignore[method-assign]
    with pytest.raises(StoreIOError, match="disk full"):
        process(queue)
    assert not _alive(int(marker.read_text()))
    [job] = queue.jobs()
    assert (job.status, job.attempt, job.owner) == (JobStatus.PENDING, 1, None)


def test_a_workflow_leaving_a_detached_child_on_its_output_does_not_hang_process(tmp_path: Path) -> None:
    leftover = tmp_path / "leftover.pid"
    script = write_script(tmp_path / "detach.sh", f"setsid sleep 60 &\necho $! > {leftover}\necho done\n")
    queue = open_queue(tmp_path, [str(script)])
    queue.schedule("balthazar", "2025-12-19", 0)
    report = process(queue)
    assert report.succeeded == 1
    assert not _alive(int(leftover.read_text())), "the detached child of the run outlived it"


def test_the_timeout_recorded_is_the_one_applied(tmp_path: Path) -> None:
    script = write_script(tmp_path / "slow.sh", "sleep 60\n")
    queue = open_queue(tmp_path, [str(script)], max_attempts=1, kill_grace=timedelta(seconds=0.2))
    queue.schedule("balthazar", "2025-12-19", 0)
    process(queue, timeout=timedelta(seconds=0.5))
    [job] = queue.jobs()
    assert job.last_error is not None
    assert job.last_error.startswith("timed out after 0.5s")


def test_the_overall_concurrency_applies_when_a_workflow_sets_none(tmp_path: Path) -> None:
    from retryq import Config, WorkflowSettings

    running = tmp_path / "running"
    running.mkdir()
    peak = tmp_path / "peak.log"
    # Each run waits (up to 60 s) for the others to start: the peak is reached whatever the machine's speed,
    # and is only reached if three run at once.
    script = write_script(
        tmp_path / "busy.sh",
        f"touch {running}/$1\ni=0\n"
        f'while [ "$(ls {running} | wc -l)" -lt 3 ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done\n'
        f"ls {running} | wc -l >> {peak}\n",
    )
    settings = WorkflowSettings("default", command=(str(script), "{client}"), command_origin="test")
    assert settings.concurrency is None
    queue = RetryQueue(JsonFileStore(tmp_path / ".retry-queue.json"), config=Config(workflows={"default": settings}))
    for number in range(3):
        queue.schedule(f"c{number}", "2025-12-19", 0)
    process(queue, concurrency=3)
    assert max(int(line) for line in peak.read_text().split()) == 3


def test_a_worker_prunes_while_idle(tmp_path: Path, workflow: FakeWorkflow, monkeypatch: pytest.MonkeyPatch) -> None:
    from retryq.running import housekeeping

    monkeypatch.setattr(housekeeping, "PRUNE_EVERY", 0.0)
    store = JsonFileStore(tmp_path / ".retry-queue.json")
    store.add(make_job(id="old", status=JobStatus.COMPLETED, finished_at=_ago(days=30)), lambda job: job)
    queue = open_queue(tmp_path, workflow.argv())
    processor = Processor(queue.store, queue.config, sleep=lambda seconds: processor.request_stop())
    report = processor.run(worker=True, handle_signals=False)
    assert report.pruned == 1
    assert store.load() == []


def test_a_configured_workflow_without_a_command_is_a_config_error(tmp_path: Path, workflow: FakeWorkflow) -> None:
    from retryq import Config, WorkflowSettings

    config = Config(
        workflows={
            "default": WorkflowSettings("default"),
            "ftp": WorkflowSettings("ftp", command=tuple(workflow.argv()), command_origin="test"),
        }
    )
    queue = RetryQueue(JsonFileStore(tmp_path / ".retry-queue.json"), config=config)
    queue.schedule("balthazar", "2025-12-19", 0)
    report = process(queue)
    assert report.config_errors == [
        "1 pending job of workflow 'default', which has no command configured; left pending"
    ]
    assert queue.jobs()[0].status is JobStatus.PENDING


def test_an_owner_in_another_pid_namespace_is_judged_by_its_lease() -> None:
    from retryq.running.platform import hostname, owner_alive

    assert owner_alive(Owner(host=hostname(), pid=os.getpid(), pid_ns="pid:[1]")) is None
    assert owner_alive(current_owner()) is True


def test_a_workflow_gets_its_own_environment_and_path(tmp_path: Path) -> None:
    """Under cron PATH is /usr/bin:/bin: a workflow may carry its own PATH (and other variables)."""
    bin_dir = tmp_path / "venv-bin"
    bin_dir.mkdir()
    seen = tmp_path / "seen.txt"
    write_script(bin_dir / "boamp-fetch", f'echo "$PATH|$SOURCE|$TZ" > {seen}\n')
    Path("retryq.toml").write_text(
        'env = { SOURCE = "top", TZ = "Europe/Paris" }\n'
        '[workflow]\ncommand = ["boamp-fetch", "{client}"]\n'
        f'env = {{ PATH = "{bin_dir}:/usr/bin:/bin", SOURCE = "boamp" }}\n'
    )
    from retryq import load_config

    config = load_config(env={})
    assert dict(config.workflow().env) == {"SOURCE": "boamp", "TZ": "Europe/Paris", "PATH": f"{bin_dir}:/usr/bin:/bin"}
    queue = RetryQueue(JsonFileStore(tmp_path / ".retry-queue.json"), config=config)
    queue.schedule("balthazar", "2025-12-19", 0)
    report = process(queue)  # found on the workflow's PATH although retryq's own PATH lacks bin_dir
    assert (report.succeeded, report.config_errors) == (1, [])
    assert seen.read_text() == f"{bin_dir}:/usr/bin:/bin|boamp|Europe/Paris\n"


def test_a_legacy_job_takes_the_configured_attempts(tmp_path: Path, workflow: FakeWorkflow) -> None:
    """The original scripts wrote no maxAttempts: the workflow's limit applies, not a built-in 3."""
    (tmp_path / ".retry-queue.json").write_text(LEGACY_FILE)
    workflow.exits(*[75] * 6)
    queue = open_queue(tmp_path, workflow.argv(), max_attempts=5, backoff=constant(0))
    for _ in range(6):
        process(queue, prune=False)
    [job] = queue.jobs()
    assert (job.status, job.attempt, job.max_attempts, len(workflow.calls())) == (JobStatus.FAILED, 5, 5, 5)


def test_a_workflow_that_prints_nul_or_bytes_that_are_not_utf8_leaves_a_valid_job(tmp_path: Path) -> None:
    """What a workflow prints is kept as text the queue can hold: a NUL becomes U+FFFD, as bad UTF-8 does."""
    script = write_script(tmp_path / "noisy.sh", "printf 'token\\000x \\377\\n'; exit 1\n")
    queue = open_queue(tmp_path, [str(script)], max_attempts=1)
    queue.schedule("balthazar", "2025-12-19", 0)
    report = process(queue)
    assert (report.processed, report.failed) == (1, 1)
    [job] = queue.jobs()
    assert job.history[-1].output_tail == "token\ufffdx \ufffd"
    assert queue.store.invalid() == []
