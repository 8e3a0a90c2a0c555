"""Process identity and control: who owns a claim, is it alive, and stopping a workflow's processes.

An owner is identified by host, pid, the kernel's boot id and the process start time, so that
a pid reused after a crash or a reboot is not mistaken for the process that claimed a job.
The start time and boot id come from ``/proc`` (Linux); elsewhere only the pid is checked.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from ..record.models import Owner
from .pids import Started, created_since

if TYPE_CHECKING:
    import subprocess

    from .watchdog import Watchdog

PROC = Path("/proc")
#: The variable that marks every process of a run, wherever it goes (recovery finds them by it).
RUN_ID_VARIABLE = "RETRYQ_RUN_ID"
#: Pause between the two scans that prove an interrupted run has no process left (seconds).
SETTLE = 0.1
IS_WINDOWS = sys.platform == "win32"


class _Posix:
    """Process groups and signals: each workflow runs in a session of its own, stopped as one group."""

    def __init__(self) -> None:
        #: Whether processes can be searched (their state, group and environment): Linux's /proc.
        self.searchable = PROC.is_dir()

    def popen_options(self) -> dict[str, Any]:
        """Popen options that put a workflow in a process group of its own, so it can be stopped whole."""
        return {"start_new_session": True}

    def watchdog(self) -> Watchdog:
        """This process's watchdog, which stops its runs if it dies (see :mod:`retryq.running.watchdog`)."""
        from .watchdog import WATCHDOG

        return WATCHDOG

    def terminate_group(self, pgid: int) -> bool:
        """Ask a process group to stop (SIGTERM); False when the group no longer exists."""
        return self._signal(pgid, signal.SIGTERM)

    def kill_group(self, pgid: int) -> bool:
        """Stop a process group at once (SIGKILL); False when the group no longer exists."""
        return self._signal(pgid, signal.SIGKILL)

    def group_alive(self, pgid: int) -> bool:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return _group_has_live_member(pgid)

    def pid_alive(self, pid: int) -> bool:
        if pid <= 0:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # it exists, it just is not ours
        if self.searchable:
            try:
                state = (PROC / str(pid) / "stat").read_text()
                if state[state.rindex(")") + 2 :].startswith("Z"):
                    return False  # a zombie has finished; it only waits to be reaped
            except OSError:
                return False
        return True

    def _signal(self, pgid: int, sig: int) -> bool:
        if pgid <= 1:
            return False  # 0, 1 and negatives address other groups than a workflow's
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # exists, not ours to signal; the caller will find it still there
        return True


class _Windows:
    """Process trees and ``taskkill``: a workflow runs in a process group of its own, stopped as a tree.

    The commands go through ``run``, so that tests on any system can see what would be run.
    """

    #: No /proc: processes are found by their pid alone, through tasklist.
    searchable = False

    def __init__(self, run: Callable[[list[str]], subprocess.CompletedProcess[str]] | None = None) -> None:
        self.run = run or _run_captured

    def popen_options(self) -> dict[str, Any]:
        import subprocess

        return {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)}

    def watchdog(self) -> _Unwatched:
        """None here: a workflow whose retryq dies runs on to its end (its lease still bounds the claim)."""
        return _Unwatched()

    def terminate_group(self, pgid: int) -> bool:
        return self.run(["taskkill", "/T", "/PID", str(pgid)]).returncode == 0

    def kill_group(self, pgid: int) -> bool:
        return self.run(["taskkill", "/T", "/F", "/PID", str(pgid)]).returncode == 0

    def group_alive(self, pgid: int) -> bool:
        return self.pid_alive(pgid)

    def pid_alive(self, pid: int) -> bool:
        if pid <= 0:
            return False
        listed = self.run(["tasklist", "/FI", f"PID eq {pid}", "/NH", "/FO", "CSV"])
        return f'"{pid}"' in listed.stdout


class _Unwatched:
    """Where no watchdog ties runs to retryq's life: told of runs, it does nothing."""

    def watch(self, run_id: str, grace: float) -> None:
        pass

    def started(self, run_id: str, group: int) -> None:
        pass

    def forget(self, run_id: str) -> None:
        pass


