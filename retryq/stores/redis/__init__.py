"""The Redis store (``pip install 'retryq[redis]'``): one queue shared by several hosts, on a server
many teams already run for RQ, BullMQ or Celery.

The driver is imported only when a store is made (``RedisStore``): recognising an address needs none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .address import SCHEMES, is_redis_url

if TYPE_CHECKING:
    from .store import DEFAULT_NAMESPACE, RedisStore

__all__ = ["DEFAULT_NAMESPACE", "SCHEMES", "RedisStore", "is_redis_url"]


def __getattr__(name: str) -> Any:
    if name in ("RedisStore", "DEFAULT_NAMESPACE"):
        from . import store

        return getattr(store, name)
    raise AttributeError(name)
