"""retryq: a file-backed deferred retry queue driven by cron.

A fetcher that finds data missing schedules a re-run; a ``*/5`` cron entry runs
``retryq process``, which runs it when due, again if still incomplete, and gives up after
``max_attempts``::

    from retryq import RetryQueue

    RetryQueue().schedule("balthazar", "2025-12-19", 60)
"""

from __future__ import annotations

__version__ = "0.1.0"

from .backoff import RetryState, constant, exponential, fixed, jitter, linear
from .config import Config, WorkflowSettings, load_config
from .errors import (
    ConfigError,
    InvalidInput,
    JobNotFound,
    JobStateError,
    LockTimeout,
    QueueCorrupt,
    RetryqError,
    StoreIOError,
)
from .jsonstore import JsonFileStore
from .models import Attempt, Job, JobStatus, Outcome
from .processor import Processor, ProcessReport
from .queue import RetryQueue, ScheduleResult
from .store import MemoryStore, Store

__all__ = [
    "Attempt",
    "Config",
    "ConfigError",
    "InvalidInput",
    "Job",
    "JobNotFound",
    "JobStateError",
    "JobStatus",
    "JsonFileStore",
    "LockTimeout",
    "MemoryStore",
    "Outcome",
    "ProcessReport",
    "Processor",
    "QueueCorrupt",
    "RetryQueue",
    "RetryState",
    "RetryqError",
    "ScheduleResult",
    "Store",
    "StoreIOError",
    "WorkflowSettings",
    "__version__",
    "constant",
    "exponential",
    "fixed",
    "jitter",
    "linear",
    "load_config",
]
