"""Telling someone: the ``on_failure`` command when a job fails for good, the ``on_incident`` command
when an upstream incident opens or closes.

Each runs without a shell, what it is about as JSON on stdin and ``RETRYQ_*`` variables in its
environment. Whatever it does (fails, hangs, is not found), the queue is already written and is
never changed by it: its outcome is only logged. Hooks run beside the caller's loop, which never
waits for one until the end of its run.
"""

from __future__ import annotations

__all__ = ["FailureHooks", "IncidentHooks", "run_failure_hook", "run_hook", "run_incident_hook"]

import json
import logging
import os
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from ..record.breakerstate import Incident
from ..record.models import Job
from ..settings.config import Config
from . import platform
from .commands import build_argv, invocation

log = logging.getLogger("retryq")


def run_hook(
    kind: str,
    argv: Sequence[str],
    variables: Mapping[str, str],
    payload: bytes,
    *,
    timeout: timedelta,
    extra: Mapping[str, Any],
    done: str,
) -> bool:
    """Run the ``kind`` hook ``argv`` with ``payload`` on stdin; True when it exited 0 within ``timeout``.

    ``extra`` goes with every log line (the job, or a label); ``done`` is what the INFO line says.
    """
    # Files, not pipes, on both ends: a hook that leaves a child behind (a daemon, `setsid cmd &`)
    # keeps a pipe open forever, and waiting for its end would hang; waiting for the hook does not.
    with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as output:
        stdin.write(payload)
        stdin.seek(0)
        try:
            process = subprocess.Popen(
                list(argv),
                stdin=stdin,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=dict(variables),
                **platform.popen_group_options(),
            )
        except OSError as error:
            log.error("%s hook %r could not start: %s", kind, argv[0], error.strerror or error, extra=extra)
            return False
        try:
            code = process.wait(timeout=timeout.total_seconds())
        except subprocess.TimeoutExpired:
            platform.stop_group(process.pid, 1.0)
            process.wait()
            log.error("%s hook timed out after %gs and was stopped", kind, timeout.total_seconds(), extra=extra)
            return False
        output.seek(0)
        tail = output.read().decode("utf-8", "replace").strip().splitlines()[-1:]
    if code != 0:
        log.error("%s hook exited %d%s", kind, code, f": {tail[0]}" if tail else "", extra=extra)
        return False
    log.info("%s hook %s", kind, done, extra=extra)
    return True


def run_failure_hook(
    job: Job,
    command: tuple[str, ...],
    *,
    timeout: timedelta,
    queue: Mapping[str, str] | None,
    config_file: str | None,
    env: Mapping[str, str] | None = None,
) -> bool:
    """Run ``command`` for a job that ended ``failed``; True when it exited 0 in time."""
    argv, variables = invocation(
        command, job.key, job=job, run_id=uuid.uuid4().hex, queue=queue, config_file=config_file, env=env
    )
    variables.update(
        {
            "RETRYQ_STATUS": job.status.value,
            "RETRYQ_LAST_EXIT_CODE": "" if job.last_exit_code is None else str(job.last_exit_code),
            "RETRYQ_LAST_ERROR": (job.last_error or "").split("\n", 1)[0],
        }
    )
    payload = job.to_json_line().encode("utf-8")
    return run_hook("on_failure", argv, variables, payload, timeout=timeout, extra={"job": job}, done="notified")


def run_incident_hook(
    incident: Incident,
    event: str,
    command: tuple[str, ...],
    *,
    timeout: timedelta,
    queue: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> bool:
    """Run ``command`` for ``incident``, which has just ``event`` (opened or closed); True when it exited 0 in time.

    ``{workflow}`` and ``{incident}`` are replaced in its argv; ``RETRYQ_WORKFLOW``, ``RETRYQ_INCIDENT``
    and ``RETRYQ_INCIDENT_EVENT`` (``opened`` or ``closed``) are set in its environment.
    """
    argv = build_argv(command, {"workflow": incident.workflow, "incident": incident.id})
    variables = {
        **os.environ,
        **(env or {}),
        **(queue or {}),
        "RETRYQ_WORKFLOW": incident.workflow,
        "RETRYQ_INCIDENT": incident.id,
        "RETRYQ_INCIDENT_EVENT": event,
    }
    payload = json.dumps({"event": event, **incident.to_json_dict()}, ensure_ascii=False).encode("utf-8")
    extra = {"label": f"incident {incident.id}"}
    return run_hook("on_incident", argv, variables, payload, timeout=timeout, extra=extra, done=f"told ({event})")


class _Hooks:
    """Hooks started in threads of their own; :meth:`wait` waits for them (each bounds itself by its timeout)."""

    def __init__(self, config: Config, *, queue: Mapping[str, str] | None) -> None:
        self.config = config
        self.queue = queue
        self._threads: list[threading.Thread] = []

    def _start(self, name: str, target: Callable[..., bool], *args: Any, **kwargs: Any) -> None:
        thread = threading.Thread(target=target, args=args, kwargs=kwargs, name=name)
        thread.start()
        self._threads.append(thread)

    def wait(self) -> None:
        """Wait for the hooks started; each bounds itself by ``on_failure_timeout``."""
        for thread in self._threads:
            thread.join()
        self._threads.clear()


class FailureHooks(_Hooks):
    """Runs each failed job's ``on_failure`` beside the processor's loop."""

    def notify(self, job: Job) -> None:
        settings = self.config.settings_of(job.workflow)
        if settings.on_failure:
            config_file = str(self.config.source) if self.config.source else None
            self._start(
                f"retryq-hook-{job.id}",
                run_failure_hook,
                job,
                settings.on_failure,
                timeout=self.config.on_failure_timeout,
                queue=self.queue,
                config_file=config_file,
                env=settings.env,
            )


class IncidentHooks(_Hooks):
    """Runs a workflow's ``on_incident`` when one of its incidents opens or closes."""

    def notify(self, incident: Incident, event: str) -> None:
        settings = self.config.settings_of(incident.workflow)
        if settings.on_incident:
            self._start(
                f"retryq-incident-{incident.id}",
                run_incident_hook,
                incident,
                event,
                settings.on_incident,
                timeout=self.config.on_failure_timeout,
                queue=self.queue,
                env=settings.env,
            )
