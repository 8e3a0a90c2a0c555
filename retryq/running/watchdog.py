"""A watchdog that takes the workflows down when the retryq process that supervises them dies (POSIX).

Each process that runs workflows starts one watchdog, on its first run: a small process in a
session of its own (this file run by the same interpreter with ``-I -S``: the standard library
only, some 30 ms once). retryq tells it, on a pipe that only retryq holds open, each run it
starts (its run id, its process group, its ``kill_grace``) and each run that ended. The kernel
closes that pipe when retryq dies, however it dies (SIGKILL, the OOM killer): the watchdog then
stops every run it was told of and not told ended — its process group and, on Linux, whatever
left the group but carries the run's ``RETRYQ_RUN_ID`` — with SIGTERM, then SIGKILL after the
longest ``kill_grace``, and exits. When retryq exits with no run left, the watchdog just exits.
A workflow therefore never outlives its supervisor by more than ``kill_grace`` (and a scan of
``/proc``), and is started exactly as before (no process stands between retryq and it).
"""

from __future__ import annotations

__all__ = ["WATCHDOG", "Watchdog"]

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from typing import IO

_RUN_ID = "RETRYQ_RUN_ID"


class Watchdog:
    """retryq's side: the pipe to this process's watchdog, started on first use (again if it died)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._owner = 0  # the pid that started it: a fork has no watchdog of its own yet
        self._runs: dict[str, tuple[float, int]] = {}  # run id -> (grace, process group; 0 until known)

    def watch(self, run_id: str, grace: float) -> None:
        """A run is about to start: told first, so that if retryq dies while starting it, its
        processes are still found (by their run id)."""
        self._tell(run_id, (grace, 0))

    def started(self, run_id: str, group: int) -> None:
        """The run started, as process group ``group``."""
        self._tell(run_id, (self._runs.get(run_id, (0.0, 0))[0], group))

    def forget(self, run_id: str) -> None:
        """The run ended and its processes are gone (or it never started)."""
        self._tell(run_id, None)

    def _tell(self, run_id: str, run: tuple[float, int] | None) -> None:
        with self._lock:
            if run is None:
                if self._runs.pop(run_id, None) is None:
                    return
                line = f"- {run_id}\n"
            else:
                self._runs[run_id] = run
                line = _added(run_id, run)
            try:
                self._pipe().write(line.encode())
            except OSError:  # it died (someone killed it): a new one is told every run afresh
                self._process = None
                with contextlib.suppress(OSError):
                    self._pipe().write("".join(_added(*each) for each in self._runs.items()).encode())

    def _pipe(self) -> IO[bytes]:
        if self._process is not None and self._owner != os.getpid():
            self._process, self._runs = None, {}  # a fork: its parent's watchdog watches its parent
        if self._process is None:
            self._process = subprocess.Popen(
                [sys.executable, "-I", "-S", __file__],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                close_fds=True,
                start_new_session=True,  # a terminal's Ctrl-C, or a signal to retryq's group, leaves it be
                cwd="/",
                bufsize=0,
            )
            self._owner = os.getpid()
        assert self._process.stdin is not None
        return self._process.stdin


def _added(run_id: str, run: tuple[float, int]) -> str:
    return f"+ {run_id} {run[0]:g} {run[1]}\n"


#: This process's watchdog.
WATCHDOG = Watchdog()


# -- the watchdog itself -------------------------------------------------------------------------


def _main() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # only the end of the pipe ends it
        signal.signal(sig, signal.SIG_IGN)
    runs: dict[str, tuple[float, int]] = {}
    for line in sys.stdin.buffer:  # until the end of the pipe: retryq exited, or died
        match line.split():
            case [b"+", run_id, grace, group]:
                runs[run_id.decode()] = (float(grace), int(group))
            case [b"-", run_id]:
                runs.pop(run_id.decode(), None)
    if runs:
        _stop(runs)


def _stop(runs: dict[str, tuple[float, int]]) -> None:
    """Stop what is left of ``runs`` (SIGTERM, SIGKILL after the longest grace)."""
    _signal(runs, signal.SIGTERM)
    deadline = time.monotonic() + max(grace for grace, _ in runs.values())
    while time.monotonic() < deadline and _left(runs):
        time.sleep(0.05)
    _signal(runs, signal.SIGKILL)


def _signal(runs: dict[str, tuple[float, int]], sig: int) -> None:
    groups = {group for _, group in runs.values() if group > 1}
    for group in groups:
        with contextlib.suppress(OSError):
            os.killpg(group, sig)
    for pid in _carriers(runs):  # what left its group
        with contextlib.suppress(OSError):
            if os.getpgid(pid) not in groups:
                os.kill(pid, sig)


def _left(runs: dict[str, tuple[float, int]]) -> bool:
    """Whether a process of the runs may still run (where /proc cannot tell: yes, until the grace ends)."""
    if not os.path.isdir("/proc"):
        return True
    groups = {str(group) for _, group in runs.values() if group > 1}
    for name in os.listdir("/proc"):
        fields = _stat(name)
        if fields is not None and fields[2] in groups and fields[0] != "Z":
            return True
    return bool(_carriers(runs))


def _carriers(runs: dict[str, tuple[float, int]]) -> list[int]:
    """Live processes whose environment carries the run id of one of ``runs`` (Linux; elsewhere none)."""
    if not os.path.isdir("/proc"):
        return []
    needles = {f"{_RUN_ID}={run_id}".encode() for run_id in runs}
    marker, found = f"{_RUN_ID}=".encode(), []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as handle:
                environ = handle.read()
        except OSError:
            continue
        if marker in environ and needles & set(environ.split(b"\0")):
            fields = _stat(name)
            if fields is not None and fields[0] != "Z":
                found.append(int(name))
    return found


def _stat(name: str) -> list[str] | None:
    """The fields of /proc/NAME/stat after the command name (state, ppid, group…), None if gone."""
    if not name.isdigit():
        return None
    try:
        with open(f"/proc/{name}/stat", "rb") as handle:
            stat = handle.read().decode("ascii", "replace")
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


if __name__ == "__main__":
    _main()
