"""What a processor's report is turned into after each run: the metrics file and the dashboard page.

The processor knows nothing of either: it calls the reporters it is given (see
:class:`retryq.running.options.Reporter`); :func:`reporters_for` builds them from the
configuration and the command line's overrides. A reporter's failure is logged, never fatal.
"""

from __future__ import annotations

__all__ = ["DASHBOARD_EVERY", "METRICS_EVERY", "DashboardWriter", "MetricsWriter", "reporters_for"]

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from ..record.errors import RetryqError
from ..record.timeutil import utcnow

if TYPE_CHECKING:
    from ..running.options import Reporter
    from ..running.summary import ProcessReport
    from ..settings.config import Config
    from ..stores import Store

log = logging.getLogger("retryq")

#: A worker refreshes its metrics file this often (seconds).
METRICS_EVERY = 30.0
#: A worker refreshes its dashboard page this often (seconds); `process` does at the end of each run.
DASHBOARD_EVERY = 60.0


@dataclass
class _Writer:
    """A file rewritten from the store after a run (and now and then by a worker); a failure is logged, never fatal."""

    path: str | os.PathLike[str]
    store: Store
    config: Config
    clock: Callable[[], datetime] = utcnow
    every: float = 60.0
    what: ClassVar[str] = "file"

    def __call__(self, report: ProcessReport) -> None:
        try:
            self.write(report)
        except RetryqError as error:
            log.error("%s not written: %s", self.what, error)

    def write(self, report: ProcessReport) -> None:
        raise NotImplementedError


@dataclass
class MetricsWriter(_Writer):
    """Rewrites the Prometheus file at ``path`` from the store's tally and the run's report."""

    every: float = METRICS_EVERY
    what: ClassVar[str] = "metrics"

    def write(self, report: ProcessReport) -> None:
        from ..running.recurring import schedule_statuses
        from .incidents import held_gauges
        from .metrics import render_metrics, write_metrics

        tally, now = self.store.tally(), self.clock()
        held = held_gauges(self.store, now)
        schedules = schedule_statuses(self.config, self.store, now=now)
        text = render_metrics(
            tally, now=now, report=report, workflows=self.config.workflows, held=held, schedules=schedules
        )
        write_metrics(self.path, text)


@dataclass
class DashboardWriter(_Writer):
    """Rewrites the dashboard page at ``path`` (Jinja2 is imported only here: it is an extra)."""

    every: float = DASHBOARD_EVERY
    what: ClassVar[str] = "dashboard"

    def write(self, report: ProcessReport) -> None:
        from .dashboard import collect, page_mode, write_dashboard

        data = collect(self.config, self.store, now=self.clock())
        write_dashboard(self.path, data, mode=page_mode(self.config, self.store), tails=self.config.dashboard_tails)


def reporters_for(
    config: Config,
    store: Store,
    *,
    metrics_file: str | os.PathLike[str] | None = None,
    dashboard_file: str | os.PathLike[str] | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> list[Reporter]:
    """The reporters a run has: the metrics file and dashboard page given, else the configuration's."""
    reporters: list[Reporter] = []
    metrics = metrics_file if metrics_file is not None else config.metrics_file
    if metrics is not None:
        reporters.append(MetricsWriter(metrics, store, config, clock))
    page = dashboard_file if dashboard_file is not None else config.dashboard_file
    if page is not None:
        reporters.append(DashboardWriter(page, store, config, clock))
    return reporters
