"""The processor's step that enqueues schedules' occurrences, on a MemoryStore, with a frozen clock."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from freezegun import freeze_time
from freezegun.api import FrozenDateTimeFactory

from retryq import Config, MemoryStore, WorkflowSettings
from retryq.record import lifecycle
from retryq.record.models import Job, JobKey, JobStatus
from retryq.record.timeutil import utcnow
from retryq.running.recurring import Record, Recurring, schedule_statuses
from retryq.settings.schedules import Schedule
from retryq.stores import Plan, PlanResult

UTC = timezone.utc


def config(*schedules: Schedule, priority: int = 0) -> Config:
    return Config(
        workflows={
            "default": WorkflowSettings("default"),
            "sync": WorkflowSettings("sync", max_attempts=5, priority=priority),
        },
        schedules={each.name: each for each in schedules},
    )


NIGHTLY = Schedule("nightly", "0 3 * * *", workflow="sync", client="all", tz="UTC")


def step(store: MemoryStore, settings: Config) -> list[Job]:
    return Recurring(store, settings, clock=utcnow).enqueue()


def finish(store: MemoryStore, job: Job, status: JobStatus = JobStatus.COMPLETED) -> None:
    store.update({job.id: lambda each: each.model_copy(update={"status": status, "finished_at": utcnow()})})


def test_a_schedule_starts_at_its_next_occurrence_and_enqueues_each_once(freezer: FrozenDateTimeFactory) -> None:
    store, settings = MemoryStore(), config(NIGHTLY)
    freezer.move_to("2025-12-19T10:00:00Z")
    assert step(store, settings) == []  # first seen: no backfill of this morning's 03:00
    record = Record.of(store.state()["schedule:nightly"])
    assert record is not None
    assert (record.cron, record.tz, record.last) == ("0 3 * * *", "UTC", None)
    freezer.move_to("2025-12-20T02:59:00Z")
    assert step(store, settings) == []
    freezer.move_to("2025-12-20T03:00:03Z")
    [job] = step(store, settings)
    assert (job.workflow, job.client_id, job.date, job.status) == ("sync", "all", "2025-12-20", JobStatus.PENDING)
    assert (job.execute_at, job.max_attempts, job.priority) == (utcnow(), 5, 0)
    assert step(store, settings) == []  # the same tick again: already enqueued
    freezer.move_to("2025-12-20T03:05:00Z")
    assert step(store, settings) == []
    assert store.load() == [job]
    record = Record.of(store.state()["schedule:nightly"])
    assert record is not None
    assert (record.last, record.job, record.outcome) == (datetime(2025, 12, 20, 3, tzinfo=UTC), job.id, "enqueued")


def test_two_processes_at_the_same_tick_enqueue_one_job(freezer: FrozenDateTimeFactory) -> None:
    store, settings = MemoryStore(), config(NIGHTLY)
    freezer.move_to("2025-12-19T10:00:00Z")
    first, second = Recurring(store, settings, clock=utcnow), Recurring(store, settings, clock=utcnow)
    assert first.enqueue() == second.enqueue() == []
    freezer.move_to("2025-12-20T03:00:01Z")
    assert len(first.enqueue()) + len(second.enqueue()) == 1
    assert len(store.load()) == 1


def test_an_occurrence_at_the_tick_that_first_sees_the_schedule_is_enqueued(freezer: FrozenDateTimeFactory) -> None:
    """`* * * * *` seen for the first time by the 12:01 tick: 12:01 came a fraction of a second ago."""
    store = MemoryStore()
    freezer.move_to("2025-12-19T12:01:00.400Z")
    [job] = step(store, config(Schedule("every-minute", "* * * * *", tz="UTC")))
    assert (job.workflow, job.client_id, job.date) == ("default", "every-minute", "2025-12-19")


def test_first_sight_names_the_occurrence_it_will_enqueue(
    freezer: FrozenDateTimeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """The log line of first sight names the occurrence the same step enqueues, not the one after it."""
    freezer.move_to("2025-12-19T12:01:00.400Z")
    with caplog.at_level(logging.INFO, logger="retryq"):
        [job] = step(MemoryStore(), config(Schedule("every-minute", "* * * * *", tz="UTC")))
    [seen] = [record.getMessage() for record in caplog.records if "first seen" in record.getMessage()]
    assert seen == "schedule every-minute: first seen; next occurrence 2025-12-19T12:01:00.000Z"
    assert job.date == "2025-12-19"


@pytest.mark.parametrize(("catch_up", "enqueued"), [("latest", 1), ("none", 0)])
def test_after_a_downtime(
    freezer: FrozenDateTimeFactory, caplog: pytest.LogCaptureFixture, catch_up: str, enqueued: int
) -> None:
    store, schedule = MemoryStore(), Schedule("nightly", "0 3 * * *", workflow="sync", tz="UTC", catch_up=catch_up)
    freezer.move_to("2025-12-15T10:00:00Z")
    step(store, config(schedule))
    freezer.move_to("2025-12-19T09:00:00Z")  # down from the 16th to now: four nights missed
    with caplog.at_level(logging.INFO, logger="retryq"):
        jobs = step(store, config(schedule))
    assert len(jobs) == enqueued
    assert [job.date for job in store.load()] == ["2025-12-19"] * enqueued
    record = Record.of(store.state()["schedule:nightly"])
    assert record is not None
    assert record.last == datetime(2025, 12, 19, 3, tzinfo=UTC)
    if catch_up == "none":
        assert record.outcome == "missed"
        assert caplog.messages == [
            "schedule nightly: occurrence 2025-12-19T03:00:00.000Z missed: found 6h after it, later than its grace "
            '(1h); catch_up = "none" skips it'
        ]
        assert step(store, config(schedule)) == []  # said once
        assert len(caplog.messages) == 1


def test_no_pile_up_the_next_occurrence_waits_for_the_previous_job(
    freezer: FrozenDateTimeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    store, settings = MemoryStore(), config(Schedule("quarter", "*/15 * * * *", workflow="sync", tz="UTC"))
    freezer.move_to("2025-12-19T10:00:01Z")
    [first] = step(store, settings)
    store.update({first.id: lambda job: job.model_copy(update={"status": JobStatus.RUNNING})})
    freezer.move_to("2025-12-19T10:15:02Z")
    with caplog.at_level(logging.WARNING, logger="retryq"):
        assert step(store, settings) == []
    assert caplog.messages == [
        f"schedule quarter: occurrence 2025-12-19T10:15:00.000Z skipped: job {first.id} of the previous occurrence "
        "is still running"
    ]
    record = Record.of(store.state()["schedule:quarter"])
    assert record is not None
    assert (record.outcome, record.job) == ("skipped", first.id)
    freezer.move_to("2025-12-19T10:20:00Z")
    assert step(store, settings) == []  # 10:15 was handled (skipped): nothing more until 10:30
    finish(store, first)
    freezer.move_to("2025-12-19T10:30:00Z")
    [second] = step(store, settings)
    assert second.id != first.id
    assert len(caplog.messages) == 1


def test_an_open_job_of_the_same_client_and_date_takes_the_occurrence(freezer: FrozenDateTimeFactory) -> None:
    store, settings = MemoryStore(), config(NIGHTLY)
    freezer.move_to("2025-12-19T10:00:00Z")
    step(store, settings)
    key = JobKey.of("all", "2025-12-20", "sync")  # scheduled by hand for the date of the next occurrence
    manual, _ = store.add(lifecycle.new_job(key, delay_minutes=60, now=utcnow(), max_attempts=3), lambda job: job)
    freezer.move_to("2025-12-20T03:00:00Z")
    assert step(store, settings) == []
    assert [job.id for job in store.load()] == [manual.id]
    record = Record.of(store.state()["schedule:nightly"])
    assert record is not None
    assert (record.outcome, record.job) == ("skipped", manual.id)


def test_the_jobs_client_date_and_priority(freezer: FrozenDateTimeFactory) -> None:
    paris = Schedule("consolidation", "30 0 * * *", workflow="sync", tz="Europe/Paris")
    store = MemoryStore()
    freezer.move_to("2025-12-18T12:00:00Z")
    step(store, config(paris, priority=7))
    freezer.move_to("2025-12-18T23:30:05Z")  # 00:30 on the 19th in Paris
    [job] = step(store, config(paris, priority=7))
    assert (job.client_id, job.date, job.priority) == ("consolidation", "2025-12-19", 7)  # the workflow's priority
    own = Schedule("consolidation", "30 0 * * *", workflow="sync", tz="Europe/Paris", priority=-3)
    finish(store, job)
    freezer.move_to("2025-12-19T23:30:05Z")
    [job] = step(store, config(own, priority=7))
    assert (job.date, job.priority) == ("2025-12-20", -3)  # the schedule's own


def test_a_changed_expression_starts_afresh_and_a_removed_schedule_stops(
    freezer: FrozenDateTimeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    store = MemoryStore()
    freezer.move_to("2025-12-19T10:00:00Z")
    step(store, config(NIGHTLY))
    freezer.move_to("2025-12-20T03:00:00Z")
    [job] = step(store, config(NIGHTLY))
    finish(store, job)
    moved = Schedule("nightly", "0 4 * * *", workflow="sync", client="all", tz="UTC")
    freezer.move_to("2025-12-20T09:00:00Z")
    with caplog.at_level(logging.WARNING, logger="retryq"):
        assert step(store, config(moved)) == []  # 04:00 today was not an occurrence of the schedule as it was
    assert caplog.messages == [
        "schedule nightly: its cron or tz changed (was '0 3 * * *' in UTC); it starts afresh, next occurrence "
        "2025-12-21T04:00:00.000Z"
    ]
    freezer.move_to("2025-12-21T04:00:00Z")
    assert len(step(store, config(moved))) == 1
    freezer.move_to("2025-12-22T04:00:00Z")
    assert step(store, config()) == []  # removed from the configuration: nothing more; its jobs stay
    assert len(store.load()) == 2


@pytest.mark.parametrize(
    "doc", [{"x": 1}, {"cron": 1, "tz": [], "since": "x"}, {"cron": "0 3 * * *", "last": "garbage"}]
)
def test_a_record_it_cannot_read_starts_the_schedule_afresh_with_a_warning(
    freezer: FrozenDateTimeFactory, caplog: pytest.LogCaptureFixture, doc: dict[str, object]
) -> None:
    store = MemoryStore()
    store.update({}, plan=Plan(["schedule:nightly"], lambda d, n, j: PlanResult(writes={"schedule:nightly": doc})))
    freezer.move_to("2025-12-19T10:00:00Z")
    with caplog.at_level(logging.WARNING, logger="retryq"):
        assert step(store, config(NIGHTLY)) == []
    assert caplog.messages == ["state document schedule:nightly is not a schedule's record; started afresh"]
    assert Record.of(store.state()["schedule:nightly"]) is not None


def test_a_daily_schedule_runs_once_on_the_days_the_clocks_change_in_paris(freezer: FrozenDateTimeFactory) -> None:
    store = MemoryStore()
    settings = config(Schedule("nightly", "30 2 * * *", workflow="sync", client="all", tz="Europe/Paris"))
    for start in ("2025-03-28T12:00:00Z", "2025-10-24T12:00:00Z"):
        tick = datetime.fromisoformat(start.replace("Z", "+00:00"))
        for _ in range(4 * 24 * 12):  # every five minutes for four days
            freezer.move_to(tick)
            for job in step(store, settings):
                finish(store, job)
            tick += timedelta(minutes=5)
    dates = [job.date for job in store.load()]
    assert dates == sorted(set(dates))
    assert {"2025-03-29", "2025-03-30", "2025-03-31", "2025-10-25", "2025-10-26", "2025-10-27"} <= set(dates)


def test_statuses_say_the_next_and_the_last_occurrence(freezer: FrozenDateTimeFactory) -> None:
    store, settings = MemoryStore(), config(NIGHTLY, Schedule("hourly", "0 * * * *", tz="UTC"))
    freezer.move_to("2025-12-19T10:00:00Z")
    [hourly, nightly] = schedule_statuses(settings, store, now=utcnow())
    assert (hourly.record, hourly.last_outcome, hourly.next) == (None, "none", datetime(2025, 12, 19, 11, tzinfo=UTC))
    step(store, settings)
    freezer.move_to("2025-12-20T03:00:00Z")
    step(store, settings)
    [hourly, nightly] = schedule_statuses(settings, store, now=utcnow())
    assert nightly.last_outcome == "pending"
    assert nightly.to_json_dict() == {
        "name": "nightly",
        "cron": "0 3 * * *",
        "tz": "UTC",
        "workflow": "sync",
        "client": "all",
        "catchUp": "latest",
        "priority": None,
        "next": "2025-12-21T03:00:00.000Z",
        "last": "2025-12-20T03:00:00.000Z",
        "lastOutcome": "pending",
        "reason": None,
        "job": nightly.job.id if nightly.job else None,
        "status": "pending",
        "since": "2025-12-19T09:59:00.000Z",
    }


@pytest.fixture
def freezer() -> Iterator[FrozenDateTimeFactory]:
    with freeze_time("2025-12-19T00:00:00Z") as frozen:
        yield frozen


def test_a_run_for_some_workflows_enqueues_the_occurrences_of_their_schedules_only(
    freezer: FrozenDateTimeFactory,
) -> None:
    store, settings = MemoryStore(), config(NIGHTLY, Schedule("hourly", "0 * * * *", tz="UTC"))
    freezer.move_to("2025-12-19T03:00:01Z")
    jobs = Recurring(store, settings, clock=utcnow, only={"default"}).enqueue()  # `process --workflow default`
    assert [job.client_id for job in jobs] == ["hourly"]
    assert set(store.state()) == {"schedule:hourly"}  # nightly is not even seen: its own run will see it


def test_the_run_that_enqueues_an_occurrence_of_a_workflow_without_a_command_says_so(
    freezer: FrozenDateTimeFactory,
) -> None:
    """Not only the next run: the occurrence is recorded, and its job waits for a command, said at once."""
    from retryq import Processor

    store = MemoryStore()
    settings = Config(
        workflows={
            "default": WorkflowSettings("default", command=("true",), command_origin="test"),
            "sync": WorkflowSettings("sync"),  # no command
        },
        schedules={"every": Schedule("every", "* * * * *", workflow="sync", tz="UTC")},
    )
    freezer.move_to("2025-12-19T12:01:00.400Z")
    report = Processor(store, settings, prune=False).run(handle_signals=False)
    assert report.enqueued == 1
    assert [str(error) for error in report.config_errors] == [
        "1 pending job of workflow 'sync', which has no command configured; left pending"
    ]
