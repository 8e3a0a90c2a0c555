"""Under a real cron daemon, as a non-root user, with the installed wheel: retries land on consecutive ticks.

The crontab is the one of crontab.example (a PATH line, a log in the project directory, no
`--quiet`), on a one-minute schedule so that the test takes three minutes rather than fifteen.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from retryq import JsonFileStore
from retryq.record.models import JobStatus
from retryq.record.timeutil import parse_utc

from ..conftest import Installed
from ..helpers import temporary_user, write_script

pytestmark = pytest.mark.slow

CRON = shutil.which("cron") or "/usr/sbin/cron"
STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (.*)$")


def require(condition: bool, reason: str) -> None:
    """Skip locally when the machine cannot run this; in CI it must run (.ci/run installs cron)."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: CI must run this test")
    pytest.skip(reason)


@pytest.fixture
def cron_user() -> Iterator[str]:
    """A user of its own for this run (two runs on one host must not share one), removed after it."""
    require(hasattr(os, "geteuid") and os.geteuid() == 0, "needs root to install a crontab for another user")
    require(Path(CRON).exists() and shutil.which("crontab") is not None, "Debian's cron is not installed")
    with temporary_user("retryqcron-") as user:
        yield user


@pytest.fixture
def project(cron_user: str) -> Iterator[Path]:
    """The application's directory, owned by the cron user (pytest's own tmp dirs are private to root)."""
    directory = Path(tempfile.mkdtemp(prefix="retryq-cron-"))
    directory.chmod(0o755)
    shutil.chown(directory, user=cron_user)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def cron_daemon() -> Iterator[None]:
    """A running cron, all along the test: the machine's own if one runs (two would run every job twice), else
    one for the test; and one for the test again whenever none runs (another test that started the one found
    may stop it meanwhile, on a machine shared by several test runs)."""
    started: list[subprocess.Popen[bytes]] = []
    done = threading.Event()

    def keep_one_running() -> None:
        while not done.is_set():
            if subprocess.run(["pgrep", "-x", "cron"], capture_output=True, check=False).returncode != 0:
                started.append(subprocess.Popen([CRON, "-f"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            done.wait(1)

    watcher = threading.Thread(target=keep_one_running, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join(timeout=30)
        for daemon in started:
            daemon.terminate()
            daemon.wait(timeout=30)


def as_user(user: str, installed: Installed, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    path = f"{installed.venv}/bin:/usr/bin:/bin"
    return subprocess.run(
        [
            "runuser",
            "-u",
            user,
            "--",
            "env",
            "-i",
            f"PATH={path}",
            "HOME=/",
            "sh",
            "-c",
            f"cd {cwd} && {' '.join(args)}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@contextlib.contextmanager
def process_every_minute(user: str, installed: Installed, project: Path, workflow: Path) -> Iterator[None]:
    """The crontab of crontab.example for ``user`` (the installed wheel on its PATH, a log in the project),
    with the workflow and retryq.toml handed to that user; removed however the block ends."""
    for path in (workflow, project / "retryq.toml"):
        shutil.chown(path, user=user)
    crontab = (
        "SHELL=/bin/sh\n"
        f"PATH={installed.venv}/bin:/usr/bin:/bin\n"
        f"* * * * * cd {project} && retryq process >> {project}/retry.log 2>&1\n"
    )
    subprocess.run(["crontab", "-u", user, "-"], input=crontab, text=True, check=True)
    try:
        yield
    finally:
        subprocess.run(["crontab", "-u", user, "-r"], check=False, capture_output=True)


@pytest.mark.timeout(900)  # its own wait below ends first, with the log in the failure
def test_a_retry_fails_once_then_succeeds_at_consecutive_minute_ticks(
    installed: Installed, cron_user: str, project: Path, cron_daemon: None
) -> None:
    attempts = project / "attempts"
    fetch = write_script(
        project / "fetch.sh",
        f"n=$(( $(cat {attempts} 2>/dev/null || echo 0) + 1 )); echo $n > {attempts}\n"
        'echo "fetch $1 $2: attempt $n"\n'
        '[ "$n" -ge 2 ] || exit 75\n',
    )
    (project / "retryq.toml").write_text(f'[workflow]\ncommand = ["{fetch}", "{{client}}", "{{date}}"]\n')
    with process_every_minute(cron_user, installed, project, fetch):
        scheduled = as_user(
            cron_user, installed, project, "retryq", "schedule", "balthazar", "2025-12-19", "1", ">> retry.log"
        )
        assert (scheduled.returncode, scheduled.stderr) == (0, "")
        queue = JsonFileStore(project / ".retry-queue.json")
        deadline = time.monotonic() + 600  # due in a minute, then two ticks, on a machine that may be slow
        while time.monotonic() < deadline:
            if queue.load()[0].status is JobStatus.COMPLETED:
                break
            time.sleep(1)
        log = (project / "retry.log").read_text()
    [job] = queue.load()
    assert (job.status, job.attempt) == (JobStatus.COMPLETED, 2), log
    lines = [STAMP.match(line) for line in log.splitlines()]
    assert all(lines), log
    events = [(parse_utc(match[1]), match[2]) for match in lines if match]
    starts = [at for at, text in events if text.startswith("balthazar 2025-12-19 #") and " start: " in text]
    assert len(starts) == 2, log
    first, second = (at.replace(second=0, microsecond=0) for at in starts)
    scheduled_at = job.scheduled_at.replace(second=0, microsecond=0)
    # Due one minute after it was scheduled: the next tick; then the tick after (not one tick later each time).
    assert (first, second) == (scheduled_at + timedelta(minutes=1), scheduled_at + timedelta(minutes=2)), log
    # Between the two attempts the log holds nothing but this job's own lines and its run's summary.
    between = [text for at, text in events if starts[0] <= at < starts[1]]
    assert all(text.startswith(("balthazar 2025-12-19 #1 ", "summary: processed 1 ")) for text in between), log
    assert "exit 75: still incomplete; attempt #2 at" in log
    assert "balthazar 2025-12-19 #2 succeeded" in log
    owners = {path.name: path.stat().st_uid for path in project.iterdir()}
    assert set(owners.values()) == {owners["retryq.toml"]}, f"a file is not the cron user's: {owners}"
    print(f"cron ticks: scheduled {job.scheduled_at:%H:%M:%S}, attempts {[f'{at:%H:%M:%S.%f}'[:-3] for at in starts]}")


@pytest.mark.timeout(900)  # its own wait below ends first, with the log in the failure
def test_a_schedule_every_minute_runs_at_two_consecutive_ticks_once_each(
    installed: Installed, cron_user: str, project: Path, cron_daemon: None
) -> None:
    """The queue owns the recurring job: one `retryq process` entry, no crontab line of its own.

    Each tick enqueues the occurrence of its own minute, once, and runs it; the test waits for two
    consecutive ticks (a cron daemon another test stops and starts again may miss one).
    """
    runs = project / "runs"
    sync = write_script(project / "sync.sh", f'echo "$RETRYQ_JOB_ID $1 $2" >> {runs}\necho "synced $1 $2"\n')
    (project / "retryq.toml").write_text(
        f'[workflows.sync]\ncommand = ["{sync}", "{{client}}", "{{date}}"]\n\n'
        '[schedules.every-minute]\ncron = "* * * * *"\nworkflow = "sync"\nclient = "all"\ntz = "UTC"\n'
    )
    with process_every_minute(cron_user, installed, project, sync):
        deadline = time.monotonic() + 600  # two consecutive ticks, on a machine that may be slow
        while time.monotonic() < deadline and _consecutive(_enqueued(project / "retry.log")) is None:
            time.sleep(1)
    log = (project / "retry.log").read_text() if (project / "retry.log").exists() else ""
    enqueued = _enqueued(project / "retry.log")
    pair = _consecutive(enqueued)
    assert pair is not None, log
    occurrences = [occurrence for _, occurrence, _ in enqueued]
    assert len(occurrences) == len(set(occurrences)), f"an occurrence was enqueued twice: {log}"
    # Each at the tick of its own minute (cron starts on the minute; `process` a second or so later).
    assert all(_minute(at) == occurrence for at, occurrence, _ in enqueued), log
    deadline = time.monotonic() + 120  # the last tick's run may still be writing its line
    while time.monotonic() < deadline and len(_lines(runs)) < len(enqueued):
        time.sleep(1)
    ran = [line.split()[0] for line in _lines(runs)]
    assert sorted(ran) == sorted(job for _, _, job in enqueued), log  # each occurrence's job ran, once
    jobs = {job.id: job for job in JsonFileStore(project / ".retry-queue.json").load()}
    assert all((jobs[ident].attempt, jobs[ident].client_id) == (1, "all") for ident in ran), log
    print(f"schedule ticks: occurrences {pair[0]:%H:%M} and {pair[1]:%H:%M} each enqueued once and run, of {len(ran)}")


def _enqueued(log: Path) -> list[tuple[datetime, datetime, str]]:
    """Each occurrence the log says was enqueued: when, which, and its job."""
    found = []
    for line in _lines(log):
        match = STAMP.match(line)
        if match and "schedule every-minute: occurrence " in match[2] and " enqueued as job " in match[2]:
            occurrence = match[2].split("occurrence ", 1)[1].split(" ", 1)[0]
            found.append((parse_utc(match[1]), parse_utc(occurrence), match[2].rsplit(" ", 1)[1]))
    return found


def _consecutive(enqueued: list[tuple[datetime, datetime, str]]) -> tuple[datetime, datetime] | None:
    occurrences = sorted(occurrence for _, occurrence, _ in enqueued)
    return next(((one, two) for one, two in itertools.pairwise(occurrences) if two - one == timedelta(minutes=1)), None)


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _minute(value: datetime) -> datetime:
    return value.replace(second=0, microsecond=0)
