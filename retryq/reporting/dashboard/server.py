"""``retryq dashboard --serve``: the page on the loopback interface, built afresh for each request.

One thread reads every connection until its request is whole, without blocking on any of them;
only then does one of a few threads (:data:`WORKERS`) answer it. A client that says nothing, or
trickles its request, holds no thread and is closed after ``request_timeout``; past
:data:`MAX_CONNECTIONS`, the one open longest without a whole request makes room. A request is
answered only if its Host is the one the server was bound for (a page reached through DNS
rebinding names the attacker's host), and, with a token, only if it brings the token.
"""

from __future__ import annotations

__all__ = ["MAX_CONNECTIONS", "REQUEST_TIMEOUT", "WORKERS", "serve"]

import hmac
import html
import io
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs

from ...record.errors import RetryqError
from ...running import platform

log = logging.getLogger("retryq")

#: Loopback only: the page shows output tails and the queue's location, for its operator alone.
HOST = "127.0.0.1"
#: The threads that answer requests (each build reads the whole queue, one at a time).
WORKERS = 4
#: Connections open at once, answered or waiting for their request.
MAX_CONNECTIONS = 256
#: Seconds a client has to send its whole request, and to take each part of the answer.
REQUEST_TIMEOUT = 10.0
#: The most a request's line and headers may weigh (GET and HEAD have no body).
MAX_REQUEST_HEAD = 16 * 1024


def serve(
    build: Callable[[], str],
    *,
    port: int = 8080,
    on_ready: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
    token: str | None = None,
    request_timeout: float = REQUEST_TIMEOUT,
) -> int:
    """Serve ``build()`` at ``http://127.0.0.1:PORT/`` until SIGINT, SIGTERM or ``stop``; return the signal or 0.

    ``port=0`` picks a free port; ``on_ready`` is given the URL once the server listens. With
    ``token``, a request must bring it, as ``Authorization: Bearer TOKEN`` or ``?token=TOKEN``
    (the page's own refresh keeps the query); it never appears in the log. A build that fails
    with a retryq error (a corrupt queue, say) is served as a 503 page with its message, and the
    server carries on. Signals are only handled when called from the main thread.
    """
    if token is not None and not token:
        raise RetryqError("the dashboard token must not be empty")
    try:
        listener = socket.create_server((HOST, port))
    except OSError as error:
        raise RetryqError(f"cannot listen on {HOST}:{port}: {error.strerror or error}") from None
    bound = listener.getsockname()[1]
    site = _Site(build, hosts=_hosts(bound), token=token)
    loop = _Loop(listener, site, request_timeout)
    stopped_by: list[int] = []
    # The handler only records the signal: it runs in the main thread, which must not block on a lock.
    with listener, platform.stop_signals(stopped_by.append):
        reader = threading.Thread(target=loop.run, name="retryq-dashboard-reader", daemon=True)
        reader.start()
        if on_ready is not None:
            on_ready(f"http://{HOST}:{bound}/")
        while not stopped_by and not (stop is not None and stop.is_set()):
            time.sleep(0.2)  # a signal interrupts the sleep; its handler has run by the time the loop checks
        loop.halt.set()
        reader.join()
    return stopped_by[0] if stopped_by else 0


def _hosts(port: int) -> frozenset[str]:
    """The Host headers of a request for this server: its address, or localhost, with the port."""
    names = (HOST, "localhost")
    return frozenset({f"{name}:{port}" for name in names} | (set(names) if port == 80 else set()))


@dataclass
class _Waiting:
    """A connection whose request is not whole yet."""

    address: tuple[str, int]
    deadline: float
    head: bytearray = field(default_factory=bytearray)


