"""Named workflows, and the recipe of an import tried hourly from 04:00 to 08:00."""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retryq import JsonFileStore, RetryQueue, load_config
from retryq.record.backoff import constant
from retryq.record.errors import ConfigError, InvalidInput
from retryq.record.models import JobStatus, Outcome

from ..helpers import fake_workflow, invoke, make_config, process

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def two_workflows(tmp_path: Path) -> tuple[Path, Path]:
    fetch, ftp = fake_workflow(tmp_path, "fetch"), fake_workflow(tmp_path, "ftp")
    Path("retryq.toml").write_text(
        f"""
timeout = "2m"
max_attempts = 3

[workflow]
command = ["{fetch.path}", "{{client}}", "{{date}}"]

[workflows.ftp-import]
command = ["{ftp.path}", "{{workflow}}", "{{client}}", "{{date}}", "{{attempt}}"]
timeout = "30m"
max_attempts = 5
concurrency = 2
keep_days = {{ completed = 3, failed = 30 }}
backoff = {{ strategy = "exponential", initial = "10m", factor = 3, max = "2h" }}
"""
    )
    return fetch.calls_file, ftp.calls_file


def test_workflows_inherit_and_override_settings(two_workflows: tuple[Path, Path]) -> None:
    config = load_config()
    default, ftp = config.workflow(), config.workflow("ftp-import")
    assert (default.timeout, default.max_attempts, default.concurrency) == (timedelta(minutes=2), 3, None)
    assert (ftp.timeout, ftp.max_attempts, ftp.concurrency) == (timedelta(minutes=30), 5, 2)
    assert ftp.keep_days[JobStatus.FAILED] == 30
    assert ftp.backoff.delays(4) == [600, 1800, 5400, 7200]
    assert isinstance(default.backoff, constant)


def test_each_workflow_runs_its_own_command(cli: CliRunner, two_workflows: tuple[Path, Path]) -> None:
    fetch_calls, ftp_calls = two_workflows
    invoke(cli, "schedule", "balthazar", "2025-12-19", "0")
    invoke(cli, "schedule", "assurance", "2025-12-22", "0", "--workflow", "ftp-import")
    result = invoke(cli, "process")
    assert result.exit_code == 0, result.output
    assert "ftp-import:assurance 2025-12-22 #1 succeeded" in result.stdout
    assert fetch_calls.read_text().split("|")[0] == "balthazar 2025-12-19"
    assert ftp_calls.read_text().split("|")[0] == "ftp-import assurance 2025-12-22 1"
    jobs = json.loads(Path(".retry-queue.json").read_text())
    assert [(job["workflow"], job["maxAttempts"], job["status"]) for job in jobs] == [
        ("default", 3, "completed"),
        ("ftp-import", 5, "completed"),
    ]


def test_dedupe_is_per_workflow_client_and_date(cli: CliRunner, two_workflows: tuple[Path, Path]) -> None:
    invoke(cli, "schedule", "assurance", "2025-12-22")
    invoke(cli, "schedule", "assurance", "2025-12-22", "-w", "ftp-import")
    again = invoke(cli, "schedule", "assurance", "2025-12-22", "-w", "ftp-import")
    assert "a retry is already pending" in again.stdout
    assert [job["workflow"] for job in json.loads(Path(".retry-queue.json").read_text())] == ["default", "ftp-import"]


def test_run_a_named_workflow(cli: CliRunner, two_workflows: tuple[Path, Path]) -> None:
    _, ftp_calls = two_workflows
    assert invoke(cli, "run", "assurance", "2025-12-22", "--workflow", "ftp-import").exit_code == 0
    assert ftp_calls.read_text().startswith("ftp-import assurance 2025-12-22 1|")


def test_process_one_workflow_only(cli: CliRunner, two_workflows: tuple[Path, Path]) -> None:
    fetch_calls, ftp_calls = two_workflows
    invoke(cli, "schedule", "balthazar", "2025-12-19", "0")
    invoke(cli, "schedule", "assurance", "2025-12-22", "0", "-w", "ftp-import")
    invoke(cli, "process", "--workflow", "ftp-import")
    assert ftp_calls.exists()
    assert not fetch_calls.exists()


def test_a_removed_workflow_leaves_its_jobs_pending(cli: CliRunner, two_workflows: tuple[Path, Path]) -> None:
    invoke(cli, "schedule", "assurance", "2025-12-22", "0", "-w", "ftp-import")
    text = Path("retryq.toml").read_text()
    Path("retryq.toml").write_text(text.split("[workflows.ftp-import]")[0])
    result = invoke(cli, "process")
    assert result.exit_code == 0
    assert "warning: 1 pending job of workflow 'ftp-import', which is not configured; left pending" in result.stdout
    assert json.loads(Path(".retry-queue.json").read_text())[0]["status"] == "pending"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[workflows."-bad"]\ncommand = ["x"]\n', "workflows.-bad: invalid workflow name"),
        ('[workflow]\ncommand = ["x"]\n[workflows.default]\ncommand = ["y"]\n', "the default workflow is set twice"),
        ('[workflow]\ncommand = ["x", "{clientId}"]\n', "unknown placeholder {clientId}"),
        ("[workflow]\ncommand = []\n", "the command is empty"),
        ('[workflow]\ncommand = "x \'unclosed"\n', "cannot split the command"),
        ('timeout = "0s"\n', "timeout: must be more than 0 seconds, not '0s'"),
        ('[backoff]\nstrategy = "random"\n', "backoff.strategy"),
        ('timeout = "soon"\n', "not a duration: 'soon'"),
        ("[workflow\n", "invalid TOML"),
    ],
)
def test_configuration_errors(toml: str, message: str) -> None:
    Path("retryq.toml").write_text(toml)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config()


