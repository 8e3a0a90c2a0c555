"""The processor's loop with a fake supervisor: claims, results, limits, lost claims and stops, no process run."""

from __future__ import annotations

import signal
from collections.abc import Mapping, Sequence
from datetime import timedelta

import pytest

from retryq import MemoryStore, Processor
from retryq.record.backoff import constant
from retryq.record.models import Job, JobStatus, Outcome, Owner
from retryq.running.platform import current_owner
from retryq.running.runner import RunResult, Supervisor
from retryq.settings.config import Config, WorkflowSettings

from ..helpers import T0, make_job


class FakeRuns(Supervisor):
    """Runs nothing: a started run ends, at the next wait, with the exit code scripted for its client."""

    def __init__(self, exits: Mapping[str, Sequence[int]] | None = None, *, on_wait=None) -> None:  # type: ignore[no-untyped-def]
        self.exits = {client: list(codes) for client, codes in (exits or {}).items()}
        self.on_wait = on_wait
        self.started: list[tuple[str, list[str]]] = []  # (run id, argv)
        self.running: dict[str, int] = {}  # run id -> exit code
        self.most_at_once = 0
        self.stopped = False

    def start(self, key, argv, env, *, timeout, kill_grace, label="", capture=True) -> int:  # type: ignore[no-untyped-def]
        client = env["RETRYQ_CLIENT"]
        codes = self.exits.get(client) or [0]
        self.running[key] = codes.pop(0) if len(codes) > 1 else codes[0]
        self.started.append((key, list(argv)))
        self.most_at_once = max(self.most_at_once, len(self.running))
        return 4242 + len(self.started)

    def wait(self, timeout: float | None = None) -> list[tuple[str, RunResult]]:
        if self.on_wait is not None:
            self.on_wait(self)
        ended = [
            (key, RunResult(started_at=T0, finished_at=T0 + timedelta(seconds=1), exit_code=code, stopped=self.stopped))
            for key, code in self.running.items()
        ]
        self.running.clear()
        return ended

    def stop_all(self, *, immediately: bool = False) -> None:
        self.stopped = True


def config(*, concurrency: int = 1, **workflows: WorkflowSettings) -> Config:
    chosen = workflows or {"default": WorkflowSettings("default", command=("true", "{client}"), command_origin="test")}
    return Config(workflows=chosen, concurrency=concurrency)


def due(ident: str, *, minutes_ago: int = 5, **fields: object) -> Job:
    return make_job(id=ident, client_id=ident, execute_at=NOW - timedelta(minutes=minutes_ago), **fields)


NOW = T0 + timedelta(days=1)


def run(store: MemoryStore, runs: FakeRuns, cfg: Config | None = None, **options: object):  # type: ignore[no-untyped-def]
    processor = Processor(store, cfg or config(), supervisor=runs, clock=lambda: NOW, prune=False, **options)  # type: ignore[arg-type]
    return processor, processor.run(handle_signals=False)


def held_elsewhere(ident: str, **fields: object) -> Job:
    """A job running on another host: nothing here can check its owner, its lease decides."""
    return make_job(
        id=ident,
        client_id=ident,
        status=JobStatus.RUNNING,
        owner=Owner(host="another-host", pid=99),
        run_id=ident,
        **fields,
    )


def statuses(store: MemoryStore) -> dict[str, JobStatus]:
    return {job.id: job.status for job in store.load()}


def test_due_jobs_run_once_oldest_first_and_results_are_recorded() -> None:
    store = MemoryStore([due("late", minutes_ago=1), due("early", minutes_ago=9), due("later", minutes_ago=-30)])
    runs = FakeRuns({"late": [75], "early": [0]})
    _, report = run(store, runs)
    assert [argv for _, argv in runs.started] == [["true", "early"], ["true", "late"]]
    assert (report.succeeded, report.retrying, report.failed) == (1, 1, 0)
    assert statuses(store) == {"late": JobStatus.PENDING, "early": JobStatus.COMPLETED, "later": JobStatus.PENDING}


def test_a_job_rescheduled_with_no_delay_waits_for_the_next_run() -> None:
    store = MemoryStore([due("a", delay_minutes=0)])
    runs = FakeRuns({"a": [75, 75, 0]})
    reports = [run(store, runs)[1] for _ in range(3)]
    assert [report.processed for report in reports] == [1, 1, 1]
    [job] = store.load()
    assert (job.status, job.attempt) == (JobStatus.COMPLETED, 3)


@pytest.mark.parametrize(("overall", "own", "expected"), [(3, None, 3), (3, 1, 1), (1, 3, 1)])
def test_runs_at_once_follow_the_overall_and_the_workflows_own_cap(
    overall: int, own: int | None, expected: int
) -> None:
    store = MemoryStore([due(f"j{n}", minutes_ago=n) for n in range(6)])
    runs = FakeRuns()
    settings = WorkflowSettings("default", command=("true",), command_origin="test", concurrency=own)
    _, report = run(store, runs, config(concurrency=overall, default=settings))
    assert (runs.most_at_once, report.succeeded) == (expected, 6)


