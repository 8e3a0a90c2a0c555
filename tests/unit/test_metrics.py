"""Prometheus metrics for node_exporter's textfile collector: values, format, parsing, atomic writes."""

from __future__ import annotations

import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from retryq.record.errors import StoreIOError
from retryq.record.models import Attempt, Job, JobStatus, Outcome
from retryq.reporting.metrics import parse_metrics, render_metrics, write_metrics
from retryq.running.processor import ProcessReport
from retryq.stores import Tally

from ..helpers import T0, make_job

NOW = T0 + timedelta(hours=3)
T0_UNIX = 1766138400  # 2025-12-19T10:00:00Z


def sample(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return (name, frozenset(labels.items()))


def history(*outcomes: Outcome) -> tuple[Attempt, ...]:
    """One attempt per outcome, an hour apart from T0 + 1h, each lasting a minute."""
    return tuple(
        Attempt(
            attempt=n,
            started_at=T0 + timedelta(hours=n),
            finished_at=T0 + timedelta(hours=n, minutes=1),
            outcome=outcome,
        )
        for n, outcome in enumerate(outcomes, 1)
    )


def small_queue() -> tuple[list[Job], list[Job]]:
    """Live and archived jobs of two workflows at NOW (T0 + 3h); "c1" is in both."""
    completed = make_job(
        id="c1",
        status=JobStatus.COMPLETED,
        finished_at=T0 + timedelta(hours=1, minutes=1),
        history=history(Outcome.SUCCEEDED),
    )
    live = [
        # Detected 3h ago, due 2h ago, still pending after one incomplete attempt.
        make_job(id="p1", attempt=2, execute_at=T0 + timedelta(hours=1), history=history(Outcome.INCOMPLETE)),
        make_job(id="p2", scheduled_at=T0 + timedelta(hours=2), execute_at=T0 + timedelta(hours=4)),
        make_job(id="r1", workflow="tenders", status=JobStatus.RUNNING, scheduled_at=T0 + timedelta(hours=1)),
        completed,
    ]
    archived = [
        completed,  # a crash between archiving and rewriting leaves a job in both
        make_job(
            id="f1",
            workflow="tenders",
            status=JobStatus.FAILED,
            attempt=3,
            history=history(Outcome.INCOMPLETE, Outcome.INCOMPLETE, Outcome.FAILED),
        ),
        make_job(
            id="c2",
            workflow="tenders",
            status=JobStatus.COMPLETED,
            attempt=2,
            history=history(Outcome.INCOMPLETE, Outcome.SUCCEEDED),
        ),
    ]
    return live, archived


def finished_report() -> ProcessReport:
    return ProcessReport(
        started_at=NOW - timedelta(seconds=42, milliseconds=500),
        finished_at=NOW,
        succeeded=2,
        retrying=1,
        failed=1,
        released=0,
        recovered=1,
        pruned=3,
    )


def test_the_values_of_a_small_queue() -> None:
    live, archived = small_queue()
    found = parse_metrics(render_metrics(Tally.of(live, archived), now=NOW, report=finished_report()))
    expected: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for workflow in ("default", "tenders"):
        for status in JobStatus:
            expected[sample("retryq_jobs", status=status.value, workflow=workflow)] = 0
        for outcome in Outcome:
            expected[sample("retryq_attempts_total", workflow=workflow, outcome=outcome.value)] = 0
    expected |= {
        # Live jobs only: f1 and c2 are archived; c1 counts once.
        sample("retryq_jobs", status="pending", workflow="default"): 2,
        sample("retryq_jobs", status="completed", workflow="default"): 1,
        sample("retryq_jobs", status="running", workflow="tenders"): 1,
        # p1 was scheduled at T0 (3h ago) and due at T0 + 1h (2h ago); p2 is not due yet.
        sample("retryq_oldest_pending_age_seconds", workflow="default"): 3 * 3600,
        sample("retryq_oldest_pending_age_seconds", workflow="tenders"): 0,
        sample("retryq_overdue_seconds", workflow="default"): 2 * 3600,
        sample("retryq_overdue_seconds", workflow="tenders"): 0,
        # Live and archived histories: p1 + c1 for default; f1 + c2 for tenders.
        sample("retryq_attempts_total", workflow="default", outcome="incomplete"): 1,
        sample("retryq_attempts_total", workflow="default", outcome="succeeded"): 1,
        sample("retryq_attempts_total", workflow="tenders", outcome="incomplete"): 3,
        sample("retryq_attempts_total", workflow="tenders", outcome="failed"): 1,
        sample("retryq_attempts_total", workflow="tenders", outcome="succeeded"): 1,
        sample("retryq_resolutions_total", workflow="default", attempt="1"): 1,
        sample("retryq_resolutions_total", workflow="tenders", attempt="2"): 1,
        sample("retryq_failures_total", workflow="default"): 0,
        sample("retryq_failures_total", workflow="tenders"): 1,
        sample("retryq_last_run_timestamp_seconds"): T0_UNIX + 3 * 3600,
        sample("retryq_last_run_duration_seconds"): 42.5,
        sample("retryq_last_run_jobs", result="succeeded"): 2,
        sample("retryq_last_run_jobs", result="rescheduled"): 1,
        sample("retryq_last_run_jobs", result="failed"): 1,
        sample("retryq_last_run_jobs", result="recovered"): 1,
        sample("retryq_last_run_jobs", result="released"): 0,
        sample("retryq_last_run_jobs", result="pruned"): 3,
        sample("retryq_invalid_jobs"): 0,
    }
    assert found == expected


def test_the_exact_text_of_one_pending_job() -> None:
    text = render_metrics(Tally.of([make_job(execute_at=T0 + timedelta(hours=1))]), now=T0 + timedelta(minutes=90))
    assert text == (
        "# HELP retryq_attempts_total Attempts in the job histories (the last 10 of each job), queue and archive,"
        " by outcome.\n"
        "# TYPE retryq_attempts_total counter\n"
        'retryq_attempts_total{workflow="default",outcome="failed"} 0\n'
        'retryq_attempts_total{workflow="default",outcome="fatal"} 0\n'
        'retryq_attempts_total{workflow="default",outcome="incomplete"} 0\n'
        'retryq_attempts_total{workflow="default",outcome="interrupted"} 0\n'
        'retryq_attempts_total{workflow="default",outcome="stopped"} 0\n'
        'retryq_attempts_total{workflow="default",outcome="succeeded"} 0\n'
        'retryq_attempts_total{workflow="default",outcome="timeout"} 0\n'
        "# HELP retryq_failures_total Jobs that ended failed, queue and archive.\n"
        "# TYPE retryq_failures_total counter\n"
        'retryq_failures_total{workflow="default"} 0\n'
        "# HELP retryq_jobs Jobs in the queue file, by status.\n"
        "# TYPE retryq_jobs gauge\n"
        'retryq_jobs{status="cancelled",workflow="default"} 0\n'
        'retryq_jobs{status="completed",workflow="default"} 0\n'
        'retryq_jobs{status="failed",workflow="default"} 0\n'
        'retryq_jobs{status="pending",workflow="default"} 1\n'
        'retryq_jobs{status="running",workflow="default"} 0\n'
        "# HELP retryq_oldest_pending_age_seconds Time since the oldest pending job was scheduled;"
        " 0 when none is pending.\n"
        "# TYPE retryq_oldest_pending_age_seconds gauge\n"
        'retryq_oldest_pending_age_seconds{workflow="default"} 5400\n'
        "# HELP retryq_overdue_seconds How long past its executeAt the most overdue pending job is;"
        " 0 when none is. A value that keeps growing means retryq process is not running.\n"
        "# TYPE retryq_overdue_seconds gauge\n"
        'retryq_overdue_seconds{workflow="default"} 1800\n'
    )


def test_every_family_has_help_and_type_before_its_samples() -> None:
    live, archived = small_queue()
    lines = render_metrics(Tally.of(live, archived), now=NOW, report=finished_report()).splitlines()
    declared: dict[str, str] = {}
    current = None
    for index, line in enumerate(lines):
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert lines[index + 1].startswith(f"# TYPE {name} ")
            assert name.startswith("retryq_")
            assert name not in declared, "each family is declared once"
            current = name
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            declared[name] = kind
        else:
            assert line.split("{")[0].split(" ")[0] == current
    assert declared == {
        "retryq_attempts_total": "counter",
        "retryq_failures_total": "counter",
        "retryq_invalid_jobs": "gauge",
        "retryq_jobs": "gauge",
        "retryq_last_run_duration_seconds": "gauge",
        "retryq_last_run_jobs": "gauge",
        "retryq_last_run_timestamp_seconds": "gauge",
        "retryq_oldest_pending_age_seconds": "gauge",
        "retryq_overdue_seconds": "gauge",
        "retryq_resolutions_total": "counter",
    }
    assert list(declared) == sorted(declared)


def test_the_output_does_not_depend_on_the_input_order() -> None:
    live, archived = small_queue()
    once = render_metrics(Tally.of(live, archived), now=NOW)
    assert render_metrics(Tally.of(live[::-1], archived[::-1]), now=NOW) == once
    assert once.endswith("\n")
    assert not once.endswith("\n\n")


def test_attempt_labels_sort_as_numbers() -> None:
    jobs = [
        make_job(id=f"c{n}", status=JobStatus.COMPLETED, attempt=n, max_attempts=12, finished_at=NOW)
        for n in (10, 9, 2)
    ]
    lines = [
        line for line in render_metrics(Tally.of(jobs), now=NOW).splitlines() if line.startswith("retryq_resolutions")
    ]
    assert lines == [
        'retryq_resolutions_total{workflow="default",attempt="2"} 1',
        'retryq_resolutions_total{workflow="default",attempt="9"} 1',
        'retryq_resolutions_total{workflow="default",attempt="10"} 1',
    ]


def test_label_values_are_escaped() -> None:
    # Workflow names are validated on input, so this one can only be built by skipping validation;
    # the renderer must still produce a valid file, whatever it is given.
    odd = 'a"b\\c\nd'
    job = Job.model_construct(**{**make_job().model_dump(), "workflow": odd})
    text = render_metrics(Tally.of([job]), now=NOW)
    assert 'retryq_jobs{status="pending",workflow="a\\"b\\\\c\\nd"} 1\n' in text
    assert parse_metrics(text)[sample("retryq_jobs", status="pending", workflow=odd)] == 1


def test_the_report_is_optional() -> None:
    live, _ = small_queue()
    names = {name for name, _ in parse_metrics(render_metrics(Tally.of(live), now=NOW))}
    assert not any(name.startswith("retryq_last_run") for name in names)
    # A report without an end yet: its job counts, but no time or duration is invented.
    unfinished = ProcessReport(started_at=NOW, succeeded=1)
    found = parse_metrics(render_metrics(Tally.of(live), now=NOW, report=unfinished))
    assert found[sample("retryq_last_run_jobs", result="succeeded")] == 1
    assert sample("retryq_last_run_timestamp_seconds") not in found
    assert sample("retryq_last_run_duration_seconds") not in found


def test_an_empty_queue() -> None:
    assert render_metrics(Tally(), now=NOW) == ""
    # Configured workflows get their zero series from the start, so alerts have something to watch.
    found = parse_metrics(render_metrics(Tally(), now=NOW, workflows=["default"]))
    assert found[sample("retryq_jobs", status="pending", workflow="default")] == 0
    assert found[sample("retryq_overdue_seconds", workflow="default")] == 0
    assert found[sample("retryq_failures_total", workflow="default")] == 0
    assert not any(name == "retryq_resolutions_total" for name, _ in found)
    text = render_metrics(Tally(), now=NOW, report=finished_report())
    assert parse_metrics(text)[sample("retryq_last_run_jobs", result="pruned")] == 3


def test_a_pending_job_from_the_future_is_not_negative() -> None:
    job = make_job(scheduled_at=NOW + timedelta(minutes=5), execute_at=NOW + timedelta(hours=1))
    found = parse_metrics(render_metrics(Tally.of([job]), now=NOW))
    assert found[sample("retryq_oldest_pending_age_seconds", workflow="default")] == 0
    assert found[sample("retryq_overdue_seconds", workflow="default")] == 0


def test_parse_reads_what_the_format_allows() -> None:
    text = (
        "# HELP x_total Something.\n"
        "# TYPE x_total counter\n"
        "\n"
        'x_total{a="1",b="} ,=\\"\\\\"} 3 1766138400000\n'  # a timestamp, and a value with } , = " \\
        "x_total 2.5\n"
        'y{a="+",} +Inf\n'  # a trailing comma is allowed
        "z NaN\n"
    )
    found = parse_metrics(text)
    assert found[sample("x_total", a="1", b='} ,="\\')] == 3
    assert found[sample("x_total")] == 2.5
    assert found[sample("y", a="+")] == float("inf")
    assert found[sample("z")] != found[sample("z")]  # NaN


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x{a=1} 2\n", "line 1: bad labels"),
        ('x{a="1" b="2"} 2\n', "line 1: bad labels"),
        ('x{a="1",a="2"} 2\n', "line 1: label 'a' given twice"),
        ("# TYPE x gauge\nx\n", "line 2: not a sample"),
        ("x one\n", "line 1: could not convert"),
        ('x{a="1"} 1\nx{a="1"} 2\n', "line 2: sample given twice"),
    ],
)
def test_parse_rejects_malformed_text(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_metrics(text)


def test_write_replaces_the_file_readable_by_all(tmp_path: Path) -> None:
    target = tmp_path / "retryq.prom"
    target.write_text("old\n")
    target.chmod(0o600)
    old_umask = os.umask(0o077)  # the mode must not depend on cron's umask
    try:
        write_metrics(target, "retryq_jobs 1\n")
    finally:
        os.umask(old_umask)
    assert target.read_text() == "retryq_jobs 1\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(path.name for path in tmp_path.iterdir()) == ["retryq.prom"]  # no temp file left


def test_write_into_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(StoreIOError) as caught:
        write_metrics(tmp_path / "nowhere" / "retryq.prom", "x 1\n")
    message = str(caught.value)
    assert (
        message == f"{tmp_path / 'nowhere' / 'retryq.prom'}: cannot write the metrics file: No such file or directory"
    )
    assert "\n" not in message


def test_a_failed_write_leaves_no_temp_file(tmp_path: Path) -> None:
    # os.replace cannot put a file over a non-empty directory.
    target = tmp_path / "retryq.prom"
    (target / "inside").mkdir(parents=True)
    with pytest.raises(StoreIOError, match=r"retryq\.prom: cannot write the metrics file: "):
        write_metrics(target, "x 1\n")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["retryq.prom"]
    assert target.is_dir()
