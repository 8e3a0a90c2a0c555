"""The one place that picks a backend: from an address's scheme to the backend that opens it.

A path (anything that is not a URL) is the JSON file. The built-in backends are the table
:data:`BACKENDS`; another package adds one through the entry-point group ``retryq.stores``, whose
entries are named by the scheme and point at a :class:`Backend` instance::

    [project.entry-points."retryq.stores"]
    mq = "retryq_mq.backend:BACKEND"

Entry points are read only for a scheme the table does not know (reading them scans every
installed package's metadata), and a backend's module is imported only when an address names it:
the core install never imports a driver it does not use.
"""

from __future__ import annotations

__all__ = [
    "BACKENDS",
    "ENTRY_POINT_GROUP",
    "Backend",
    "backend_for",
    "display_address",
    "known_schemes",
    "open_store",
]

import abc
import importlib
import os
from typing import Any, ClassVar

from ..record.errors import ConfigError, DriverMissing
from ..record.limits import LOCK_TIMEOUT
from .address import display_url, looks_like_url, scheme_of, without_secrets
from .base import Store

#: Each scheme of a built-in backend, and where its :class:`Backend` is (``module:attribute``).
BACKENDS: dict[str, str] = {
    "file": "retryq.stores.file.backend:BACKEND",
    "postgresql": "retryq.stores.postgres.backend:BACKEND",
    "postgres": "retryq.stores.postgres.backend:BACKEND",
    "redis": "retryq.stores.redis.backend:BACKEND",
    "rediss": "retryq.stores.redis.backend:BACKEND",
    "unix": "retryq.stores.redis.backend:BACKEND",
}
#: The backend of an address that is not a URL.
PATHS = "file"
ENTRY_POINT_GROUP = "retryq.stores"


class Backend(abc.ABC):
    """A kind of store: everything about it that is not an operation on jobs.

    A backend parses its own addresses, shows them without their secrets, imports its own
    driver, and interprets the namespace option (a PostgreSQL schema, a key prefix): nothing
    above ``retryq.stores`` names a backend or a scheme. Its store says, through
    :meth:`~retryq.stores.Store.environment`, how a workflow reopens it, and through
    :meth:`~retryq.stores.Store.check` what ``doctor`` should know.
    """

    #: What messages and the documentation call it.
    name: ClassVar[str]
    #: The ``pip install 'retryq[extra]'`` that brings its driver (None: nothing to install).
    extra: ClassVar[str | None] = None

    @abc.abstractmethod
    def open(self, address: str, *, lock_timeout: float, archive: bool, namespace: str | None, **options: Any) -> Store:
        """The store at ``address``; raises :class:`ConfigError` (exit 78) for an address it cannot use,
        :class:`DriverMissing` when its driver is not installed. Nothing is read or connected yet."""

    def display(self, address: str) -> str:
        """``address`` as every message shows it: never a password."""
        return display_url(address)

    def without_secrets(self, text: str, address: str) -> str:
        """``text`` (a driver's error, which may quote the address) with ``address``'s secrets masked."""
        return without_secrets(text, address)

    def driver_missing(self, address: str, error: ImportError, driver: str) -> DriverMissing:
        """The one-line error for a driver that cannot be imported, naming the extra that installs it."""
        install = f"pip install 'retryq[{self.extra}]'" if self.extra else f"install {driver}"
        reason = self.without_secrets(str(error).splitlines()[0] if str(error) else type(error).__name__, address)
        return DriverMissing(f"{self.display(address)}: {driver} is not installed ({reason}): {install}")


_loaded: dict[str, Backend] = {}


def backend_for(address: str | os.PathLike[str]) -> Backend:
    """The backend that opens ``address``; an unknown scheme is a :class:`ConfigError` naming the known ones."""
    text = os.fspath(address)
    scheme = scheme_of(text) if looks_like_url(text) else PATHS
    assert scheme is not None
    if scheme in _loaded:
        return _loaded[scheme]
    reference = BACKENDS.get(scheme)
    if reference is not None:
        module, _, attribute = reference.partition(":")
        backend = getattr(importlib.import_module(module), attribute)
    else:
        backend = _from_entry_point(scheme, text)
    if not isinstance(backend, Backend):
        raise ConfigError(f"{display_url(text)}: the backend for {scheme}:// is not a retryq.stores.Backend")
    _loaded[scheme] = backend
    return backend


def _from_entry_point(scheme: str, address: str) -> Any:
    for entry in _entry_points():
        if entry.name.lower() == scheme:
            try:
                return entry.load()
            except ImportError as error:
                raise DriverMissing(
                    f"{display_url(address)}: the backend for {scheme}:// ({entry.value}) cannot be imported: "
                    f"{without_secrets(str(error), address)}"
                ) from None
    import difflib  # only for the message of an unknown scheme

    known = known_schemes()
    near = difflib.get_close_matches(scheme, known, n=1, cutoff=0.6) or [
        name
        for name in known
        if scheme.startswith(name + "+")  # postgresql+psycopg:// (SQLAlchemy's form)
    ]
    hint = f"; did you mean {near[0]}://?" if near else ""
    raise ConfigError(
        f"{display_url(address)}: unknown queue address scheme {scheme!r} (known: {', '.join(known)}; "
        f"a file needs no scheme){hint}"
    )


def _entry_points() -> list[Any]:
    from importlib.metadata import entry_points

    return list(entry_points(group=ENTRY_POINT_GROUP))


def known_schemes() -> list[str]:
    """Every scheme a queue address may have here: the built-in ones and those of installed packages."""
    return sorted({*BACKENDS, *(entry.name.lower() for entry in _entry_points())})


def display_address(address: str | os.PathLike[str]) -> str:
    """``address`` as messages show it, by its backend's rules; an address no backend takes is masked all the same."""
    text = os.fspath(address)
    if not looks_like_url(text):
        return text
    try:
        return backend_for(text).display(text)
    except (ConfigError, DriverMissing):
        return display_url(text)


def open_store(
    address: str | os.PathLike[str],
    *,
    lock_timeout: float = LOCK_TIMEOUT.total_seconds(),
    archive: bool = True,
    namespace: str | None = None,
    schema: str | None = None,
    **options: Any,
) -> Store:
    """The store at ``address``: a queue file (a path, or ``file://``), or a server's queue (its URL).

    ``lock_timeout`` bounds the wait for the file's lock, or for a row or a connection of a
    database; ``archive`` keeps pruned jobs; ``namespace`` separates queues that share a server
    (a PostgreSQL schema; ``schema`` is its alias), and is ignored, with a warning, for a file.
    The other options go to the backend.
    """
    if schema is not None and namespace is not None and schema != namespace:
        raise ValueError("give namespace or schema (its PostgreSQL name), not both")
    text = os.fspath(address)
    return backend_for(text).open(
        text, lock_timeout=lock_timeout, archive=archive, namespace=namespace or schema, **options
    )
