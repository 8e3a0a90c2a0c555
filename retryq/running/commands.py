"""What a workflow run is: its argv and environment, built without a shell, and where its command is.

The queue holds data (client, date); the configuration holds what runs. Placeholders are
replaced inside argv items and nothing else is interpreted: a job's data never reaches a shell
and never becomes an option (client ids and job ids start with a letter or a digit).
"""

from __future__ import annotations

__all__ = ["invocation", "resolve_command"]

import os
import shutil
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ..record.errors import ConfigError
from .platform import RUN_ID_VARIABLE

if TYPE_CHECKING:
    from ..record.models import Job, JobKey


def invocation(
    command: Sequence[str],
    key: JobKey,
    *,
    run_id: str,
    queue: Mapping[str, str] | None,
    config_file: str | None,
    env: Mapping[str, str] | None = None,
    job: Job | None = None,
    max_attempts: int = 0,
) -> tuple[list[str], dict[str, str]]:
    """The argv and environment of one run of ``key``'s workflow: placeholders filled, the workflow's
    ``env`` and ``RETRYQ_*`` set over retryq's own environment.

    ``queue`` is what the store says a nested ``retryq`` needs to find the same queue, whatever its
    working directory (:meth:`~retryq.stores.Store.environment`); None or empty when it cannot.

    For a queued ``job``: its attempt, limit and id; else (``retryq run``) attempt 1 of ``max_attempts``, no id.
    """
    attempt = job.attempt if job is not None else 1
    limit = (job.max_attempts or 0) if job is not None else max_attempts
    job_id = job.id if job is not None else ""
    values = {
        "client": key.client,
        "date": key.date,
        "attempt": str(attempt),
        "job_id": job_id,
        "workflow": key.workflow,
    }
    variables = {
        **(env or {}),
        "RETRYQ_CLIENT": key.client,
        "RETRYQ_DATE": key.date,
        "RETRYQ_ATTEMPT": str(attempt),
        "RETRYQ_MAX_ATTEMPTS": str(limit),
        "RETRYQ_JOB_ID": job_id,
        "RETRYQ_WORKFLOW": key.workflow,
        RUN_ID_VARIABLE: run_id,
    }
    variables.update(queue or {})  # where a nested `retryq schedule` finds the same queue
    if config_file is not None:
        variables["RETRYQ_CONFIG"] = os.path.abspath(config_file)  # a nested `retryq schedule` finds the same setup
    return build_argv(command, values), {**os.environ, **variables}


def build_argv(command: Sequence[str], values: Mapping[str, str]) -> list[str]:
    """Replace ``{client}``, ``{date}``… inside each argv item; nothing else is interpreted."""
    argv = []
    for template in command:
        item = template
        for name, value in values.items():
            item = item.replace("{" + name + "}", value)
        argv.append(item)
    return argv


def resolve_command(argv0: str, origin: str, path: str | None = None) -> str:
    """The executable ``argv0`` names (looked up on ``path``, else on PATH), or a :class:`ConfigError`
    that says where the command was configured and which PATH was searched."""
    if path is None:
        path = os.environ.get("PATH", "")
    if os.sep in argv0 or (os.altsep and os.altsep in argv0):
        if os.path.isfile(argv0) and os.access(argv0, os.X_OK):
            return argv0
        reason = "is not executable" if os.path.isfile(argv0) else "does not exist"
        raise ConfigError(f"command {argv0!r} {reason} (from {origin})")
    found = shutil.which(argv0, path=path)
    if found is None:
        raise ConfigError(f"command {argv0!r} not found on PATH={path} (from {origin})")
    return found
