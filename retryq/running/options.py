"""How a processor runs, declared once: one frozen object that ``Processor`` takes (its keyword
arguments build one), and that its steps read instead of each keeping copies."""

from __future__ import annotations

__all__ = ["ProcessorOptions", "Reporter"]

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

from ..record.models import Job, Outcome
from ..record.timeutil import utcnow

if TYPE_CHECKING:
    from .runner import Supervisor
    from .summary import ProcessReport


class Reporter(Protocol):
    """Something that turns a run's report into an output (a metrics file, a page): called at the
    end of each run, and by a worker every ``every`` seconds. A failure is its own to log."""

    every: float

    def __call__(self, report: ProcessReport) -> None: ...


@dataclass(frozen=True)
class ProcessorOptions:
    """Everything a :class:`~retryq.Processor` may be told besides its store and configuration.

    ``concurrency`` caps runs at once (default: the configuration's; a workflow may cap its own);
    ``timeout`` shortens the workflows' timeouts (never lengthens them); ``workflows`` runs only
    those; ``keep_days`` overrides how long finished jobs are kept, and ``prune=False`` keeps them
    all; ``on_finished(job, outcome)`` is called after each result is written; ``reporters`` get the
    run's report at its end and now and then in a worker (see
    :func:`retryq.reporting.writers.reporters_for`). ``supervisor`` runs the workflows (a test gives
    a fake); ``clock``, ``monotonic`` and ``sleep`` are injectable, so that tests never wait for real
    time (``sleep=None``: wait on the store, which wakes an idle worker when work comes).
    """

    concurrency: int | None = None
    timeout: timedelta | None = None
    workflows: Collection[str] | None = None
    keep_days: int | None = None
    prune: bool = True
    on_finished: Callable[[Job, Outcome], None] | None = None
    reporters: Sequence[Reporter] = field(default=())
    supervisor: Supervisor | None = None
    clock: Callable[[], datetime] = utcnow
    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], object] | None = None

    def __post_init__(self) -> None:
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        object.__setattr__(self, "reporters", tuple(self.reporters))
        if self.workflows is not None:
            object.__setattr__(self, "workflows", frozenset(self.workflows) or None)
