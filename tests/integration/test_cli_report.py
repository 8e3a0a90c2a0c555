"""`retryq report` for fetchers in other languages, and the BOAMP scenarios through real runs."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from freezegun import freeze_time
from typer.testing import CliRunner

from retryq import JsonFileStore
from retryq.record.models import JobStatus, Outcome
from retryq.record.timeutil import format_utc

from ..helpers import invoke, write_script

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


def lines(text: str) -> list[str]:
    return [re.sub(rf"^{STAMP} ", "", line) for line in text.splitlines()]


def test_a_tolerated_inconsistency_is_one_line_in_a_log(cli: CliRunner) -> None:
    result = invoke(cli, "report", "balthazar", "2025-12-19", "--total", "650", "--fetched", "648")
    assert result.exit_code == 0
    [job] = json.loads(Path(".retry-queue.json").read_text())
    assert lines(result.stdout) == [
        "balthazar 2025-12-19 warning: DEGRADED: 2 of 650 missing (0.31%), tolerated (at most 3, or at most 0.50%); "
        f"retry scheduled in 60 minutes: job {job['id']}, due {job['executeAt']}, attempt 1 of 3"
    ]


def test_a_tolerated_inconsistency_in_detail(cli: CliRunner) -> None:
    result = invoke(cli, "report", "balthazar", "2025-12-19", "--total", "650", "--fetched", "648", "--verbose")
    assert result.exit_code == 0
    [job] = json.loads(Path(".retry-queue.json").read_text())
    assert lines(result.stdout) == [
        "balthazar 2025-12-19 warning: inconsistency: missing=2 total=650 fetched=648 ratio=0.31%",
        "balthazar 2025-12-19 warning: tolerated: 2 missing is within the threshold (at most 3, or at most 0.50%)",
        f"balthazar 2025-12-19 retry scheduled in 60 minutes: job {job['id']}, due {job['executeAt']}, attempt 1 of 3",
    ]


def test_a_critical_inconsistency_exits_3_and_still_schedules(cli: CliRunner) -> None:
    result = invoke(cli, "report", "balthazar", "2025-12-19", "--total", "650", "--fetched", "600", "--delay", "90m")
    assert result.exit_code == 3
    assert lines(result.stdout)[0].startswith(
        "balthazar 2025-12-19 error: ERROR: 50 of 650 missing (7.69%), beyond the threshold "
        "(more than 3 and more than 0.50%); retry scheduled in 90 minutes (as asked): "
    )
    [job] = json.loads(Path(".retry-queue.json").read_text())
    assert job["delayMinutes"] == 90


def test_complete_fetch(cli: CliRunner) -> None:
    result = invoke(cli, "report", "balthazar", "2025-12-19", "--total", "650", "--fetched", "650")
    assert (result.exit_code, lines(result.stdout)) == (
        0,
        ["balthazar 2025-12-19 complete: 650 of 650 fetched; no retry needed"],
    )
    assert not Path(".retry-queue.json").exists()


def test_json_output(cli: CliRunner) -> None:
    result = invoke(cli, "report", "balthazar", "2025-12-19", "--total", "650", "--fetched", "647", "--json")
    printed = json.loads(result.stdout)
    assert {key: printed[key] for key in ("total", "fetched", "missing", "status")} == {
        "total": 650,
        "fetched": 647,
        "missing": 3,
        "status": "DEGRADED",
    }
    assert printed["retry"]["outcome"] == "created"


def test_thresholds_from_the_config(cli: CliRunner) -> None:
    Path("retryq.toml").write_text("[report]\nmax_missing = 0\nmax_ratio = 0\ndelay = 15\n")
    result = invoke(cli, "report", "balthazar", "2025-12-19", "--total", "650", "--fetched", "649")
    assert result.exit_code == 3
    assert json.loads(Path(".retry-queue.json").read_text())[0]["delayMinutes"] == 15


def test_bad_counts_exit_2(cli: CliRunner) -> None:
    result = invoke(cli, "report", "balthazar", "2025-12-19", "--total", "-1", "--fetched", "0")
    assert result.exit_code == 2
    assert result.stderr.startswith("retryq: error: Invalid value for '--total'")


def test_the_persistent_scenario_runs_as_one_chain(cli: CliRunner, tmp_path: Path) -> None:
    """A persistent inconsistency: 3 missing at first, 2 at the first retry, none at the second."""
    counts = tmp_path / "fetched.txt"
    counts.write_text("648\n650\n")
    fetcher = write_script(
        tmp_path / "fetch.sh",
        f"""