def _run_captured(argv: list[str]) -> subprocess.CompletedProcess[str]:
    # subprocess is imported here, not at the top: scheduling a job never starts a process.
    import subprocess

    return subprocess.run(argv, capture_output=True, text=True, check=False)


#: This system's way, chosen once (as filelock chooses its lock class).
PLATFORM: _Posix | _Windows = _Windows() if IS_WINDOWS else _Posix()


def popen_group_options() -> dict[str, Any]:
    return PLATFORM.popen_options()


def watchdog() -> Watchdog | _Unwatched:
    """What stops this process's runs if it dies: a watchdog (POSIX), or nothing (Windows)."""
    return PLATFORM.watchdog()


def pid_alive(pid: int) -> bool:
    return PLATFORM.pid_alive(pid)


def group_alive(pgid: int) -> bool:
    return PLATFORM.group_alive(pgid)


def terminate_group(pgid: int) -> bool:
    return PLATFORM.terminate_group(pgid)


def searchable() -> bool:
    """Whether this system lets processes be searched by group and environment (Linux's /proc)."""
    return PLATFORM.searchable


def kill_group(pgid: int) -> bool:
    return PLATFORM.kill_group(pgid)


def _group_has_live_member(pgid: int) -> bool:
    """Zombies still count for killpg(0); only a process that can run means the group is alive."""
    if not searchable():
        return True
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


def hostname() -> str:
    """This host's name as claims record it; ``RETRYQ_HOST`` overrides it (tests that simulate several hosts)."""
    if os.environ.get("RETRYQ_HOST"):
        return os.environ["RETRYQ_HOST"]
    import socket  # only a claim needs it: `retryq schedule` never does

    return socket.gethostname()


