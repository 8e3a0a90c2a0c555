"""A Redis queue's connection: the driver imported (or one line naming the extra), the scripts
loaded once and called by SHA, a lost connection tried again briefly, and errors told apart:
what trying again cannot mend (a password, a database number) is a configuration error at once."""

from __future__ import annotations

__all__ = ["Connection", "first_line"]

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from ...record.backoff import exponential
from ...record.errors import ConfigError, DriverMissing, StoreUnavailable
from ...record.retrystate import Failure, RetryMachine
from .address import RedisAddress
from .scripts import ADD, COMMIT, INSERT, READ

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ModuleNotFoundError:  # pragma: no cover - depends on the installation
    raise DriverMissing("a Redis queue needs the Redis driver: pip install 'retryq[redis]'") from None

log = logging.getLogger("retryq")
R = TypeVar("R")

#: Replies of these mean the address or its credentials are wrong: trying again cannot help.
_PERMANENT = ("WRONGPASS", "NOAUTH", "NOPERM", "invalid password", "DB index is out of range", "invalid DB index")
#: Replies of a server that cannot take writes for now (out of memory, a disk it cannot write, a replica).
_TEMPORARY = ("OOM", "MISCONF", "READONLY", "LOADING", "MASTERDOWN", "TRYAGAIN")


class Connection:
    """The client of one queue (a pool of connections, safe across threads), its scripts and its retries."""

    def __init__(
        self,
        address: RedisAddress,
        *,
        timeout: float,
        attempts: int,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self.address = address
        # The one retry state machine (record/retrystate.py), driven here with our own sleep and log line.
        self._machine = RetryMachine(max_attempts=max(1, attempts), wait=exponential(initial=0.25, max=4.0))
        self._sleep = sleep or time.sleep
        options: dict[str, Any] = {
            "socket_connect_timeout": 10.0,
            "socket_timeout": max(timeout, 5.0),
            "health_check_interval": 30,
            **address.options,
        }
        self.client = redis.Redis(
            db=address.db,
            password=address.password,
            retry=Retry(NoBackoff(), 0),  # our own retries, with their log lines and their limit
            decode_responses=True,
            **options,
        )
        self.commit = self.client.register_script(COMMIT)
        self.add = self.client.register_script(ADD)
        self.insert = self.client.register_script(INSERT)
        self.read = self.client.register_script(READ)
        self._listener: Any = None
        self._listener_lock = threading.Lock()

    def said(self, error: BaseException) -> str:
        """The first line of a driver's error, its password masked."""
        return self.address.masked(first_line(error))

    def run(self, work: Callable[[redis.Redis], R], *, attempts: int | None = None) -> R:
        """``work(client)``, again after a short wait when the connection was lost; then StoreUnavailable.

        ``work`` must be safe to run twice (a reply lost after the server acted): every script is.
        """
        machine = self._machine if attempts is None else replace(self._machine, max_attempts=max(1, attempts))
        for attempt in itertools.count(1):
            try:
                return work(self.client)
            except redis.AuthenticationError as error:
                refused = self.said(error)
                raise ConfigError(f"{self.address.display}: the server refused the password: {refused}") from None
            except (redis.ConnectionError, redis.TimeoutError) as error:
                problem: redis.RedisError = error
            except redis.ResponseError as error:
                text = str(error)
                if "DB index is out of range" in text:
                    raise ConfigError(
                        f"{self.address.display}: the server has no database {self.address.db} ({self.said(error)})"
                    ) from None
                if any(mark in text for mark in _PERMANENT):
                    raise ConfigError(f"{self.address.display}: {self.said(error)}") from None
                if not text.startswith(_TEMPORARY):
                    raise
                problem = error
            decision = machine.decide(Failure(problem, attempt))
            if not decision.retry:
                raise StoreUnavailable(f"{self.address.display}: cannot reach Redis: {self.said(problem)}") from None
            log.info(
                "%s: cannot reach Redis (%s); trying again in %.2fs",
                self.address.display,
                self.said(problem),
                decision.delay,
            )
            self._sleep(decision.delay)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def wait(self, channel: str, seconds: float, stop: threading.Event) -> None:
        """Wait for a message on ``channel``, ``stop``, or ``seconds``; a lost subscription falls back to waiting."""
        deadline = time.monotonic() + seconds
        with self._listener_lock:
            try:
                if self._listener is None:
                    listener = self.client.pubsub(ignore_subscribe_messages=True)
                    listener.subscribe(channel)
                    self._listener = listener  # kept from one wait to the next: no message falls between
                while not stop.is_set():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    if self._listener.get_message(timeout=min(left, 0.5)) is not None:
                        return
                return
            except (redis.RedisError, OSError):
                self._close_listener()
        stop.wait(max(0.0, deadline - time.monotonic()))

    def _close_listener(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(redis.RedisError, OSError):
                self._listener.close()
            self._listener = None

    def close(self) -> None:
        with self._listener_lock:
            self._close_listener()
        self.client.close()


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