def test_a_result_for_a_job_recovered_meanwhile_is_discarded() -> None:
    store = MemoryStore([due("a")])

    def taken_by_another_process(runs: FakeRuns) -> None:
        def reclaimed(job: Job) -> Job:
            return job.model_copy(update={"run_id": "someone-else", "owner": Owner(host="another-host", pid=7)})

        store.update({"a": reclaimed})

    _, report = run(store, FakeRuns(on_wait=taken_by_another_process))
    assert (report.lost_claims, report.succeeded) == (1, 0)
    [job] = store.load()
    assert (job.status, job.run_id, job.history) == (JobStatus.RUNNING, "someone-else", ())


def test_a_stop_gives_the_job_back_without_counting_the_attempt() -> None:
    store = MemoryStore([due("a")])
    holder: list[Processor] = []
    runs = FakeRuns(on_wait=lambda runs: holder[0].request_stop(signal.SIGTERM))
    processor = Processor(store, config(), supervisor=runs, clock=lambda: NOW, prune=False)
    holder.append(processor)
    report = processor.run(handle_signals=False)
    [job] = store.load()
    assert (report.released, report.stopped_by, job.status, job.attempt) == (1, signal.SIGTERM, JobStatus.PENDING, 1)
    assert job.history[-1].outcome is Outcome.STOPPED


def test_a_command_that_cannot_start_gives_its_jobs_back() -> None:
    class CannotStart(FakeRuns):
        def start(self, *args, **kwargs) -> int:  # type: ignore[no-untyped-def]
            raise FileNotFoundError(2, "No such file or directory")

    store = MemoryStore([due("a"), due("b")])
    _, report = run(store, CannotStart())
    assert report.config_errors == ["workflow 'default' could not start 'true': No such file or directory"]
    assert (report.released, statuses(store)) == (1, {"a": JobStatus.PENDING, "b": JobStatus.PENDING})


def test_the_pid_is_recorded_while_the_job_runs() -> None:
    store = MemoryStore([due("a")])
    seen: list[int | None] = []

    def look(runs: FakeRuns) -> None:
        seen.append(store.load()[0].workflow_pid)

    class Slow(FakeRuns):
        def wait(self, timeout: float | None = None) -> list[tuple[str, RunResult]]:
            if not seen:  # first wait: the pid record is written at the next write, not yet
                self.on_wait(self)  # type: ignore[misc]
                return []
            return super().wait(timeout)

    runs = Slow(on_wait=look)
    run(store, runs)
    assert seen == [None, 4243]  # written with the next write, and the result replaced it
    assert store.load()[0].status is JobStatus.COMPLETED


def test_a_busy_worker_takes_up_a_job_whose_host_died_once_its_lease_ends() -> None:
    """On a queue shared by hosts that are never idle, recovery must not wait for idleness."""
    now, ticks = [NOW], [0.0]
    orphan = held_elsewhere(
        "orphan",
        started_at=NOW - timedelta(minutes=1),
        lease_until=NOW + timedelta(minutes=1),
        delay_minutes=0,  # its next attempt is due as soon as it is recovered
    )
    store = MemoryStore([orphan, *(due(f"busy{n}", minutes_ago=n) for n in range(40, 0, -1))])
    seen_idle: list[dict[str, JobStatus]] = []

    def ten_seconds_per_run(runs: FakeRuns) -> None:
        now[0] += timedelta(seconds=10)
        ticks[0] += 10

    def sleep(seconds: float) -> None:
        seen_idle.append(statuses(store))
        processor.request_stop()

    settings = WorkflowSettings("default", command=("true", "{client}"), command_origin="test", max_attempts=3)
    processor = Processor(
        store,
        Config(workflows={"default": settings}, lease_grace=timedelta(seconds=30)),
        supervisor=FakeRuns(on_wait=ten_seconds_per_run),
        clock=lambda: now[0],
        monotonic=lambda: ticks[0],
        sleep=sleep,
        prune=False,
    )
    report = processor.run(worker=True, handle_signals=False)
    assert report.recovered == 1
    recovered = store.find("orphan")[0]
    assert recovered.history[0].outcome is Outcome.INTERRUPTED
    assert recovered.status is JobStatus.COMPLETED  # taken up and run again, all while the worker was busy
    assert len(seen_idle) == 1
    assert set(seen_idle[0].values()) == {JobStatus.COMPLETED}


class LosesTheFirstClaimsReply(MemoryStore):
    """The first claim is written, but its reply is lost: the store tries again and claims other jobs
    (as the PostgreSQL store does when the connection drops during COMMIT)."""

    lost: tuple[str, ...] = ()

    def claim(self, request, changes=None, *, plan=None):  # type: ignore[no-untyped-def]
        if not self.lost:
            written, _ = super().claim(request, changes, plan=plan)
            self.lost = tuple(job.id for job in written)
        return super().claim(request, changes, plan=plan)


