"""Which processes were created since a run started, told from their pids (Linux): what lets the end
of a run read the environments of those processes only, instead of every process's."""

from __future__ import annotations

__all__ = ["RESERVED_PIDS", "Started", "created_since", "forks_so_far", "window"]

import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

PROC = Path("/proc")
#: The pids Linux hands out again after wrapping round (kernel/pid.c's RESERVED_PIDS).
RESERVED_PIDS = 300


class Started(NamedTuple):
    """When a run started, as the kernel counts: its first process, and how many tasks the kernel had
    created since boot just before it (``processes`` in /proc/stat, threads included)."""

    pid: int
    forks: int


def forks_so_far() -> int | None:
    """How many tasks (processes and threads) the kernel has created since boot; None where unknown."""
    text = _read(f"{PROC}/stat")
    at = -1 if text is None else text.find(b"\nprocesses ")
    if text is None or at < 0:
        return None
    try:
        return int(text[at + 11 : text.index(b"\n", at + 1)])
    except ValueError:
        return None


def _read(path: str) -> bytes | None:
    """A small file of /proc, read in one call (a run's end reads three: pathlib would double the cost)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, 1 << 16)
    except OSError:
        return None
    finally:
        os.close(fd)


def created_since(since: Started, live: int) -> Callable[[int], bool] | None:
    """Which pids were created after ``since.pid`` (None when that cannot be told; read after listing
    the pids, so that every pid listed is covered).

    Linux hands out pids in turn, upwards from the last one given (``ns_last_pid``) to ``pid_max``,
    then again from 300, skipping those in use. So the pids created since the run's first process
    are those after it in that cycle, up to the last one given, as long as the cycle has not come
    round past it: that takes at least as many new tasks as there are free pids, which the kernel's
    count of tasks created (every namespace's, threads included: never fewer than ours) rules out.
    A process that carries a run's id was created after the run started: a descendant of it, or
    a process some service started with the run's environment (``at``, ``systemd-run``); only a
    process that was already running and then execs itself with the run's id escapes this
    scan, which no workflow does by accident. Recovering an abandoned run still scans every process.
    """
    forks = forks_so_far()
    last, top = _read(f"{PROC}/sys/kernel/ns_last_pid"), _read(f"{PROC}/sys/kernel/pid_max")
    try:
        return (
            None if forks is None else window(since.pid, int(last or b""), forks - since.forks, live, int(top or b""))
        )
    except ValueError:
        return None


def window(first: int, last: int, new_tasks: int, live: int, top: int) -> Callable[[int], bool] | None:
    """The pids handed out after ``first``, up to ``last``, ``new_tasks`` tasks later, with ``live``
    processes and pids below ``top`` (``pid_max``); None when the cycle may have come round past ``first``."""
    if new_tasks + live >= top - RESERVED_PIDS:
        return None
    if last >= first:
        return lambda pid: first < pid <= last
    return lambda pid: pid > first or pid <= last  # the cycle came round to RESERVED_PIDS since
