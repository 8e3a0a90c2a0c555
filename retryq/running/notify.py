"""Telling someone when a job fails for good: the ``on_failure`` command of the configuration.

The command runs without a shell, with the job as JSON on stdin and the ``RETRYQ_*`` variables
in its environment. Whatever it does (fails, hangs, is not found), the job's state is already
written and is never changed by it: the outcome is only logged.
"""

from __future__ import annotations

__all__ = ["FailureHooks", "run_failure_hook"]

import logging
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Mapping
from datetime import timedelta

from ..record.models import Job
from ..settings.config import Config
from . import platform
from .commands import invocation

log = logging.getLogger("retryq")


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
    # Files, not pipes, on both ends: a hook that leaves a child behind (a daemon, `setsid cmd &`)
    # keeps a pipe open forever, and waiting for its end would hang; waiting for the hook does not.
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
            log.error("on_failure hook %r could not start: %s", argv[0], error.strerror or error, extra={"job": job})
            return False
        try:
            code = process.wait(timeout=timeout.total_seconds())
        except subprocess.TimeoutExpired:
            platform.stop_group(process.pid, 1.0)
            process.wait()
            log.error(
                "on_failure hook timed out after %gs and was stopped", timeout.total_seconds(), extra={"job": job}
            )
            return False
        output.seek(0)
        tail = output.read().decode("utf-8", "replace").strip().splitlines()[-1:]
    if code != 0:
        detail = f": {tail[0]}" if tail else ""
        log.error("on_failure hook exited %d%s", code, detail, extra={"job": job})
        return False
    log.info("on_failure hook notified", extra={"job": job})
    return True


class FailureHooks:
    """Runs each failed job's ``on_failure`` beside the processor's loop, which never waits for one."""

    def __init__(self, config: Config, *, queue: Mapping[str, str] | None) -> None:
        self.config = config
        self.queue = queue
        self._threads: list[threading.Thread] = []

    def notify(self, job: Job) -> None:
        settings = self.config.settings_of(job.workflow)
        if not settings.on_failure:
            return
        thread = threading.Thread(
            target=run_failure_hook,
            args=(job, settings.on_failure),
            kwargs={
                "timeout": self.config.on_failure_timeout,
                "queue": self.queue,
                "config_file": str(self.config.source) if self.config.source else None,
                "env": settings.env,
            },
            name=f"retryq-hook-{job.id}",
        )
        thread.start()
        self._threads.append(thread)

    def wait(self) -> None:
        """Wait for the hooks started; each bounds itself by ``on_failure_timeout``."""
        for thread in self._threads:
            thread.join()
