"""Resolution statistics (the follow-up metrics of the BOAMP retry): counts, shares and time to resolution."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

from retryq import MemoryStore
from retryq.record.models import Detection, Job, JobStatus
from retryq.reporting.stats import (
    DayCounts,
    DelayBin,
    ResolutionStats,
    detection_status,
    format_by_status,
    format_stats,
    job_history,
    resolution_stats,
    select_chains,
)

from ..helpers import T0, make_job

NOW = T0 + timedelta(days=1)


def chain(
    job_id: str,
    status: JobStatus,
    *,
    attempt: int = 1,
    scheduled_at: datetime = T0,
    took: timedelta | None = None,
    **fields: object,
) -> Job:
    """A job detected at ``scheduled_at`` that ended ``took`` after its detection."""
    finished_at = None if took is None else scheduled_at + took
    return make_job(
        id=job_id, status=status, attempt=attempt, scheduled_at=scheduled_at, finished_at=finished_at, **fields
    )


def boamp_example() -> list[Job]:
    """Ten chains: 8 resolved at the 1st retry, 1 at the 2nd, 1 persistent."""
    first_retry = [45, 48, 50, 55, 60, 60, 60, 60]  # minutes from detection to success
    jobs = [
        chain(f"r1-{n}", JobStatus.COMPLETED, took=timedelta(minutes=minutes)) for n, minutes in enumerate(first_retry)
    ]
    jobs.append(chain("r2", JobStatus.COMPLETED, attempt=2, took=timedelta(minutes=120)))
    jobs.append(chain("lost", JobStatus.FAILED, attempt=3, took=timedelta(minutes=180)))
    return jobs


def test_the_boamp_example() -> None:
    stats = resolution_stats(boamp_example(), now=NOW)
    assert stats.chains == 10
    assert stats.resolved_by_attempt == {1: 8, 2: 1}
    assert stats.resolved == 9
    assert (stats.persistent, stats.open, stats.cancelled) == (1, 0, 0)
    assert (stats.percent(8), stats.percent(1), stats.percent(stats.resolved)) == (80.0, 10.0, 90.0)
    # The nine resolved delays, sorted: 45 48 50 55 60 60 60 60 120 (minutes).
    # Mean 558 / 9 = 62; median the 5th value, 60; max 120. The failed chain's 180 does not count.
    assert stats.delay_mean == timedelta(minutes=62)
    assert stats.delay_median == timedelta(minutes=60)
    assert stats.delay_max == timedelta(minutes=120)


def test_the_boamp_example_as_text() -> None:
    assert format_stats(resolution_stats(boamp_example(), now=NOW)) == [
        "inconsistencies detected: 10",
        "resolved at retry 1: 8 (80.0%)",
        "resolved at retry 2: 1 (10.0%)",
        "persistent (failed): 1 (10.0%)",
        "still open: 0",
        "cancelled: 0",
        "time to resolution: mean 1h2m, median 1h, max 2h",
    ]


def test_the_boamp_example_as_json() -> None:
    data = resolution_stats(boamp_example(), now=NOW).to_json_dict()
    assert data == {
        "chains": 10,
        "resolved": 9,
        "resolvedPercent": 90.0,
        "resolvedByAttempt": {"1": {"count": 8, "percent": 80.0}, "2": {"count": 1, "percent": 10.0}},
        "persistent": 1,
        "persistentPercent": 10.0,
        "open": 0,
        "openPercent": 0.0,
        "cancelled": 0,
        "cancelledPercent": 0.0,
        "delaySeconds": {"mean": 3720.0, "median": 3600.0, "max": 7200.0},
        "misdated": [],
    }
    assert json.loads(json.dumps(data)) == data


def test_mean_and_median_fall_between_delays() -> None:
    jobs = [
        chain("c", JobStatus.COMPLETED, attempt=3, took=timedelta(minutes=61, seconds=30)),
        chain("a", JobStatus.COMPLETED, took=timedelta(minutes=60)),
    ]
    stats = resolution_stats(jobs, now=NOW)
    # (60m + 61m30s) / 2 = 60m45s, and with two values the median is their mean too.
    assert stats.delay_mean == stats.delay_median == timedelta(minutes=60, seconds=45)
    assert stats.delay_max == timedelta(minutes=61, seconds=30)
    assert list(stats.resolved_by_attempt) == [1, 3]  # attempt order, whatever the input order
    assert format_stats(stats)[1:3] == ["resolved at retry 1: 1 (50.0%)", "resolved at retry 3: 1 (50.0%)"]
    assert format_stats(stats)[-1] == "time to resolution: mean 1h45s, median 1h45s, max 1h1m30s"


def test_open_and_cancelled_chains() -> None:
    jobs = [
        chain("p", JobStatus.PENDING, attempt=2),
        chain("r", JobStatus.RUNNING),
        chain("x", JobStatus.CANCELLED, took=timedelta(minutes=5)),
        chain("ok", JobStatus.COMPLETED, took=timedelta(minutes=70)),
    ]
    stats = resolution_stats(jobs, now=NOW)
    assert (stats.chains, stats.resolved, stats.persistent, stats.open, stats.cancelled) == (4, 1, 0, 2, 1)
    assert stats.percent(stats.open) == 50.0
    assert format_stats(stats) == [
        "inconsistencies detected: 4",
        "resolved at retry 1: 1 (25.0%)",
        "persistent (failed): 0 (0.0%)",
        "still open: 2",
        "cancelled: 1",
        "time to resolution: mean 1h10m, median 1h10m, max 1h10m",
    ]


def test_a_completed_job_without_finish_time_counts_but_is_not_timed() -> None:
    # The original scripts wrote "completed" without finishedAt.
    stats = resolution_stats([chain("legacy", JobStatus.COMPLETED)], now=NOW)
    assert stats.resolved_by_attempt == {1: 1}
    assert stats.delay_mean is None
    assert format_stats(stats)[-1] == "time to resolution: not recorded"


def test_the_last_copy_of_an_id_wins() -> None:
    archived = [chain("a", JobStatus.FAILED, attempt=3, took=timedelta(hours=3))]
    live = [chain("a", JobStatus.PENDING), chain("b", JobStatus.COMPLETED, took=timedelta(hours=1))]
    stats = resolution_stats([*archived, *live], now=NOW)
    assert (stats.chains, stats.persistent, stats.open, stats.resolved) == (2, 0, 1, 1)
    # In the other order the archived copy wins: the caller decides by the order.
    stats = resolution_stats([*live, *archived], now=NOW)
    assert (stats.chains, stats.persistent, stats.open, stats.resolved) == (2, 1, 0, 1)


def test_since_keeps_chains_detected_in_the_window() -> None:
    now = T0 + timedelta(days=2)
    jobs = [
        chain("old", JobStatus.FAILED, scheduled_at=T0),
        chain("edge", JobStatus.COMPLETED, scheduled_at=T0 + timedelta(days=1), took=timedelta(hours=1)),
        chain("new", JobStatus.PENDING, scheduled_at=T0 + timedelta(days=1, hours=1)),
    ]
    stats = resolution_stats(jobs, now=now, since=timedelta(days=1))
    assert (stats.chains, stats.resolved, stats.persistent, stats.open) == (2, 1, 0, 1)
    assert resolution_stats(jobs, now=now).chains == 3


def test_client_and_workflow_filters() -> None:
    jobs = [
        chain("a", JobStatus.COMPLETED, took=timedelta(hours=1)),
        chain("b", JobStatus.FAILED, client_id="acme"),
        chain("c", JobStatus.COMPLETED, attempt=2, workflow="tenders", took=timedelta(hours=2)),
        chain("d", JobStatus.FAILED, client_id="acme", workflow="tenders"),
    ]
    by_client = resolution_stats(jobs, now=NOW, client="acme")
    assert (by_client.chains, by_client.resolved, by_client.persistent) == (2, 0, 2)
    by_workflow = resolution_stats(jobs, now=NOW, workflow="tenders")
    assert (by_workflow.chains, by_workflow.resolved_by_attempt, by_workflow.persistent) == (2, {2: 1}, 1)
    both = resolution_stats(jobs, now=NOW, client="balthazar", workflow="tenders")
    assert (both.chains, both.delay_max) == (1, timedelta(hours=2))
    assert resolution_stats(jobs, now=NOW, client="nobody").chains == 0


def test_no_chains() -> None:
    stats = resolution_stats([], now=NOW)
    assert stats == ResolutionStats(
        chains=0,
        resolved_by_attempt={},
        persistent=0,
        open=0,
        cancelled=0,
        delay_mean=None,
        delay_median=None,
        delay_max=None,
    )
    assert stats.percent(0) == 0.0
    assert format_stats(stats) == [
        "inconsistencies detected: 0",
        "persistent (failed): 0 (0.0%)",
        "still open: 0",
        "cancelled: 0",
        "time to resolution: none resolved",
    ]
    assert stats.to_json_dict()["delaySeconds"] == {"mean": None, "median": None, "max": None}


# -- breakdowns: per day, per client, the distribution of delays -------------------------------------


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def test_the_boamp_example_by_day_and_by_delay() -> None:
    stats = resolution_stats(boamp_example(), now=NOW)
    # All ten were detected on 19 December; the 20th (today) is listed, empty, so that a chart reaches today.
    assert stats.by_day == (
        DayCounts(date(2025, 12, 19), chains=10, resolved=9, persistent=1, open=0, cancelled=0),
        DayCounts(date(2025, 12, 20), chains=0, resolved=0, persistent=0, open=0, cancelled=0),
    )
    # Delays 45 48 50 55 | 60 60 60 60 | 120 minutes. 10-minute bins would need 13 (0 to 130): 15 minutes it is.
    bounds = [(minutes(m), minutes(m + 15)) for m in range(0, 121, 15)]
    assert [(b.start, b.end) for b in stats.delay_histogram] == bounds
    assert [b.count for b in stats.delay_histogram] == [0, 0, 0, 4, 4, 0, 0, 0, 1]
    assert sum(b.count for b in stats.delay_histogram) == stats.resolved


def test_days_without_chains_are_listed_and_chains_are_counted_on_their_utc_day() -> None:
    jobs = [
        chain("late", JobStatus.COMPLETED, scheduled_at=T0.replace(hour=23, minute=59), took=minutes(30)),
        chain("next", JobStatus.PENDING, scheduled_at=T0 + timedelta(days=3)),
        chain("gone", JobStatus.CANCELLED, scheduled_at=T0 + timedelta(days=3, hours=1)),
    ]
    stats = resolution_stats(jobs, now=T0 + timedelta(days=4))
    assert [(d.day.day, d.chains, d.resolved, d.open, d.cancelled) for d in stats.by_day] == [
        (19, 1, 1, 0, 0),  # finished on the 20th, counted on the day it was detected
        (20, 0, 0, 0, 0),
        (21, 0, 0, 0, 0),
        (22, 2, 0, 1, 1),
        (23, 0, 0, 0, 0),
    ]
    assert sum(day.chains for day in stats.by_day) == stats.chains


def test_each_client_gets_the_statistics_of_its_own_filter() -> None:
    jobs = [
        *boamp_example(),
        chain("acme-1", JobStatus.COMPLETED, client_id="acme", attempt=2, took=minutes(130)),
        chain("acme-2", JobStatus.PENDING, client_id="acme"),
        chain("zeta-1", JobStatus.FAILED, client_id="zeta", attempt=3),
        chain("beta-1", JobStatus.CANCELLED, client_id="beta"),
    ]
    stats = resolution_stats(jobs, now=NOW)
    assert list(stats.by_client) == ["balthazar", "acme", "beta", "zeta"]  # most chains first, then by name
    for client, own in stats.by_client.items():
        alone = resolution_stats(jobs, now=NOW, client=client)
        assert own.to_json_dict() == alone.to_json_dict()
        assert (own.by_day, own.by_client, own.delay_histogram) == ((), {}, ())
    assert stats.by_client["acme"].resolved_by_attempt == {2: 1}
    assert stats.by_client["acme"].delay_mean == minutes(130)
    assert sum(own.chains for own in stats.by_client.values()) == stats.chains


def test_the_breakdowns_follow_the_filters() -> None:
    jobs = [
        chain("old", JobStatus.COMPLETED, scheduled_at=T0 - timedelta(days=5), took=minutes(10)),
        chain("a", JobStatus.COMPLETED, took=minutes(200)),
        chain("b", JobStatus.FAILED, client_id="acme"),
    ]
    stats = resolution_stats(jobs, now=NOW, since=timedelta(days=2), client="balthazar")
    assert [day.day for day in stats.by_day] == [date(2025, 12, 19), date(2025, 12, 20)]
    assert list(stats.by_client) == ["balthazar"]
    assert [(b.start, b.count) for b in stats.delay_histogram][-1] == (minutes(180), 1)  # 15-minute bins would need 14
    assert [chain.id for chain in select_chains(jobs, now=NOW, since=timedelta(days=2))] == ["a", "b"]


def test_long_delays_get_wider_bins_and_short_ones_narrower() -> None:
    weeks = resolution_stats([chain("slow", JobStatus.COMPLETED, took=timedelta(days=100))], now=NOW)
    assert [b.count for b in weeks.delay_histogram][-1] == 1
    assert len(weeks.delay_histogram) <= 13
    assert weeks.delay_histogram[0].start == timedelta(0)
    assert {b.end - b.start for b in weeks.delay_histogram} == {timedelta(weeks=2)}
    quick = resolution_stats([chain("quick", JobStatus.COMPLETED, took=timedelta(seconds=1.5))], now=NOW)
    assert quick.delay_histogram == (
        DelayBin(timedelta(0), timedelta(seconds=1), 0),
        DelayBin(timedelta(seconds=1), timedelta(seconds=2), 1),
    )
    seconds = resolution_stats([chain("s", JobStatus.COMPLETED, took=timedelta(seconds=50))], now=NOW)
    assert [(b.end - b.start, b.count) for b in seconds.delay_histogram][-1] == (timedelta(seconds=5), 1)


def test_no_chains_no_breakdowns() -> None:
    stats = resolution_stats([chain("x", JobStatus.PENDING)], now=NOW, client="nobody")
    assert stats.to_json_dict(breakdowns=True) == {
        **stats.to_json_dict(),
        "byDay": [],
        "byClient": {},
        "delayHistogram": [],
        "byStatus": {},
    }


def test_the_breakdowns_as_json() -> None:
    data = resolution_stats(boamp_example(), now=NOW).to_json_dict(breakdowns=True)
    assert data["byDay"][0] == {
        "date": "2025-12-19",
        "chains": 10,
        "resolved": 9,
        "persistent": 1,
        "open": 0,
        "cancelled": 0,
    }
    assert data["delayHistogram"][3] == {"fromSeconds": 2700.0, "toSeconds": 3600.0, "count": 4}
    summary = resolution_stats(boamp_example(), now=NOW).to_json_dict()
    assert data["byClient"] == {"balthazar": summary}
    assert {key: data[key] for key in summary} == summary  # the existing keys, unchanged
    assert json.loads(json.dumps(data)) == data


def test_job_history_reads_the_archive_then_the_queue() -> None:
    store = MemoryStore()
    store.add(chain("a", JobStatus.COMPLETED, took=minutes(60)), lambda job: job)
    store.add(chain("b", JobStatus.PENDING, client_id="acme"), lambda job: job)
    store.update({"a": lambda job: None})  # pruned into the archive
    assert [job.id for job in job_history(store)] == ["a", "b"]


# -- by status at detection ----------------------------------------------------------------------------------


def detected(status: str, missing: int = 50, delay: int = 20) -> Detection:
    return Detection(status=status, total=650, missing=missing, ratio=missing / 650, delay_minutes=delay)  # type: ignore[arg-type]


def by_status_example() -> list[Job]:
    """Three DEGRADED chains (2 resolved at retry 1, 1 open), two ERROR (1 at retry 2, 1 failed), one unknown."""
    return [
        chain("d1", JobStatus.COMPLETED, took=minutes(60), detection=detected("DEGRADED", 3, 60)),
        chain("d2", JobStatus.COMPLETED, took=minutes(70), detection=detected("DEGRADED", 2, 60)),
        chain("d3", JobStatus.PENDING, detection=detected("DEGRADED", 1, 60)),
        chain("e1", JobStatus.COMPLETED, attempt=2, took=minutes(40), detection=detected("ERROR")),
        chain("e2", JobStatus.FAILED, attempt=3, took=minutes(60), detection=detected("ERROR")),
        chain("s1", JobStatus.CANCELLED),  # scheduled with `schedule`: no verdict recorded
    ]


def test_chains_are_grouped_by_their_status_at_detection() -> None:
    jobs = by_status_example()
    stats = resolution_stats(jobs, now=NOW)
    assert [detection_status(job) for job in jobs] == ["DEGRADED"] * 3 + ["ERROR"] * 2 + ["unknown"]
    assert list(stats.by_status) == ["DEGRADED", "ERROR", "unknown"]  # by severity, unknown last
    degraded, error, unknown = stats.by_status.values()
    assert (degraded.chains, degraded.resolved_by_attempt, degraded.open) == (3, {1: 2}, 1)
    assert degraded.delay_mean == minutes(65)
    assert (error.chains, error.resolved_by_attempt, error.persistent, error.delay_max) == (2, {2: 1}, 1, minutes(40))
    assert (unknown.chains, unknown.cancelled) == (1, 1)
    assert sum(group.chains for group in stats.by_status.values()) == stats.chains
    for group in stats.by_status.values():
        assert (group.by_day, group.by_client, group.by_status, group.delay_histogram) == ((), {}, {}, ())


def test_each_status_group_counts_as_its_chains_alone_would() -> None:
    jobs = by_status_example()
    stats = resolution_stats(jobs, now=NOW, since=timedelta(days=2), client="balthazar")
    for status, group in stats.by_status.items():
        alone = resolution_stats([job for job in jobs if detection_status(job) == status], now=NOW)
        assert group.to_json_dict() == alone.to_json_dict()


def test_groups_follow_the_filters_and_leave_out_empty_statuses() -> None:
    jobs = [*by_status_example(), chain("x", JobStatus.COMPLETED, client_id="acme", detection=detected("OK", 0, 0))]
    assert list(resolution_stats(jobs, now=NOW).by_status) == ["OK", "DEGRADED", "ERROR", "unknown"]
    assert list(resolution_stats(jobs, now=NOW, client="acme").by_status) == ["OK"]
    assert resolution_stats([], now=NOW).by_status == {}


def test_the_groups_as_json_add_a_key_and_keep_the_others() -> None:
    stats = resolution_stats(by_status_example(), now=NOW)
    data = stats.to_json_dict(breakdowns=True)
    assert list(data["byStatus"]) == ["DEGRADED", "ERROR", "unknown"]
    assert data["byStatus"]["ERROR"] == stats.by_status["ERROR"].to_json_dict()
    assert data["byStatus"]["ERROR"]["resolvedByAttempt"] == {"2": {"count": 1, "percent": 50.0}}
    assert set(data) == {*stats.to_json_dict(), "byDay", "byClient", "delayHistogram", "byStatus"}
    assert "byStatus" not in stats.to_json_dict()  # the summary keeps its keys
    assert json.loads(json.dumps(data)) == data


def test_the_groups_as_text() -> None:
    assert format_by_status(resolution_stats(by_status_example(), now=NOW)) == [
        "by status at detection:",
        "DEGRADED: 3 chains",
        "  resolved at retry 1: 2 (66.7%)",
        "  persistent (failed): 0 (0.0%)",
        "  still open: 1",
        "  cancelled: 0",
        "  time to resolution: mean 1h5m, median 1h5m, max 1h10m",
        "ERROR: 2 chains",
        "  resolved at retry 2: 1 (50.0%)",
        "  persistent (failed): 1 (50.0%)",
        "  still open: 0",
        "  cancelled: 0",
        "  time to resolution: mean 40m, median 40m, max 40m",
        "unknown (scheduled without report): 1 chain",
        "  persistent (failed): 0 (0.0%)",
        "  still open: 0",
        "  cancelled: 1",
        "  time to resolution: none resolved",
    ]
    assert format_by_status(resolution_stats([], now=NOW)) == ["by status at detection: no chains"]


def test_a_chain_that_finished_before_it_was_detected_is_flagged_and_left_out_of_the_times() -> None:
    """Hand-edited times (finishedAt before scheduledAt) would give a negative mean: "mean -2530d"."""
    misdated = chain("typo", JobStatus.COMPLETED, took=-timedelta(days=2530))
    stats = resolution_stats([*boamp_example(), misdated], now=NOW)
    assert stats.resolved == 10  # still resolved, at its retry
    assert stats.misdated == ("typo",)
    assert stats.delay_mean == resolution_stats(boamp_example(), now=NOW).delay_mean
    assert stats.delay_mean is not None
    assert stats.delay_mean > timedelta(0)
    assert all(b.start >= timedelta(0) for b in stats.delay_histogram)
    assert sum(b.count for b in stats.delay_histogram) == 9
    lines = format_stats(stats)
    assert not any("-" in line.split(": ", 1)[1] for line in lines if line.startswith("time to resolution"))
    assert lines[-1] == (
        "left out of the time to resolution: 1 chain whose finishedAt comes before its scheduledAt "
        "(hand-edited times?): typo"
    )
    assert stats.to_json_dict()["misdated"] == ["typo"]
    assert stats.by_client["balthazar"].misdated == ("typo",)


def test_only_misdated_chains_give_no_time_but_say_why() -> None:
    stats = resolution_stats([chain("typo", JobStatus.COMPLETED, took=-timedelta(minutes=5))], now=NOW)
    assert (stats.delay_mean, stats.delay_histogram) == (None, ())
    assert format_stats(stats)[-2:] == [
        "time to resolution: not recorded",
        "left out of the time to resolution: 1 chain whose finishedAt comes before its scheduledAt "
        "(hand-edited times?): typo",
    ]
