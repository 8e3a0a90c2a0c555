"""The dashboard without a browser: what it gathers, what the HTML holds, the command, the server."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import logging
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from retryq import JsonFileStore
from retryq.record.breakerstate import Incident, WorkflowState
from retryq.record.errors import QueueCorrupt
from retryq.record.models import Attempt, Job, JobStatus, Outcome
from retryq.record.timeutil import format_duration, utcnow
from retryq.reporting.dashboard import DashboardData, collect, render, serve, write_dashboard
from retryq.reporting.dashboard.server import WORKERS
from retryq.reporting.doctor import diagnose
from retryq.reporting.stats import job_history, resolution_stats
from retryq.stores import Plan, PlanResult

from ..helpers import FakeWorkflow, invoke, make_config, make_job, served_dashboard

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "retryq" / "reporting" / "dashboard"
#: Arbitrary text from a workflow's output: it must show as text and run nothing.
HOSTILE = '</script><script>window.pwned = true</script><img src=x onerror="window.pwned = true"> & "done"'


def chain(job_id: str, status: JobStatus, *, detected: datetime, attempt: int = 1, **fields: object) -> Job:
    """A job for ``balthazar`` detected at ``detected``, due an hour later; any field may be given."""
    values: dict[str, object] = {
        "id": job_id,
        "status": status,
        "attempt": attempt,
        "scheduled_at": detected,
        "execute_at": detected + timedelta(hours=attempt),
        "date": detected.date().isoformat(),
    }
    return make_job(**{**values, **fields})


def failed(job_id: str, *, detected: datetime, tail: str, **fields: object) -> Job:
    """A chain whose three attempts each exited 75, the last one printing ``tail``."""
    history = tuple(
        Attempt(
            attempt=n,
            started_at=detected + timedelta(hours=n),
            finished_at=detected + timedelta(hours=n, minutes=1),
            outcome=Outcome.INCOMPLETE,
            exit_code=75,
            output_tail=tail,
        )
        for n in (1, 2, 3)
    )
    return chain(
        job_id,
        JobStatus.FAILED,
        detected=detected,
        attempt=3,
        max_attempts=3,
        finished_at=detected + timedelta(hours=3, minutes=1),
        last_exit_code=75,
        last_error=f"exit 75: still incomplete\n{tail}",
        history=history,
        **fields,
    )


def recorded_history(path: Path, now: datetime) -> JsonFileStore:
    """Eleven chains over four days and three clients, of every ending; the oldest ones only in the archive."""
    day, hour, minute = timedelta(days=1), timedelta(hours=1), timedelta(minutes=1)
    start = now - 3 * day
    resolved = [
        chain("r1-a", JobStatus.COMPLETED, detected=start, finished_at=start + 62 * minute),
        chain("r1-b", JobStatus.COMPLETED, detected=start + hour, finished_at=start + 2 * hour),
        chain(
            "r1-c", JobStatus.COMPLETED, detected=start + day, client_id="acme", finished_at=start + day + 75 * minute
        ),
        chain("r1-d", JobStatus.COMPLETED, detected=start + 2 * day, finished_at=start + 2 * day + 58 * minute),
        chain(
            "r2-a",
            JobStatus.COMPLETED,
            detected=start + day,
            attempt=2,
            client_id="nord_habitat",
            finished_at=start + day + 2 * hour + 5 * minute,
        ),
        chain(
            "r2-b", JobStatus.COMPLETED, detected=start + 2 * day, attempt=2, finished_at=start + 2 * day + 121 * minute
        ),
    ]
    persistent = [
        failed("lost-a", detected=start + day, tail=f"fetched 640/650\n{HOSTILE}", client_id="acme"),
        failed("lost-b", detected=start + 2 * day, tail="fetched 647/650"),
    ]
    others = [
        chain("gone", JobStatus.CANCELLED, detected=start + 2 * day, client_id="acme", finished_at=start + 2 * day),
        chain("due", JobStatus.PENDING, detected=now - 2 * hour, execute_at=now - 5 * minute),
        chain("next", JobStatus.PENDING, detected=now - 30 * minute, client_id="acme", execute_at=now + 30 * minute),
    ]
    store = JsonFileStore(path)
    for job in [*resolved, *persistent, *others]:
        store.add(job, lambda job: job)
    store.update({job_id: lambda job: None for job_id in ("r1-a", "r1-b", "lost-a")})  # pruned into the archive
    # Two upstream incidents: one over two hours the day the last chain was lost, one open for an hour.
    outage = Incident("default-old", "default", start + 2 * day, 5, {"exit 75": 6}, probes=7, given_back=6, held=4)
    closed = replace(outage, closed_at=start + 2 * day + 2 * hour, closed_by="probe")
    now_open = Incident("default-now", "default", now - hour, 5, {"timeout": 5}, given_back=5)
    state = WorkflowState(incident=now_open, closed=(closed,))
    store.update(
        {}, plan=Plan(["workflow:default"], lambda docs, at, jobs: PlanResult({"workflow:default": state.to_doc()}))
    )
    return store


@pytest.fixture
def store(tmp_path: Path) -> JsonFileStore:
    return recorded_history(tmp_path / ".retry-queue.json", utcnow())


@pytest.fixture
def data(store: JsonFileStore, workflow: FakeWorkflow) -> DashboardData:
    return collect(make_config(workflow.argv()), store, now=utcnow())


class Page(HTMLParser):
    """The parts of the page the tests read: data-stat values, rows by key, scripts, the CSP."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.stats: dict[str, str] = {}
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.csp = ""
        self.attributes: list[tuple[str, str, str | None]] = []
        self._capture: list[tuple[str, list[str]]] = []  # (key, text parts) of open data-stat elements
        self._script: dict[str, str | None] | None = None
        self._script_text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.attributes += [(tag, name, value) for name, value in attrs]
        if tag == "meta" and found.get("http-equiv") == "Content-Security-Policy":
            self.csp = found.get("content") or ""
        if tag == "script":
            self._script, self._script_text = found, []
        if "data-stat" in found:
            self._capture.append((found["data-stat"] or "", []))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            self.scripts.append((self._script, "".join(self._script_text)))
            self._script = None
        if tag == "span" and self._capture:
            key, parts = self._capture.pop()
            self.stats[key] = "".join(parts).strip()

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._script_text.append(data)
        for _, parts in self._capture:
            parts.append(data)


