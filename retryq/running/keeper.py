"""A run's keeper (POSIX): a small process between retryq and a workflow that ties the run to retryq's life.

retryq starts the keeper, which starts the workflow in its own process group and waits for it,
exiting as it exits (same code, or killed by the same signal). The keeper also watches a pipe
that only retryq holds open: the kernel closes it when retryq dies, however it dies (SIGKILL, the
OOM killer), and the keeper then stops the whole group (SIGTERM, then SIGKILL after
``kill_grace``), and on Linux also what left the group but carries the run's ``RETRYQ_RUN_ID``.
So a workflow never outlives the process that supervises it by more than ``kill_grace``.

The keeper leads the group: a signal retryq sends to the group (a timeout, a stop) reaches the
workflow, which the keeper leaves to answer it (it ignores SIGTERM, SIGINT and SIGHUP itself).
It is this file run as a script by the same interpreter (``-I -S``: the standard library only,
nothing of retryq imported), about 20 ms per run. The workflow's argv and environment reach it
on its stdin, exactly (an interpreter may add ``LC_CTYPE`` to its own environment); its stdin is
then ``/dev/null`` as before, its stdout and stderr the keeper's.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["spawn"]

#: Signals the keeper leaves to the workflow; they are reset for it, with those Python ignores.
_LEFT_TO_THE_WORKFLOW = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_RESET = (*_LEFT_TO_THE_WORKFLOW, signal.SIGPIPE, signal.SIGXFSZ)
_RUN_ID = "RETRYQ_RUN_ID"

# -- retryq's side -------------------------------------------------------------------------------


class _LifeLine:
    """This process's life pipe: keepers get its read end; its write end closes only when the process dies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ends: tuple[int, int, int] | None = None  # (read end, write end, pid of the process that made them)

    def read_end(self) -> int:
        with self._lock:
            if self._ends is not None and self._ends[2] != os.getpid():  # a fork: its parent's line is not its own
                for fd in self._ends[:2]:
                    with contextlib.suppress(OSError):
                        os.close(fd)
                self._ends = None
            if self._ends is None:
                read, write = os.pipe()  # close-on-exec: only keepers get the read end, nobody the write end
                self._ends = (read, write, os.getpid())
            return self._ends[0]


_LIFE = _LifeLine()


def spawn(argv: Sequence[str], env: Mapping[str, str], *, kill_grace: float, capture: bool) -> subprocess.Popen[bytes]:
    """Start ``argv`` under a keeper in a new session; return the keeper (its pid is the group's).

    Raises OSError as :class:`subprocess.Popen` would when the workflow itself cannot start.
    """
    life = _LIFE.read_end()
    ready_read, ready_write = os.pipe()
    try:
        keeper = subprocess.Popen(
            [sys.executable, "-I", "-S", __file__, str(life), str(ready_write)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.STDOUT if capture else None,
            env=dict(env),  # the keeper carries the run's id too: recovery finds it as part of the run
            close_fds=True,
            pass_fds=(life, ready_write),
            start_new_session=True,
        )
    finally:
        os.close(ready_write)
    try:
        assert keeper.stdin is not None
        with keeper.stdin:
            keeper.stdin.write(json.dumps({"argv": list(argv), "env": dict(env), "grace": kill_grace}).encode())
        with os.fdopen(ready_read, "rb") as ready:
            said = ready.read().decode()
    except OSError:
        said = ""
    if said == "0":
        return keeper
    code = keeper.wait()
    if said.isdigit():
        raise OSError(int(said), os.strerror(int(said)))
    raise OSError(0, f"the run's keeper did not start (exit {code})")


# -- the keeper ----------------------------------------------------------------------------------


def _main(life: int, ready: int) -> None:
    for sig in _LEFT_TO_THE_WORKFLOW:
        signal.signal(sig, signal.SIG_IGN)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)  # wakes the select below
    spec: dict[str, Any] = json.loads(sys.stdin.buffer.read())
    os.close(0)
    os.set_inheritable(life, False)
    os.set_inheritable(ready, False)
    try:
        child = os.posix_spawnp(
            spec["argv"][0],
            spec["argv"],
            spec["env"],
            file_actions=[(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0)],
            setsigdef=_RESET,
        )
    except OSError as error:
        os.write(ready, str(error.errno or 0).encode())
        os._exit(127)
    os.write(ready, b"0")
    os.close(ready)
    while True:
        pid, status = os.waitpid(child, os.WNOHANG)
        if pid == child:
            _exit_as(status)
        readable, _, _ = select.select([life, wake_read], [], [])
        if wake_read in readable:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_read, 512)
        if life in readable and not os.read(life, 1):  # end of file: retryq is gone
            _orphaned(child, float(spec["grace"]), spec["env"].get(_RUN_ID))


def _exit_as(status: int) -> None:
    """Exit as the workflow did: its code, or killed by its signal (without a core dump)."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        with contextlib.suppress(ImportError, ValueError, OSError):
            import resource

            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        with contextlib.suppress(OSError, ValueError):  # SIGKILL and SIGSTOP have no handler to reset
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.waitstatus_to_exitcode(status))


def _orphaned(child: int, grace: float, run_id: str | None) -> None:
    """retryq died: stop the run's processes, all of them within ``grace`` seconds; never returns."""
    _signal_run(signal.SIGTERM, run_id)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        if not _others_alive(run_id):
            break
        time.sleep(0.05)
    _signal_run(signal.SIGKILL, run_id)  # the group includes the keeper: this is its end too
    os._exit(128 + signal.SIGKILL)


def _signal_run(sig: int, run_id: str | None) -> None:
    group = os.getpgrp()
    for pid in _carriers(run_id):  # what left the group (Linux); the group gets one signal, below
        with contextlib.suppress(OSError):
            if os.getpgid(pid) != group:
                os.kill(pid, sig)
    with contextlib.suppress(OSError):
        os.killpg(group, sig)


def _others_alive(run_id: str | None) -> bool:
    """Whether a process of the run other than the keeper may still run (where /proc cannot tell: yes)."""
    if not os.path.isdir("/proc"):
        return True
    group, me = str(os.getpgrp()), os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                stat = handle.read().decode("ascii", "replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if len(fields) > 2 and fields[2] == group and fields[0] != "Z":
            return True
    return bool(_carriers(run_id))


def _carriers(run_id: str | None) -> list[int]:
    """Live processes, other than the keeper, whose environment carries ``RETRYQ_RUN_ID=run_id`` (Linux)."""
    if not run_id or not os.path.isdir("/proc"):
        return []
    needle, me, found = f"{_RUN_ID}={run_id}".encode(), os.getpid(), []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as handle:
                if needle not in handle.read().split(b"\0"):
                    continue
            with open(f"/proc/{name}/stat", "rb") as handle:
                stat = handle.read().decode("ascii", "replace")
        except OSError:
            continue
        if not stat[stat.rindex(")") + 2 :].startswith("Z"):
            found.append(int(name))
    return found


if __name__ == "__main__":
    _main(int(sys.argv[1]), int(sys.argv[2]))
