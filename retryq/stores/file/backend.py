"""The JSON file as a backend: its addresses are paths (or ``file://`` URLs), and it has no namespace."""

from __future__ import annotations

__all__ = ["BACKEND", "FileBackend"]

import logging
from typing import Any
from urllib.parse import unquote, urlsplit

from ...record.errors import ConfigError
from ..registry import Backend
from .store import JsonFileStore

log = logging.getLogger("retryq")


class FileBackend(Backend):
    """A queue file: a path as given (relative to the working directory), or ``file:///absolute/path``."""

    name = "file"

    def display(self, address: str) -> str:
        return address  # a path holds no secret; it is shown as the user wrote it

    def open(
        self, address: str, *, lock_timeout: float, archive: bool, namespace: str | None, **options: Any
    ) -> JsonFileStore:
        path = path_of(address)
        if namespace is not None:
            # The README's own migration recipe names the file on the command line beside a
            # configuration written for the database: the namespace is not an error there.
            log.warning("namespace %r is for a queue on a server; the queue file %s has none: ignored", namespace, path)
        return JsonFileStore(path, lock_timeout=lock_timeout, archive=archive, **options)


def path_of(address: str) -> str:
    """The file an address names: a path as it is; a ``file://`` URL's path (on this host only)."""
    if not address.lower().startswith("file:"):
        return address
    parts = urlsplit(address)
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise ConfigError(f"{address}: a file:// address names a file of this host: file:///absolute/path")
    if parts.query or parts.fragment:
        raise ConfigError(f"{address}: a file:// address takes no query or fragment")
    return unquote(parts.path)


BACKEND = FileBackend()