# -- collect ---------------------------------------------------------------------------------------


def test_collect_gathers_the_statistics_the_jobs_and_the_findings(store: JsonFileStore, workflow: FakeWorkflow) -> None:
    now = utcnow()
    config = make_config(workflow.argv())
    data = collect(config, store, now=now)
    assert data.stats == resolution_stats(job_history(store), now=now)
    assert (data.stats.chains, data.stats.resolved_by_attempt) == (11, {1: 4, 2: 2})
    assert (data.stats.persistent, data.stats.open, data.stats.cancelled) == (2, 2, 1)
    # The lists are the chains the counts count: the open ones soonest due first, the failed ones latest first.
    assert [job.id for job in data.open_jobs] == ["due", "next"]
    assert [job.id for job in data.failed_jobs] == ["lost-b", "lost-a"]  # lost-a only in the archive
    assert list(data.findings) == diagnose(config, store, now=now)
    assert (data.generated_at, data.location) == (
        now.replace(microsecond=now.microsecond // 1000 * 1000),
        store.location,
    )


def test_collect_applies_the_filters_of_stats_to_the_lists_too(store: JsonFileStore, workflow: FakeWorkflow) -> None:
    now = utcnow()
    data = collect(make_config(workflow.argv()), store, now=now, client="acme")
    assert data.stats == resolution_stats(job_history(store), now=now, client="acme")
    assert ([job.id for job in data.open_jobs], [job.id for job in data.failed_jobs]) == (["next"], ["lost-a"])
    recent = collect(make_config(workflow.argv()), store, now=now, since=timedelta(hours=12))
    assert (recent.stats.chains, [job.id for job in recent.open_jobs], recent.failed_jobs) == (2, ["due", "next"], ())


def test_collect_reads_any_store() -> None:
    from retryq import MemoryStore

    now = utcnow()
    store = MemoryStore()
    store.add(chain("m", JobStatus.PENDING, detected=now), lambda job: job)
    data = collect(make_config(["true"]), store, now=now)
    assert (data.stats.open, [job.id for job in data.open_jobs]) == (1, ["m"])


# -- the page ----------------------------------------------------------------------------------------


def test_the_page_shows_the_numbers_of_the_statistics(data: DashboardData) -> None:
    page = Page(render(data))
    stats = data.stats.to_json_dict(breakdowns=True)
    assert page.stats["chains"] == str(stats["chains"]) == "11"
    assert page.stats["resolved"] == str(stats["resolved"])
    assert page.stats["resolvedPercent"] == f"{stats['resolvedPercent']:.1f}%" == "54.5%"
    assert page.stats["persistent"] == "2"
    assert (page.stats["open"], page.stats["cancelled"]) == ("2", "1")
    assert page.stats["delayMedian"] == format_duration(timedelta(seconds=stats["delaySeconds"]["median"]))
    assert page.stats["delayMax"] == "2h5m"
    # The chart script reads this very object: the page's numbers and the charts' come from one place.
    [(_, embedded)] = [(attrs, text) for attrs, text in page.scripts if attrs.get("id") == "retryq-stats"]
    assert data.upstream is not None
    assert json.loads(embedded) == {**stats, "incidents": data.upstream.to_json_dict()}


def test_workflow_output_shows_as_text_and_runs_nothing(data: DashboardData) -> None:
    html = render(data)
    assert "window.pwned" in html  # the text is there…
    assert "<script>window.pwned" not in html  # …but never as markup
    assert '<img src=x onerror="window.pwned' not in html
    assert "&lt;/script&gt;&lt;script&gt;window.pwned = true&lt;/script&gt;&lt;img src=x onerror=&#34;" in html
    page = Page(html)
    assert [attrs for attrs, _ in page.scripts] == [{"type": "application/json", "id": "retryq-stats"}, {}, {}]
    assert not [attribute for attribute in page.attributes if attribute[1].startswith("on")]


def test_embedded_data_cannot_close_its_script_element(data: DashboardData) -> None:
    # Client ids are validated, so the statistics never hold markup today; the embedding must not rely on it.
    hostile_client = "</script><script>window.pwned = true</script><!--"
    stats = replace(data.stats, by_client={hostile_client: data.stats})
    html = render(replace(data, stats=stats, client=hostile_client))
    assert "<script>window.pwned" not in html
    assert "<!--" not in html.split("<body>", 1)[1]
    page = Page(html)
    [embedded] = [text for attrs, text in page.scripts if attrs.get("id") == "retryq-stats"]
    assert list(json.loads(embedded)["byClient"]) == [hostile_client]
    assert len(page.scripts) == 3


def test_the_page_loads_nothing_and_runs_only_its_own_scripts(data: DashboardData) -> None:
    html = render(data)
    page = Page(html)
    urls = [value for _, name, value in page.attributes if name in {"src", "href", "action", "srcset", "poster"}]
    assert urls == ["data:,"]  # the empty icon, so that a browser does not ask the server for /favicon.ico
    assert "@import" not in html
    assert "url(" not in html.split("<style>", 1)[1].split("</style>", 1)[0]
    # The Content Security Policy allows exactly the inline scripts and the style of the page, by hash.
    code = [text for attrs, text in page.scripts if attrs.get("type") != "application/json"]
    style = html.split("<style>", 1)[1].split("</style>", 1)[0]

    def digest(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    assert page.csp == (
        f"default-src 'none'; script-src {' '.join(digest(text) for text in code)}; style-src {digest(style)}; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    assert "Chart.js v4.6.1" in code[0]
    assert "sourceMappingURL" not in html


def test_the_page_is_accessible_by_construction(data: DashboardData) -> None:
    html = render(data)
    assert '<html lang="en">' in html
    assert html.count("<h1>") == 1
    assert html.count("<canvas ") == 4
    assert html.count('role="img" aria-label="') == 4
    for table in ("table-resolution", "table-delay", "table-days", "table-incidents"):  # each chart's, as a table
        assert f'id="{table}"' in html
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html


def test_the_page_shows_upstream_incidents_and_calls_chains_chains(data: DashboardData) -> None:
    html = render(data)
    page = Page(html)
    assert (page.stats["incidents"], page.stats["attemptsGivenBack"], page.stats["jobsHeld"]) == ("2", "0", "1")
    rows = [value for name, key, value in page.attributes if name == "tr" and key == "data-incident"]
    assert rows == ["default-now", "default-old"]  # the latest first
    assert "Chains per day" in html
    assert "Incidents per day" not in html  # "incident" means an upstream outage only
    assert '<th scope="col" class="num">Incidents</th>' not in html


def test_times_are_utc_with_the_instant_for_local_time(data: DashboardData) -> None:
    html = render(data)
    due = data.open_jobs[0].execute_at
    stamp = due.strftime("%Y-%m-%dT%H:%M:%S.") + f"{due.microsecond // 1000:03d}Z"
    assert f'<time datetime="{stamp}">{due:%Y-%m-%d %H:%M} UTC</time>' in html


def test_refresh_only_when_asked(data: DashboardData) -> None:
    assert 'http-equiv="refresh"' not in render(data)
    assert '<meta http-equiv="refresh" content="30">' in render(data, refresh=timedelta(seconds=30))


def test_an_empty_queue_renders_without_charts(tmp_path: Path) -> None:
    data = collect(make_config(["true"]), JsonFileStore(tmp_path / "none.json"), now=utcnow())
    html = render(data)
    assert "<canvas" not in html
    assert "No inconsistency recorded." in html
    assert "No open job." in html
    assert "No failed job." in html
    assert Page(html).stats["chains"] == "0"


def test_long_lists_are_cut_and_say_so(data: DashboardData) -> None:
    many = replace(data, failed_jobs=data.failed_jobs * 20)
    html = render(many)
    assert html.count('<article class="failure"') == 25
    assert "The 25 latest are shown; <code>retryq list --status failed</code> lists them all." in html


def test_the_shipped_chart_library_is_the_published_one() -> None:
    library = PACKAGE / "assets" / "chartjs" / "chart.umd.min.js"
    # dist/chart.umd.min.js of chart.js 4.6.1 on the npm registry.
    assert hashlib.sha256(library.read_bytes()).hexdigest() == (
        "87364cc2b2a76a6684929e7d6b80b18a897794db38400caff1fcf1791c6925d2"
    )
    assert "Copyright (c) 2014-2024 Chart.js Contributors" in (library.parent / "LICENSE.md").read_text()


def test_the_package_data_covers_every_asset() -> None:
    """The wheel takes the templates and assets only through these patterns: a new file must match one."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    files = {
        path.relative_to(PACKAGE)
        for path in PACKAGE.rglob("*")
        if path.is_file() and path.suffix not in {".py", ".pyc"}
    }
    assert files, "no asset found"
    assert {path for path in files if not any(path.match(p) for p in patterns["retryq.reporting.dashboard"])} == set()


# -- write_dashboard and the command -----------------------------------------------------------------


def test_write_dashboard_replaces_the_file_privately_unless_told(
    store: JsonFileStore, workflow: FakeWorkflow, tmp_path: Path
) -> None:
    target = tmp_path / "www" / "retryq.html"
    target.parent.mkdir()
    target.write_text("old")
    target.chmod(0o644)
    data = collect(make_config(workflow.argv()), store, now=utcnow(), client="acme")
    write_dashboard(target, data)
    assert data.client == "acme"
    assert Page(target.read_text()).stats["chains"] == "4"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600  # output tails are in it: as private as the queue
    assert [path.name for path in target.parent.iterdir()] == ["retryq.html"]  # no temp file left behind
    write_dashboard(target, data, mode=0o644)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that lets everyone read what is created (022, the usual one)."""
    saved = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(saved)


@pytest.mark.usefixtures("open_umask")
@pytest.mark.parametrize(
    ("queue_mode", "config", "page_mode"),
    [
        (0o600, "", 0o600),
        (0o640, "", 0o640),
        (0o600, 'dashboard_mode = "0644"\n', 0o644),
        (0o600, "dashboard_mode = 0o640\n", 0o640),
    ],
)
def test_the_page_takes_the_queue_files_mode_unless_configured(
    cli: CliRunner, store: JsonFileStore, queue_mode: int, config: str, page_mode: int
) -> None:
    Path(".retry-queue.json").chmod(queue_mode)
    Path("retryq.toml").write_text(config)
    assert invoke(cli, "dashboard", "--output", "page.html").exit_code == 0
    assert stat.S_IMODE(Path("page.html").stat().st_mode) == page_mode


@pytest.mark.usefixtures("open_umask")
def test_the_page_process_writes_takes_the_queue_files_mode(cli: CliRunner, workflow: FakeWorkflow) -> None:
    env = {"RETRYQ_COMMAND": workflow.command}
    invoke(cli, "schedule", "balthazar", "2025-12-19", "0", env=env)
    assert invoke(cli, "process", "--dashboard", "page.html", env=env).exit_code == 0
    assert stat.S_IMODE(Path("page.html").stat().st_mode) == 0o600


@pytest.mark.parametrize("value", ['"0999"', '"rw-r--r--"', "1024", "-1", "true"])
def test_a_mode_that_is_not_one_is_refused(cli: CliRunner, value: str) -> None:
    Path("retryq.toml").write_text(f"dashboard_mode = {value}\n")
    result = invoke(cli, "dashboard", "--output", "page.html")
    assert result.exit_code == 78
    assert result.stderr.startswith("retryq: error: retryq.toml: dashboard_mode: ")
    assert result.stderr.count("\n") == 1


def test_chains_that_finished_before_they_were_detected_are_named_not_timed(data: DashboardData) -> None:
    typo = chain("typo", JobStatus.COMPLETED, detected=utcnow(), finished_at=utcnow() - timedelta(days=2530))
    stats = resolution_stats([*job_history_of(data), typo], now=data.generated_at)
    html = render(replace(data, stats=stats))
    assert "Left out: 1 resolved chain whose finishedAt comes before its scheduledAt" in html
    assert "<code>typo</code>" in html
    assert "-2530d" not in html
    assert "Left out:" not in render(data)


def job_history_of(data: DashboardData) -> list[Job]:
    return [*data.open_jobs, *data.failed_jobs]


def test_output_tails_can_be_left_out_of_the_page(data: DashboardData) -> None:
    shown, hidden = render(data), render(data, tails=False)
    assert "fetched 647/650" in shown
    assert "fetched 647/650" not in hidden
    assert "window.pwned" not in hidden
    assert "Output tails are not shown" in hidden
    assert "exit 75: still incomplete" in hidden  # the error retryq wrote stays


@pytest.mark.parametrize(("config", "option"), [("", "--no-tails"), ("dashboard_tails = false\n", None)])
def test_the_command_and_process_leave_tails_out_when_told(
    cli: CliRunner, store: JsonFileStore, workflow: FakeWorkflow, config: str, option: str | None
) -> None:
    Path("retryq.toml").write_text(config)
    assert invoke(cli, "dashboard", "--output", "page.html", *([option] if option else [])).exit_code == 0
    assert "fetched 647/650" not in Path("page.html").read_text()
    assert "fetched 647/650" in Path(".retry-queue.json").read_text()
    if option is None:
        assert (
            invoke(cli, "process", "--dashboard", "after.html", env={"RETRYQ_COMMAND": workflow.command}).exit_code == 0
        )
        assert "fetched 647/650" not in Path("after.html").read_text()
        assert invoke(cli, "dashboard", "--output", "asked.html", "--tails").exit_code == 0
        assert "fetched 647/650" in Path("asked.html").read_text()


def test_the_command_writes_the_numbers_of_stats_json(cli: CliRunner, store: JsonFileStore) -> None:
    for filters in ([], ["--client", "acme"], ["--since", "36h"], ["--workflow", "default", "--since", "30"]):
        stats = json.loads(invoke(cli, "stats", "--json", *filters).stdout)
        result = invoke(cli, "dashboard", "--output", "report.html", *filters)
        assert (result.exit_code, result.stdout) == (0, "wrote report.html\n")
        html = Path("report.html").read_text()
        page = Page(html)
        assert page.stats["chains"] == str(stats["chains"])
        assert page.stats["resolvedPercent"] == f"{stats['resolvedPercent']:.1f}%"
        [embedded] = [text for attrs, text in page.scripts if attrs.get("id") == "retryq-stats"]
        # Two runs a moment apart: the day list may have gained a day at midnight, nothing else may differ.
        assert {**json.loads(embedded), "byDay": None} == {**stats, "byDay": None}


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        ([], 2, "retryq: error: give either --output FILE or --serve (see 'retryq dashboard --help')\n"),
        (["--output", "x.html", "--serve"], 2, "give either --output FILE or --serve"),
        (["--output", "missing/x.html"], 74, "retryq: error: missing/x.html: cannot write the dashboard: "),
        (["--output", "x.html", "--since", "soon"], 2, "not a duration: 'soon'"),
    ],
)
def test_the_command_refuses(cli: CliRunner, args: list[str], code: int, message: str) -> None:
    result = invoke(cli, "dashboard", *args)
    assert result.exit_code == code
    assert message in result.stderr
    assert not Path("x.html").exists()


def test_refresh_of_a_written_page(cli: CliRunner) -> None:
    invoke(cli, "dashboard", "--output", "still.html")
    assert 'http-equiv="refresh"' not in Path("still.html").read_text()
    invoke(cli, "dashboard", "--output", "fresh.html", "--refresh", "5m")
    assert '<meta http-equiv="refresh" content="300">' in Path("fresh.html").read_text()


def test_a_corrupt_queue_exits_65(cli: CliRunner) -> None:
    Path(".retry-queue.json").write_text("[{")
    result = invoke(cli, "dashboard", "--output", "x.html")
    assert result.exit_code == 65
    assert not Path("x.html").exists()


def run_python(code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("RETRYQ_")}
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_without_the_extra_one_line_says_what_to_install(tmp_path: Path) -> None:
    # Jinja2 made unimportable, as in an install without the dashboard extra.
    code = "import sys; sys.modules['jinja2'] = None; from retryq.cli import main; sys.argv[0] = 'retryq'; main()"
    result = run_python(code, "dashboard", "--output", "x.html", cwd=tmp_path)
    assert result.returncode == 78
    assert result.stderr == (
        "retryq: error: the dashboard needs Jinja2, which the dashboard extra installs: "
        "pip install 'retryq[dashboard]'\n"
    )
    assert result.stdout == ""
    assert not (tmp_path / "x.html").exists()


def test_process_rewrites_the_dashboard_after_each_run(cli: CliRunner, workflow: FakeWorkflow) -> None:
    Path("retryq.toml").write_text(
        f'dashboard = "pages/retryq.html"\n[workflow]\ncommand = {workflow.argv()!r}\n'.replace("'", '"')
    )
    Path("pages").mkdir()
    invoke(cli, "schedule", "balthazar", "2025-12-19", "0")
    assert invoke(cli, "process").exit_code == 0
    first = Page(Path("pages/retryq.html").read_text())
    assert first.stats["chains"] == "1"
    invoke(cli, "schedule", "acme", "2025-12-19", "0")
    other = Path("elsewhere.html")
    assert invoke(cli, "process", "--dashboard", str(other)).exit_code == 0  # the option wins over the key
    assert Page(other.read_text()).stats["chains"] == "2"
    stats = json.loads(invoke(cli, "stats", "--json").stdout)
    [embedded] = [text for attrs, text in Page(other.read_text()).scripts if attrs.get("id") == "retryq-stats"]
    assert {**json.loads(embedded), "byDay": None} == {**stats, "byDay": None}


def test_a_dashboard_that_cannot_be_written_never_fails_the_run(cli: CliRunner, workflow: FakeWorkflow) -> None:
    invoke(cli, "schedule", "balthazar", "2025-12-19", "0", env={"RETRYQ_COMMAND": workflow.command})
    result = invoke(cli, "process", "--dashboard", "missing/x.html", env={"RETRYQ_COMMAND": workflow.command})
    assert result.exit_code == 0
    assert "error: dashboard not written: missing/x.html: cannot write the dashboard" in result.stdout
    assert [job.status for job in JsonFileStore(".retry-queue.json").load()] == [JobStatus.COMPLETED]


def test_process_without_the_extra_says_so_and_runs_the_jobs(tmp_path: Path, workflow: FakeWorkflow) -> None:
    code = "import sys; sys.modules['jinja2'] = None; from retryq.cli import main; sys.argv[0] = 'retryq'; main()"
    env_command = f"import os; os.environ['RETRYQ_COMMAND'] = {workflow.command!r}; "
    assert run_python(env_command + code, "schedule", "balthazar", "2025-12-19", "0", cwd=tmp_path).returncode == 0
    result = run_python(env_command + code, "process", "--dashboard", "x.html", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "dashboard not written: the dashboard needs Jinja2" in result.stdout
    assert "succeeded 1" in result.stdout


@pytest.mark.parametrize("args", [["--help"], ["schedule", "balthazar", "2025-12-19", "60"], ["stats", "--json"]])
def test_other_commands_import_neither_jinja2_nor_the_dashboard(tmp_path: Path, args: list[str]) -> None:
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print(sorted(m for m in sys.modules if m.split('.')[0] == 'jinja2'"
        " or m.startswith('retryq.reporting.dashboard')), file=sys.stderr))\n"
        "from retryq.cli import main\n"
        "sys.argv[0] = 'retryq'\n"
        "main()\n"
    )
    result = run_python(code, *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[-1] == "[]"


# -- serving -----------------------------------------------------------------------------------------


def fetch(url: str, method: str = "GET") -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, method=method)  # noqa: S310 - a loopback URL of the test
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def test_serve_builds_the_page_for_each_request_until_stopped() -> None:
    builds: list[int] = []

    def build() -> str:
        builds.append(1)
        if len(builds) == 3:
            raise QueueCorrupt("queue.json: not valid JSON at line 1 <here>")
        return f"<p>build {len(builds)}</p>"

    urls: list[str] = []
    ready, stop = threading.Event(), threading.Event()
    result: list[int] = []

    def on_ready(url: str) -> None:
        urls.append(url)
        ready.set()

    server = threading.Thread(target=lambda: result.append(serve(build, port=0, on_ready=on_ready, stop=stop)))
    server.start()
    try:
        assert ready.wait(60)
        [url] = urls
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url)
        status, headers, body = fetch(url)
        assert (status, body) == (200, "<p>build 1</p>")
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        assert headers["Cache-Control"] == "no-store"
        assert fetch(url + "index.html")[2] == "<p>build 2</p>"
        status, _, body = fetch(url)  # a build that fails is a page saying why, and the server carries on
        assert status == 503
        assert "not valid JSON at line 1 &lt;here&gt;" in body
        assert fetch(url + "?again")[:3:2] == (200, "<p>build 4</p>")
        assert fetch(url + "other")[0] == 404
        assert fetch(url + "favicon.ico")[0] == 204
        assert fetch(url, method="HEAD")[0] == 200
    finally:
        stop.set()
        server.join(60)
    assert result == [0]


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_the_served_dashboard_stops_on_a_signal(
    retryq_bin: str, store: JsonFileStore, tmp_path: Path, sig: int, code: int
) -> None:
    with served_dashboard(retryq_bin, tmp_path, "--refresh", "5m") as (server, url):
        status, _, body = fetch(url)
        assert status == 200
        assert '<meta http-equiv="refresh" content="300">' in body
        assert Page(body).stats["chains"] == "11"
        server.send_signal(sig)
        out, err = server.communicate(timeout=60)
    assert (server.returncode, out, err) == (code, "dashboard server stopped\n", "")


def test_a_port_in_use_is_one_line(cli: CliRunner) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = invoke(cli, "dashboard", "--serve", "--port", str(taken.getsockname()[1]))
    assert result.exit_code == 1
    assert re.fullmatch(r"retryq: error: cannot listen on 127\.0\.0\.1:\d+: .+\n", result.stderr)


# -- serving safely: the Host it was bound for, idle connections, threads, a token ------------------


@contextlib.contextmanager
def serving(build: Callable[[], str], **options: Any) -> Iterator[int]:
    """`serve(build, port=0, …)` in a thread; yields the port, stops the server on the way out."""
    ports: list[int] = []
    ready, stop = threading.Event(), threading.Event()

    def on_ready(url: str) -> None:
        ports.append(int(url.rsplit(":", 1)[1].strip("/")))
        ready.set()

    server = threading.Thread(
        target=serve, args=(build,), kwargs={"port": 0, "on_ready": on_ready, "stop": stop, **options}
    )
    server.start()
    try:
        assert ready.wait(60)
        yield ports[0]
    finally:
        stop.set()
        server.join(60)
    assert not server.is_alive()


def ask(
    port: int, path: str = "/", headers: dict[str, str] | None = None, *, host: str | None = None
) -> tuple[int, str]:
    """A GET with exactly these headers (Host as given, or the one the server was bound for)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", host if host is not None else f"127.0.0.1:{port}")
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


@pytest.mark.parametrize("host", ["evil.example:{port}", "evil.example", "127.0.0.1.nip.io:{port}", "127.0.0.1:1", ""])
def test_only_the_host_it_was_bound_for_is_answered(host: str) -> None:
    """A page fetched through DNS rebinding carries the attacker's name in its Host header."""
    with serving(lambda: "<p>secret page</p>") as port:
        status, body = ask(port, host=host.format(port=port))
        assert status == 421
        assert "secret page" not in body
        for good in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}"):
            assert ask(port, host=good) == (200, "<p>secret page</p>")


def test_idle_connections_are_closed_and_never_keep_the_page_from_others() -> None:
    idle = []
    with serving(lambda: "<p>page</p>", request_timeout=1.0) as port:
        try:
            for _ in range(150):
                idle.append(socket.create_connection(("127.0.0.1", port), timeout=60))
            assert ask(port) == (200, "<p>page</p>")  # answered while 150 clients say nothing
            for client in idle[:5]:
                assert client.recv(1) == b""  # closed by the server (the client would wait 60 s)
        finally:
            for client in idle:
                client.close()


def test_the_threads_that_answer_are_bounded() -> None:
    release, started = threading.Event(), threading.Semaphore(0)

    def build() -> str:
        started.release()
        assert release.wait(60)
        return "<p>page</p>"

    def answering() -> int:
        return sum(thread.name.startswith("retryq-dashboard-answer") for thread in threading.enumerate())

    answers: list[tuple[int, str]] = []
    with serving(build) as port:
        clients = [threading.Thread(target=lambda: answers.append(ask(port))) for _ in range(30)]
        try:
            for client in clients:
                client.start()
            assert started.acquire(timeout=60)  # a build is under way, 29 requests wait for it
            pause = threading.Event()
            for _ in range(600):  # until the pool is full, or a generous while
                if answering() >= WORKERS:
                    break
                pause.wait(0.1)
            assert answering() == WORKERS
        finally:
            release.set()
            for client in clients:
                client.join(60)
    assert answers == [(200, "<p>page</p>")] * 30


def test_a_token_is_asked_for_by_header_or_query_and_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    token = "t0k3n-" + "x" * 20
    with caplog.at_level(logging.DEBUG, logger="retryq"), serving(lambda: "<p>page</p>", token=token) as port:
        assert ask(port)[0] == 401
        assert ask(port, "/?token=wrong")[0] == 401
        assert ask(port, headers={"Authorization": "Bearer wrong"})[0] == 401
        assert ask(port, f"/?token={token}") == (200, "<p>page</p>")
        assert ask(port, f"/index.html?x=1&token={token}") == (200, "<p>page</p>")
        assert ask(port, headers={"Authorization": f"Bearer {token}"}) == (200, "<p>page</p>")
        assert ask(port, f"/?token={token}", host="evil.example")[0] == 421  # a token does not make a host right
        assert ask(port, f"/nothing?token={token}")[0] == 404
        assert ask(port, f"/{token}")[0] == 401
    assert caplog.messages, "the requests are logged (at DEBUG)"
    assert not [message for message in caplog.messages if token in message]


@pytest.mark.slow
def test_the_served_dashboard_takes_its_token_from_the_environment(retryq_bin: str, tmp_path: Path) -> None:
    token = "from-the-environment-" + "y" * 12
    env = {"RETRYQ_DASHBOARD_TOKEN": token}
    with served_dashboard(retryq_bin, tmp_path, env=env) as (server, url):
        assert fetch(url)[0] == 401
        status, _, body = fetch(f"{url}?token={token}")
        assert status == 200
        assert 'content="60"' in body
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=60)
    assert token not in out + err
