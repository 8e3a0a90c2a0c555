"""The breaker in the processor, with a fixed clock and runs that end as the upstream's state says: an
incident opens, holds, probes, closes and releases; attempts are given back; nothing ends failed for it.

The seed's scenario 3 is replayed here at its own scale: 20 clients, the API down for three hours,
``process`` on every ``*/5`` cron tick, with and without a breaker (docs/incidents.md quotes the figures).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest

from retryq import MemoryStore, Processor, RetryQueue
from retryq.record.backoff import constant
from retryq.record.breakerstate import BreakerSettings, WorkflowState, state_key
from retryq.record.models import Job, JobStatus
from retryq.running.notify import FailureHooks
from retryq.running.runner import RunResult, Supervisor
from retryq.running.summary import ProcessReport
from retryq.settings.config import Config, WorkflowSettings

from ..helpers import T0

BREAKER = BreakerSettings(5, timedelta(minutes=10), timedelta(minutes=15), timedelta(hours=12))


@dataclass
class Upstream(Supervisor):
    """Runs nothing: each run ends at once, exit 75 while the upstream is down (``down(client, now)``), else 0."""

    clock: Callable[[], datetime]
    down: Callable[[str, datetime], bool]
    started: list[tuple[datetime, str]] = field(default_factory=list)
    running: dict[str, str] = field(default_factory=dict)  # run id -> client

    def start(self, key, argv, env, *, timeout, kill_grace, label="", capture=True) -> int:  # type: ignore[no-untyped-def]
        self.running[key] = env["RETRYQ_CLIENT"]
        self.started.append((self.clock(), env["RETRYQ_CLIENT"]))
        return 4242 + len(self.started)

    def wait(self, timeout: float | None = None) -> list[tuple[str, RunResult]]:
        now = self.clock()
        ended = [
            (key, RunResult(started_at=now, finished_at=now, exit_code=75 if self.down(client, now) else 0))
            for key, client in self.running.items()
        ]
        self.running.clear()
        return ended

    def stop_all(self, *, immediately: bool = False) -> None:
        pass


@pytest.fixture
def notified(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The jobs an on_failure hook would be run for (no process is started)."""
    calls: list[str] = []
    monkeypatch.setattr(FailureHooks, "notify", lambda self, job: calls.append(job.client_id))
    return calls


def config(
    breaker: BreakerSettings | None = BREAKER, *, max_attempts: int = 3, **workflows: WorkflowSettings
) -> Config:
    api = WorkflowSettings(
        "default",
        command=("true", "{client}"),
        command_origin="test",
        max_attempts=max_attempts,
        backoff=constant(3600),
        breaker=breaker,
        on_failure=("notify",),
    )
    return Config(workflows={"default": api, **workflows})


class Cron:
    """``process`` on a store at the times the test sets, with one fake upstream."""

    def __init__(self, store: MemoryStore, cfg: Config, down: Callable[[str, datetime], bool]) -> None:
        self.store, self.config, self.now = store, cfg, T0
        self.upstream = Upstream(lambda: self.now, down)

    def tick(self, at: datetime) -> ProcessReport:
        self.now = at
        processor = Processor(self.store, self.config, supervisor=self.upstream, clock=lambda: self.now, prune=False)
        return processor.run(handle_signals=False)

    def jobs(self) -> dict[str, Job]:
        return {job.client_id: job for job in self.store.load()}

    def state(self, workflow: str = "default") -> WorkflowState:
        return WorkflowState.of(self.store.state([state_key(workflow)]).get(state_key(workflow)))


def schedule(store: MemoryStore, cfg: Config, clients: int, *, at: datetime = T0, workflow: str | None = None) -> None:
    queue = RetryQueue(store, config=cfg)
    for n in range(clients):
        queue.schedule(f"c{n:02}", "2025-12-19", 60, now=at, workflow=workflow)


def ticks(start: datetime, end: datetime) -> Iterator[datetime]:
    while start <= end:
        yield start
        start += timedelta(minutes=5)


ELEVEN = T0 + timedelta(hours=1)


