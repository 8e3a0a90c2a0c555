"""The unit tier: no process, file lock, network or real sleep — a test that tries one fails here.

What needs them lives in ``tests/integration`` (real files and locks, workflows run as child
processes, the CLI in-process, PostgreSQL) or ``tests/system`` (the installed command, cron, a
browser, kills and races between processes).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable
from typing import Any

import filelock
import pytest


def _refuse(what: str) -> Callable[..., Any]:
    def refused(*args: object, **kwargs: object) -> Any:
        raise AssertionError(f"a unit test may not {what}: move it to tests/integration or tests/system")

    return refused


@pytest.fixture(autouse=True)
def _no_processes_locks_network_or_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subprocess.Popen, "__init__", _refuse("start a process"))
    monkeypatch.setattr(os, "fork", _refuse("fork"))
    monkeypatch.setattr(socket.socket, "connect", _refuse("use the network"))
    monkeypatch.setattr(time, "sleep", _refuse("sleep for real (inject a sleep)"))
    monkeypatch.setattr(filelock.BaseFileLock, "acquire", _refuse("take a file lock (use MemoryStore)"))
