"""Helpers shared by the tests: builders, a queue file written by the original scripts, a fake workflow script."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import stat
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

import pytest
from typer.testing import CliRunner, Result

from retryq import Config, Job, Processor, ProcessReport, RetryQueue, WorkflowSettings
from retryq.cli import app
from retryq.record.models import DEFAULT_WORKFLOW
from retryq.testing import job as contract_job

T0 = datetime(2025, 12, 19, 10, 0, tzinfo=timezone.utc)

#: A queue file byte for byte as the original TypeScript scripts wrote it.
LEGACY_FILE = """[
  {
    "clientId": "balthazar",
    "date": "2025-12-19",
    "scheduledAt": "2025-12-19T10:00:00.000Z",
    "executeAt": "2025-12-19T11:00:00.000Z",
    "delayMinutes": 60,
    "status": "pending"
  }
]
"""


@dataclass
class FakeWorkflow:
    """A workflow script that records each call and exits with the codes it is told, in turn."""

    path: Path
    calls_file: Path
    exits_file: Path

    @property
    def command(self) -> str:
        return f"{shlex.quote(str(self.path))} {{client}} {{date}}"

    def argv(self) -> list[str]:
        return [str(self.path), "{client}", "{date}"]

    def exits(self, *codes: int) -> FakeWorkflow:
        self.exits_file.write_text("".join(f"{code}\n" for code in codes))
        return self

    def calls(self) -> list[dict[str, str]]:
        if not self.calls_file.exists():
            return []
        rows = []
        for line in self.calls_file.read_text().splitlines():
            argv, attempt, job_id, client, date, run_id = line.split("|")
            rows.append(
                {"argv": argv, "attempt": attempt, "job_id": job_id, "client": client, "date": date, "run_id": run_id}
            )
        return rows


def write_script(path: Path, body: str) -> Path:
    """An executable POSIX sh script."""
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def fake_workflow(directory: Path, name: str = "workflow") -> FakeWorkflow:
    """A fast workflow: appends one line per call, prints a line, exits with the next planned code."""
    calls = directory / f"{name}.calls"
    exits = directory / f"{name}.exits"
    script = write_script(
        directory / f"{name}.sh",
        f"""
calls={shlex.quote(str(calls))}
exits={shlex.quote(str(exits))}
printf '%s|%s|%s|%s|%s|%s\\n' "$*" "$RETRYQ_ATTEMPT" "$RETRYQ_JOB_ID" "$RETRYQ_CLIENT" "$RETRYQ_DATE" \\
    "$RETRYQ_RUN_ID" >> "$calls"
echo "fetching $1 $2 (attempt $RETRYQ_ATTEMPT)"
n=$(wc -l < "$calls")
code=0
if [ -f "$exits" ]; then code=$(sed -n "${{n}}p" "$exits"); fi
exit "${{code:-0}}"
""",
    )
    return FakeWorkflow(script, calls, exits)


def make_config(command: Sequence[str] | None = None, **settings: object) -> Config:
    """A configuration with one default workflow (no file, no environment).

    Keyword arguments that are workflow settings (timeout, max_attempts, backoff…) go to the
    workflow; the others to the configuration.
    """
    workflow_fields = {key: settings.pop(key) for key in list(settings) if key in WorkflowSettings.__dataclass_fields__}
    if "concurrency" in workflow_fields:  # as in retryq.toml: the top-level value caps the workflow too
        settings["concurrency"] = workflow_fields["concurrency"]
    workflow = WorkflowSettings(
        DEFAULT_WORKFLOW,
        command=tuple(command) if command else None,
        command_origin="test",
        **workflow_fields,  # type: ignore[arg-type]
    )
    return Config(workflows={DEFAULT_WORKFLOW: workflow}, **settings)  # type: ignore[arg-type]


def make_job(**fields: object) -> Job:
    """A pending job for balthazar 2025-12-19, due at 11:00 UTC; any field may be given (the contract suite's)."""
    return contract_job(**fields)


def invoke(runner: CliRunner, *args: str, env: dict[str, str] | None = None) -> Result:
    """Run ``retryq ARGS`` in-process, as the console script would."""
    return runner.invoke(app, list(args), env=env, catch_exceptions=False)


def process(queue: RetryQueue, **options: Any) -> ProcessReport:
    """Run every due job once, as `retryq process` does (options as :class:`~retryq.Processor` takes)."""
    return Processor(queue.store, queue.config, **options).run()


def unavailable(reason: str) -> NoReturn:
    """A test cannot run here: in CI (``CI=true``), where everything it needs is installed, that is a
    failure; on a developer's machine, a skip with a one-line reason."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: CI must run this test")
    pytest.skip(reason)


def need_xattrs(directory: Path) -> None:
    """The tests of retryq's mark on the queue file (retryq/stores/file/voucher.py) need a file system that
    keeps extended attributes; elsewhere every schedule reads the file whole, and the mark does not apply."""
    probe = directory / f"xattr-probe-{uuid.uuid4().hex[:8]}"
    probe.touch()
    try:
        os.setxattr(probe, "user.retryq.probe", b"1")
    except OSError as error:
        unavailable(f"the file system of {directory} keeps no extended attributes ({error.strerror})")
    finally:
        probe.unlink()


@contextlib.contextmanager
def served_dashboard(
    retryq_bin: str, cwd: Path, *options: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`retryq dashboard --serve --port 0 …` started in ``cwd`` (no RETRYQ_* from the outer environment,
    only those of ``env``), with the address it says it serves; killed on the way out if the test has not stopped it."""
    env = {**{key: value for key, value in os.environ.items() if not key.startswith("RETRYQ_")}, **(env or {})}
    server = subprocess.Popen(
        [retryq_bin, "dashboard", "--serve", "--port", "0", *options],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        served = r"serving the dashboard of \.retry-queue\.json at (http://127\.0\.0\.1:\d+/) \(Ctrl-C to stop\)\n"
        match = re.fullmatch(served, line)
        assert match, line + (server.stderr.read() if server.stderr else "")
        yield server, match.group(1)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


@contextlib.contextmanager
def temporary_user(prefix: str = "retryq-") -> Iterator[str]:
    """A system user of its own for one test (root only), removed with its crontab however the test ends:
    two runs on one host never share one."""
    user = prefix + uuid.uuid4().hex[:10]  # within useradd's 32 characters
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/bin/sh", user], check=True)
    try:
        yield user
    finally:
        subprocess.run(["crontab", "-u", user, "-r"], check=False, capture_output=True)
        # --force: a process started for it (a cron run) may still be finishing; the user goes all the same.
        subprocess.run(["userdel", "--force", user], check=False, capture_output=True)