def test_five_failures_open_an_incident_that_holds_the_rest_and_gives_the_five_attempts_back(
    notified: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    store = MemoryStore()
    schedule(store, config(), 8)
    cron = Cron(store, config(), down=lambda client, now: True)
    with caplog.at_level(logging.INFO, logger="retryq"):
        report = cron.tick(ELEVEN)
    assert len(cron.upstream.started) == 5
    # Five runs rescheduled, then all five attempts given back when the fifth opened the incident.
    assert (report.processed, report.given_back, report.failed, report.held) == (5, 5, 0, {"default": 8})
    incident = cron.state().incident
    assert incident is not None
    assert (incident.failures, incident.given_back, dict(incident.seen)) == (5, 5, {"exit 75": 5})
    jobs = cron.jobs()
    for job in jobs.values():
        assert (job.status, job.attempt) == (JobStatus.PENDING, 1)
    given_back = [job for job in jobs.values() if job.history]
    assert len(given_back) == 5
    assert {job.history[-1].incident for job in given_back} == {incident.id}
    assert {job.execute_at for job in given_back} == {ELEVEN}
    assert notified == []
    messages = [record.getMessage() for record in caplog.records]
    assert any(
        m.startswith(f"incident {incident.id} opened: 5 jobs of workflow default failed (exit 75 ×5)") for m in messages
    )
    [held] = [m for m in messages if m.startswith("held: ")]
    assert held == (
        f"held: workflow default, incident {incident.id} open since 2025-12-19T11:00:00.000Z, "
        "next probe 2025-12-19T11:15:00.000Z (8 jobs due)"
    )
    assert cron.tick(ELEVEN + timedelta(minutes=5)).processed == 0  # held, no probe yet
    assert len(cron.upstream.started) == 5


def test_probes_rotate_over_the_held_jobs_and_the_first_that_succeeds_releases_them_all_in_the_same_run(
    notified: list[str],
) -> None:
    store = MemoryStore()
    schedule(store, config(), 8)
    back_at = ELEVEN + timedelta(minutes=44)
    cron = Cron(store, config(), down=lambda client, now: now < back_at)
    cron.tick(ELEVEN)
    probes = []
    for minute in (15, 30):
        before = len(cron.upstream.started)
        report = cron.tick(ELEVEN + timedelta(minutes=minute))
        assert len(cron.upstream.started) == before + 1  # one probe, and it failed
        assert (report.given_back, report.held) == (1, {"default": 8})
        probes.append(cron.upstream.started[-1][1])
    assert probes == ["c00", "c01"]  # the oldest due first; a failed probe is due again at its end: the next
    incident = cron.state().incident
    assert incident is not None
    assert (incident.probes, incident.given_back) == (2, 7)
    assert cron.tick(ELEVEN + timedelta(minutes=40)).processed == 0
    report = cron.tick(ELEVEN + timedelta(minutes=45))  # the upstream is back: the probe succeeds
    assert (report.succeeded, report.failed, report.held) == (8, 0, {})
    assert cron.state().incident is None
    [closed] = cron.state().closed
    assert (closed.closed_by, closed.probes, closed.given_back) == ("probe", 3, 7)
    assert {job.status for job in cron.jobs().values()} == {JobStatus.COMPLETED}
    assert {job.attempt for job in cron.jobs().values()} == {1}  # no attempt was burnt
    assert notified == []


def test_other_workflows_run_as_usual_during_an_incident(notified: list[str]) -> None:
    ftp = WorkflowSettings("ftp", command=("true", "ftp", "{client}"), command_origin="test")
    cfg = config(ftp=ftp)
    store = MemoryStore()
    schedule(store, cfg, 6)
    schedule(store, cfg, 3, workflow="ftp")
    cron = Cron(store, cfg, down=lambda client, now: True)
    report = cron.tick(ELEVEN)
    ftp_jobs = [job for job in store.load() if job.workflow == "ftp"]
    assert len(ftp_jobs) == 3
    assert cron.state("ftp") == WorkflowState()
    assert report.held == {"default": 6}
    assert {job.status for job in ftp_jobs} == {JobStatus.PENDING}  # they failed too, but ftp has no breaker
    assert {job.attempt for job in ftp_jobs} == {2}


def test_a_last_attempt_waits_for_the_verdict_and_ends_failed_only_when_no_incident_came(
    notified: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    store = MemoryStore()
    cfg = config(max_attempts=1)
    schedule(store, cfg, 3)
    cron = Cron(store, cfg, down=lambda client, now: True)
    report = cron.tick(ELEVEN)
    assert (report.failed, notified) == (0, [])
    assert {(job.status, job.execute_at) for job in cron.jobs().values()} == {
        (JobStatus.PENDING, ELEVEN + timedelta(minutes=10))
    }
    assert cron.tick(ELEVEN + timedelta(minutes=5)).processed == 0
    with caplog.at_level(logging.WARNING, logger="retryq"):
        report = cron.tick(ELEVEN + timedelta(minutes=10))  # the window has passed: they were the clients' own
    assert len(cron.upstream.started) == 3  # none ran again
    assert report.failed == 3
    assert sorted(notified) == ["c00", "c01", "c02"]
    assert {(job.status, job.finished_at) for job in cron.jobs().values()} == {(JobStatus.FAILED, ELEVEN)}
    assert (
        sum("failed after 1 attempt (no incident opened within the window)" in r.getMessage() for r in caplog.records)
        == 3
    )


def test_a_last_attempt_whose_window_ends_just_after_a_tick_ends_failed_at_that_tick_without_running_again(
    notified: list[str],
) -> None:
    """Its failure came a few seconds after the 11:00 tick, so its window ends a few seconds after the 11:10
    tick: within the due window that tick's claim takes, so the verdict is given then, and nothing runs again
    (a job on its last attempt is never run past max_attempts)."""
    store = MemoryStore()
    cfg = config(max_attempts=1)
    schedule(store, cfg, 1)
    cron = Cron(store, cfg, down=lambda client, now: True)
    cron.tick(ELEVEN + timedelta(seconds=3))
    assert cron.jobs()["c00"].execute_at == ELEVEN + timedelta(minutes=10, seconds=3)
    report = cron.tick(ELEVEN + timedelta(minutes=10))
    assert len(cron.upstream.started) == 1  # not run again
    assert (report.failed, notified) == (1, ["c00"])
    assert cron.jobs()["c00"].status is JobStatus.FAILED
    assert cron.tick(ELEVEN + timedelta(minutes=15)).processed == 0


def test_last_attempts_that_turn_out_to_be_an_outage_are_given_back_and_never_fail(notified: list[str]) -> None:
    store = MemoryStore()
    cfg = config(max_attempts=1)
    schedule(store, cfg, 3)
    schedule(store, cfg, 2, at=T0 + timedelta(minutes=5))  # due at 11:05
    schedule(store, cfg, 0)
    RetryQueue(store, config=cfg).schedule("late1", "2025-12-19", 65, now=T0)
    RetryQueue(store, config=cfg).schedule("late2", "2025-12-19", 65, now=T0)
    cron = Cron(store, cfg, down=lambda client, now: now < ELEVEN + timedelta(minutes=30))
    cron.tick(ELEVEN)  # three last attempts fail: they wait
    report = cron.tick(ELEVEN + timedelta(minutes=5))  # two more: five within the window, an incident
    assert cron.state().incident is not None
    assert (report.failed, report.given_back) == (0, 5)  # the three that waited for the verdict, and these two
    assert {(job.status, job.attempt) for job in cron.jobs().values()} == {(JobStatus.PENDING, 1)}
    cron.tick(ELEVEN + timedelta(minutes=20))  # the probe fails
    report = cron.tick(ELEVEN + timedelta(minutes=35))
    assert report.succeeded == 5
    assert {job.status for job in cron.jobs().values()} == {JobStatus.COMPLETED}
    assert notified == []


def test_a_paused_workflow_runs_nothing_until_resumed_or_its_time_is_up(notified: list[str]) -> None:
    store = MemoryStore()
    cfg = config(breaker=None)
    schedule(store, cfg, 4)
    queue = RetryQueue(store, config=cfg)
    queue.pause("default", until=ELEVEN + timedelta(minutes=30), reason="BOAMP maintenance", now=T0)
    cron = Cron(store, cfg, down=lambda client, now: False)
    report = cron.tick(ELEVEN)
    assert (report.processed, report.held) == (0, {"default": 4})
    assert (report.pending, report.next_due) == (4, None)  # held jobs wait for the pause, not for a time
    assert cron.tick(ELEVEN + timedelta(minutes=30)).succeeded == 4
    schedule(store, cfg, 2, at=ELEVEN)
    queue.pause("default", now=ELEVEN)
    assert cron.tick(T0 + timedelta(days=30)).processed == 0  # no end given: until resumed
    queue.resume("default", now=T0 + timedelta(days=30))
    assert cron.tick(T0 + timedelta(days=30)).succeeded == 2


# -- the seed's scenario 3 ------------------------------------------------------------------------------------

OUTAGE = (T0 + timedelta(minutes=30), T0 + timedelta(hours=3, minutes=30))  # 10:30 to 13:30 UTC


@dataclass
class Replay:
    runs_in_outage: int
    failed: int
    on_failure: int
    completed: int
    completed_by: datetime | None  # when the last job completed
    first_success: datetime | None


def replay(breaker: BreakerSettings | None, notified: list[str]) -> Replay:
    """20 clients detect an inconsistency at 10:00 (a retry in 60 minutes, 3 attempts an hour apart);
    the API is down from 10:30 to 13:30; cron runs ``process`` every 5 minutes until 17:00."""
    store, cfg = MemoryStore(), config(breaker)
    schedule(store, cfg, 20)
    cron = Cron(store, cfg, down=lambda client, now: OUTAGE[0] <= now < OUTAGE[1])
    completed_by = first_success = None
    for at in ticks(T0, T0 + timedelta(hours=7)):
        report = cron.tick(at)
        if report.succeeded and first_success is None:
            first_success = at
        if report.succeeded:
            completed_by = at
    statuses = [job.status for job in cron.jobs().values()]
    return Replay(
        runs_in_outage=sum(1 for when, _ in cron.upstream.started if OUTAGE[0] <= when < OUTAGE[1]),
        failed=statuses.count(JobStatus.FAILED),
        on_failure=len(notified),
        completed=statuses.count(JobStatus.COMPLETED),
        completed_by=completed_by,
        first_success=first_success,
    )


def test_scenario_3_without_a_breaker_every_chain_burns_its_attempts_and_fails(notified: list[str]) -> None:
    result = replay(None, notified)
    assert result == Replay(60, 20, 20, 0, None, None)  # 20 × 3 attempts, all in the outage; requeue by hand


def test_scenario_3_with_a_breaker_one_incident_no_attempt_burnt_all_done_when_the_api_is_back(
    notified: list[str],
) -> None:
    result = replay(BREAKER, notified)
    # 5 failures open the incident at 11:00; a probe every 15 minutes (11:15 … 13:15) fails and is given back.
    assert result.runs_in_outage == 5 + 9
    assert result.runs_in_outage <= BREAKER.failures + (OUTAGE[1] - OUTAGE[0]) // BREAKER.probe_every
    assert (result.failed, result.on_failure, result.completed) == (0, 0, 20)
    # The 13:30 probe succeeds, and the same run runs the 19 others.
    assert result.first_success == result.completed_by == OUTAGE[1]


def test_a_probe_whose_host_died_is_recovered_after_its_lease_and_given_back(notified: list[str]) -> None:
    from retryq.record.breakerstate import Incident, Probe
    from retryq.record.models import Owner
    from retryq.stores import Plan, PlanResult

    store = MemoryStore()
    schedule(store, config(), 3)
    [probe, *_] = store.load()
    lease_end = ELEVEN + timedelta(minutes=6)
    running = probe.model_copy(
        update={
            "status": JobStatus.RUNNING,
            "owner": Owner(host="another-host", pid=99),
            "run_id": "lost-run",
            "started_at": ELEVEN,
            "lease_until": lease_end,
            "max_attempts": 3,
        }
    )
    store.update({probe.id: lambda job: running})
    marker = Probe(ELEVEN, lease_end, "ticket", job=probe.id, previous=None)
    incident = Incident("default-1", "default", T0, 5, {"exit 75": 5}, probes=1, last_probe_at=ELEVEN, probe=marker)
    doc = WorkflowState(incident=incident).to_doc()
    store.update({}, plan=Plan([state_key("default")], lambda docs, now, jobs: PlanResult({state_key("default"): doc})))
    cron = Cron(store, config(), down=lambda client, now: True)
    assert cron.tick(lease_end).recovered == 0  # its lease covers the run (and lease_grace): it may still run
    report = cron.tick(lease_end + timedelta(minutes=2))
    assert (report.recovered, report.processed, report.failed) == (1, 0, 0)
    [recovered] = [job for job in store.load() if job.id == probe.id]
    assert (recovered.status, recovered.attempt) == (JobStatus.PENDING, 1)
    assert (recovered.history[-1].outcome.value, recovered.history[-1].incident) == ("interrupted", "default-1")
    state = cron.state()
    assert state.incident is not None
    assert (state.incident.probe, state.incident.given_back, state.incident.seen) == (
        None,
        1,
        {"exit 75": 5, "interrupted": 1},
    )
    assert notified == []
