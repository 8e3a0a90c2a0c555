"""A PostgreSQL queue's address: a libpq URL, checked before any connection, and its schema (the namespace).

Imported once the driver is known to be there (it parses with libpq's own rules, through psycopg).
"""

from __future__ import annotations

__all__ = ["DEFAULT_SCHEMA", "Address", "parse"]

import re
from dataclasses import dataclass

from psycopg import ProgrammingError
from psycopg.conninfo import conninfo_to_dict

from ...record.errors import ConfigError
from ..address import display_url, looks_like_url, without_secrets

DEFAULT_SCHEMA = "retryq"
_SCHEME = re.compile(r"(?i)(postgresql|postgres):")
# What retryq names its schema: an identifier that needs no quoting anywhere (psql, pg_dump -n, logs).
_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@dataclass(frozen=True)
class Address:
    """A checked address: the URL as libpq takes it (its scheme in lower case), and the schema of the tables."""

    url: str
    schema: str


def parse(address: str, namespace: str | None = None) -> Address:
    """Check ``address`` and the schema (``namespace``, else the URL's ``search_path``, else ``retryq``).

    Raises :class:`ConfigError` (exit 78) for what no retry could mend: a URL libpq cannot read, a
    port that is not a number, a schema PostgreSQL keeps for itself. No message shows a password.
    """
    shown = display_url(address)
    url = _SCHEME.sub(lambda found: found.group(1).lower() + ":", address, count=1)
    if looks_like_url(url) and not url.split(":", 1)[1].startswith("//"):
        raise ConfigError(f"{shown}: not a valid PostgreSQL address: write postgresql://user@host/database")
    try:
        settings = conninfo_to_dict(url)
    except ProgrammingError as error:
        reason = without_secrets(str(error).strip().splitlines()[0], address)
        raise ConfigError(f"{shown}: not a valid PostgreSQL address: {reason}") from None
    for port in str(settings.get("port") or "").split(","):
        if port and not port.isdigit():
            raise ConfigError(f"{shown}: not a valid PostgreSQL address: port {port!r} is not a number")
    schema = namespace or search_path(str(settings.get("options") or "")) or DEFAULT_SCHEMA
    return Address(url, checked_schema(schema, shown))


def checked_schema(schema: str, shown: str) -> str:
    if schema.startswith("pg_") or schema == "information_schema":
        raise ConfigError(
            f"{shown}: namespace {schema!r} cannot hold retryq's tables: PostgreSQL keeps pg_* and "
            "information_schema for itself (the default is retryq)"
        )
    if not _SCHEMA.fullmatch(schema):
        raise ConfigError(
            f"{shown}: namespace {schema!r} is not a schema name retryq uses: lower-case letters, digits "
            "and _, at most 63, not starting with a digit"
        )
    return schema


def search_path(options: str) -> str | None:
    """The first schema of ``-csearch_path=…`` (or ``-c search_path=…``) in libpq's ``options``, if any."""
    for option in options.replace("-c ", "-c").split():
        if option.startswith("-csearch_path="):
            return option.split("=", 1)[1].split(",")[0].strip() or None
    return None
