"""What a queue's address names: a file, or a PostgreSQL database; and how to show one without its password."""

from __future__ import annotations

__all__ = ["display_address", "is_database_url", "without_secrets"]

import os
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

_DATABASE_SCHEMES = ("postgresql://", "postgres://", "redis://", "rediss://", "unix://")


def is_database_url(address: str | os.PathLike[str]) -> bool:
    """Whether ``address`` names a server (PostgreSQL, or Redis until the backend registry) rather than a file."""
    return os.fspath(address).startswith(_DATABASE_SCHEMES)


def display_address(address: str) -> str:
    """``address`` as messages show it: a URL's password (and any ``password=`` parameter) is never shown."""
    if not is_database_url(address):
        return address
    parts = urlsplit(address)
    netloc = parts.netloc
    if "@" in netloc:
        credentials, host = netloc.rsplit("@", 1)
        netloc = f"{credentials.split(':', 1)[0]}@{host}"
    query = "&".join(item for item in parts.query.split("&") if item and not item.startswith("password="))
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def without_secrets(text: str, address: str) -> str:
    """``text`` (an error message of a driver, say) with the password of ``address`` masked wherever it appears."""
    if not is_database_url(address):
        return text
    parts = urlsplit(address)
    secrets = [parts.password or ""]
    secrets += [value for key, value in parse_qsl(parts.query) if key == "password"]
    for secret in filter(None, secrets):
        for form in {secret, unquote(secret)}:
            text = text.replace(form, "***")
    return text
