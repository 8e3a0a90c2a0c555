"""How a command given as one string (``command = "…"``, ``RETRYQ_COMMAND``) becomes an argv: split
as this system's programs split their command lines, never by a shell."""

from __future__ import annotations

__all__ = ["split_command", "split_windows"]

import shlex
import sys


def split_windows(text: str) -> list[str]:
    """Split a command line as Windows programs do: backslashes are path separators, not escapes,
    and double quotes group (``"C:\\Program Files\\x.exe" {client}``)."""
    return [
        item[1:-1] if len(item) >= 2 and item[0] == item[-1] == '"' else item for item in shlex.split(text, posix=False)
    ]


#: How a command given as one string (``RETRYQ_COMMAND``, ``command = "…"``) is split on this system.
split_command = split_windows if sys.platform == "win32" else shlex.split
