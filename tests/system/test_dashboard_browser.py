"""The dashboard in a real browser: Debian's Chromium, driven by Playwright, from disk and from `--serve`.

In CI (``CI=true``) a missing browser or Playwright fails the test; elsewhere it is skipped. Both
say why in one line.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from retryq.record.timeutil import format_duration, parse_utc, utcnow

from ..helpers import served_dashboard
from ..integration.test_dashboard import recorded_history

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
# As the machine notes say: without the background-networking flags, Chromium tries to reach Google at start.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDTHS = {"desktop": 1280, "phone": 390}


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _missing()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the browser test cannot run in CI: {reason}", pytrace=False)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Visit:
    """One page in a fresh context: every request is recorded, and any that would leave the machine is refused."""

    def __init__(self, browser: Any, width: int) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": 900})
        self.requests: list[str] = []
        self.refused: list[str] = []
        self.console: list[str] = []
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
        self.page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))

    def _route(self, route: Any) -> None:
        url = route.request.url
        self.requests.append(url)
        parts = urlsplit(url)
        if parts.scheme == "file" or (parts.scheme == "http" and parts.hostname == "127.0.0.1"):
            route.continue_()
        else:
            self.refused.append(url)
            route.abort()

    def open(self, url: str) -> Any:
        self.page.goto(url)
        # The charts are drawn by the page's last script; once the last chart exists, all have run.
        self.page.wait_for_function("() => window.Chart && Chart.getChart('chart-days') !== undefined")
        return self.page

    def close(self) -> None:
        self.context.close()


def check_the_numbers(page: Any, stats: dict[str, Any]) -> None:
    """What the page shows, in text and in its charts, is what `retryq stats --json` printed."""

    def stat(name: str) -> str:
        return page.locator(f'[data-stat="{name}"]').inner_text().strip()

    assert stat("chains") == str(stats["chains"])
    for key in ("resolved", "persistent", "open", "cancelled"):
        assert stat(key) == str(stats[key]), key
    assert stat("resolvedPercent") == f"{stats['resolvedPercent']:.1f}%"
    assert stat("persistentPercent") == f"{stats['persistentPercent']:.1f}%"
    for key in ("mean", "median", "max"):
        assert stat(f"delay{key.title()}") == format_duration_seconds(stats["delaySeconds"][key]), key

    rows = page.locator("#table-resolution tbody tr")
    expected = [
        *((f"retry{n}", entry["count"], entry["percent"]) for n, entry in stats["resolvedByAttempt"].items()),
        *((key, stats[key], stats[f"{key}Percent"]) for key in ("persistent", "open", "cancelled")),
    ]
    assert rows.count() == len(expected)
    for index, (key, count, percent) in enumerate(expected):
        row = rows.nth(index)
        assert row.get_attribute("data-outcome") == key
        assert row.locator('[data-field="count"]').inner_text() == str(count)
        assert row.locator('[data-field="percent"]').inner_text() == f"{percent:.1f}%"

    clients = page.locator("#table-clients tbody tr")
    assert [clients.nth(i).get_attribute("data-client") for i in range(clients.count())] == list(stats["byClient"])
    for client, own in stats["byClient"].items():
        row = page.locator(f'#table-clients tr[data-client="{client}"]')
        assert row.locator('[data-field="chains"]').inner_text() == str(own["chains"])
        assert row.locator('[data-field="resolvedPercent"]').inner_text() == f"{own['resolvedPercent']:.1f}%"
        assert row.locator('[data-field="delayMean"]').inner_text() == format_duration_seconds(
            own["delaySeconds"]["mean"]
        )
    assert page.locator("#table-open tbody tr").count() == stats["open"]
    assert page.locator("article.failure").count() == stats["persistent"]
    # The tables under the charts may be folded away (<details>): read their cells, shown or not.
    days = page.evaluate(
        """() => Array.from(document.querySelectorAll("#table-days tbody tr"),
            row => Array.from(row.cells, cell => cell.textContent.trim()))"""
    )
    assert days == [
        [day["date"], *(str(day[key]) for key in ("chains", "resolved", "persistent", "open", "cancelled"))]
        for day in stats["byDay"]
    ]

    # And the charts: each draws the same numbers.
    charts = page.evaluate(
        """() => Object.fromEntries(["chart-resolution", "chart-delay", "chart-days"].map(id => {
            const data = Chart.getChart(id).data;
            return [id, {labels: data.labels, datasets: data.datasets.map(d => ({label: d.label, data: d.data}))}];
        }))"""
    )
    assert charts["chart-resolution"]["datasets"][0]["data"] == [count for _, count, _ in expected]
    bars = charts["chart-delay"]["datasets"][0]["data"]
    assert [bar["y"] for bar in bars] == [bin_["count"] for bin_ in stats["delayHistogram"]]
    marks = {dataset["label"]: dataset["data"][0]["x"] for dataset in charts["chart-delay"]["datasets"][1:]}
    assert marks == {
        f"{key} {format_duration_seconds(stats['delaySeconds'][key])}": stats["delaySeconds"][key]
        for key in ("mean", "median", "max")
    }
    assert charts["chart-days"]["labels"] == [day["date"] for day in stats["byDay"]]
    # The upstream incidents' time line: the closed ones, then the open ones, each from opening to closing.
    upstream = stats["incidents"]
    bars = page.evaluate(
        """() => Chart.getChart("chart-incidents").data.datasets.map(d => d.data.map(bar => [bar.id, bar.x[0]]))"""
    )
    assert bars == [
        [[each["id"], parse_utc(each["openedAt"]).timestamp() * 1000] for each in upstream[group]]
        for group in ("closed", "open")
    ]
    by_outcome = {dataset["label"]: dataset["data"] for dataset in charts["chart-days"]["datasets"]}
    for key in ("resolved", "persistent", "open", "cancelled"):
        assert by_outcome[key.title()] == [day[key] for day in stats["byDay"]]


def format_duration_seconds(seconds: float | None) -> str:
    from datetime import timedelta

    return "—" if seconds is None else format_duration(timedelta(seconds=seconds))


def check_the_page(visit: Visit, page: Any, width: int, screenshot: Path) -> None:
    """No error, nothing fetched from elsewhere, text stays text, local times on hover, fits the width."""
    assert visit.console == []
    assert visit.refused == []
    # Output tails hold markup: it is shown as text, and none of it ran.
    tail = page.locator('article[data-job="lost-a"] [data-field="tail"]').text_content()
    assert "</script><script>window.pwned = true</script><img src=x onerror=" in tail
    assert page.evaluate("() => window.pwned") is None
    title = page.locator("time").first.get_attribute("title")
    assert title is not None
    assert title.endswith(" (local time)")
    # Nothing wider than the screen: wide tables scroll inside their own box.
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000


@pytest.fixture
def history(tmp_path: Path) -> Path:
    recorded_history(tmp_path / ".retry-queue.json", utcnow())
    return tmp_path


def run_retryq(retryq_bin: str, *args: str, cwd: Path) -> str:
    env = {key: value for key, value in os.environ.items() if not key.startswith("RETRYQ_")}
    result = subprocess.run(
        [retryq_bin, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("filters", [[], ["--client", "acme", "--since", "30d"]], ids=["all", "filtered"])
def test_the_page_from_disk(browser: Any, retryq_bin: str, history: Path, filters: list[str]) -> None:
    stats = json.loads(run_retryq(retryq_bin, "stats", "--json", *filters, cwd=history))
    run_retryq(retryq_bin, "dashboard", "--output", "report.html", *filters, cwd=history)
    url = (history / "report.html").as_uri()
    for name, width in WIDTHS.items():
        visit = Visit(browser, width)
        try:
            page = visit.open(url)
            check_the_numbers(page, stats)
            check_the_page(visit, page, width, history / f"dashboard-{name}.png")
        finally:
            visit.close()
        assert visit.requests == [url]


def test_the_served_page(browser: Any, retryq_bin: str, history: Path) -> None:
    stats = json.loads(run_retryq(retryq_bin, "stats", "--json", cwd=history))
    with served_dashboard(retryq_bin, history) as (server, url):
        for name, width in WIDTHS.items():
            visit = Visit(browser, width)
            try:
                page = visit.open(url)
                assert page.locator('meta[http-equiv="refresh"]').get_attribute("content") == "60"
                check_the_numbers(page, stats)
                check_the_page(visit, page, width, history / f"served-{name}.png")
            finally:
                visit.close()
            assert visit.requests == [url]
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=60)
    assert (server.returncode, out, err) == (143, "dashboard server stopped\n", "")
