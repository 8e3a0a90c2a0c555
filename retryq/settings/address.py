"""Whether a queue address names a server (a URL, whatever its scheme) or a file: the one test,
so that a mistyped scheme is never taken for a file name (and its password never echoed as one)."""

from __future__ import annotations

__all__ = ["looks_like_url"]

import re

# A scheme of two letters or more (``C:\\queue.json`` is a Windows path, not a URL), then ``:/``.
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]+:/")


def looks_like_url(address: str) -> bool:
    """Whether a queue address is a URL (a server's) rather than a file path, whatever its scheme."""
    return _URL.match(address) is not None
