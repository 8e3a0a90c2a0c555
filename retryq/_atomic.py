"""Replacing a file so that a reader, or a crash, only ever sees the old content or the new one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def replace_file(
    path: Path, data: bytes, *, mode: int, owner: tuple[int, int] | None = None, durable: bool = True
) -> None:
    """Write ``data`` to a temp file beside ``path``, fsync it and ``os.replace`` it over ``path``.

    The temp file is hidden and ends in ``.tmp`` (collectors that read ``*.prom`` or ``*.json``
    skip it) and is removed on any failure. With ``durable``, the directory is fsynced too, so
    that the rename itself survives a power loss. Raises OSError; ``path`` is then untouched.
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
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        _fsync_directory(path.parent)


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
