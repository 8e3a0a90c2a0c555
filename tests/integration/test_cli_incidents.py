"""Upstream incidents and pauses through the CLI, on a queue file: incidents, pause, resume, and what
process, list, show, doctor, stats and the metrics say of them; the state file beside the queue, broken or gone."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retryq.reporting.metrics import parse_metrics

from ..helpers import FakeWorkflow, invoke, write_script

STATE = Path(".retry-queue.json.state.json")


@pytest.fixture
def configured(workflow: FakeWorkflow, tmp_path: Path) -> FakeWorkflow:
    """A default workflow with a breaker that opens at 2 failures, an on_incident hook that records each call,
    and a second workflow (ftp) without one."""
    log = tmp_path / "hook.log"
    hook = write_script(
        tmp_path / "hook.sh", f'printf "%s %s " "$1" "$RETRYQ_INCIDENT_EVENT" >> {log}\ncat >> {log}\necho >> {log}\n'
    )
    Path("retryq.toml").write_text(
        "[breaker]\nfailures = 2\n"
        f"[workflow]\ncommand = {json.dumps(workflow.argv())}\n"
        f'on_incident = ["{hook}", "{{incident}}"]\n'
        f"[workflows.ftp]\ncommand = {json.dumps(workflow.argv())}\nbreaker = false\n"
    )
    return workflow


def hook_calls(tmp_path: Path) -> list[tuple[str, str, dict[str, object]]]:
    log = tmp_path / "hook.log"
    if not log.exists():
        return []
    calls = []
    for line in log.read_text().splitlines():
        incident, event, payload = line.split(" ", 2)
        calls.append((incident, event, json.loads(payload)))
    return calls


def schedule(cli: CliRunner, *clients: str, workflow: str = "default") -> None:
    for client in clients:
        assert invoke(cli, "schedule", client, "2025-12-19", "0", "--workflow", workflow).exit_code == 0


def test_an_outage_is_one_incident_that_every_command_shows_and_resume_closes(
    cli: CliRunner, configured: FakeWorkflow, tmp_path: Path
) -> None:
    configured.exits(75, 75)
    schedule(cli, "a", "b", "c")
    result = invoke(cli, "process")
    assert result.exit_code == 0, result.output
    assert len(configured.calls()) == 2  # the third is held
    [incident] = [line for line in result.stdout.splitlines() if "warning: incident" in line]
    ident = re.search(r"incident (\S+) opened: 2 jobs of workflow default failed \(exit 75 ×2\)", incident)
    assert ident is not None, incident
    ident_text = ident[1]
    [held] = [line for line in result.stdout.splitlines() if " held: " in line]
    assert f"held: workflow default, incident {ident_text} open since" in held
    assert held.endswith("(3 jobs due)")
    assert result.stdout.splitlines()[-1].endswith("held 3, attempts not counted 2")

    shown = invoke(cli, "incidents")
    assert shown.exit_code == 0
    header, row = shown.stdout.splitlines()
    assert header.split() == [
        "ID",
        "WORKFLOW",
        "OPENED",
        "CLOSED",
        "HOW",
        "FAILURES",
        "HELD",
        "PROBES",
        "GIVEN",
        "BACK",
        "SEEN",
    ]
    assert row.split()[:2] == [ident_text, "default"]
    assert row.split()[3:8] == ["open", "2", "3", "0", "2"]
    [opened] = json.loads(invoke(cli, "incidents", "--json").stdout)["incidents"]
    assert (opened["id"], opened["closedAt"], opened["heldJobs"], opened["givenBack"]) == (ident_text, None, 3, 2)

    listed = invoke(cli, "list").stdout
    assert listed.count(f"held: incident {ident_text}") == 3
    assert listed.count("incomplete (exit 75), not counted") == 2
    job_id = json.loads(invoke(cli, "list", "--json").stdout)[0]["id"]
    assert "held" in invoke(cli, "show", job_id).stdout

    doctor = invoke(cli, "doctor")
    assert f"warning: workflow default: upstream incident {ident_text} open since" in doctor.stdout
    stats = json.loads(invoke(cli, "stats", "--json").stdout)["incidents"]
    assert (stats["count"], stats["jobsHeld"], stats["attemptsGivenBack"], stats["chainsOverlapped"]) == (1, 3, 2, 3)
    assert "upstream incidents: 1 (1 open); attempts given back: 2" in invoke(cli, "stats").stdout

    assert invoke(cli, "process", "--metrics-file", "retryq.prom").exit_code == 0
    samples = parse_metrics(Path("retryq.prom").read_text())
    assert samples[("retryq_incidents_open", frozenset({("workflow", "default")}))] == 1
    assert samples[("retryq_held_jobs", frozenset({("workflow", "default")}))] == 3
    assert samples[("retryq_workflow_paused", frozenset({("workflow", "ftp")}))] == 0

    resumed = invoke(cli, "resume", "default")
    assert resumed.stdout == f"resumed workflow default: incident {ident_text} closed (2 attempts given back)\n"
    assert [(each[0], each[1]) for each in hook_calls(tmp_path)] == [(ident_text, "opened"), (ident_text, "closed")]
    assert hook_calls(tmp_path)[1][2]["closedBy"] == "resume"
    configured.exits(75, 75, 0, 0, 0)
    assert "succeeded 3" in invoke(cli, "process").stdout
    assert [each["attempt"] for each in configured.calls()] == ["1", "1", "1", "1", "1"]  # none counted
    everything = json.loads(invoke(cli, "incidents", "--all", "--json").stdout)["incidents"]
    assert [(each["id"], each["closedBy"]) for each in everything] == [(ident_text, "resume")]


def test_a_pause_holds_a_workflow_until_resumed_and_names_who_and_why(cli: CliRunner, configured: FakeWorkflow) -> None:
    schedule(cli, "a", workflow="ftp")
    schedule(cli, "b")
    paused = invoke(cli, "pause", "ftp", "--for", "2h", "--reason", "BOAMP maintenance 14:00-16:00")
    assert paused.exit_code == 0
    assert re.fullmatch(
        r"paused workflow ftp until \S+Z \(since \S+Z; by \S+@\S+, BOAMP maintenance 14:00-16:00\)\n", paused.stdout
    )
    result = invoke(cli, "process")
    assert [call["argv"] for call in configured.calls()] == ["b 2025-12-19"]
    assert "held: workflow ftp paused until" in result.stdout
    assert "paused: workflow ftp until" in invoke(cli, "incidents").stdout
    assert invoke(cli, "list", "--workflow", "ftp").stdout.count("held: paused") == 1
    assert "warning: workflow ftp is paused until" in invoke(cli, "doctor").stdout
    assert invoke(cli, "resume", "ftp").stdout == "resumed workflow ftp: pause lifted\n"
    assert invoke(cli, "resume", "ftp").stdout == "workflow ftp was not held: nothing to do\n"
    invoke(cli, "process")
    assert [call["argv"] for call in configured.calls()] == ["b 2025-12-19", "a 2025-12-19"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pause", "nope"], "unknown workflow 'nope' (configured: default, ftp)"),
        (["resume", "nope"], "unknown workflow 'nope' (configured: default, ftp)"),
        (["pause", "ftp", "--for", "0"], "--for must be more than 0"),
        (["pause", "ftp", "--for", "soon"], "soon"),
        (["pause", "ftp", "--reason", "x" * 201], "a pause's reason is 1 to 200 characters of one line"),
    ],
)
def test_a_pause_that_cannot_be_is_one_line_and_exit_2(
    cli: CliRunner, configured: FakeWorkflow, args: list[str], message: str
) -> None:
    result = invoke(cli, *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("retryq: error: ")
    assert message in line
    assert not STATE.exists()


def test_a_corrupt_state_file_is_one_line_and_exit_65_and_loses_no_job(
    cli: CliRunner, configured: FakeWorkflow
) -> None:
    schedule(cli, "a", "b")
    queue = Path(".retry-queue.json").read_bytes()
    STATE.write_text("{not json")
    result = invoke(cli, "process")
    assert result.exit_code == 65
    [line] = result.stderr.splitlines()
    assert line.startswith("retryq: error: ")
    assert "not a state file" in line
    assert "the jobs are intact; move it aside to start the state afresh" in line
    assert configured.calls() == []
    assert Path(".retry-queue.json").read_bytes() == queue
    assert STATE.read_text() == "{not json"  # left for a human
    assert invoke(cli, "list").exit_code == 0  # reading the jobs needs no state
    assert "problem: state: " in invoke(cli, "doctor").stdout
    STATE.unlink()  # moved aside: every feature starts afresh, nothing was lost
    assert "succeeded 2" in invoke(cli, "process").stdout


def test_a_state_document_that_is_not_what_retryq_writes_is_started_afresh_with_a_warning(
    cli: CliRunner, configured: FakeWorkflow
) -> None:
    schedule(cli, "a")
    STATE.write_text('{"retryqState": 1, "documents": {"workflow:default": {"incident": {"id": 3}}}}\n')
    result = invoke(cli, "process")
    assert result.exit_code == 0
    assert "warning: state document workflow:default: not a workflow's breaker state" in result.stdout
    assert "succeeded 1" in result.stdout
    assert "problem: state document workflow:default" not in invoke(cli, "doctor").stdout  # rewritten afresh


def test_every_new_command_has_help_with_an_example(cli: CliRunner) -> None:
    for command in ("incidents", "pause", "resume"):
        result = invoke(cli, command, "--help")
        assert result.exit_code == 0
        assert "Example:" in result.stdout, command


def test_a_quoted_command_in_the_hook_never_reaches_a_shell(tmp_path: Path) -> None:
    from retryq.record.breakerstate import Incident
    from retryq.record.timeutil import utcnow
    from retryq.running.notify import run_incident_hook

    out = tmp_path / "argv"
    script = write_script(tmp_path / "argv.sh", f'printf "%s|" "$@" > {shlex.quote(str(out))}\n')
    incident = Incident("x; rm -rf /", "default", utcnow(), 5)
    from datetime import timedelta

    assert run_incident_hook(
        incident, "opened", (str(script), "{incident}", "{workflow}"), timeout=timedelta(seconds=30)
    )
    assert out.read_text() == "x; rm -rf /|default|"


def test_a_missing_state_file_starts_afresh_and_loses_no_job(cli: CliRunner, configured: FakeWorkflow) -> None:
    configured.exits(75, 75)
    schedule(cli, "a", "b", "c")
    invoke(cli, "process")
    assert len(json.loads(invoke(cli, "incidents", "--json").stdout)["incidents"]) == 1
    STATE.unlink()  # lost (a restore from a backup that forgot it): no incident is open any more
    assert json.loads(invoke(cli, "incidents", "--json").stdout) == {"incidents": [], "paused": {}}
    result = invoke(cli, "process")
    assert result.exit_code == 0
    assert "succeeded 3" in result.stdout
    jobs = json.loads(invoke(cli, "list", "--json").stdout)
    assert {(job["status"], job["attempt"]) for job in jobs} == {("completed", 1)}  # the given back stay given back


def test_a_dry_run_says_which_jobs_it_would_hold_and_why(cli: CliRunner, configured: FakeWorkflow) -> None:
    schedule(cli, "a")
    schedule(cli, "b", workflow="ftp")
    invoke(cli, "pause", "ftp")
    lines = invoke(cli, "process", "--dry-run").stdout.splitlines()
    assert any(re.fullmatch(r"  would run \S+ a 2025-12-19 #1: .*workflow\.sh a 2025-12-19", line) for line in lines)
    assert any(re.fullmatch(r"  would hold \S+ ftp:b 2025-12-19 #1: paused", line) for line in lines)
    assert configured.calls() == []


def test_reports_of_error_from_fetchers_open_an_incident_before_any_retry_runs(
    cli: CliRunner, configured: FakeWorkflow, tmp_path: Path
) -> None:
    """The seed's scenario 3 as fetchers see it: the API answers with 50 of 650 notices for every client."""
    for client in ("a", "b"):
        result = invoke(cli, "report", client, "2025-12-19", "--total", "650", "--fetched", "600", "--delay", "0")
        assert result.exit_code == 3  # ERROR, as before: the fetcher fails fast
    [incident] = json.loads(invoke(cli, "incidents", "--json").stdout)["incidents"]
    assert (incident["failures"], incident["seen"], incident["givenBack"]) == (2, {"report ERROR": 2}, 0)
    assert [(each[1], each[0]) for each in hook_calls(tmp_path)] == [("opened", incident["id"])]
    assert "held: workflow default, incident" in invoke(cli, "process").stdout
    assert configured.calls() == []  # the retries wait for the upstream: no attempt spent
    invoke(cli, "report", "c", "2025-12-19", "--total", "650", "--fetched", "648", "--delay", "0")  # DEGRADED
    assert json.loads(invoke(cli, "incidents", "--json").stdout)["incidents"][0]["failures"] == 2
