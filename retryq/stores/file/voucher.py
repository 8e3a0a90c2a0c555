"""Whether the queue file is whole JSON as retryq wrote it, known without parsing every record.

A schedule reads only the records that may hold its key (see :func:`.layout.added`), so it would
not see a line broken by hand elsewhere in the file. A write that parsed every record, or that
added a job to a file so vouched for, marks its temp file with an extended attribute holding the
file's size and modification time; a schedule trusts the file without parsing it only when the
mark is there and still matches. An edit in place changes the modification time (an editor that
writes a new file leaves no mark at all); a file system without extended attributes keeps no
mark, and every schedule parses the file whole, as it always did.

The mark also says whether every record is a valid job (``clean``), when the writer knew it: it had
checked every record of the file it read (as every command does before it writes, see
:meth:`~retryq.stores.file.store.JsonFileStore.invalid`), or read a file marked clean, and added or
changed only jobs it validated. Then the next command's check for invalid records trusts the mark
instead of reading every record again; any other file is checked record by record, as before.
"""

from __future__ import annotations

__all__ = ["vouch", "vouched"]

import os
from contextlib import suppress
from pathlib import Path
from typing import Literal

ATTRIBUTE = "user.retryq.whole"
CLEAN = b" clean"


def vouch(fd: int, *, clean: bool = False) -> None:
    """Mark the file open at ``fd``, just written whole by retryq, as valid JSON in its layout (and, with
    ``clean``, as holding valid jobs only)."""
    info = os.fstat(fd)
    with suppress(OSError, AttributeError):  # no extended attributes here (or on this system): no mark
        os.setxattr(fd, ATTRIBUTE, _mark(info) + (CLEAN if clean else b""))


def vouched(path: Path, read: bytes | int | None) -> Literal["whole", "clean"] | None:
    """What the mark of the file at ``path`` (``read``: its bytes as read, or their count) vouches for:
    ``"clean"``, every record a valid job (its check need read none); ``"whole"``, its layout only; None,
    nothing (no mark, or one of another state of the file)."""
    if read is None:
        return None
    try:
        info, mark = os.stat(path), os.getxattr(path, ATTRIBUTE)
    except (OSError, AttributeError):
        return None
    if info.st_size != (read if isinstance(read, int) else len(read)):
        return None
    whole = _mark(info)
    return "clean" if mark == whole + CLEAN else "whole" if mark == whole else None


def _mark(info: os.stat_result) -> bytes:
    return f"{info.st_size} {info.st_mtime_ns} {info.st_ino}".encode()
