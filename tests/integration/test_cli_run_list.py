"""`retryq run` (now, outside the queue) and `retryq list`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from freezegun import freeze_time
from typer.testing import CliRunner

from ..helpers import LEGACY_FILE, FakeWorkflow, invoke, write_script


def test_run_passes_client_and_date_and_returns_the_exit_code(cli: CliRunner, workflow: FakeWorkflow) -> None:
    workflow.exits(75)
    result = invoke(cli, "run", "balthazar", "2025-12-19", env={"RETRYQ_COMMAND": workflow.command})
    assert result.exit_code == 75
    [call] = workflow.calls()
    assert (call["argv"], call["attempt"], call["job_id"]) == ("balthazar 2025-12-19", "1", "")
    assert not Path(".retry-queue.json").exists()  # no job needed, none created


def test_run_success(cli: CliRunner, workflow: FakeWorkflow) -> None:
    assert invoke(cli, "run", "balthazar", "2025-12-19", env={"RETRYQ_COMMAND": workflow.command}).exit_code == 0


def test_run_times_out_with_124(cli: CliRunner, tmp_path: Path) -> None:
    script = write_script(tmp_path / "slow.sh", "sleep 30\n")
    result = invoke(cli, "run", "balthazar", "2025-12-19", "--timeout", "0.3", env={"RETRYQ_COMMAND": str(script)})
    assert result.exit_code == 124
    assert result.stderr == "retryq: error: the workflow timed out and was stopped\n"


def test_run_without_a_command_exits_78(cli: CliRunner) -> None:
    result = invoke(cli, "run", "balthazar", "2025-12-19")
    assert result.exit_code == 78
    assert result.stderr == "retryq: error: workflow 'default' has no command configured\n"


def test_run_validates_its_arguments(cli: CliRunner, workflow: FakeWorkflow) -> None:
    result = invoke(cli, "run", "a;b", "2025-12-19", env={"RETRYQ_COMMAND": workflow.command})
    assert result.exit_code == 2
    assert workflow.calls() == []


@freeze_time("2025-12-19T10:30:00Z")
def test_list_shows_a_table(cli: CliRunner) -> None:
    Path(".retry-queue.json").write_text(LEGACY_FILE)
    invoke(cli, "schedule", "other", "2025-12-19", "90")
    result = invoke(cli, "list")
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ID", "CLIENT", "DATE", "STATUS", "ATTEMPT", "WHEN", "LAST"]
    assert lines[1].split()[1:] == [
        "balthazar",
        "2025-12-19",
        "pending",
        "1/3",
        "2025-12-19T11:00:00.000Z",
        "in",
        "30m",
    ]
    assert lines[2].split()[1:] == [
        "other",
        "2025-12-19",
        "pending",
        "1/3",
        "2025-12-19T12:00:00.000Z",
        "in",
        "1h30m",
    ]


def test_list_filters_and_json(cli: CliRunner) -> None:
    Path(".retry-queue.json").write_text(LEGACY_FILE.replace('"pending"', '"failed"'))
    invoke(cli, "schedule", "other", "2025-12-19")
    failed = json.loads(invoke(cli, "list", "--status", "failed", "--json").stdout)
    assert [job["clientId"] for job in failed] == ["balthazar"]
    both = json.loads(invoke(cli, "list", "-s", "failed", "-s", "pending", "--json").stdout)
    assert len(both) == 2
    assert json.loads(invoke(cli, "list", "--client", "other", "--json").stdout)[0]["clientId"] == "other"


def test_list_of_an_empty_queue(cli: CliRunner) -> None:
    result = invoke(cli, "list")
    assert (result.exit_code, result.stdout) == (0, "no jobs in .retry-queue.json\n")
    assert not Path(".retry-queue.json").exists()  # reading creates nothing


def test_list_says_when_filters_match_nothing(cli: CliRunner) -> None:
    Path(".retry-queue.json").write_text(LEGACY_FILE)
    assert invoke(cli, "list", "--client", "nobody").stdout == "no matching jobs in .retry-queue.json\n"


def test_bare_retryq_prints_its_help(cli: CliRunner) -> None:
    result = invoke(cli)
    assert result.exit_code == 2
    assert result.stderr.startswith("Usage: retryq [OPTIONS] COMMAND [ARGS]...")
    assert "error" not in result.stderr


def test_a_fifo_is_not_a_queue_file(cli: CliRunner, tmp_path: Path) -> None:
    import os

    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    result = invoke(cli, "list", "--queue-file", str(fifo))
    assert (result.exit_code, result.stderr) == (74, f"retryq: error: {fifo}: is not a regular file\n")


def test_short_commands_run_without_the_cycle_collector_and_runs_with_it(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import gc

    from retryq import JsonFileStore

    seen: list[tuple[str, bool]] = []
    real_load, real_views = JsonFileStore.load, JsonFileStore.load_views

    def load(self: JsonFileStore, query=None):  # type: ignore[no-untyped-def]
        seen.append((sys._getframe(1).f_code.co_name, gc.isenabled()))
        return real_load(self, query)

    def load_views(self: JsonFileStore, query=None):  # type: ignore[no-untyped-def]
        seen.append(("read_jobs", gc.isenabled()))  # how `list` reads the queue
        return real_views(self, query)

    monkeypatch.setattr(JsonFileStore, "load", load)
    monkeypatch.setattr(JsonFileStore, "load_views", load_views)
    env = {"RETRYQ_COMMAND": "true"}
    invoke(cli, "schedule", "balthazar", "2025-12-19", "0", env=env)
    assert invoke(cli, "list", env=env).exit_code == 0
    assert invoke(cli, "process", env=env).exit_code == 0
    assert gc.isenabled()  # given back after each command
    listed = [enabled for caller, enabled in seen if caller == "read_jobs"]
    processed = [enabled for caller, enabled in seen if caller != "read_jobs"]
    assert listed == [False]
    assert processed
    assert all(processed)
