"""The page: Jinja2 (autoescaped) renders DashboardData, with Chart.js and the page's script and style inlined.

The page makes no request at all: everything it needs is inside it, and its Content Security
Policy allows only its own inline scripts and style (by hash), so that nothing else can run.
"""

from __future__ import annotations

__all__ = ["INSTALL_HINT", "PRIVATE_MODE", "render", "write_dashboard"]

import base64
import functools
import hashlib
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from ... import __version__
from ...record.errors import ConfigError, StoreIOError
from ...record.models import Job
from ...record.timeutil import format_duration, format_utc
from ...stores._atomic import replace_file
from .data import DashboardData

if TYPE_CHECKING:
    import jinja2

INSTALL_HINT = "the dashboard needs Jinja2, which the dashboard extra installs: pip install 'retryq[dashboard]'"
#: The page's mode when nothing says otherwise: it shows the workflows' output tails, which may hold secrets.
PRIVATE_MODE = 0o600
#: The longest lists the page shows; the counts above them stay complete.
OPEN_JOBS_SHOWN = 100
FAILED_JOBS_SHOWN = 25


@dataclass(frozen=True)
class _OutcomeRow:
    key: str  # as the page's tests find it: retry1, retry2…, persistent, open, cancelled
    kind: str  # its colour
    label: str
    count: int
    percent: float


_CHART_JS = "chartjs/chart.umd.min.js"  # Chart.js 4.6.1 from the npm registry, unmodified; LICENSE.md beside it
_SOURCE_MAP = re.compile(r"\n//# sourceMappingURL=\S+\s*\Z")
_CLOSES_SCRIPT = re.compile(r"</script|<!--", re.IGNORECASE)


def render(data: DashboardData, *, refresh: timedelta | None = None, tails: bool = True) -> str:
    """The page as one HTML document; with ``refresh``, it reloads itself that often (for ``--serve``).

    Without ``tails``, the failed jobs show the error retryq wrote, not what their workflows printed.
    """
    scripts = [_asset(_CHART_JS), _asset("dashboard.js")]
    style = _asset("dashboard.css")
    stats = data.stats
    context = {
        "data": data,
        "stats": stats,
        "payload": {
            **stats.to_json_dict(breakdowns=True),
            **({"incidents": data.upstream.to_json_dict()} if data.upstream is not None else {}),
        },
        "upstream": data.upstream,
        "held": set() if data.upstream is None else {*data.upstream.paused, *(i.workflow for i in data.upstream.open)},
        "timeline": [] if data.upstream is None else [*data.upstream.closed, *data.upstream.open],
        "outcomes": _outcome_rows(data),
        "filters": _describe_filters(data),
        "open_jobs": data.open_jobs[:OPEN_JOBS_SHOWN],
        "failed_jobs": [(job, *_failure(job, tails)) for job in data.failed_jobs[:FAILED_JOBS_SHOWN]],
        "tails": tails,
        "levels": {level: sum(f.level == level for f in data.findings) for level in ("problem", "warning", "ok")},
        "refresh_seconds": None if refresh is None else max(1, round(refresh.total_seconds())),
        "csp": _content_security_policy(scripts, [style]),
        "scripts": scripts,
        "style": style,
        "version": __version__,
    }
    return _environment().get_template("dashboard.html.j2").render(context)


def write_dashboard(
    path: str | os.PathLike[str],
    data: DashboardData,
    *,
    refresh: timedelta | None = None,
    mode: int = PRIVATE_MODE,
    tails: bool = True,
) -> None:
    """Render what :func:`collect` gathered and replace the file at ``path`` atomically, with ``mode``
    whatever the umask (``retryq`` gives it the queue file's; see :func:`~.data.page_mode`).

    Meant to be called after each ``process`` run as well as by ``retryq dashboard --output``.
    """
    target = Path(path)
    page = render(data, refresh=refresh, tails=tails).encode("utf-8")
    try:
        # Not durable: a page lost in a crash is written again by the next run.
        replace_file(target, page, mode=mode, durable=False)
    except OSError as error:
        raise StoreIOError(f"{target}: cannot write the dashboard: {error.strerror or error}") from None


def _content_security_policy(scripts: list[str], styles: list[str]) -> str:
    """Allow exactly these inline scripts and styles, and no request of any kind."""

    def hashes(blocks: list[str]) -> str:
        return " ".join(
            f"'sha256-{base64.b64encode(hashlib.sha256(block.encode('utf-8')).digest()).decode()}'" for block in blocks
        )

    return (
        f"default-src 'none'; script-src {hashes(scripts)}; style-src {hashes(styles)}; img-src data:; "
        "base-uri 'none'; form-action 'none'"
    )


@functools.cache
def _environment() -> jinja2.Environment:
    try:
        import jinja2
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(__package__ or "retryq.reporting.dashboard", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # tojson escapes <, >, & and ' so that embedded data can never close its <script>; keep the keys' order.
    env.policies["json.dumps_kwargs"] = {"sort_keys": False, "ensure_ascii": False}
    env.filters.update(duration=_duration, percent=_percent, utc=_utc, iso=format_utc, short_id=lambda i: i[:8])
    env.globals.update(relative=_relative)
    return env


@functools.cache
def _asset(name: str) -> str:
    text = (resources.files(__package__ or "retryq.reporting.dashboard") / "assets" / name).read_text(encoding="utf-8")
    text = _SOURCE_MAP.sub("\n", text)  # the map is not shipped: a browser's developer tools would ask for it
    if _CLOSES_SCRIPT.search(text):  # inlined as is, it would end its own element early
        raise RuntimeError(f"asset {name} cannot be inlined: it contains '</script' or '<!--'")
    return text


def _outcome_rows(data: DashboardData) -> list[_OutcomeRow]:
    """The rows of the resolution table, in the chart's order: each retry, then persistent, open, cancelled."""
    stats = data.stats
    rows = [
        (f"retry{n}", "resolved", f"Resolved at retry {n}", count) for n, count in stats.resolved_by_attempt.items()
    ]
    rows += [
        ("persistent", "persistent", "Persistent (failed)", stats.persistent),
        ("open", "open", "Still open", stats.open),
        ("cancelled", "cancelled", "Cancelled", stats.cancelled),
    ]
    return [_OutcomeRow(key, kind, label, count, stats.percent(count)) for key, kind, label, count in rows]


def _describe_filters(data: DashboardData) -> str:
    parts = ["all chains" if data.since is None else f"chains detected in the last {format_duration(data.since)}"]
    if data.client is not None:
        parts.append(f"client {data.client}")
    if data.workflow is not None:
        parts.append(f"workflow {data.workflow}")
    return ", ".join(parts)


def _failure(job: Job, tails: bool) -> tuple[str, str]:
    """The first line of the last error (retryq's own words), and the output tail of the last attempt."""
    first, _, rest = (job.last_error or "").partition("\n")
    tail = job.history[-1].output_tail if job.history and job.history[-1].output_tail else rest
    return first or "no error recorded", (tail or "") if tails else ""


def _duration(value: timedelta | None) -> str:
    return "—" if value is None else format_duration(value)


def _percent(value: float) -> str:
    return f"{value:.1f}%"


def _utc(value: datetime) -> str:
    return format_utc(value)[:16].replace("T", " ") + " UTC"


def _relative(moment: datetime, now: datetime) -> str:
    minutes = round((moment - now) / timedelta(minutes=1))  # to the minute: seconds would only be noise here
    if minutes == 0:
        return "now"
    span = format_duration(timedelta(minutes=abs(minutes)))
    return f"in {span}" if minutes > 0 else f"{span} ago"
