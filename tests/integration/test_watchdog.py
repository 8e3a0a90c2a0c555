"""The watchdog that stops a process's runs when it dies: it leaves with its process, and one killed is replaced."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from retryq.running import platform
from retryq.running.platform import pid_alive
from retryq.running.runner import Supervisor
from retryq.running.watchdog import WATCHDOG

pytestmark = pytest.mark.skipif(platform.IS_WINDOWS, reason="no watchdog on Windows")


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def run_once(supervisor: Supervisor, key: str) -> None:
    supervisor.start(key, ["true"], dict(os.environ), timeout=60, kill_grace=1)
    deadline = time.monotonic() + 120
    while not supervisor.wait(1):
        assert time.monotonic() < deadline


def test_the_watchdog_leaves_when_its_process_exits_with_no_run_left() -> None:
    script = (
        "import os\n"
        "from retryq.running.runner import Supervisor\n"
        "from retryq.running.watchdog import WATCHDOG\n"
        "supervisor = Supervisor()\n"
        "supervisor.start('k', ['true'], dict(os.environ), timeout=60, kill_grace=1)\n"
        "while not supervisor.wait(1): pass\n"
        "print(WATCHDOG._process.pid)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    watchdog = int(done.stdout)
    wait_for(lambda: not pid_alive(watchdog), "the watchdog to leave")


def test_a_watchdog_that_was_killed_is_replaced_at_the_next_run() -> None:
    supervisor = Supervisor()
    run_once(supervisor, "first")
    process = WATCHDOG._process
    assert process is not None
    assert process.poll() is None
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    run_once(supervisor, "second")
    replaced = WATCHDOG._process
    assert replaced is not None
    assert replaced is not process
    assert replaced.poll() is None
