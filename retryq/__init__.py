"""retryq: a file-backed deferred retry queue driven by cron.

A fetcher that finds data missing schedules a re-run; a ``*/5`` cron entry runs
``retryq process``, which runs it when due, again if still incomplete, and gives up after
``max_attempts``::

    from retryq import RetryQueue

    RetryQueue().schedule("balthazar", "2025-12-19", 60)
"""

from __future__ import annotations

__version__ = "0.1.0"

import importlib
from typing import TYPE_CHECKING, Any

# Names are imported on first use, so that `retryq schedule` does not pay for the processor,
# and `import retryq` stays cheap for a fetcher that only schedules.
_EXPORTS = {
    "Attempt": "models",
    "BackoffStrategy": "backoff",
    "Config": "config",
    "ConfigError": "errors",
    "ExceptionFilter": "recoverable",
    "InvalidInput": "errors",
    "Job": "models",
    "JobNotFound": "errors",
    "JobStateError": "errors",
    "JobStatus": "models",
    "JsonFileStore": "stores",
    "LockTimeout": "errors",
    "MemoryStore": "stores",
    "Outcome": "models",
    "ProcessReport": "processor",
    "Processor": "processor",
    "QueueCorrupt": "errors",
    "RetryAttempt": "inprocess",
    "RetryContext": "inprocess",
    "RetryManager": "inprocess",
    "RetryOptions": "policy",
    "Retrying": "inprocess",
    "RetryQueue": "queue",
    "RetryState": "backoff",
    "RetryqError": "errors",
    "ScheduleResult": "queue",
    "Store": "stores",
    "StoreIOError": "errors",
    "WorkflowSettings": "config",
    "constant": "backoff",
    "defer": "inprocess",
    "exponential": "backoff",
    "fixed": "backoff",
    "is_recoverable": "recoverable",
    "jitter": "backoff",
    "linear": "backoff",
    "load_config": "config",
    "retry": "inprocess",
    "retry_after": "recoverable",
    "retrying": "inprocess",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'retryq' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from .backoff import BackoffStrategy, RetryState, constant, exponential, fixed, jitter, linear
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
    from .inprocess import RetryAttempt, RetryContext, Retrying, RetryManager, defer, retry, retrying
    from .models import Attempt, Job, JobStatus, Outcome
    from .policy import RetryOptions
    from .processor import Processor, ProcessReport
    from .queue import RetryQueue, ScheduleResult
    from .recoverable import ExceptionFilter, is_recoverable, retry_after
    from .stores import JsonFileStore, MemoryStore, Store

__all__ = [
    "Attempt",
    "BackoffStrategy",
    "Config",
    "ConfigError",
    "ExceptionFilter",
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
    "RetryAttempt",
    "RetryContext",
    "RetryManager",
    "RetryOptions",
    "RetryQueue",
    "RetryState",
    "Retrying",
    "RetryqError",
    "ScheduleResult",
    "Store",
    "StoreIOError",
    "WorkflowSettings",
    "__version__",
    "constant",
    "defer",
    "exponential",
    "fixed",
    "is_recoverable",
    "jitter",
    "linear",
    "load_config",
    "retry",
    "retry_after",
    "retrying",
]
