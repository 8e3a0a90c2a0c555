"""What every queue address has in common, whatever its backend: whether it is a URL (the one test),
its scheme, and how to show it, or any text, without its password.

Nothing here parses strictly: a malformed address must still be shown safely in the message
that says it is malformed. Each backend parses its own addresses (see :mod:`retryq.stores.registry`).
"""

from __future__ import annotations

__all__ = ["display_url", "looks_like_url", "scheme_of", "url_secrets", "without_secrets"]

import os
import re
from urllib.parse import unquote

# A scheme of two letters or more (``C:\\queue.json`` is a Windows path, not a URL), then ``:/``.
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):/")
#: Query parameters that carry a secret, whatever their case (libpq's ``password``, redis-py's too).
_SECRET_PARAMETERS = frozenset({"password", "pass", "passwd", "pwd"})


def looks_like_url(address: str | os.PathLike[str]) -> bool:
    """Whether a queue address is a URL (a server's, or ``file://``) rather than a file path, whatever its scheme.

    ``postgres:/…`` with one slash, ``POSTGRESQL://…`` and a scheme no backend knows are URLs
    too: a mistyped scheme is refused as such, never taken for a file name (and its password
    never echoed as one).
    """
    return isinstance(address, str) and _URL.match(address) is not None


def scheme_of(address: str) -> str | None:
    """The scheme of a URL, in lower case (schemes are case-insensitive); None for a path."""
    found = _URL.match(address)
    return found.group(1).lower() if found else None


def _parts(address: str) -> tuple[str, str, str, str]:
    """``address`` as (scheme and slashes, userinfo, the rest up to the query, query); never raises."""
    found = _URL.match(address)
    if found is None:
        return "", "", address, ""
    start = found.end() - 1
    while start < len(address) and address[start] == "/":
        start += 1
    head, rest = address[:start], address[start:]
    rest, _, query = rest.partition("?")
    authority, slash, path = rest.partition("/")
    userinfo, at, host = authority.rpartition("@")
    return head, userinfo if at else "", host + slash + path if at else rest, query


def url_secrets(address: str) -> list[str]:
    """The passwords an address holds (in its userinfo, or a ``password=`` parameter), as written and decoded."""
    if not looks_like_url(address):
        return []
    _, userinfo, _, query = _parts(address)
    found = []
    if ":" in userinfo:
        found.append(userinfo.split(":", 1)[1])
    for item in query.split("&"):
        name, equals, value = item.partition("=")
        if equals and name.lower() in _SECRET_PARAMETERS:
            found.append(value)
    forms = {form for secret in found for form in (secret, unquote(secret)) if form}
    return sorted(forms)


def display_url(address: str) -> str:
    """``address`` as messages show it: no password in the userinfo, no password parameter."""
    if not looks_like_url(address):
        return address
    head, userinfo, rest, query = _parts(address)
    user = userinfo.split(":", 1)[0]
    kept = [item for item in query.split("&") if item and item.partition("=")[0].lower() not in _SECRET_PARAMETERS]
    return head + (f"{user}@" if user else "") + rest + ("?" + "&".join(kept) if kept else "")


def without_secrets(text: str, address: str) -> str:
    """``text`` (a driver's error message, say) with every password of ``address`` masked wherever it appears."""
    for secret in sorted(url_secrets(address), key=len, reverse=True):  # the longer form first: it may hold the other
        text = text.replace(secret, "***")
    return text
