"""The archive beside the queue file (``<file>.archive.jsonl``): pruned jobs appended, one per line."""

from __future__ import annotations

__all__ = ["append_to_archive"]

import os
from contextlib import suppress
from pathlib import Path

from ...record.errors import StoreIOError
from ...record.models import Job
from .._atomic import new_file_owner

NEW_FILE_MODE = 0o600


def append_to_archive(path: Path, jobs: list[Job], *, owner_of: Path) -> None:
    """Append whole lines or nothing: an append cut short (disk full) is truncated back to where it began.

    As root, the archive takes the owner of ``owner_of`` (the queue file), as every file beside it does.
    """
    data = "".join(job.to_json_line() + "\n" for job in jobs).encode("utf-8")
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, NEW_FILE_MODE)
    except OSError as error:
        raise StoreIOError(f"{path}: cannot append to the archive: {error.strerror}") from None
    try:
        info = os.fstat(fd)
        owner = new_file_owner(owner_of)
        if owner is not None and (info.st_uid, info.st_gid) != owner:
            os.fchown(fd, *owner)
        size = info.st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            # A line torn by an earlier crash: end it, so that it does not swallow our first job.
            data = b"\n" + data
        try:
            _write_all(fd, data)
            os.fsync(fd)
        except OSError:
            with suppress(OSError):
                os.ftruncate(fd, size)
                os.fsync(fd)
            raise
    except OSError as error:
        raise StoreIOError(f"{path}: cannot append to the archive: {error.strerror}") from None
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
