"""Redis as a backend: ``redis://``, ``rediss://`` (TLS) and ``unix://`` addresses, its driver, its key prefix.

This module imports nothing of redis-py: an address is shown, and a missing driver reported, on an
install without it.
"""

from __future__ import annotations

__all__ = ["BACKEND", "RedisBackend"]

from typing import TYPE_CHECKING, Any

from ...record.errors import ConfigError
from ..registry import Backend

if TYPE_CHECKING:
    from .store import RedisStore


class RedisBackend(Backend):
    """Jobs in Redis (``pip install 'retryq[redis]'``); the namespace is the prefix of the queue's keys."""

    name = "redis"
    extra = "redis"

    def open(
        self, address: str, *, lock_timeout: float, archive: bool, namespace: str | None, **options: Any
    ) -> RedisStore:
        from .address import parse

        parse(address)  # a malformed address is said before the driver is looked for
        try:
            import redis  # noqa: F401  (the driver: imported here, where its absence can be said plainly)
        except ImportError as error:
            raise self.driver_missing(address, error, "redis-py") from None
        from .store import RedisStore

        return RedisStore(address, lock_timeout=lock_timeout, archive=archive, namespace=namespace, **options)

    def without_secrets(self, text: str, address: str) -> str:
        """Also the password that ``$REDISCLI_AUTH`` gives, which the address does not show."""
        from .address import parse

        try:
            return parse(address).masked(super().without_secrets(text, address))
        except ConfigError:
            return super().without_secrets(text, address)


BACKEND = RedisBackend()