class _Loop:
    """Reads every connection without blocking; hands each whole request to a bounded pool of threads."""

    def __init__(self, listener: socket.socket, site: _Site, timeout: float) -> None:
        self.listener, self.site, self.timeout = listener, site, timeout
        self.halt = threading.Event()
        self.selector = selectors.DefaultSelector()
        self.waiting: dict[socket.socket, _Waiting] = {}
        self.answering = 0  # connections handed to the pool and not closed yet
        self.count_lock = threading.Lock()

    def run(self) -> None:
        self.listener.setblocking(False)
        self.selector.register(self.listener, selectors.EVENT_READ)
        with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="retryq-dashboard-answer") as pool:
            try:
                while not self.halt.is_set():
                    for key, _ in self.selector.select(timeout=0.2):
                        if key.fileobj is self.listener:
                            self._accept()
                        else:
                            assert isinstance(key.fileobj, socket.socket)
                            self._read(key.fileobj, pool)
                    now = time.monotonic()
                    for connection in [c for c, w in self.waiting.items() if w.deadline <= now]:
                        self._drop(connection)  # idle, or too slow to say what it wants
            finally:
                for connection in list(self.waiting):
                    self._drop(connection)
                self.selector.close()
                pool.shutdown(cancel_futures=True)

    def _accept(self) -> None:
        while True:
            try:
                connection, address = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # out of file descriptors, say: the clients already in are served
                log.debug("dashboard: cannot accept a connection: %s", error)
                return
            with self.count_lock:
                full = len(self.waiting) + self.answering >= MAX_CONNECTIONS
            if full and self.waiting:
                self._drop(min(self.waiting, key=lambda c: self.waiting[c].deadline))  # the longest waiting
            elif full:
                connection.close()  # every slot is answering: the client may try again
                continue
            connection.setblocking(False)
            self.waiting[connection] = _Waiting(address, time.monotonic() + self.timeout)
            self.selector.register(connection, selectors.EVENT_READ)

    def _read(self, connection: socket.socket, pool: ThreadPoolExecutor) -> None:
        waiting = self.waiting[connection]
        try:
            chunk = connection.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk or len(waiting.head) + len(chunk) > MAX_REQUEST_HEAD:
            self._drop(connection)
            return
        waiting.head += chunk
        if b"\r\n\r\n" not in waiting.head and b"\n\n" not in waiting.head:
            return
        self.selector.unregister(connection)
        del self.waiting[connection]
        connection.setblocking(True)
        connection.settimeout(self.timeout)  # a client that stops reading the answer frees its thread too
        with self.count_lock:
            self.answering += 1
        pool.submit(self._answer, connection, bytes(waiting.head), waiting.address)

    def _answer(self, connection: socket.socket, head: bytes, address: tuple[str, int]) -> None:
        try:
            # BaseHTTPRequestHandler keeps its request and server as given: here, the head already read, and the site.
            _Handler((connection, head), address, self.site)  # type: ignore[arg-type]
        except OSError as error:  # the client went away, or stopped reading
            log.debug("dashboard: %s", error)
        finally:
            with suppress(OSError):
                connection.close()
            with self.count_lock:
                self.answering -= 1

    def _drop(self, connection: socket.socket) -> None:
        self.waiting.pop(connection, None)
        with suppress(KeyError, ValueError):
            self.selector.unregister(connection)
        with suppress(OSError):
            connection.close()


@dataclass
class _Site:
    """What the handler needs: the page, the hosts it answers for, the token."""

    build: Callable[[], str]
    hosts: frozenset[str]
    token: str | None
    lock: threading.Lock = field(default_factory=threading.Lock)  # one build at a time: each reads the whole queue


class _Handler(BaseHTTPRequestHandler):
    """One request, already read whole: its head is in ``request``, beside the connection to answer on."""

    server_version = "retryq"
    server: _Site  # type: ignore[assignment]  # what BaseHTTPRequestHandler keeps as given

    def setup(self) -> None:
        connection, head = self.request
        self.connection = connection
        self.rfile = io.BytesIO(head)
        self.wfile = connection.makefile("wb")

    def finish(self) -> None:
        with suppress(OSError):
            self.wfile.flush()
        self.wfile.close()
        self.rfile.close()

    def do_GET(self) -> None:
        self._respond(with_body=True)

    def do_HEAD(self) -> None:
        self._respond(with_body=False)

    def _respond(self, *, with_body: bool) -> None:
        site = self.server
        path, _, query = self.path.partition("?")
        if self.headers.get("Host", "").lower() not in site.hosts:
            served = min(site.hosts)
            page = _message_page("Misdirected request", f"This server answers for http://{served}/ only.")
            self._send(HTTPStatus.MISDIRECTED_REQUEST, page, with_body=with_body)
            return
        if site.token is not None and not self._brings(site.token, query):
            self._send(
                HTTPStatus.UNAUTHORIZED,
                _message_page("Token required", "Open the address with ?token=… or send Authorization: Bearer …"),
                with_body=with_body,
                extra={"WWW-Authenticate": 'Bearer realm="retryq"'},
            )
            return
        if path == "/favicon.ico":
            self._send(HTTPStatus.NO_CONTENT, b"", with_body=with_body)
            return
        if path not in ("/", "/index.html"):
            self._send(HTTPStatus.NOT_FOUND, _message_page("Not found", "Only / is served here."), with_body=with_body)
            return
        try:
            with site.lock:
                page = site.build().encode()
        except RetryqError as error:
            log.warning("dashboard: %s", error)
            page, status = _message_page("The dashboard cannot be built", str(error)), HTTPStatus.SERVICE_UNAVAILABLE
        else:
            status = HTTPStatus.OK
        self._send(status, page, with_body=with_body)

    def _brings(self, token: str, query: str) -> bool:
        scheme, _, given = self.headers.get("Authorization", "").partition(" ")
        offered = [given.strip()] if scheme.lower() == "bearer" else []
        offered += parse_qs(query).get("token", [])
        # Compared in constant time: the time an answer takes says nothing about how much of a guess was right.
        return any(hmac.compare_digest(candidate.encode(), token.encode()) for candidate in offered)

    def _send(self, status: HTTPStatus, body: bytes, *, with_body: bool, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        if body:
            self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")  # the address may carry the token
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = getattr(self, "path", "").partition("?")[0]  # the query may hold the token
        self.log_message("%s %s %s", getattr(self, "command", "-"), path, code)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        message, token = format % args, self.server.token
        # Whatever the client sent may hold the token (a mistyped path, a bad request line): never in the log.
        log.debug("dashboard: %s %s", self.address_string(), message.replace(token, "***") if token else message)


def _message_page(title: str, message: str) -> bytes:
    """A bare page for errors, which reloads itself: the problem may be fixed by the next try."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="30">'
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(message)}</p></body></html>"
    ).encode()
