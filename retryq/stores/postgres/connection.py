"""A PostgreSQL queue's connections: transactions run again on a new connection when one is lost
(a few times, with backoff, by the in-process toolkit), and a listener for the queue's channel.

What a retry cannot mend is a :class:`~retryq.record.errors.ConfigError` at once (exit 78): a
server that refuses the login (a wrong password, user or database), a role without the privileges
retryq needs. Only a server out of reach, or restarting, is temporary (exit 75).
"""

from __future__ import annotations

__all__ = ["Database", "first_line"]

import contextlib
import itertools
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from ...record.backoff import exponential
from ...record.errors import ConfigError, LockTimeout, StoreUnavailable
from ...record.retrystate import Failure, RetryMachine
from ..address import without_secrets
from .schema import migrate

log = logging.getLogger("retryq")
R = TypeVar("R")
Connection = psycopg.Connection[dict[str, Any]]

# What a server that answered says when no retry can help. libpq gives no SQLSTATE for a failed
# connection, only its message: in English unless the server's lc_messages says otherwise, when
# such an error is taken for a temporary one, as a server that restarts is.
_REFUSED_FOR_GOOD = re.compile(
    r"authentication failed|role \".*\" does not exist|database \".*\" does not exist|no pg_hba\.conf entry"
    r"|is not permitted to log in|permission denied for database|no password supplied|password is required"
    r"|server does not support SSL|invalid (?:integer )?value|invalid sslmode"
)


class Database:
    """One connection at a time to the database at ``url`` (shown as ``location``), its schema ready."""

    def __init__(
        self,
        url: str,
        location: str,
        schema: str,
        *,
        lock_timeout: float,
        connect_attempts: int,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self.url, self.location, self.schema, self.lock_timeout = url, location, schema, lock_timeout
        # The one retry state machine (record/retrystate.py), driven here with our own sleep and log line.
        self._machine = RetryMachine(
            max_attempts=connect_attempts, wait=exponential(initial=0.5, max=8.0), retry_if=connection_lost
        )
        self._sleep = sleep or time.sleep
        self._connection: Connection | None = None
        self._listener: psycopg.Connection[Any] | None = None
        self._lock = threading.RLock()  # one connection, one transaction at a time
        self._ready = False

    def _retrying(self, attempt: int, delay: float, error: BaseException) -> None:
        log.info("%s: cannot reach the database (%s); trying again in %.1fs", self.location, self._said(error), delay)

    def _said(self, error: BaseException) -> str:
        """The first line of a driver's error, any password masked."""
        return without_secrets(first_line(error), self.url)

    def _connect(self) -> Connection:
        if self._connection is None or self._connection.closed:
            try:
                connection = psycopg.connect(self.url, row_factory=dict_row, connect_timeout=10)
            except psycopg.ProgrammingError as error:  # the address itself is wrong: trying again cannot help
                raise ConfigError(f"{self.location}: not a valid PostgreSQL address: {self._said(error)}") from None
            except psycopg.OperationalError as error:
                if refused_for_good(error):
                    reason = self._said(error).split("FATAL:", 1)[-1].strip()
                    raise ConfigError(
                        f"{self.location}: the database refused the connection: {reason} "
                        "(trying again cannot help: check the address, the role and its password)"
                    ) from None
                raise
            with connection.transaction():  # for the session: every transaction waits this long for a row
                connection.execute(
                    sql.SQL("SET lock_timeout = {}").format(sql.Literal(f"{int(self.lock_timeout * 1000)}ms"))
                )
            self._connection = connection
        if not self._ready:
            migrate(self._connection, self.schema, self.location)
            self._ready = True
        return self._connection

    def transact(self, work: Callable[[Connection], R]) -> R:
        """Run ``work`` in one transaction, again from the start on a new connection if the old one was lost.

        ``work`` only reads and applies pure mutations, so running it again is safe; a commit whose
        outcome was lost is made again on what it left (claims it made stay with the claiming
        process, which never heard of them and gives them back uncounted: see
        :mod:`retryq.running.claims`).
        """
        with self._lock:
            try:
                return self._with_retries(work)
            except psycopg.errors.InsufficientPrivilege as error:
                raise ConfigError(self._lacking(error)) from None
            except psycopg.errors.LockNotAvailable:
                raise LockTimeout(
                    f"{self.location}: could not lock the jobs within {self.lock_timeout:g}s "
                    "(another retryq holds them)"
                ) from None
            except psycopg.OperationalError as error:
                raise StoreUnavailable(f"{self.location}: cannot reach the database: {self._said(error)}") from None

    def _with_retries(self, work: Callable[[Connection], R]) -> R:
        """``work`` in a transaction, made again on a new connection while the machine says so."""
        for attempt in itertools.count(1):
            try:
                connection = self._connect()
                try:
                    with connection.transaction():
                        return work(connection)
                except psycopg.OperationalError as error:
                    if connection_lost(error):
                        self._drop()
                    raise
            except psycopg.OperationalError as error:
                decision = self._machine.decide(Failure(error, attempt))
                if not decision.retry:
                    raise
                self._retrying(attempt, decision.delay, error)
            self._sleep(decision.delay)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def _lacking(self, error: psycopg.Error) -> str:
        """What to grant, for an error that says the role may not do what retryq needs."""
        info = psycopg.conninfo.conninfo_to_dict(self.url)
        database, role = info.get("dbname") or "<database>", info.get("user") or "<role>"
        return (
            f"{self.location}: {self._said(error)}: retryq makes its schema {self.schema} on first use: "
            f"GRANT CREATE ON DATABASE {database} TO {role}, or make the schema for it "
            f"(CREATE SCHEMA {self.schema} AUTHORIZATION {role})"
        )

    def wait(self, channel: str, seconds: float, stop: threading.Event) -> None:
        """Wait for a NOTIFY on ``channel``, ``stop``, or ``seconds``; a lost listener falls back to waiting."""
        deadline = time.monotonic() + seconds
        listener = self._listener
        try:
            if listener is None or listener.closed:
                listener = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
                listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                self._listener = listener  # kept from one wait to the next: no notification falls between
            while not stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                for _ in listener.notifies(timeout=min(left, 0.5), stop_after=1):
                    return
        except psycopg.Error:
            if listener is not None:
                listener.close()
            self._listener = None
            stop.wait(max(0.0, deadline - time.monotonic()))

    def _drop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(psycopg.Error):
                self._connection.close()
        self._connection = None

    def close(self) -> None:
        with self._lock:
            self._drop()
            if self._listener is not None:
                self._listener.close()
                self._listener = None


def connection_lost(error: BaseException) -> bool:
    return isinstance(error, psycopg.OperationalError) and not isinstance(error, psycopg.errors.LockNotAvailable)


def refused_for_good(error: BaseException) -> bool:
    """Whether a failed connection is one that no retry can mend (see :data:`_REFUSED_FOR_GOOD`)."""
    return isinstance(error, psycopg.OperationalError) and _REFUSED_FOR_GOOD.search(str(error)) is not None


def first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
