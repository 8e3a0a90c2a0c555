"""Whether the queue file is whole JSON as retryq wrote it, known without parsing every record.

A schedule reads only the records that may hold its key (see :func:`.layout.added`), so it would
not see a line broken by hand elsewhere in the file. A write that parsed every record, or that
added a job to a file so vouched for, marks its temp file with an extended attribute holding the
file's size and modification time; a schedule trusts the file without parsing it only when the
mark is there and still matches. An edit in place changes the modification time (an editor that
writes a new file leaves no mark at all); a file system without extended attributes keeps no
mark, and every schedule parses the file whole, as it always did.
"""

from __future__ import annotations

__all__ = ["vouch", "vouched"]

import os
from contextlib import suppress
from pathlib import Path

ATTRIBUTE = "user.retryq.whole"


def vouch(fd: int) -> None:
    """Mark the file open at ``fd``, just written whole by retryq, as valid JSON in its layout."""
    info = os.fstat(fd)
    with suppress(OSError, AttributeError):  # no extended attributes here (or on this system): no mark
        os.setxattr(fd, ATTRIBUTE, _mark(info))


def vouched(path: Path, size: int) -> bool:
    """Whether the file at ``path`` (``size`` bytes read from it) still carries its mark."""
    try:
        info, mark = os.stat(path), os.getxattr(path, ATTRIBUTE)
    except (OSError, AttributeError):
        return False
    return info.st_size == size and mark == _mark(info)


def _mark(info: os.stat_result) -> bytes:
    return f"{info.st_size} {info.st_mtime_ns} {info.st_ino}".encode()