def test_pyproject_tool_section_and_explicit_file(tmp_path: Path) -> None:
    Path("pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.retryq]\nmax_attempts = 9\n')
    assert load_config().workflow().max_attempts == 9
    other = tmp_path / "other.toml"
    other.write_text("max_attempts = 4\n")
    assert load_config(other).workflow().max_attempts == 4
    assert load_config(env={"RETRYQ_CONFIG": str(other)}).workflow().max_attempts == 4
    with pytest.raises(ConfigError, match="configuration file not found"):
        load_config(tmp_path / "missing.toml")


def test_retryq_command_overrides_the_file(two_workflows: tuple[Path, Path]) -> None:
    config = load_config(env={"RETRYQ_COMMAND": "./other.sh '{client}' {date}"})
    assert config.workflow().command == ("./other.sh", "{client}", "{date}")
    assert config.workflow().command_origin == "RETRYQ_COMMAND"
    assert config.workflow("ftp-import").command is not None  # named workflows keep theirs


def test_unknown_workflow_in_the_api() -> None:
    with pytest.raises(InvalidInput, match="unknown workflow 'nope'"):
        RetryQueue(config=make_config(["true"])).schedule("a", "2025-12-19", workflow="nope")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def test_an_import_tried_hourly_from_4_to_8(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files may land at any hour: try at 04:00, 05:00, 06:00… stop at the first success, never import twice."""
    inbox, done = tmp_path / "inbox", tmp_path / "done"
    inbox.mkdir()
    command = [sys.executable, str(ROOT / "examples" / "ftp_import.py"), "{client}", "{date}"]
    config = make_config(command, max_attempts=5, backoff=constant(3600))
    queue = RetryQueue(JsonFileStore(tmp_path / ".retry-queue.json"), config=config)
    clock = Clock(datetime(2025, 12, 22, 4, 0, tzinfo=timezone.utc))
    queue.schedule("assurance", "2025-12-22", 0, now=clock.now)

    def cron(hour: int, minute: int = 0) -> None:
        clock.now = clock.now.replace(hour=hour, minute=minute)
        process(queue, clock=clock, prune=False)

    monkeypatch.setenv("IMPORT_INBOX", str(inbox))
    monkeypatch.setenv("IMPORT_DONE", str(done))
    cron(4)  # attempt 1: nothing on the server yet
    cron(4, 30)  # nothing due
    cron(5)  # attempt 2: still nothing
    (inbox / "contrats.csv").write_text("id;montant\n1;100\n2;200\n")
    cron(6)  # attempt 3: the file is there
    cron(7)
    cron(8)
    [job] = queue.jobs()
    assert (job.status, job.attempt) == (JobStatus.COMPLETED, 3)
    assert [(a.attempt, a.started_at.hour, a.outcome) for a in job.history] == [
        (1, 4, Outcome.INCOMPLETE),
        (2, 5, Outcome.INCOMPLETE),
        (3, 6, Outcome.SUCCEEDED),
    ]
    assert "imported contrats.csv: 2 rows" in (job.history[-1].output_tail or "")
    assert [p.name for p in done.iterdir()] == ["contrats.csv"]
    assert list(inbox.iterdir()) == []


def test_an_hourly_import_with_a_crashed_attempt_does_not_stop_the_next(tmp_path: Path) -> None:
    crash_once = tmp_path / "flaky.sh"
    crash_once.write_text(
        f"#!/bin/sh\nif [ ! -f {tmp_path}/crashed ]; then touch {tmp_path}/crashed; kill -KILL $$; fi\nexit 75\n"
    )
    crash_once.chmod(0o755)
    queue = RetryQueue(
        JsonFileStore(tmp_path / ".retry-queue.json"),
        config=make_config([str(crash_once)], max_attempts=5, backoff=constant(3600)),
    )
    clock = Clock(datetime(2025, 12, 22, 4, 0, tzinfo=timezone.utc))
    queue.schedule("assurance", "2025-12-22", 0, now=clock.now)
    for hour in range(4, 10):
        clock.now = clock.now.replace(hour=hour)
        process(queue, clock=clock, prune=False)
    [job] = queue.jobs()
    assert [a.outcome for a in job.history] == [Outcome.FAILED] + [Outcome.INCOMPLETE] * 4
    assert [a.started_at.hour for a in job.history] == [4, 5, 6, 7, 8]
    assert job.history[0].exit_code == 128 + 9
    assert (job.status, job.attempt) == (JobStatus.FAILED, 5)


def test_a_follow_up_from_inside_a_named_workflow_stays_in_it(cli: CliRunner, tmp_path: Path) -> None:
    """A named workflow's fetcher calls `retryq report` without naming its workflow: the chain is its own."""
    import os

    fetcher = tmp_path / "fetch.sh"
    fetcher.write_text('#!/bin/sh\nexec retryq report "$1" "$2" --total 10 --fetched 9 --delay 30\n')
    fetcher.chmod(0o755)
    Path("retryq.toml").write_text(f'[workflows.imp]\ncommand = ["{fetcher}", "{{client}}", "{{date}}"]\n')
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    invoke(cli, "schedule", "assurance", "2025-12-22", "0", "--workflow", "imp", env=env)
    result = invoke(cli, "process", env=env)
    assert result.exit_code == 0, result.output
    [job] = json.loads(Path(".retry-queue.json").read_text())  # no stray default job
    assert (job["workflow"], job["status"], job["attempt"]) == ("imp", "pending", 2)
