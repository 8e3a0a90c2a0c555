"""``retryq dashboard --serve``: the page on the loopback interface, built afresh for each request."""

from __future__ import annotations

__all__ = ["serve"]

import html
import logging
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ...record.errors import RetryqError
from ...running import platform

log = logging.getLogger("retryq")

#: Loopback only: the page shows output tails and the queue's location, for its operator alone.
HOST = "127.0.0.1"


def serve(
    build: Callable[[], str],
    *,
    port: int = 8080,
    on_ready: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Serve ``build()`` at ``http://127.0.0.1:PORT/`` until SIGINT, SIGTERM or ``stop``; return the signal or 0.

    ``port=0`` picks a free port; ``on_ready`` is given the URL once the server listens. A build
    that fails with a retryq error (a corrupt queue, say) is served as a 503 page with its message,
    and the server carries on. Signals are only handled when called from the main thread.
    """
    lock = threading.Lock()  # one build at a time: each reads the whole queue and archive

    class Handler(BaseHTTPRequestHandler):
        server_version = "retryq"

        def do_GET(self) -> None:
            self._respond(with_body=True)

        def do_HEAD(self) -> None:
            self._respond(with_body=False)

        def _respond(self, *, with_body: bool) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/favicon.ico":
                self._send(HTTPStatus.NO_CONTENT, b"", with_body=with_body)
                return
            if path not in ("/", "/index.html"):
                self._send(
                    HTTPStatus.NOT_FOUND, _message_page("Not found", "Only / is served here."), with_body=with_body
                )
                return
            try:
                with lock:
                    page = build().encode()
            except RetryqError as error:
                log.warning("dashboard: %s", error)
                page, status = (
                    _message_page("The dashboard cannot be built", str(error)),
                    HTTPStatus.SERVICE_UNAVAILABLE,
                )
            else:
                status = HTTPStatus.OK
            self._send(status, page, with_body=with_body)

        def _send(self, status: HTTPStatus, body: bytes, *, with_body: bool) -> None:
            self.send_response(status)
            if body:
                self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
            log.debug("dashboard: %s %s", self.address_string(), format % args)

    try:
        server = ThreadingHTTPServer((HOST, port), Handler)
    except OSError as error:
        raise RetryqError(f"cannot listen on {HOST}:{port}: {error.strerror or error}") from None
    server.daemon_threads = True  # a browser keeping a connection open must not hold up the stop
    stopped_by: list[int] = []
    # The handler only records the signal: it runs in the main thread, which must not block on a lock.
    with server, platform.stop_signals(stopped_by.append):
        worker = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        worker.start()
        if on_ready is not None:
            on_ready(f"http://{HOST}:{server.server_address[1]}/")
        while not stopped_by and not (stop is not None and stop.is_set()):
            time.sleep(0.2)  # a signal interrupts the sleep; its handler has run by the time the loop checks
        server.shutdown()
        worker.join()
    return stopped_by[0] if stopped_by else 0


def _message_page(title: str, message: str) -> bytes:
    """A bare page for errors, which reloads itself: the problem may be fixed by the next try."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="30">'
        f"<title>{html.escape(title)}</title></head><body><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(message)}</p></body></html>"
    ).encode()
