"""`retryq schedule`: the block it prints, what it writes, dedupe, follow-ups, where the queue is."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time
from typer.testing import CliRunner

from retryq import JsonFileStore
from retryq.record.models import JobStatus
from retryq.record.timeutil import format_utc

from ..helpers import invoke

NOW = "2025-12-19T10:00:00Z"


def queue_file(path: Path = Path(".retry-queue.json")) -> list[dict[str, object]]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


@freeze_time(NOW)
def test_schedule_prints_one_line_in_a_log_and_writes_the_job(cli: CliRunner) -> None:
    """stdout is not a terminal (cron's `>> retry.log`): one timestamped line per event."""
    result = invoke(cli, "schedule", "balthazar", "2025-12-19", "60")
    assert result.exit_code == 0
    [job] = queue_file()
    assert result.stdout == (
        "2025-12-19T10:00:00.000Z balthazar 2025-12-19 retry scheduled in 60 minutes: "
        f"job {job['id']}, due 2025-12-19T11:00:00.000Z, attempt 1 of 3\n"
    )


@freeze_time(NOW)
def test_schedule_prints_the_plan_on_a_terminal_or_verbose(cli: CliRunner) -> None:
    result = invoke(cli, "schedule", "balthazar", "2025-12-19", "60", "--verbose")
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
def test_one_minute_is_one_minute_and_a_time_given_says_when(cli: CliRunner) -> None:
    one = invoke(cli, "schedule", "balthazar", "2025-12-19", "1", "--verbose", env={"RETRYQ_COMMAND": "true"})
    assert "  delay        1 minute\n" in one.stdout
    later = invoke(cli, "schedule", "acme", "2025-12-19", "--at", "2025-12-22T04:00Z", env={"RETRYQ_COMMAND": "true"})
    assert " acme 2025-12-19 retry scheduled in 2 days 18 hours: job " in later.stdout
    assert ", due 2025-12-22T04:00:00.000Z, attempt 1 of 3\n" in later.stdout


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
    result = invoke(cli, "schedule", "balthazar", "2025-12-19", "30", "--verbose")
    assert result.exit_code == 0
    assert result.stdout.startswith("A pending retry already exists for balthazar 2025-12-19; nothing added\n")
    assert "  delay        60 minutes" in result.stdout
    assert Path(".retry-queue.json").read_bytes() == before
    [job] = queue_file()
    line = invoke(cli, "schedule", "balthazar", "2025-12-19", "30").stdout
    assert line.endswith(
        f" balthazar 2025-12-19 a retry is already pending: job {job['id']}, due 2025-12-19T11:00:00.000Z; "
        "nothing added\n"
    )


def test_scheduling_while_the_job_runs_records_a_follow_up(cli: CliRunner) -> None:
    invoke(cli, "schedule", "balthazar", "2025-12-19", "0")
    store = JsonFileStore(".retry-queue.json")
    [job] = store.load()
    store.update({job.id: lambda job: job.model_copy(update={"status": JobStatus.RUNNING, "run_id": "r"})})
    result = invoke(cli, "schedule", "balthazar", "2025-12-19", "45")
    assert result.exit_code == 0
    [job] = store.load()
    assert job.follow_up_minutes == 45
    # Due 45 minutes after the running attempt was due (it has not started yet: no later than that).
    due = format_utc(job.execute_at + timedelta(minutes=45))
    assert result.stdout.endswith(
        f" running now: attempt 2 of 3 will be due {due} at the earliest (45 minutes after this one; job {job.id})\n"
    )


def test_a_finished_job_starts_a_new_chain(cli: CliRunner) -> None:
    invoke(cli, "schedule", "balthazar", "2025-12-19", "0")
    store = JsonFileStore(".retry-queue.json")
    [job] = store.load()
    store.update({job.id: lambda job: job.model_copy(update={"status": JobStatus.FAILED})})
    assert " retry scheduled in 60 minutes: " in invoke(cli, "schedule", "balthazar", "2025-12-19").stdout
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
        env = {"RETRYQ_COMMAND": "true"}
        later = invoke(cli, "schedule", "a", "2025-12-19", "--at", "2025-12-21", "--verbose", env=env)
        past = invoke(cli, "schedule", "b", "2025-12-19", "--at", "04:00", env=env)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert "  execute at   2025-12-21T00:00:00.000Z" in later.stdout
    assert later.stderr == ""
    assert past.stderr == "retryq: warning: '04:00' has already passed (2025-12-19T04:00:00.000Z): the job is due now\n"


def test_scheduling_without_a_workflow_command_warns_but_succeeds(cli: CliRunner) -> None:
    """The problem would otherwise show only later, when `process` exits 78."""
    result = invoke(cli, "schedule", "balthazar", "2025-12-19", "60")
    assert result.exit_code == 0
    assert result.stderr == (
        "retryq: warning: no command is configured for workflow 'default' (set [workflow] command in retryq.toml, "
        "or RETRYQ_COMMAND): `retryq process` will leave this job pending\n"
    )
    assert len(queue_file()) == 1
    configured = invoke(cli, "schedule", "other", "2025-12-19", "60", env={"RETRYQ_COMMAND": "true"})
    assert (configured.exit_code, configured.stderr) == (0, "")


@pytest.mark.parametrize("where", ["before", "after"])
def test_global_options_go_before_or_after_the_command(cli: CliRunner, where: str) -> None:
    Path("elsewhere.toml").write_text('queue_file = "elsewhere.json"\n[workflow]\ncommand = ["true"]\n')
    options = ["--config", "elsewhere.toml", "--queue-file=chosen.json"]
    command = ["schedule", "balthazar", "2025-12-19"]
    result = invoke(cli, *(options + command if where == "before" else command + options))
    assert (result.exit_code, result.stderr) == (0, "")
    assert [job["clientId"] for job in queue_file(Path("chosen.json"))] == ["balthazar"]
    listed = invoke(
        cli,
        *(
            ["--queue-file", "chosen.json", "list", "--json"]
            if where == "before"
            else ["list", "--json", "--queue-file", "chosen.json"]
        ),
    )
    assert [job["clientId"] for job in json.loads(listed.stdout)] == ["balthazar"]


def test_at_refuses_a_nonexistent_local_time_and_a_time_long_past(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "Europe/Paris")
    env = {"RETRYQ_COMMAND": "true"}
    with freeze_time("2026-03-20T12:00:00Z"):
        gap = invoke(cli, "schedule", "assurance", "2026-03-29", "--at", "2026-03-29 02:30", env=env)
    assert gap.exit_code == 2
    assert gap.stderr.startswith("retryq: error: '2026-03-29 02:30' does not exist in TZ=Europe/Paris")
    with freeze_time("2026-10-20T12:00:00Z"):
        twice = invoke(cli, "schedule", "assurance", "2026-10-25", "--at", "2026-10-25 02:30", env=env)
        old = invoke(cli, "schedule", "assurance", "2026-10-25", "--at", "1970-01-01", env=env)
    assert twice.exit_code == 0
    assert twice.stderr.startswith("retryq: warning: '2026-10-25 02:30' happens twice in TZ=Europe/Paris")
    assert (old.exit_code, Path(".retry-queue.json").exists()) == (2, True)
    assert "is more than 7 days in the past" in old.stderr
    assert len(queue_file()) == 1
