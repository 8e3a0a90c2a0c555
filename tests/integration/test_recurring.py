"""Recurring jobs end to end in one process: seed 004's schedulers replayed on a `*/5` cron (freezegun, real
workflows), and what the commands say of schedules and priorities."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from freezegun import freeze_time
from typer.testing import CliRunner

from retryq import Config, JsonFileStore, RetryQueue, WorkflowSettings
from retryq.record.backoff import fixed
from retryq.record.models import JobStatus
from retryq.reporting.metrics import parse_metrics
from retryq.settings.schedules import Schedule

from ..helpers import FakeWorkflow, fake_workflow, invoke, process

START_LATENCY = timedelta(seconds=0.4)  # cron forks, Python starts, retryq imports: the run looks a bit after the tick
PARIS_NIGHT = datetime(2025, 12, 19, 1, tzinfo=timezone.utc)  # 02:00 in Paris


def seed_004(tmp_path: Path) -> tuple[RetryQueue, dict[str, FakeWorkflow]]:
    """Seed 004's job schedulers: sync every hour, the attachments maintenance at 03:00, the consolidation at 04:00."""
    workflows = {name: fake_workflow(tmp_path, name) for name in ("sync", "maintenance", "consolidation")}
    config = Config(
        workflows={
            "default": WorkflowSettings("default"),
            **{
                name: WorkflowSettings(name, command=tuple(each.argv()), backoff=fixed(600))
                for name, each in workflows.items()
            },
        },
        schedules={
            "sync-updated-dossiers": Schedule(
                "sync-updated-dossiers", "0 * * * *", workflow="sync", client="all", tz="Europe/Paris"
            ),
            "attachments-maintenance": Schedule(
                "attachments-maintenance", "0 3 * * *", workflow="maintenance", tz="Europe/Paris"
            ),
            "dossiers-consolidation": Schedule(
                "dossiers-consolidation", "0 4 * * *", workflow="consolidation", tz="Europe/Paris", priority=5
            ),
        },
    )
    return RetryQueue(JsonFileStore(tmp_path / ".retry-queue.json"), config=config), workflows


def replay(queue: RetryQueue, first: datetime, last: datetime) -> None:
    tick = first
    while tick <= last:
        with freeze_time(tick + START_LATENCY):
            process(queue, prune=False)
        tick += timedelta(minutes=5)


def test_seed_004_runs_each_occurrence_once_at_the_first_tick_at_or_after_it(tmp_path: Path) -> None:
    queue, workflows = seed_004(tmp_path)
    replay(queue, PARIS_NIGHT, PARIS_NIGHT + timedelta(hours=3))  # 02:00 to 05:00 in Paris
    sync = [(call["client"], call["date"]) for call in workflows["sync"].calls()]
    assert sync == [("all", "2025-12-19")] * 4  # 02:00 (seen at its own tick), 03:00, 04:00, 05:00
    assert [call["client"] for call in workflows["maintenance"].calls()] == ["attachments-maintenance"]
    assert [call["client"] for call in workflows["consolidation"].calls()] == ["dossiers-consolidation"]
    by_workflow = {job.workflow: job for job in queue.jobs()}
    assert by_workflow["maintenance"].started_at == datetime(2025, 12, 19, 2, tzinfo=timezone.utc) + START_LATENCY
    assert by_workflow["consolidation"].priority == 5
    assert {job.status for job in queue.jobs()} == {JobStatus.COMPLETED}


def test_a_failed_occurrence_is_retried_as_any_job_and_the_next_waits_for_it(tmp_path: Path) -> None:
    queue, workflows = seed_004(tmp_path)
    workflows["sync"].exits(0, 75, 0, 0)  # the 03:00 run finds data missing: its retry comes 10 minutes later
    replay(queue, PARIS_NIGHT, PARIS_NIGHT + timedelta(hours=1, minutes=10))
    attempts = [(call["attempt"], call["job_id"]) for call in workflows["sync"].calls()]
    assert [attempt for attempt, _ in attempts] == ["1", "1", "2"]
    assert attempts[1][1] == attempts[2][1]  # the same job, its second attempt