def boot_id() -> str | None:
    try:
        return (PROC / "sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def process_start(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (field 22 of /proc/PID/stat), None if unknown."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself contain spaces or ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def pid_namespace() -> str | None:
    """This process's pid namespace (``pid:[4026531836]``), None where there is no /proc."""
    try:
        return os.readlink(PROC / "self/ns/pid")
    except OSError:
        return None


_OWNERS: dict[int, Owner] = {}


def current_owner() -> Owner:
    """This process as an owner of claims (computed once per process; a fork gets its own)."""
    pid = os.getpid()
    if pid not in _OWNERS:
        _OWNERS[pid] = Owner(
            host=hostname(), pid=pid, boot_id=boot_id(), started=process_start(pid), pid_ns=pid_namespace()
        )
    return _OWNERS[pid]


def owner_alive(owner: Owner) -> bool | None:
    """True or False for an owner on this host (and this boot); None when it cannot be known from here."""
    if owner.host != hostname():
        return None
    if owner.pid_ns and owner.pid_ns != pid_namespace():
        return None  # another container on this host: its pids mean nothing here, only its lease does
    current_boot = boot_id()
    if owner.boot_id and current_boot and owner.boot_id != current_boot:
        return False  # the machine rebooted since: every process of that boot is gone
    if not pid_alive(owner.pid):
        return False
    if owner.started is not None:
        started = process_start(owner.pid)
        if started is not None and started != owner.started:
            return False  # the pid was reused by another process
    return True


@contextlib.contextmanager
def stop_signals(on_signal: Callable[[int], None]) -> Iterator[None]:
    """Call ``on_signal(signum)`` on SIGTERM and SIGINT while inside (main thread only; else a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        on_signal(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def stop_group(
    pgid: int,
    grace: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> bool:
    """Ask a process group to stop, then kill what is left after ``grace`` seconds; True once it is gone."""
    if not terminate_group(pgid) or not group_alive(pgid):
        return True
    deadline = monotonic() + grace
    while monotonic() < deadline:
        sleep(0.05)
        if not group_alive(pgid):
            return True
    kill_group(pgid)
    deadline = monotonic() + 5
    while monotonic() < deadline:
        if not group_alive(pgid):
            return True
        sleep(0.02)
    return not group_alive(pgid)


def processes_with_run_id(run_id: str) -> list[int]:
    """Pids whose environment carries ``RETRYQ_RUN_ID=run_id``: every process a run started, wherever
    it moved to (new process group, new session), and never an unrelated process that reused a pid."""
    return processes_with_run_ids([run_id])[run_id]


def processes_with_run_ids(run_ids: Collection[str], *, since: Started | None = None) -> dict[str, list[int]]:
    """:func:`processes_with_run_id` for several runs, in one scan of /proc (each scan reads every
    process's environment: a few milliseconds on a busy host). With ``since`` (see :func:`started`),
    only the processes created since are read, where :func:`.pids.created_since` can tell them apart."""
    found: dict[str, list[int]] = {run_id: [] for run_id in run_ids}
    if not found or not searchable():
        return found
    needles = {f"{RUN_ID_VARIABLE}={run_id}".encode(): run_id for run_id in found}
    marker = f"{RUN_ID_VARIABLE}=".encode()
    me = os.getpid()
    pids = [int(name) for name in os.listdir(PROC) if name.isdigit()]  # plain strings and one read each
    recent = None if since is None else created_since(since, len(pids))
    for pid in pids:
        if pid == me or (recent is not None and not recent(pid)):
            continue
        try:
            with open(f"{PROC}/{pid}/environ", "rb") as handle:
                environ = handle.read()
        except OSError:
            continue
        if marker not in environ:  # most processes (and every kernel thread) carry no run id at all
            continue
        for variable in environ.split(b"\0"):
            run_id = needles.get(variable)
            if run_id is not None and pid_alive(pid):
                found[run_id].append(pid)
    return found


def stop_run_processes(
    run_id: str,
    grace: float,
    *,
    settle: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> bool:
    """Make sure nothing of a run is still running (Linux); True when that is certain.

    Every process carrying the run's id is stopped, its process group first (SIGTERM, SIGKILL
    after ``grace``), wherever it moved (``setsid``). Only such processes are ever signalled.
    With ``settle``, for a run whose runner died, the run is over only after two empty scans
    ``SETTLE`` seconds apart: a runner killed between fork and exec leaves a child that carries
    the id only once it has exec'd. Without /proc nothing can be found: False.
    """
    return _stop_carriers(run_id, grace, settle=settle, sleep=sleep, monotonic=monotonic)[0]


def stop_leftovers(graces: Mapping[str, float], *, since: Started | None = None) -> dict[str, int]:
    """At the end of runs (run id → grace), stop what each left running outside its group; return how
    many processes that was, per run. One scan of /proc when, as usual, they left nothing: of the
    processes created since the first of these runs started (``since``), where that can be told."""
    left = {run_id: pids for run_id, pids in processes_with_run_ids(graces, since=since).items() if pids}
    counts = dict.fromkeys(graces, 0)
    for run_id in left:
        counts[run_id] = _stop_carriers(
            run_id, graces[run_id], settle=False, sleep=time.sleep, monotonic=time.monotonic
        )[1]
    return counts


def _stop_carriers(
    run_id: str, grace: float, *, settle: bool, sleep: Callable[[float], None], monotonic: Callable[[], float]
) -> tuple[bool, int]:
    if not searchable():
        return False, 0
    deadline = monotonic() + grace + 10
    stopped: set[int] = set()
    quiet_scans = 0
    while quiet_scans < (2 if settle else 1):
        pids = processes_with_run_id(run_id)
        if not pids:
            quiet_scans += 1
            if quiet_scans < (2 if settle else 1):
                sleep(SETTLE)
            continue
        quiet_scans = 0
        if monotonic() > deadline:
            return False, len(stopped)
        stopped.update(pids)
        groups = set()
        for pid in pids:
            with contextlib.suppress(OSError):
                groups.add(os.getpgid(pid))
        for group in groups - {0, 1, os.getpgrp()}:  # never ourselves, whatever a child did
            stop_group(group, grace, sleep=sleep, monotonic=monotonic)
        for pid in processes_with_run_id(run_id):  # left its group, or ignored SIGTERM
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        sleep(0.02)
    return True, len(stopped)
