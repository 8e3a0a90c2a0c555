"""`retryq doctor`: what needs a human, and exit 1 when something does."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from filelock import FileLock
from typer.testing import CliRunner

from retryq import JsonFileStore
from retryq.record.models import JobStatus, Owner
from retryq.record.timeutil import utcnow
from retryq.running.platform import current_owner

from ..helpers import LEGACY_FILE, FakeWorkflow, invoke, make_job, need_xattrs, write_script

QUEUE = Path(".retry-queue.json")


@pytest.fixture
def env(workflow: FakeWorkflow) -> dict[str, str]:
    return {"RETRYQ_COMMAND": workflow.command}


def test_a_healthy_setup(cli: CliRunner, env: dict[str, str], workflow: FakeWorkflow) -> None:
    invoke(cli, "schedule", "balthazar", "2025-12-19", env=env)
    result = invoke(cli, "doctor", env=env)
    assert result.exit_code == 0, result.stdout
    assert result.stdout.splitlines() == [
        "ok: configuration: no file; built-in defaults and RETRYQ_* variables",
        f"ok: workflow default: {workflow.path} (from RETRYQ_COMMAND)",
        "ok: queue: .retry-queue.json: 1 job (1 pending)",
        "ok: queue: writable, and the lock .retry-queue.json.lock can be taken",
        "ok: jobs: nothing stuck, nothing overdue",
    ]


def test_no_command_needs_a_human(cli: CliRunner) -> None:
    result = invoke(cli, "doctor")
    assert result.exit_code == 1
    assert "problem: no workflow command configured: set [workflow] command, or RETRYQ_COMMAND" in result.stdout


def test_a_command_not_found(cli: CliRunner) -> None:
    result = invoke(cli, "doctor", env={"RETRYQ_COMMAND": "no-such-fetcher"})
    assert result.exit_code == 1
    assert (
        f"problem: workflow default: command 'no-such-fetcher' not found on PATH={os.environ['PATH']} "
        "(from RETRYQ_COMMAND)" in result.stdout
    )


def test_a_corrupt_queue_file(cli: CliRunner, env: dict[str, str]) -> None:
    QUEUE.write_text("[{")
    result = invoke(cli, "doctor", env=env)
    assert result.exit_code == 1
    assert result.stdout.splitlines()[-1].startswith("problem: queue: .retry-queue.json: not valid JSON at line 1")


def test_a_held_lock(cli: CliRunner, env: dict[str, str]) -> None:
    QUEUE.write_text(LEGACY_FILE)
    with FileLock(f"{QUEUE}.lock"):
        result = invoke(cli, "doctor", env=env)
    assert result.exit_code == 1
    assert "problem: queue: .retry-queue.json: could not lock the queue within 2s" in result.stdout


def test_stuck_and_overdue_jobs_mean_cron_is_not_running(cli: CliRunner, env: dict[str, str]) -> None:
    store = JsonFileStore(QUEUE)
    gone = current_owner().model_copy(update={"pid": 2**22 + 7})
    now = utcnow()
    store.add(
        make_job(id="stuck", status=JobStatus.RUNNING, owner=gone, lease_until=now - timedelta(minutes=1)),
        lambda job: job,
    )
    store.add(make_job(id="late", client_id="late", execute_at=now - timedelta(hours=2)), lambda job: job)
    store.add(make_job(id="fine", client_id="fine", execute_at=now - timedelta(minutes=2)), lambda job: job)
    far = Owner(host="elsewhere", pid=1)
    store.add(
        make_job(
            id="remote", client_id="remote", status=JobStatus.RUNNING, owner=far, lease_until=now + timedelta(hours=1)
        ),
        lambda job: job,
    )
    result = invoke(cli, "doctor", env=env)
    assert result.exit_code == 1
    problems = [line for line in result.stdout.splitlines() if line.startswith("problem:")]
    assert len(problems) == 2
    assert problems[0].startswith("problem: job stuck (balthazar 2025-12-19 #1) is stuck running")
    assert problems[1].startswith("problem: 1 pending job due for more than 15m (oldest late, due ")
    assert problems[1].endswith("is cron running `retryq process`?")


def test_a_claim_past_its_lease_is_flagged_even_while_its_runner_lives(cli: CliRunner, env: dict[str, str]) -> None:
    # A claim whose commit reply was lost: its runner (this process) is alive, but never started it.
    now = utcnow()
    JsonFileStore(QUEUE).add(
        make_job(
            id="lost",
            status=JobStatus.RUNNING,
            owner=current_owner(),
            run_id="r" * 32,
            started_at=now - timedelta(minutes=30),
            lease_until=now - timedelta(minutes=20),
        ),
        lambda job: job,
    )
    result = invoke(cli, "doctor", env=env)
    assert result.exit_code == 1
    [problem] = [line for line in result.stdout.splitlines() if line.startswith("problem:")]
    owner = current_owner()
    assert problem.startswith(
        f"problem: job lost (balthazar 2025-12-19 #1) is stuck running: lease of {owner.host}:{owner.pid} expired at "
    ), problem
    assert "though it is alive" in problem


def test_failed_jobs_are_a_warning_only(cli: CliRunner, env: dict[str, str]) -> None:
    QUEUE.write_text(LEGACY_FILE.replace('"pending"', '"failed"'))
    result = invoke(cli, "doctor", "--json", env=env)
    assert result.exit_code == 0
    findings = json.loads(result.stdout)
    assert findings[-1]["level"] == "warning"
    assert findings[-1]["message"].startswith("1 failed job kept")


def test_a_broken_config(cli: CliRunner) -> None:
    Path("retryq.toml").write_text("nonsense = 1\n")
    result = invoke(cli, "doctor")
    # A finding like the others (`problem: …` on stdout, exit 1), not an error about a problem.
    assert (result.exit_code, result.stderr) == (1, "")
    [line] = result.stdout.splitlines()
    assert line.startswith("problem: retryq.toml: nonsense: ")


def test_the_failure_hook_and_the_metrics_directory_are_checked(cli: CliRunner, env: dict[str, str]) -> None:
    Path("retryq.toml").write_text('on_failure = ["no-such-notifier"]\nmetrics_file = "missing/retryq.prom"\n')
    result = invoke(cli, "doctor", env=env)
    assert result.exit_code == 1
    assert "problem: on_failure: command 'no-such-notifier' not found on PATH=" in result.stdout
    assert "problem: metrics: directory 'missing' does not exist or is not writable" in result.stdout


def test_a_command_found_only_on_the_login_path_is_a_warning(cli: CliRunner, tmp_path: Path) -> None:
    """Under cron PATH=/usr/bin:/bin: a command in a venv or /usr/local/bin would fail every five minutes."""
    bin_dir = tmp_path / "venv-bin"
    bin_dir.mkdir()
    write_script(bin_dir / "boamp-fetch", "exit 0\n")
    env = {"RETRYQ_COMMAND": "boamp-fetch {client} {date}", "PATH": f"{bin_dir}:/usr/bin:/bin"}
    result = invoke(cli, "doctor", env=env)
    assert result.exit_code == 0, result.stdout  # a warning, not a problem: it may run from a crontab with PATH=
    assert (
        f"warning: workflow default: {bin_dir}/boamp-fetch is found on this shell's PATH but not on cron's default "
        "PATH=/usr/bin:/bin: under cron it fails; give its full path, set PATH= in the crontab, "
        'or env = { PATH = "…" } in the workflow' in result.stdout
    )


def test_a_command_that_is_another_program_under_cron_is_a_warning(cli: CliRunner, tmp_path: Path) -> None:
    bin_dir = tmp_path / "venv-bin"
    bin_dir.mkdir()
    write_script(bin_dir / "sh", "exit 0\n")  # shadows /bin/sh, as a venv's python shadows /usr/bin/python3
    result = invoke(cli, "doctor", env={"RETRYQ_COMMAND": "sh fetch.sh", "PATH": f"{bin_dir}:/usr/bin:/bin"})
    assert f"warning: workflow default: {bin_dir}/sh on this shell's PATH, but /usr/bin/sh on cron's" in result.stdout


def test_a_command_on_crons_path_or_the_workflows_own_path_is_ok(cli: CliRunner, tmp_path: Path) -> None:
    bin_dir = tmp_path / "venv-bin"
    bin_dir.mkdir()
    write_script(bin_dir / "boamp-fetch", "exit 0\n")
    Path("retryq.toml").write_text(
        '[workflow]\ncommand = ["sh", "fetch.sh"]\n'
        f'[workflows.ftp]\ncommand = ["boamp-fetch"]\nenv = {{ PATH = "{bin_dir}" }}\n'
    )
    result = invoke(cli, "doctor", env={"PATH": "/usr/bin:/bin"})
    lines = result.stdout.splitlines()
    assert (
        "ok: workflow default: /usr/bin/sh (from retryq.toml [workflow].command; "
        "also found on cron's default PATH=/usr/bin:/bin)" in lines
    )
    assert (
        f"ok: workflow ftp: {bin_dir}/boamp-fetch (from retryq.toml [workflows.ftp].command; on the workflow's own "
        f"PATH={bin_dir})" in lines
    )


def test_a_queue_file_grown_past_the_measured_size_is_warned_about(
    cli: CliRunner, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from retryq.reporting import doctor

    invoke(cli, "schedule", "balthazar", "2025-12-19", env=env)
    assert "each change of the file" not in invoke(cli, "doctor", env=env).stdout
    monkeypatch.setattr(doctor, "SLOW_DOCUMENT_BYTES", QUEUE.stat().st_size - 1)
    result = invoke(cli, "doctor", env=env)
    assert result.exit_code == 0, result.stdout  # a warning: nothing is broken yet
    [line] = [line for line in result.stdout.splitlines() if "each change of the file" in line]
    assert line.startswith("warning: queue: .retry-queue.json holds 0.0 MB (1 job); past about 0 MB")


def test_a_queue_file_retryq_wrote_knowing_every_record_valid_is_measured_against_the_marked_size(
    cli: CliRunner, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from retryq.reporting import doctor

    need_xattrs(Path.cwd())
    invoke(cli, "schedule", "balthazar", "2025-12-19", env=env)
    invoke(cli, "schedule", "acme", "2025-12-19", env=env)  # checked the file first: its write is marked clean
    monkeypatch.setattr(doctor, "SLOW_DOCUMENT_BYTES", QUEUE.stat().st_size - 1)
    monkeypatch.setattr(doctor, "SLOW_MARKED_DOCUMENT_BYTES", QUEUE.stat().st_size)
    assert "each change of the file" not in invoke(cli, "doctor", env=env).stdout
    os.utime(QUEUE, ns=(10**9, 10**9))  # touched by something else since: the mark no longer matches
    [line] = [line for line in invoke(cli, "doctor", env=env).stdout.splitlines() if "each change" in line]
    assert "every command checks each of its records" in line
