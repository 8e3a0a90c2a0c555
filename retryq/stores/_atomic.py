"""Replacing a file so that a reader, or a crash, only ever sees the old content or the new one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def replace_file(
    path: Path,
    data: bytes,
    *,
    mode: int,
    owner: tuple[int, int] | None = None,
    durable: bool = True,
    before_replace: Callable[[], None] | None = None,
    on_written: Callable[[int], None] | None = None,
) -> None:
    """Write ``data`` to a temp file beside ``path``, fsync it and ``os.replace`` it over ``path``.

    The temp file is hidden and ends in ``.tmp`` (collectors that read ``*.prom`` or ``*.json``
    skip it) and is removed on any failure. ``before_replace`` runs last, just before the rename,
    and may raise to abandon it (a lock that is no longer ours). With ``durable``, the directory is
    fsynced too, so that the rename itself survives a power loss. ``on_written`` is given the temp
    file's descriptor once ``data`` is in it, before the fsync. Raises OSError (or what
    ``before_replace`` raises); ``path`` is then untouched.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            if hasattr(os, "fchmod"):  # not on Windows, where the mode means little anyway
                os.fchmod(handle.fileno(), mode)  # mkstemp creates files 0600
            if owner is not None:
                os.fchown(handle.fileno(), *owner)
            handle.write(data)
            handle.flush()
            if on_written is not None:
                on_written(handle.fileno())
            os.fsync(handle.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        _fsync_directory(path.parent)


def rename_durably(source: Path, target: Path) -> None:
    """``os.replace(source, target)``, then the directory fsynced so that the rename survives a power loss."""
    os.replace(source, target)
    _fsync_directory(target.parent)


def new_file_owner(reference: Path) -> tuple[int, int] | None:
    """As root, the owner and group a file retryq creates beside ``reference`` takes: ``reference``'s,
    else its directory's. None when not root (a file is then this user's, as it should be).

    Root running `retryq cancel` once must not leave a lock, an archive or a queue file that the
    queue's owner can no longer open.
    """
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    for candidate in (reference, reference.parent):
        with contextlib.suppress(OSError):
            info = candidate.stat()
            return info.st_uid, info.st_gid
    return None


def _fsync_directory(directory: Path) -> None:
    """Not every platform can open a directory (Windows cannot); there the rename is as durable as it gets."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
