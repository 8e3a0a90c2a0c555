"""`retryq stats` over the queue and its archive, and the metrics file of `process`."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from typer.testing import CliRunner

from retryq import JsonFileStore
from retryq.record.models import JobStatus
from retryq.record.timeutil import utcnow
from retryq.reporting.metrics import parse_metrics

from ..helpers import FakeWorkflow, invoke, make_job

QUEUE = Path(".retry-queue.json")


def recorded_history() -> JsonFileStore:
    """Four chains: resolved at retry 1 (60 min, archived), at retry 2 (2 h), persistent, still open."""
    now = utcnow()
    start = now - timedelta(days=2)
    store = JsonFileStore(QUEUE)
    for job in [
        make_job(
            id="a1",
            client_id="a",
            scheduled_at=start,
            status=JobStatus.COMPLETED,
            finished_at=start + timedelta(hours=1),
        ),
        make_job(
            id="b2",
            client_id="b",
            scheduled_at=start,
            status=JobStatus.COMPLETED,
            attempt=2,
            finished_at=start + timedelta(hours=2),
        ),
        make_job(id="c3", client_id="c", scheduled_at=start, status=JobStatus.FAILED, attempt=3, finished_at=start),
        make_job(id="d1", client_id="d", scheduled_at=now - timedelta(hours=1), execute_at=now + timedelta(hours=1)),
    ]:
        store.add(job, lambda job: job)
    store.update({"a1": lambda job: None})  # pruned: only the archive has it now
    return store


def test_stats_count_the_queue_and_the_archive(cli: CliRunner) -> None:
    recorded_history()
    result = invoke(cli, "stats")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        "inconsistencies detected: 4",
        "resolved at retry 1: 1 (25.0%)",
        "resolved at retry 2: 1 (25.0%)",
        "persistent (failed): 1 (25.0%)",
        "still open: 1",
        "cancelled: 0",
        "time to resolution: mean 1h30m, median 1h30m, max 2h",
    ]


def test_stats_filters_and_json(cli: CliRunner) -> None:
    recorded_history()
    recent = json.loads(invoke(cli, "stats", "--since", "1d", "--json").stdout)
    assert (recent["chains"], recent["open"]) == (1, 1)
    one = json.loads(invoke(cli, "stats", "--client", "b", "--json").stdout)
    assert one["resolvedByAttempt"] == {"2": {"count": 1, "percent": 100.0}}
    assert one["delaySeconds"]["max"] == 7200


def test_process_writes_the_metrics_file(cli: CliRunner, workflow: FakeWorkflow) -> None:
    env = {"RETRYQ_COMMAND": workflow.command}
    invoke(cli, "schedule", "balthazar", "2025-12-19", "0", env=env)
    result = invoke(cli, "process", "--metrics-file", "retryq.prom", env=env)
    assert result.exit_code == 0
    samples = parse_metrics(Path("retryq.prom").read_text())
    assert samples[("retryq_jobs", frozenset({("status", "completed"), ("workflow", "default")}))] == 1
    assert samples[("retryq_last_run_jobs", frozenset({("result", "succeeded")}))] == 1
    assert samples[("retryq_resolutions_total", frozenset({("workflow", "default"), ("attempt", "1")}))] == 1
    assert samples[("retryq_last_run_timestamp_seconds", frozenset())] > 1.7e9


def test_the_metrics_file_from_the_config(cli: CliRunner, workflow: FakeWorkflow, tmp_path: Path) -> None:
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    (config_dir / "retryq.toml").write_text(
        f'metrics_file = "retryq.prom"\n[workflow]\ncommand = ["{workflow.path}"]\n'
    )
    assert invoke(cli, "process", "--config", str(config_dir / "retryq.toml")).exit_code == 0
    assert (config_dir / "retryq.prom").exists()  # relative to the file that names it


def test_an_unwritable_metrics_file_is_logged_not_fatal(cli: CliRunner, workflow: FakeWorkflow) -> None:
    result = invoke(
        cli, "process", "--metrics-file", "missing/dir/retryq.prom", env={"RETRYQ_COMMAND": workflow.command}
    )
    assert result.exit_code == 0
    assert "error: metrics not written: missing/dir/retryq.prom: cannot write the metrics file" in result.stdout


def test_since_without_a_unit_means_days(cli: CliRunner) -> None:
    recorded_history()
    assert json.loads(invoke(cli, "stats", "--since", "1", "--json").stdout)["chains"] == 1
    assert json.loads(invoke(cli, "stats", "--since", "3", "--json").stdout)["chains"] == 4
    assert json.loads(invoke(cli, "stats", "--since", "99999999d", "--json").stdout)["chains"] == 4


def test_stats_by_status_at_detection(cli: CliRunner) -> None:
    """Chains from `report` carry the verdict that started them; the others are "unknown"."""
    recorded_history()  # four chains scheduled without report
    invoke(cli, "report", "e", "2025-12-19", "--total", "650", "--fetched", "600")
    invoke(cli, "report", "f", "2025-12-19", "--total", "650", "--fetched", "648")
    result = invoke(cli, "stats", "--by", "status")
    assert result.exit_code == 0
    text = result.stdout.splitlines()
    assert text[: text.index("by status at detection:")] == invoke(cli, "stats").stdout.splitlines()
    headings = [line for line in text if not line.startswith("  ")][text.index("by status at detection:") :]
    assert headings == [
        "by status at detection:",
        "DEGRADED: 1 chain",
        "ERROR: 1 chain",
        "unknown (scheduled without report): 4 chains",
    ]
    data = json.loads(invoke(cli, "stats", "--json").stdout)
    assert {status: group["chains"] for status, group in data["byStatus"].items()} == {
        "DEGRADED": 1,
        "ERROR": 1,
        "unknown": 4,
    }
    assert data["byStatus"]["unknown"]["resolvedByAttempt"] == {
        "1": {"count": 1, "percent": 25.0},
        "2": {"count": 1, "percent": 25.0},
    }
    assert json.loads(invoke(cli, "stats", "--by", "status", "--json").stdout)["byStatus"] == data["byStatus"]


def test_stats_by_something_else_is_refused(cli: CliRunner) -> None:
    result = invoke(cli, "stats", "--by", "client")
    assert (result.exit_code, result.stderr) == (2, "retryq: error: unknown breakdown 'client' (known: status)\n")