def test_a_long_run_makes_the_next_occurrence_skip(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    queue, _ = seed_004(tmp_path)
    with freeze_time(PARIS_NIGHT + START_LATENCY):
        enqueue_only(queue)
    [job] = [each for each in queue.jobs() if each.workflow == "sync"]
    with freeze_time(PARIS_NIGHT + timedelta(hours=1, seconds=1)):
        enqueue_only(queue)
    assert [each.id for each in queue.jobs() if each.workflow == "sync"] == [job.id]
    assert f"occurrence 2025-12-19T02:00:00.000Z skipped: job {job.id} of the previous occurrence is still pending" in (
        caplog.text
    )


def enqueue_only(queue: RetryQueue) -> None:
    """The step of a `process` run that enqueues occurrences, without running them."""
    from retryq.record.timeutil import utcnow
    from retryq.running.recurring import Recurring

    Recurring(queue.store, queue.config, clock=utcnow).enqueue()


# -- the commands ------------------------------------------------------------------------------------

CONFIG = """\
display_tz = "Europe/Paris"
[workflows.sync]
command = ["true"]
[schedules.sync-updated-dossiers]
cron = "0 * * * *"
workflow = "sync"
client = "all"
tz = "Europe/Paris"
[schedules.attachments-maintenance]
cron = "0 3 * * *"
workflow = "sync"
tz = "Europe/Paris"
catch_up = "none"
"""


@freeze_time("2025-12-19T02:00:00.400Z")
def test_schedules_lists_next_and_last_occurrences(cli: CliRunner) -> None:
    Path("retryq.toml").write_text(CONFIG)
    assert invoke(cli, "process").exit_code == 0  # 03:00 in Paris: both come now
    lines = invoke(cli, "schedules").stdout.splitlines()
    assert lines[0].split() == ["NAME", "CRON", "TZ", "WORKFLOW", "CLIENT", "NEXT", "LAST", "OUTCOME", "JOB"]
    assert lines[1].split()[:8] == [
        "attachments-maintenance",
        "0",
        "3",
        "*",
        "*",
        "*",
        "Europe/Paris",
        "sync",
    ]
    assert "2025-12-20T02:00:00.000Z (03:00 CET)" in lines[1]  # next, in UTC and in display_tz
    assert "2025-12-19T02:00:00.000Z (03:00 CET)  completed" in lines[1]
    [maintenance, sync] = json.loads(invoke(cli, "schedules", "--json").stdout)
    assert (sync["name"], sync["client"], sync["next"], sync["lastOutcome"]) == (
        "sync-updated-dossiers",
        "all",
        "2025-12-19T03:00:00.000Z",
        "completed",
    )
    assert sync["nextLocal"] == "2025-12-19T04:00:00+01:00"
    assert maintenance["catchUp"] == "none"
    assert {job["id"] for job in json.loads(invoke(cli, "list", "--json").stdout)} == {sync["job"], maintenance["job"]}


def test_schedules_without_any(cli: CliRunner) -> None:
    assert invoke(cli, "schedules").stdout == "no schedules configured (add a [schedules.NAME] table to retryq.toml)\n"
    assert invoke(cli, "schedules", "--json").stdout == "[]\n"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('cron = "0 3 * * * *"', "schedules.nightly.cron: invalid cron expression '0 3 * * * *': five fields"),
        ('cron = "0 24 * * *"', "schedules.nightly.cron: invalid cron expression '0 24 * * *': bad hour"),
        ('cron = "0 3 * * *"\nworkflow = "nope"', "schedules.nightly.workflow: unknown workflow 'nope'"),
        ('cron = "0 3 * * *"\nevery = "day"', "schedules.nightly.every: unknown key in [schedules.nightly]"),
        ('workflow = "default"', "schedules.nightly: `cron` is missing"),
    ],
)
def test_a_bad_schedule_is_one_line_naming_it_and_exit_78(cli: CliRunner, table: str, message: str) -> None:
    Path("retryq.toml").write_text(f"[schedules.nightly]\n{table}\n")
    for command in ("process", "schedules", "list"):
        result = invoke(cli, command)
        assert result.exit_code == 78
        assert result.stderr.startswith(f"retryq: error: retryq.toml: {message}")
        assert result.stderr.count("\n") == 1


