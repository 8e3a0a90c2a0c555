"""`retryq schedule`: the block it prints, what it writes, dedupe, follow-ups, where the queue is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from freezegun import freeze_time
from typer.testing import CliRunner

from retryq import JsonFileStore
from retryq.models import JobStatus

from .helpers import invoke

NOW = "2025-12-19T10:00:00Z"


def queue_file(path: Path = Path(".retry-queue.json")) -> list[dict[str, object]]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


@freeze_time(NOW)
def test_schedule_prints_the_plan_and_writes_the_job(cli: CliRunner) -> None:
    result = invoke(cli, "schedule", "balthazar", "2025-12-19", "60")
    assert result.exit_code == 0
    [job] = queue_file()
    assert job["clientId"] == "balthazar"
    assert job["date"] == "2025-12-19"
    assert job["scheduledAt"] == "2025-12-19T10:00:00.000Z"
    assert job["executeAt"] == "2025-12-19T11:00:00.000Z"
    assert (job["delayMinutes"], job["status"], job["attempt"], job["maxAttempts"]) == (60, "pending", 1, 3)
    assert result.stdout.splitlines() == [
        "Retry scheduled",
        f"  job          {job['id']}",
        "  client       balthazar",
        "  date         2025-12-19",
        "  scheduled at 2025-12-19T10:00:00.000Z",
        "  execute at   2025-12-19T11:00:00.000Z",
        "  delay        60 minutes",
        "  attempt      1 of 3",
        "  status       pending",
    ]


@freeze_time(NOW)
def test_the_delay_defaults_to_60_minutes(cli: CliRunner) -> None:
    assert invoke(cli, "schedule", "balthazar", "2025-12-19").exit_code == 0
    assert queue_file()[0]["executeAt"] == "2025-12-19T11:00:00.000Z"


@pytest.mark.parametrize(("delay", "minutes"), [("90m", 90), ("2h", 120), ("1h30m", 90), ("0", 0)])
def test_delays_with_units(cli: CliRunner, delay: str, minutes: int) -> None:
    assert invoke(cli, "schedule", "balthazar", "2025-12-19", delay).exit_code == 0
    assert queue_file()[0]["delayMinutes"] == minutes


@freeze_time(NOW)
def test_at_a_local_time(cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    try:
        result = invoke(cli, "schedule", "assurance", "2025-12-22", "60", "--at", "2025-12-22 04:00")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert result.exit_code == 0
    [job] = queue_file()
    assert (job["executeAt"], job["delayMinutes"]) == ("2025-12-22T03:00:00.000Z", 60)


@freeze_time(NOW)
def test_a_pending_duplicate_adds_nothing(cli: CliRunner) -> None:
    invoke(cli, "schedule", "balthazar", "2025-12-19", "60")
    before = Path(".retry-queue.json").read_bytes()
    result = invoke(cli, "schedule", "balthazar", "2025-12-19", "30")
    assert result.exit_code == 0
    assert result.stdout.startswith("A pending retry already exists for balthazar 2025-12-19; nothing added\n")
    assert "  delay        60 minutes" in result.stdout
    assert Path(".retry-queue.json").read_bytes() == before


def test_scheduling_while_the_job_runs_records_a_follow_up(cli: CliRunner) -> None:
    invoke(cli, "schedule", "balthazar", "2025-12-19", "0")
    store = JsonFileStore(".retry-queue.json")
    [job] = store.load()
    store.update({job.id: lambda job: job.model_copy(update={"status": JobStatus.RUNNING, "run_id": "r"})})
    result = invoke(cli, "schedule", "balthazar", "2025-12-19", "45")
    assert result.exit_code == 0
    assert "is running now; its next attempt will come 45 minutes after this run ends" in result.stdout
    [job] = store.load()
    assert job.follow_up_minutes == 45


def test_a_finished_job_starts_a_new_chain(cli: CliRunner) -> None:
    invoke(cli, "schedule", "balthazar", "2025-12-19", "0")
    store = JsonFileStore(".retry-queue.json")
    [job] = store.load()
    store.update({job.id: lambda job: job.model_copy(update={"status": JobStatus.FAILED})})
    assert invoke(cli, "schedule", "balthazar", "2025-12-19").stdout.startswith("Retry scheduled")
    assert [job["status"] for job in queue_file()] == ["failed", "pending"]


def test_max_attempts_and_json_output(cli: CliRunner) -> None:
    result = invoke(cli, "schedule", "balthazar", "2025-12-19", "--max-attempts", "5", "--json")
    assert result.exit_code == 0
    printed = json.loads(result.stdout)
    assert printed["outcome"] == "created"
    assert printed["job"]["maxAttempts"] == 5
    assert printed["job"] == queue_file()[0]


def test_max_attempts_default_comes_from_the_config(cli: CliRunner) -> None:
    Path("retryq.toml").write_text("max_attempts = 7\n")
    invoke(cli, "schedule", "balthazar", "2025-12-19")
    assert queue_file()[0]["maxAttempts"] == 7


def test_queue_file_precedence_config_then_env_then_option(cli: CliRunner, tmp_path: Path) -> None:
    Path("retryq.toml").write_text('queue_file = "from-config.json"\n')
    invoke(cli, "schedule", "a", "2025-12-19")
    invoke(cli, "schedule", "b", "2025-12-19", env={"RETRYQ_QUEUE_FILE": "from-env.json"})
    invoke(
        cli,
        "schedule",
        "c",
        "2025-12-19",
        "--queue-file",
        "from-option.json",
        env={"RETRYQ_QUEUE_FILE": "from-env.json"},
    )
    assert [job["clientId"] for job in queue_file(Path("from-config.json"))] == ["a"]
    assert [job["clientId"] for job in queue_file(Path("from-env.json"))] == ["b"]
    assert [job["clientId"] for job in queue_file(Path("from-option.json"))] == ["c"]


def test_named_workflow_must_be_configured(cli: CliRunner) -> None:
    result = invoke(cli, "schedule", "balthazar", "2025-12-19", "--workflow", "ftp")
    assert result.exit_code == 2
    assert result.stderr == "retryq: error: unknown workflow 'ftp' (configured: default)\n"


@freeze_time(NOW)
def test_at_a_date_alone_means_midnight_and_a_past_time_is_said(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        later = invoke(cli, "schedule", "a", "2025-12-19", "--at", "2025-12-21")
        past = invoke(cli, "schedule", "b", "2025-12-19", "--at", "04:00")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert "  execute at   2025-12-21T00:00:00.000Z" in later.stdout
    assert "note" not in later.stdout
    assert (
        past.stdout.splitlines()[-1]
        == "note: '04:00' has already passed (2025-12-19T04:00:00.000Z): the job is due now"
    )
