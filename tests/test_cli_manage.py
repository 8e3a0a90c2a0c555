"""Inspecting and mending the queue: show, cancel, requeue, prune; ids by unique prefix."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retryq import JsonFileStore
from retryq.models import Attempt, JobStatus, Outcome

from .helpers import T0, invoke, make_job

QUEUE = Path(".retry-queue.json")


@pytest.fixture
def store() -> JsonFileStore:
    store = JsonFileStore(QUEUE)
    failed = make_job(
        id="aaaa1111bbbb2222",
        status=JobStatus.FAILED,
        attempt=3,
        finished_at=T0 + timedelta(hours=3),
        last_exit_code=75,
        last_error="exit 75: still incomplete\nmissing=2",
        history=(
            Attempt(
                attempt=3,
                started_at=T0 + timedelta(hours=3),
                finished_at=T0 + timedelta(hours=3, seconds=42),
                outcome=Outcome.INCOMPLETE,
                exit_code=75,
                output_tail="fetched 648 of 650\nmissing=2",
            ),
        ),
    )
    store.add(failed, lambda job: job)
    store.add(make_job(id="aaaa9999cccc0000", client_id="other"), lambda job: job)
    store.add(make_job(id="ffff0000dddd1111", client_id="third", date="2025-12-20"), lambda job: job)
    return store


def test_show_a_job_with_its_attempts(cli: CliRunner, store: JsonFileStore) -> None:
    result = invoke(cli, "show", "aaaa1")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "  job          aaaa1111bbbb2222",
        "  client       balthazar",
        "  date         2025-12-19",
        "  scheduled at 2025-12-19T10:00:00.000Z",
        "  execute at   2025-12-19T11:00:00.000Z",
        "  delay        60 minutes",
        "  attempt      3 of 3",
        "  status       failed",
        "  finished at  2025-12-19T13:00:00.000Z",
        "  last exit    75",
        "  last error   exit 75: still incomplete",
        "attempts:",
        "  #3  2025-12-19T13:00:00.000Z  42s  incomplete, exit 75",
        "      | fetched 648 of 650",
        "      | missing=2",
    ]
    assert json.loads(invoke(cli, "show", "aaaa1111bbbb2222", "--json").stdout)["lastExitCode"] == 75


@pytest.mark.parametrize(
    ("ident", "code", "message"),
    [
        ("aaaa", 1, "job id prefix 'aaaa' is ambiguous: aaaa1111bbbb2222, aaaa9999cccc0000"),
        ("zzz", 1, "no job with id 'zzz'"),
        (" ", 2, "a job id (or a unique prefix of one) is required"),
    ],
)
def test_ids_by_unique_prefix(cli: CliRunner, store: JsonFileStore, ident: str, code: int, message: str) -> None:
    result = invoke(cli, "show", ident)
    assert (result.exit_code, result.stderr) == (code, f"retryq: error: {message}\n")


def test_cancel_by_id_keeps_the_job(cli: CliRunner, store: JsonFileStore) -> None:
    result = invoke(cli, "cancel", "aaaa9")
    assert (result.exit_code, result.stdout) == (0, "cancelled aaaa9999cccc0000 (other 2025-12-19 #1)\n")
    job = next(job for job in store.load() if job.id == "aaaa9999cccc0000")
    assert job.status is JobStatus.CANCELLED
    assert job.finished_at is not None


def test_cancel_by_client_and_date(cli: CliRunner, store: JsonFileStore) -> None:
    assert invoke(cli, "cancel", "--client", "third", "--date", "2025-12-20").exit_code == 0
    assert {job.client_id: job.status for job in store.load()}["third"] is JobStatus.CANCELLED


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["aaaa1"], 1, "job aaaa1111bbbb2222 is failed, not pending"),
        (["--client", "nobody", "--date", "2025-12-19"], 1, "no pending job for nobody 2025-12-19"),
        ([], 2, "give a job id, or --client and --date"),
        (["--client", "x"], 2, "give a job id, or --client and --date"),
    ],
)
def test_cancel_refusals(cli: CliRunner, store: JsonFileStore, args: list[str], code: int, message: str) -> None:
    before = QUEUE.read_bytes()
    result = invoke(cli, "cancel", *args)
    assert (result.exit_code, result.stderr) == (code, f"retryq: error: {message}\n")
    assert QUEUE.read_bytes() == before


def test_a_running_job_is_not_cancelled(cli: CliRunner, store: JsonFileStore) -> None:
    store.update({"aaaa9999cccc0000": lambda job: job.model_copy(update={"status": JobStatus.RUNNING})})
    result = invoke(cli, "cancel", "aaaa9")
    assert (result.exit_code, result.stderr) == (1, "retryq: error: job aaaa9999cccc0000 is running, not pending\n")


def test_requeue_a_failed_job_with_fresh_attempts(cli: CliRunner, store: JsonFileStore) -> None:
    result = invoke(cli, "requeue", "aaaa1", "--delay", "30", "--max-attempts", "5")
    assert result.exit_code == 0
    assert result.stdout.startswith("requeued aaaa1111bbbb2222\n")
    job = next(job for job in store.load() if job.id == "aaaa1111bbbb2222")
    assert (job.status, job.attempt, job.max_attempts, job.finished_at) == (JobStatus.PENDING, 1, 5, None)
    assert job.execute_at - job.scheduled_at == timedelta(minutes=30)
    assert len(job.history) == 1  # the record of earlier attempts stays


def test_requeue_refusals(cli: CliRunner, store: JsonFileStore) -> None:
    result = invoke(cli, "requeue", "aaaa9")
    assert (result.exit_code, result.stderr) == (
        1,
        "retryq: error: job aaaa9999cccc0000 is pending; only failed or cancelled jobs can be requeued\n",
    )
    invoke(cli, "schedule", "balthazar", "2025-12-19")  # a newer chain for the same client and date
    result = invoke(cli, "requeue", "aaaa1")
    assert result.exit_code == 1
    assert "is already pending for balthazar 2025-12-19" in result.stderr


def test_prune_dry_run_then_for_real(cli: CliRunner, store: JsonFileStore) -> None:
    before = QUEUE.read_bytes()
    dry = invoke(cli, "prune", "--dry-run")
    assert dry.stdout.splitlines() == [
        "would remove aaaa1111bbbb2222 (balthazar 2025-12-19 #3, failed)",
        "would remove 1 finished job(s)",
    ]
    assert QUEUE.read_bytes() == before
    assert invoke(cli, "prune").stdout.splitlines()[-1] == "removed 1 finished job(s)"
    assert [job.id for job in store.load()] == ["aaaa9999cccc0000", "ffff0000dddd1111"]
    assert [job.id for job in store.load_archive()] == ["aaaa1111bbbb2222"]


def test_prune_keeps_recent_jobs(cli: CliRunner, store: JsonFileStore) -> None:
    result = invoke(cli, "prune", "--keep-days", "36500", "--json")
    assert json.loads(result.stdout) == []