@freeze_time("2025-12-19T02:00:00.400Z")
def test_doctor_the_dashboard_and_the_metrics_show_the_schedules(cli: CliRunner) -> None:
    Path("retryq.toml").write_text(CONFIG)
    invoke(cli, "process", "--metrics-file", "retryq.prom")
    doctor = invoke(cli, "doctor").stdout
    assert (
        "ok: schedule sync-updated-dossiers: `0 * * * *` in Europe/Paris, next 2025-12-19T03:00:00.000Z; "
        "last 2025-12-19T02:00:00.000Z completed" in doctor
    )
    samples = parse_metrics(Path("retryq.prom").read_text())
    labels = frozenset({("schedule", "sync-updated-dossiers")})
    assert (
        samples[("retryq_schedule_next_occurrence_timestamp_seconds", labels)]
        == datetime(2025, 12, 19, 3, tzinfo=timezone.utc).timestamp()
    )
    outcome = frozenset({*labels, ("outcome", "completed")})
    assert samples[("retryq_schedule_last_outcome", outcome)] == 1
    assert samples[("retryq_schedule_last_outcome", frozenset({*labels, ("outcome", "failed")}))] == 0
    assert invoke(cli, "dashboard", "--output", "page.html").exit_code == 0
    page = Path("page.html").read_text()
    assert 'id="table-schedules"' in page
    assert 'data-schedule="attachments-maintenance"' in page


# -- priorities on the command line -------------------------------------------------------------------


@freeze_time("2025-12-19T10:00:00Z")
def test_schedule_priority_list_sorts_and_shows_it_json_carries_it(cli: CliRunner) -> None:
    assert invoke(cli, "schedule", "low", "2025-12-19", "10").exit_code == 0
    assert invoke(cli, "schedule", "high", "2025-12-19", "30", "--priority", "20").exit_code == 0
    lines = invoke(cli, "list", "--sort", "priority").stdout.splitlines()
    assert lines[0].split()[:6] == ["ID", "CLIENT", "DATE", "STATUS", "PRI", "ATTEMPT"]
    assert [line.split()[1:5] for line in lines[1:]] == [
        ["high", "2025-12-19", "pending", "20"],
        ["low", "2025-12-19", "pending", "0"],
    ]
    listed = json.loads(invoke(cli, "list", "--json").stdout)
    assert [job["priority"] for job in listed] == [0, 20]
    shown = invoke(cli, "show", listed[1]["id"])
    assert "  priority     20\n" in shown.stdout
    assert json.loads(invoke(cli, "show", listed[1]["id"], "--json").stdout)["priority"] == 20
    exported = [json.loads(line) for line in invoke(cli, "export").stdout.splitlines()]
    assert sorted(record["priority"] for record in exported if "clientId" in record) == [0, 20]
    result = invoke(cli, "schedule", "x", "2025-12-19", "--priority", "101")
    assert result.exit_code == 2
    assert "from -100 to 100" in result.stderr


def test_a_queue_file_written_before_priorities_lists_as_priority_0(cli: CliRunner) -> None:
    from ..helpers import LEGACY_FILE

    Path(".retry-queue.json").write_text(LEGACY_FILE)
    assert "PRI" not in invoke(cli, "list").stdout
    [job] = json.loads(invoke(cli, "list", "--json", "--sort", "priority").stdout)
    assert job["priority"] == 0


def test_a_worker_enqueues_the_occurrences_as_they_come(tmp_path: Path) -> None:
    from retryq import Processor

    queue, workflows = seed_004(tmp_path)
    every_minute = Schedule("every-minute", "* * * * *", workflow="sync", client="all", tz="UTC")
    queue = RetryQueue(queue.store, config=Config(workflows=queue.config.workflows, schedules={"m": every_minute}))
    clock = [datetime(2025, 12, 19, 10, 0, 30, tzinfo=timezone.utc)]
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # an idle worker's wait: time moves on by 25 s each time
        slept.append(seconds)
        clock[0] += timedelta(seconds=25)
        if len(slept) == 6:
            processor.request_stop()

    def monotonic() -> float:
        return clock[0].timestamp()

    processor = Processor(queue.store, queue.config, clock=lambda: clock[0], monotonic=monotonic, sleep=sleep)
    report = processor.run(worker=True, handle_signals=False)
    # 10:00 at the start (10:00:30), 10:01 at 10:01:20, 10:02 at 10:02:10: once each, as they came.
    assert [call["job_id"] for call in workflows["sync"].calls()] == [job.id for job in queue.jobs()]
    assert [job.execute_at for job in queue.jobs()] == [
        datetime(2025, 12, 19, 10, 0, 30, tzinfo=timezone.utc),
        datetime(2025, 12, 19, 10, 1, 20, tzinfo=timezone.utc),
        datetime(2025, 12, 19, 10, 2, 10, tzinfo=timezone.utc),
    ]
    assert report.enqueued == 3
