"""What a Redis address says: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://…`` (TLS) or
``unix:///path/redis.sock?db=N``, each with an optional ``?namespace=…``; checked before anything
connects, and shown without its password."""

from __future__ import annotations

__all__ = ["NAMESPACE", "SCHEMES", "RedisAddress", "is_redis_url", "parse"]

import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ...record.errors import ConfigError
from ..address import display_url, scheme_of

SCHEMES = ("redis", "rediss", "unix")
#: The variable redis-cli reads a password from; a URL without one takes it from there.
PASSWORD_VARIABLE = "REDISCLI_AUTH"  # noqa: S105 - the name of a variable, not a password
# Query parameters passed on to the driver as they are (TLS files, timeouts); any other is refused.
_PASSED_ON = {
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_check_hostname",
    "socket_timeout",
    "socket_connect_timeout",
    "client_name",
}
_DIGITS = re.compile(r"\d{1,5}")
#: A namespace becomes the keys' prefix, between braces: plain characters only.
NAMESPACE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
NAMESPACE_RULE = "use 1 to 64 letters, digits, '_', '.', ':' or '-'"


def is_redis_url(address: str | os.PathLike[str]) -> bool:
    """Whether ``address`` names a Redis server (its scheme, in any case)."""
    return scheme_of(os.fspath(address)) in SCHEMES


@dataclass(frozen=True)
class RedisAddress:
    """A parsed address: where to connect, and the form messages show (``display``: no password)."""

    url: str
    display: str
    db: int
    password: str | None = field(repr=False)
    options: dict[str, Any] = field(repr=False)
    namespace: str | None = None  # ?namespace=…: the key prefix, when the address carries it

    def secrets(self) -> list[str]:
        """What no message may show: the password, as written and decoded."""
        if not self.password:
            return []
        return sorted({self.password, unquote(self.password)}, key=len, reverse=True)

    def masked(self, text: str) -> str:
        """``text`` (a driver's error, say) with the password replaced wherever it appears."""
        for secret in self.secrets():
            text = text.replace(secret, "***")
        return text


def parse(url: str, environ: dict[str, str] | os._Environ[str] | None = None) -> RedisAddress:
    """Check ``url`` and turn it into the driver's options; a malformed one is a :class:`ConfigError` (exit 78)."""
    environ = os.environ if environ is None else environ
    shown = display_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise ConfigError(f"{shown}: not a valid Redis address ({error})") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ConfigError(f"{shown}: not a Redis address (known schemes: redis://, rediss://, unix://)")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    password = query.pop("password", None) or (unquote(parts.password) if parts.password else None)
    password = password or environ.get(PASSWORD_VARIABLE) or None
    db_text = query.pop("db", None)
    namespace = query.pop("namespace", None) or None
    if namespace is not None and not NAMESPACE.fullmatch(namespace):
        raise ConfigError(f"{shown}: invalid namespace {namespace!r}: {NAMESPACE_RULE}")
    options: dict[str, Any] = {}
    if scheme == "unix":
        if not parts.path:
            raise ConfigError(f"{shown}: a unix:// address names a socket: unix:///path/to/redis.sock?db=0")
        options["unix_socket_path"] = unquote(parts.path)
    else:
        if not parts.hostname:
            raise ConfigError(f"{shown}: no host (expected redis://host:6379/0)")
        options["host"] = parts.hostname
        options["port"] = port or 6379
        path = parts.path.strip("/")
        if path:
            if db_text is not None:
                raise ConfigError(f"{shown}: the database is given twice (path and ?db=)")
            db_text = path
        if scheme == "rediss":
            options["ssl"] = True
    if db_text is None or db_text == "":
        db = 0
    elif _DIGITS.fullmatch(db_text):
        db = int(db_text)
    else:
        raise ConfigError(f"{shown}: the database must be a number, as in redis://host:6379/0 (not {db_text!r})")
    if parts.username:
        options["username"] = unquote(parts.username)
    unknown = sorted(set(query) - _PASSED_ON)
    if unknown:
        raise ConfigError(f"{shown}: unknown parameter {unknown[0]!r} (known: {', '.join(sorted(_PASSED_ON))})")
    for name, value in query.items():
        options[name] = _option(name, value, shown)
    return RedisAddress(url=url, display=shown, db=db, password=password, options=options, namespace=namespace)


def _option(name: str, value: str, shown: str) -> Any:
    if name in ("socket_timeout", "socket_connect_timeout"):
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{shown}: {name} must be a number of seconds, not {value!r}") from None
    if name == "ssl_check_hostname":
        return value.lower() in ("1", "true", "yes", "on")
    return value