fetched=$(head -n 1 {counts}); sed -i 1d {counts}
exec retryq report "$1" "$2" --total 650 --fetched "$fetched" --delay 0
""",
    )
    env = {"RETRYQ_COMMAND": f"{fetcher} {{client}} {{date}}", "PATH": _venv_path()}
    first = invoke(
        cli, "report", "balthazar", "2025-12-19", "--total", "650", "--fetched", "647", "--delay", "0", env=env
    )
    assert first.exit_code == 0
    result = invoke(cli, "process", env=env)
    assert result.exit_code == 0, result.output
    assert "running now: attempt 2 of 3 will be due " in result.stdout
    assert "at the earliest (0 minutes after this one, as asked; job " in result.stdout
    again = invoke(cli, "process", env=env)  # the next cron tick runs attempt 2
    assert again.exit_code == 0, again.output
    [job] = JsonFileStore(".retry-queue.json").load()
    assert (job.status, job.attempt) == (JobStatus.COMPLETED, 2)
    assert [a.outcome for a in job.history] == [Outcome.INCOMPLETE, Outcome.SUCCEEDED]


def _venv_path() -> str:
    import os
    import sys

    return f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"


def test_a_follow_up_on_the_last_attempt_says_the_job_ends_failed(cli: CliRunner, tmp_path: Path) -> None:
    fetcher = write_script(tmp_path / "fetch.sh", 'exec retryq report "$1" "$2" --total 650 --fetched 649 --delay 0\n')
    env = {"RETRYQ_COMMAND": f"{fetcher} {{client}} {{date}}", "PATH": _venv_path()}
    invoke(cli, "schedule", "balthazar", "2025-12-19", "0", "--max-attempts", "1", env=env)
    result = invoke(cli, "process", env=env)
    assert "running its last attempt (1 of 1): job " in result.stdout
    assert "will end failed" in result.stdout
    [job] = JsonFileStore(".retry-queue.json").load()
    assert job.status is JobStatus.FAILED


def test_more_fetched_than_announced_warns_and_schedules_nothing(cli: CliRunner) -> None:
    result = invoke(cli, "report", "balthazar", "2025-12-19", "--total", "650", "--fetched", "652")
    assert result.exit_code == 0
    assert lines(result.stdout) == [
        "balthazar 2025-12-19 warning: the source returned more than it announced: 652 fetched of 650 announced; "
        "nothing scheduled"
    ]
    assert not Path(".retry-queue.json").exists()
    printed = json.loads(
        invoke(cli, "report", "balthazar", "2025-12-19", "--total", "1", "--fetched", "3", "--json").stdout
    )
    assert (printed["surplus"], printed["retry"]) == (2, None)


def test_report_fetch_logs_what_the_command_prints(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from retryq import Config, RetryQueue

    queue = RetryQueue(tmp_path / "q.json", config=Config())
    with caplog.at_level(logging.INFO, logger="retryq"):
        report = queue.report_fetch("balthazar", "2025-12-19", total=650, fetched=647)
    assert report.retry is not None
    assert report.next_due == report.retry.job.execute_at
    [record] = caplog.records
    assert (record.levelno, record.getMessage()) == (
        logging.WARNING,
        "DEGRADED: 3 of 650 missing (0.46%), tolerated (at most 3, or at most 0.50%); retry scheduled in 60 "
        f"minutes: job {report.retry.job.id}, due {format_utc(report.next_due)}, attempt 1 of 3",
    )


# -- adaptive delays -------------------------------------------------------------------------------------

BY_STATUS = '[report]\ndelay = { degraded = "60m", error = "20m" }\n'


@freeze_time("2025-12-19T10:00:00Z")
def test_a_degraded_and_an_error_fetch_are_scheduled_at_their_configured_delays(cli: CliRunner) -> None:
    Path("retryq.toml").write_text(BY_STATUS)
    degraded = invoke(cli, "report", "balthazar", "2025-12-19", "--total", "650", "--fetched", "647")
    error = invoke(cli, "report", "acme", "2025-12-19", "--total", "650", "--fetched", "600")
    assert (degraded.exit_code, error.exit_code) == (0, 3)
    jobs = {job["clientId"]: job for job in json.loads(Path(".retry-queue.json").read_text())}
    assert {client: (job["delayMinutes"], job["executeAt"]) for client, job in jobs.items()} == {
        "balthazar": (60, "2025-12-19T11:00:00.000Z"),
        "acme": (20, "2025-12-19T10:20:00.000Z"),
    }
    assert degraded.stdout == (
        "2025-12-19T10:00:00.000Z balthazar 2025-12-19 warning: DEGRADED: 3 of 650 missing (0.46%), tolerated "
        "(at most 3, or at most 0.50%); retry scheduled in 60 minutes (delay for DEGRADED): "
        f"job {jobs['balthazar']['id']}, due 2025-12-19T11:00:00.000Z, attempt 1 of 3\n"
    )
    assert error.stdout == (
        "2025-12-19T10:00:00.000Z acme 2025-12-19 error: ERROR: 50 of 650 missing (7.69%), beyond the threshold "
        "(more than 3 and more than 0.50%); retry scheduled in 20 minutes (delay for ERROR): "
        f"job {jobs['acme']['id']}, due 2025-12-19T10:20:00.000Z, attempt 1 of 3\n"
    )
    assert jobs["acme"]["detection"] == {
        "status": "ERROR",
        "total": 650,
        "missing": 50,
        "ratio": 50 / 650,
        "delayMinutes": 20,
        "reason": "delay for ERROR",
        "attempt": 1,
    }


@freeze_time("2025-12-19T10:00:00Z")
def test_bands_of_missing_ratio_from_the_config(cli: CliRunner) -> None:
    Path("retryq.toml").write_text(
        '[report]\ndelay = [ { up_to = 0.005, delay = "60m" }, { up_to = 0.05, delay = "30m" }, { delay = "15m" } ]\n'
    )
    for client, fetched in [("a", 648), ("b", 630), ("c", 600)]:
        invoke(cli, "report", client, "2025-12-19", "--total", "650", "--fetched", str(fetched))
    jobs = json.loads(Path(".retry-queue.json").read_text())
    assert [(job["clientId"], job["delayMinutes"], job["detection"]["reason"]) for job in jobs] == [
        ("a", 60, "delay for missing up to 0.5%"),
        ("b", 30, "delay for missing up to 5%"),
        ("c", 15, "delay for missing over 5%"),
    ]


def test_the_delay_option_still_overrides_the_policy(cli: CliRunner) -> None:
    Path("retryq.toml").write_text(BY_STATUS)
    result = invoke(cli, "report", "balthazar", "2025-12-19", "--total", "650", "--fetched", "600", "--delay", "5")
    assert "; retry scheduled in 5 minutes (as asked): job " in result.stdout
    [job] = json.loads(Path(".retry-queue.json").read_text())
    assert (job["delayMinutes"], job["detection"]["delayMinutes"], job["detection"]["reason"]) == (5, 5, "as asked")


def test_the_decision_in_detail_and_in_json(cli: CliRunner) -> None:
    Path("retryq.toml").write_text(BY_STATUS)
    verbose = invoke(cli, "report", "balthazar", "2025-12-19", "--total", "650", "--fetched", "600", "--verbose")
    [job] = json.loads(Path(".retry-queue.json").read_text())
    assert lines(verbose.stdout)[-1] == (
        f"balthazar 2025-12-19 retry scheduled in 20 minutes (delay for ERROR): job {job['id']}, "
        f"due {job['executeAt']}, attempt 1 of 3"
    )
    printed = json.loads(
        invoke(cli, "report", "acme", "2025-12-19", "--total", "650", "--fetched", "649", "--json").stdout
    )
    assert printed["decision"] == {"delayMinutes": 60, "reason": "delay for DEGRADED"}
    assert printed["retry"]["job"]["detection"]["status"] == "DEGRADED"
    complete = invoke(cli, "report", "acme", "2025-12-20", "--total", "650", "--fetched", "650", "--json")
    assert json.loads(complete.stdout)["decision"] is None


def test_a_nonsensical_delay_in_the_config_is_one_line_and_exit_78(cli: CliRunner) -> None:
    Path("retryq.toml").write_text('[report]\ndelay = [ { delay = "15m" }, { up_to = 0.05, delay = "30m" } ]\n')
    result = invoke(cli, "report", "balthazar", "2025-12-19", "--total", "650", "--fetched", "600")
    assert result.exit_code == 78
    assert result.stderr == (
        "retryq: error: retryq.toml: report.delay: band 1: only the last band may leave out up_to\n"
    )
    assert not Path(".retry-queue.json").exists()
