"""The on_failure command: told when a job fails for good, never able to change or lose the job."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest

from retryq import JsonFileStore, RetryQueue
from retryq.record.models import JobStatus

from ..helpers import FakeWorkflow, make_config, process, write_script


def failing_queue(tmp_path: Path, workflow: FakeWorkflow, hook: list[str], **settings: object) -> RetryQueue:
    workflow.exits(1)
    config = make_config(workflow.argv(), max_attempts=1, on_failure=tuple(hook), **settings)
    return RetryQueue(JsonFileStore(tmp_path / ".retry-queue.json"), config=config)


def test_the_hook_gets_the_job_on_stdin_and_in_its_environment(tmp_path: Path, workflow: FakeWorkflow) -> None:
    hook = write_script(
        tmp_path / "hook.sh",
        f'cat > {tmp_path}/job.json\nenv | grep ^RETRYQ_ | sort > {tmp_path}/hook.env\necho "$1" > {tmp_path}/argv\n',
    )
    queue = failing_queue(tmp_path, workflow, [str(hook), "{client}"])
    queue.schedule("balthazar", "2025-12-19", 0)
    process(queue)
    received = json.loads((tmp_path / "job.json").read_text())
    assert (received["clientId"], received["status"], received["lastExitCode"]) == ("balthazar", "failed", 1)
    env = dict(line.split("=", 1) for line in (tmp_path / "hook.env").read_text().splitlines())
    assert env["RETRYQ_CLIENT"] == "balthazar"
    assert env["RETRYQ_DATE"] == "2025-12-19"
    assert env["RETRYQ_STATUS"] == "failed"
    assert env["RETRYQ_LAST_EXIT_CODE"] == "1"
    assert env["RETRYQ_LAST_ERROR"] == "exit 1"
    assert env["RETRYQ_JOB_ID"] == received["id"]
    assert (tmp_path / "argv").read_text() == "balthazar\n"


def test_a_failing_hook_is_logged_and_changes_nothing(
    tmp_path: Path, workflow: FakeWorkflow, caplog: pytest.LogCaptureFixture
) -> None:
    hook = write_script(tmp_path / "hook.sh", "echo 'smtp refused'\nexit 3\n")
    queue = failing_queue(tmp_path, workflow, [str(hook)])
    queue.schedule("balthazar", "2025-12-19", 0)
    with caplog.at_level(logging.INFO, logger="retryq"):
        report = process(queue)
    assert "on_failure hook exited 3: smtp refused" in caplog.messages
    assert report.failed == 1
    [job] = queue.jobs()
    assert (job.status, job.attempt, job.last_exit_code) == (JobStatus.FAILED, 1, 1)


def test_a_hanging_hook_is_stopped_after_its_timeout(
    tmp_path: Path, workflow: FakeWorkflow, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "hook.pid"
    hook = write_script(tmp_path / "hook.sh", f"echo $$ > {marker}\nexec sleep 60\n")
    queue = failing_queue(tmp_path, workflow, [str(hook)], on_failure_timeout=timedelta(seconds=0.5))
    queue.schedule("balthazar", "2025-12-19", 0)
    with caplog.at_level(logging.INFO, logger="retryq"):
        process(queue)
    assert "on_failure hook timed out after 0.5s and was stopped" in caplog.messages
    from retryq.running.platform import pid_alive

    assert not pid_alive(int(marker.read_text()))
    assert queue.jobs()[0].status is JobStatus.FAILED


def test_a_missing_hook_is_logged(tmp_path: Path, workflow: FakeWorkflow, caplog: pytest.LogCaptureFixture) -> None:
    queue = failing_queue(tmp_path, workflow, [str(tmp_path / "nope.sh")])
    queue.schedule("balthazar", "2025-12-19", 0)
    with caplog.at_level(logging.INFO, logger="retryq"):
        process(queue)
    assert any(message.startswith("on_failure hook ") and "could not start" in message for message in caplog.messages)
    assert queue.jobs()[0].status is JobStatus.FAILED


def test_the_hook_is_only_for_jobs_that_fail_for_good(tmp_path: Path, workflow: FakeWorkflow) -> None:
    called = tmp_path / "called"
    hook = write_script(tmp_path / "hook.sh", f"touch {called}\n")
    workflow.exits(75, 0)
    config = make_config(workflow.argv(), max_attempts=3, on_failure=(str(hook),))
    queue = RetryQueue(JsonFileStore(tmp_path / ".retry-queue.json"), config=config)
    queue.schedule("balthazar", "2025-12-19", 0)
    reports = [process(queue), process(queue)]
    assert [(report.retrying, report.succeeded) for report in reports] == [(1, 0), (0, 1)]
    assert not called.exists()


def test_on_failure_from_the_config(tmp_path: Path) -> None:
    Path("retryq.toml").write_text(
        'on_failure = ["notify-team", "{client}"]\non_failure_timeout = "10s"\n'
        '[workflows.ftp]\ncommand = ["true"]\non_failure = ["page-oncall"]\n'
    )
    from retryq import load_config

    config = load_config()
    assert config.workflow().on_failure == ("notify-team", "{client}")
    assert config.workflow("ftp").on_failure == ("page-oncall",)
    assert config.on_failure_timeout == timedelta(seconds=10)


def test_a_hook_that_leaves_a_child_behind_does_not_hang(
    tmp_path: Path, workflow: FakeWorkflow, caplog: pytest.LogCaptureFixture
) -> None:
    leftover = tmp_path / "leftover.pid"
    hook = write_script(tmp_path / "hook.sh", f"setsid sleep 60 &\necho $! > {leftover}\necho sent\n")
    queue = failing_queue(tmp_path, workflow, [str(hook)], on_failure_timeout=timedelta(seconds=5))
    queue.schedule("balthazar", "2025-12-19", 0)
    try:
        with caplog.at_level(logging.INFO, logger="retryq"):
            process(queue)
        assert "on_failure hook notified" in caplog.messages
    finally:
        import os
        import signal

        os.kill(int(leftover.read_text()), signal.SIGKILL)
