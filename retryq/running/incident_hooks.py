"""Telling someone when an upstream incident opens or closes: the ``on_incident`` command of the configuration.

The command runs without a shell, ``{workflow}`` and ``{incident}`` replaced in its argv, the
incident as JSON on stdin and ``RETRYQ_WORKFLOW``, ``RETRYQ_INCIDENT`` and ``RETRYQ_INCIDENT_EVENT``
(``opened`` or ``closed``) in its environment. Whatever it does, the queue is already written and
is never changed by it: its outcome is only logged, as ``on_failure``'s is.
"""

from __future__ import annotations

__all__ = ["IncidentHooks", "run_incident_hook"]

import json
import logging
import os
import subprocess
import tempfile
import threading
from collections.abc import Mapping
from datetime import timedelta

from ..record.breakerstate import Incident
from ..settings.config import Config
from . import platform
from .commands import build_argv

log = logging.getLogger("retryq")


def run_incident_hook(
    incident: Incident,
    event: str,
    command: tuple[str, ...],
    *,
    timeout: timedelta,
    queue: Mapping[str, str] | None = None,
    env: Mapping[str, str] | None = None,
) -> bool:
    """Run ``command`` for ``incident``, which has just ``event`` (opened or closed); True when it exited 0 in time."""
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
    label = {"label": f"incident {incident.id}"}
    # Files on both ends, as for on_failure: a hook that leaves a child behind never makes us wait for it.
    with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as output:
        stdin.write(payload)
        stdin.seek(0)
        try:
            process = subprocess.Popen(
                argv,
                stdin=stdin,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=variables,
                **platform.popen_group_options(),
            )
        except OSError as error:
            log.error("on_incident hook %r could not start: %s", argv[0], error.strerror or error, extra=label)
            return False
        try:
            code = process.wait(timeout=timeout.total_seconds())
        except subprocess.TimeoutExpired:
            platform.stop_group(process.pid, 1.0)
            process.wait()
            log.error("on_incident hook timed out after %gs and was stopped", timeout.total_seconds(), extra=label)
            return False
        output.seek(0)
        tail = output.read().decode("utf-8", "replace").strip().splitlines()[-1:]
    if code != 0:
        log.error("on_incident hook exited %d%s", code, f": {tail[0]}" if tail else "", extra=label)
        return False
    log.info("on_incident hook told (%s)", event, extra=label)
    return True


class IncidentHooks:
    """Runs each workflow's ``on_incident`` beside the caller, which never waits for one until :meth:`wait`."""

    def __init__(self, config: Config, *, queue: Mapping[str, str] | None) -> None:
        self.config = config
        self.queue = queue
        self._threads: list[threading.Thread] = []

    def notify(self, incident: Incident, event: str) -> None:
        settings = self.config.settings_of(incident.workflow)
        if not settings.on_incident:
            return
        thread = threading.Thread(
            target=run_incident_hook,
            args=(incident, event, settings.on_incident),
            kwargs={"timeout": self.config.on_failure_timeout, "queue": self.queue, "env": settings.env},
            name=f"retryq-incident-{incident.id}",
        )
        thread.start()
        self._threads.append(thread)

    def wait(self) -> None:
        """Wait for the hooks started; each bounds itself by ``on_failure_timeout``."""
        for thread in self._threads:
            thread.join()
        self._threads.clear()