def test_a_claim_whose_reply_was_lost_is_given_back_uncounted_and_runs_next_time() -> None:
    store = LosesTheFirstClaimsReply([due("lost", minutes_ago=9, max_attempts=1), due("other", minutes_ago=1)])
    runs = FakeRuns()
    _, report = run(store, runs)
    assert store.lost == ("lost",)
    assert [argv for _, argv in runs.started] == [["true", "other"]]
    [lost] = store.find("lost")
    assert (lost.status, lost.attempt, lost.history, lost.owner) == (JobStatus.PENDING, 1, (), None)
    assert (report.released, report.recovered) == (1, 0)
    run(store, runs)
    [lost] = store.find("lost")
    assert (lost.status, [entry.outcome for entry in lost.history]) == (JobStatus.COMPLETED, [Outcome.SUCCEEDED])


def test_a_worker_gives_back_a_claim_whose_reply_was_lost_without_waiting_to_stop() -> None:
    ticks = [0.0]
    store = LosesTheFirstClaimsReply([due("lost", minutes_ago=9), due("other", minutes_ago=1)])

    def sleep(seconds: float) -> None:
        ticks[0] += seconds
        if store.find("lost")[0].status is JobStatus.COMPLETED or ticks[0] > 3600:
            processor.request_stop()

    processor = Processor(
        store, config(), supervisor=FakeRuns(), clock=lambda: NOW, monotonic=lambda: ticks[0], sleep=sleep, prune=False
    )
    processor.run(worker=True, handle_signals=False)
    [lost] = store.find("lost")
    assert (lost.status, [entry.outcome for entry in lost.history]) == (JobStatus.COMPLETED, [Outcome.SUCCEEDED])
    assert ticks[0] <= 3600


def test_a_claim_of_this_process_that_no_run_of_it_holds_is_given_back() -> None:
    lost = due(
        "lost",
        status=JobStatus.RUNNING,
        owner=current_owner(),
        run_id="never-heard-of",
        started_at=NOW - timedelta(minutes=1),
        lease_until=NOW + timedelta(hours=1),
    )
    store = MemoryStore([lost])
    _, report = run(store, FakeRuns())
    [job] = store.load()
    assert (job.status, [entry.outcome for entry in job.history]) == (JobStatus.COMPLETED, [Outcome.SUCCEEDED])
    assert (report.recovered, report.released) == (0, 1)


@pytest.mark.parametrize(("shared", "expected"), [(False, 1), (True, 0)])
def test_global_concurrency_counts_the_runs_of_other_processes(shared: bool, expected: int) -> None:
    elsewhere = held_elsewhere(
        "elsewhere",
        started_at=NOW,
        lease_until=NOW + timedelta(minutes=5),
    )
    store = MemoryStore([elsewhere, due("a")])
    settings = WorkflowSettings("default", command=("true", "{client}"), command_origin="test", concurrency=1)
    cfg = Config(workflows={"default": settings}, concurrency=4, global_concurrency=shared)
    _, report = run(store, FakeRuns(), cfg)
    assert report.processed == expected  # with the cap global, the other host's run takes the one slot


def test_a_worker_runs_the_next_attempt_at_its_own_time() -> None:
    now = [NOW]
    store = MemoryStore([due("a", delay_minutes=0, minutes_ago=0)])
    sleeps: list[float] = []
    starts_after: list[int] = []  # how many idle sleeps had passed when each attempt started

    class Recording(FakeRuns):
        def start(self, key, argv, env, **options) -> int:  # type: ignore[no-untyped-def]
            starts_after.append(len(sleeps))
            return super().start(key, argv, env, **options)

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += timedelta(minutes=4)
        if len(sleeps) > 6:
            processor.request_stop()

    settings = WorkflowSettings("default", command=("true",), command_origin="test", backoff=constant(600))
    processor = Processor(
        store, config(default=settings), supervisor=Recording({"a": [75, 0]}), clock=lambda: now[0], sleep=sleep
    )
    report = processor.run(worker=True, handle_signals=False)
    assert (report.retrying, report.succeeded) == (1, 1)
    assert starts_after == [0, 3]  # due 10 minutes after the first was due: after the third 4-minute sleep


def test_the_pids_created_since_a_run_started_follow_linux_cycle() -> None:
    from retryq.running.pids import window

    recent = window(first=1000, last=1200, new_tasks=250, live=100, top=32768)
    assert recent is not None
    assert [recent(pid) for pid in (999, 1000, 1001, 1200, 1201, 400)] == [False, False, True, True, False, False]
    wrapped = window(first=32000, last=500, new_tasks=1300, live=100, top=32768)  # came round to 300 since
    assert wrapped is not None
    assert [wrapped(pid) for pid in (31999, 32000, 32500, 300, 500, 501)] == [False, False, True, True, True, False]
    # Enough tasks created since to have come round past the run's first pid: nothing can be told.
    assert window(first=1000, last=1200, new_tasks=32_400, live=100, top=32768) is None
