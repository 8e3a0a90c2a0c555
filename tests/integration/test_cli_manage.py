"""Inspecting and mending the queue: show, cancel, requeue, prune; ids by unique prefix."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retryq import JsonFileStore
from retryq.record.models import Attempt, JobStatus, Outcome

from ..helpers import T0, invoke, make_job

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
        ([], 2, "give a job id, --client and --date, or --status pending for every matching job"),
        (["--client", "x"], 2, "give a job id, --client and --date, or --status pending for every matching job"),
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
    assert "is already open for balthazar 2025-12-19" in result.stderr


def test_prune_dry_run_then_for_real(cli: CliRunner, store: JsonFileStore) -> None:
    before = QUEUE.read_bytes()
    dry = invoke(cli, "prune", "--dry-run")
    assert dry.stdout.splitlines() == [
        "would remove aaaa1111bbbb2222 (balthazar 2025-12-19 #3, failed)",
        "would remove 1 finished job",
    ]
    assert QUEUE.read_bytes() == before
    assert invoke(cli, "prune").stdout.splitlines()[-1] == "removed 1 finished job"
    assert [job.id for job in store.load()] == ["aaaa9999cccc0000", "ffff0000dddd1111"]
    assert [job.id for job in store.load_archive()] == ["aaaa1111bbbb2222"]


def test_prune_keeps_recent_jobs(cli: CliRunner, store: JsonFileStore) -> None:
    result = invoke(cli, "prune", "--keep-days", "36500", "--json")
    assert json.loads(result.stdout) == []


@pytest.fixture
def failures() -> JsonFileStore:
    """Three failed chains of balthazar (two for 2025-12-19, one still open for 2025-12-20), one of other."""
    store = JsonFileStore(QUEUE)
    ended = T0 + timedelta(days=3)
    for ident, client, date, status, finished in [
        ("old19", "balthazar", "2025-12-19", JobStatus.FAILED, ended - timedelta(days=2)),
        ("new19", "balthazar", "2025-12-19", JobStatus.FAILED, ended),
        ("fail20", "balthazar", "2025-12-20", JobStatus.FAILED, ended),
        ("open20", "balthazar", "2025-12-20", JobStatus.PENDING, None),
        ("gone", "balthazar", "2025-12-21", JobStatus.CANCELLED, ended),
        ("other", "other", "2025-12-19", JobStatus.FAILED, ended),
    ]:
        job = make_job(id=ident, client_id=client, date=date, status=status, finished_at=finished, attempt=3)
        store.add(job, lambda job: job)
    return store


def test_bulk_requeue_dry_run_says_what_and_why_and_changes_nothing(cli: CliRunner, failures: JsonFileStore) -> None:
    before = QUEUE.read_bytes()
    result = invoke(cli, "requeue", "--status", "failed", "--client", "balthazar", "--dry-run")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "would requeue new19 (balthazar 2025-12-19 #3)",
        "skipped fail20 (balthazar 2025-12-20 #3): job open20 is already open for this key",
        "skipped old19 (balthazar 2025-12-19 #3): job new19, later, is requeued for this key",
        "would requeue 1 job, skipped 2",
    ]
    assert QUEUE.read_bytes() == before


def test_bulk_requeue_writes_the_latest_of_each_key(cli: CliRunner, failures: JsonFileStore) -> None:
    result = invoke(cli, "requeue", "--status", "failed", "--status", "cancelled", "--json")
    assert result.exit_code == 0
    printed = json.loads(result.stdout)
    assert (printed["dryRun"], sorted(job["id"] for job in printed["done"])) == (False, ["gone", "new19", "other"])
    assert sorted(item["job"]["id"] for item in printed["skipped"]) == ["fail20", "old19"]
    jobs = {job.id: job for job in failures.load()}
    assert {ident for ident, job in jobs.items() if job.status is JobStatus.PENDING} == {
        "gone",
        "new19",
        "other",
        "open20",
    }
    assert (jobs["new19"].attempt, jobs["old19"].status) == (1, JobStatus.FAILED)


def test_bulk_requeue_since_keeps_recent_failures(cli: CliRunner, failures: JsonFileStore) -> None:
    store = failures
    long_ago = store.load()[0].model_copy(update={"id": "ancient", "client_id": "old", "finished_at": T0})
    store.add(long_ago, lambda job: job)
    result = invoke(cli, "requeue", "--status", "failed", "--since", "3650d", "--dry-run", "--json")
    assert "ancient" in [job["id"] for job in json.loads(result.stdout)["done"]]
    recent = invoke(cli, "requeue", "--status", "failed", "--since", "1d", "--dry-run", "--json")
    assert json.loads(recent.stdout)["done"] == []  # every failure here ended in 2025


def test_bulk_requeue_refuses_open_statuses(cli: CliRunner, failures: JsonFileStore) -> None:
    result = invoke(cli, "requeue", "--status", "pending")
    assert (result.exit_code, result.stderr) == (2, "retryq: error: only failed or cancelled jobs can be requeued\n")


def test_bulk_cancel_of_a_clients_pending_jobs(cli: CliRunner, store: JsonFileStore) -> None:
    dry = invoke(cli, "cancel", "--status", "pending", "--client", "other", "--dry-run")
    assert dry.stdout.splitlines() == [
        "would cancel aaaa9999cccc0000 (other 2025-12-19 #1)",
        "would cancel 1 job, skipped 0",
    ]
    result = invoke(cli, "cancel", "--status", "pending", "--json")
    assert sorted(job["id"] for job in json.loads(result.stdout)["done"]) == ["aaaa9999cccc0000", "ffff0000dddd1111"]
    assert {job.status for job in store.load()} == {JobStatus.FAILED, JobStatus.CANCELLED}
    refused = invoke(cli, "cancel", "--status", "running")
    assert refused.exit_code == 2
    assert "only pending jobs can be cancelled" in refused.stderr


def test_list_is_sorted_by_due_time_unless_asked(cli: CliRunner) -> None:
    store = JsonFileStore(QUEUE)
    for ident, hours in [("late", 5), ("soon", 1), ("mid", 3)]:
        store.add(make_job(id=ident, client_id=ident, execute_at=T0 + timedelta(hours=hours)), lambda job: job)
    by_due = [line.split()[0] for line in invoke(cli, "list").stdout.splitlines()[1:]]
    by_file = [line.split()[0] for line in invoke(cli, "list", "--sort", "queue").stdout.splitlines()[1:]]
    by_client = [job["id"] for job in json.loads(invoke(cli, "list", "--sort", "client", "--json").stdout)]
    assert (by_due, by_file, by_client) == (["soon", "mid", "late"], ["late", "soon", "mid"], ["late", "mid", "soon"])
    bad = invoke(cli, "list", "--sort", "size")
    assert bad.exit_code == 2


def test_times_in_a_display_zone_or_the_local_one(
    cli: CliRunner, store: JsonFileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = invoke(cli, "show", "aaaa9")
    assert "  execute at   2025-12-19T11:00:00.000Z\n" in plain.stdout
    Path("retryq.toml").write_text('display_tz = "Europe/Paris"\n')
    paris = invoke(cli, "show", "aaaa9")
    assert "  execute at   2025-12-19T11:00:00.000Z (12:00 CET)\n" in paris.stdout
    monkeypatch.setenv("TZ", "America/New_York")
    local = invoke(cli, "list", "--local")
    assert "2025-12-19T11:00:00.000Z (06:00 EST)" in local.stdout
    Path("retryq.toml").write_text('display_tz = "Mars/Olympus"\n')
    wrong = invoke(cli, "list")
    assert (wrong.exit_code, wrong.stderr) == (
        78,
        "retryq: error: retryq.toml: display_tz: unknown time zone 'Mars/Olympus' (for example 'Europe/Paris')\n",
    )
