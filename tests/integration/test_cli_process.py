"""`retryq process` through the CLI: lines fit for cron, the summary, exit codes, dry runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from ..helpers import LEGACY_FILE, FakeWorkflow, invoke

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def test_schedule_then_process_runs_the_workflow_once(cli: CliRunner, workflow: FakeWorkflow) -> None:
    env = {"RETRYQ_COMMAND": workflow.command}
    assert invoke(cli, "schedule", "balthazar", "2025-12-19", "0", env=env).exit_code == 0
    result = invoke(cli, "process", env=env)
    assert result.exit_code == 0, result.output
    [call] = workflow.calls()
    assert call["argv"] == "balthazar 2025-12-19"
    [job] = json.loads(Path(".retry-queue.json").read_text())
    assert job["status"] == "completed"
    lines = result.stdout.splitlines()
    assert re.fullmatch(rf"{STAMP} balthazar 2025-12-19 #1 start: .*workflow.sh balthazar 2025-12-19", lines[0])
    assert re.fullmatch(rf"{STAMP} balthazar 2025-12-19 #1 \| fetching balthazar 2025-12-19 \(attempt 1\)", lines[1])
    assert re.fullmatch(rf"{STAMP} balthazar 2025-12-19 #1 succeeded", lines[2])
    assert re.fullmatch(
        rf"{STAMP} summary: processed 1 \(succeeded 1, rescheduled 0, failed 0\); "
        r"recovered 0, given back 0, pruned 0; pending 0",
        lines[3],
    )
    assert len(lines) == 4


def test_the_summary_says_what_is_pending_and_when_it_is_due(cli: CliRunner, workflow: FakeWorkflow) -> None:
    env = {"RETRYQ_COMMAND": workflow.command}
    workflow.exits(75)
    invoke(cli, "schedule", "balthazar", "2025-12-19", "0", env=env)
    invoke(cli, "schedule", "other", "2025-12-19", "90", env=env)
    result = invoke(cli, "process", env=env)
    [job] = [job for job in json.loads(Path(".retry-queue.json").read_text()) if job["clientId"] == "balthazar"]
    summary = result.stdout.splitlines()[-1]
    assert summary.endswith(
        f"rescheduled 1, failed 0); recovered 0, given back 0, pruned 0; pending 2, next due {job['executeAt']}"
    )


def test_quiet_prints_nothing_when_nothing_happened(cli: CliRunner, workflow: FakeWorkflow) -> None:
    """As chronic does for cron: a quiet run with nothing due mails nothing."""
    env = {"RETRYQ_COMMAND": workflow.command}
    invoke(cli, "schedule", "balthazar", "2025-12-19", "60", env=env)  # not due yet
    result = invoke(cli, "process", "--quiet", env=env)
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")
    loud = invoke(cli, "process", env=env)
    assert "summary: processed 0" in loud.stdout


def test_failed_workflows_still_exit_0(cli: CliRunner, workflow: FakeWorkflow) -> None:
    workflow.exits(1, 1, 1)
    env = {"RETRYQ_COMMAND": workflow.command}
    invoke(cli, "schedule", "balthazar", "2025-12-19", "0", "--max-attempts", "1", env=env)
    result = invoke(cli, "process", env=env)
    assert result.exit_code == 0
    assert re.search(
        rf"{STAMP} balthazar 2025-12-19 #1 warning: exit 1; failed after 1 attempt$", result.stdout, re.MULTILINE
    )
    assert "failed 1)" in result.stdout


def test_quiet_keeps_warnings_and_the_summary(cli: CliRunner, workflow: FakeWorkflow) -> None:
    env = {"RETRYQ_COMMAND": workflow.command}
    invoke(cli, "schedule", "balthazar", "2025-12-19", "0", env=env)
    result = invoke(cli, "process", "--quiet", env=env)
    [line] = result.stdout.splitlines()
    assert re.fullmatch(rf"{STAMP} summary: processed 1 .*", line)  # no "warning:" in front of it


def test_dry_run_changes_nothing(cli: CliRunner, workflow: FakeWorkflow) -> None:
    Path(".retry-queue.json").write_text(LEGACY_FILE)
    result = invoke(cli, "process", "--dry-run", env={"RETRYQ_COMMAND": workflow.command})
    assert result.exit_code == 0
    assert result.stdout.splitlines()[:2] == [
        "dry run: 1 job due in .retry-queue.json",
        f"  would run {_legacy_id()[:8]} balthazar 2025-12-19 #1: {workflow.path} balthazar 2025-12-19",
    ]
    assert workflow.calls() == []
    assert Path(".retry-queue.json").read_text() == LEGACY_FILE


def test_no_workflow_configured_exits_78(cli: CliRunner) -> None:
    Path(".retry-queue.json").write_text(LEGACY_FILE)
    result = invoke(cli, "process")
    assert result.exit_code == 78
    assert result.stderr == (
        "retryq: error: no workflow command configured: set [workflow] command in retryq.toml, or RETRYQ_COMMAND\n"
    )
    assert Path(".retry-queue.json").read_text() == LEGACY_FILE


def test_a_command_not_found_exits_78_and_consumes_nothing(cli: CliRunner) -> None:
    Path(".retry-queue.json").write_text(LEGACY_FILE)
    result = invoke(cli, "process", env={"RETRYQ_COMMAND": "no-such-fetcher {client}"})
    assert result.exit_code == 78
    assert "command 'no-such-fetcher' not found on PATH=" in result.stdout  # in the log…
    [line] = result.stderr.splitlines()  # …and on stderr, where cron's mail and a person look
    assert line.startswith("retryq: error: command 'no-such-fetcher' not found on PATH=")
    assert json.loads(Path(".retry-queue.json").read_text())[0]["status"] == "pending"


def test_the_command_from_retryq_toml(cli: CliRunner, workflow: FakeWorkflow) -> None:
    Path("retryq.toml").write_text(
        f'[workflow]\ncommand = ["{workflow.path}", "{{client}}", "{{date}}", "{{attempt}}"]\n'
    )
    invoke(cli, "schedule", "balthazar", "2025-12-19", "0")
    assert invoke(cli, "process").exit_code == 0
    assert workflow.calls()[0]["argv"] == "balthazar 2025-12-19 1"


def test_keep_days_prunes(cli: CliRunner, workflow: FakeWorkflow) -> None:
    Path(".retry-queue.json").write_text(LEGACY_FILE.replace('"pending"', '"completed"'))
    result = invoke(cli, "process", "--keep-days", "3", env={"RETRYQ_COMMAND": workflow.command})
    assert "pruned 1" in result.stdout
    assert json.loads(Path(".retry-queue.json").read_text()) == []
    assert len(Path(".retry-queue.json.archive.jsonl").read_text().splitlines()) == 1


def _legacy_id() -> str:
    from retryq.record.models import Job

    return Job.model_validate(json.loads(LEGACY_FILE)[0]).id
