"""A TCP proxy in front of PostgreSQL that loses the reply to one claim's COMMIT, as a network can.

Armed, it lets the COMMIT of the next transaction that claims jobs reach the server, swallows the
server's reply, then closes both ends: the claim is committed, but the client never hears it and
tries again on a new connection. Threads and loopback only; each proxy listens on a port of its own.
It reads the protocol's framing (a type byte and a length) to find the statements; encryption is
turned off on the proxied address so that it can.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from urllib.parse import urlsplit, urlunsplit

#: Text that only the claim statement holds (see retryq.stores.postgres.queries.CLAIM).
CLAIM_MARK = b"gen_random_uuid()"


class CommitReplyLoser:
    """Forwards connections to ``target`` (host, port); :meth:`arm` loses the reply to one claim's COMMIT."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.armed = threading.Event()
        self.lost = threading.Event()  # set once a COMMIT's reply was swallowed
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, name="pg-proxy-accept", daemon=True).start()

    @classmethod
    def in_front_of(cls, url: str) -> CommitReplyLoser:
        parts = urlsplit(url)
        return cls((parts.hostname or "127.0.0.1", parts.port or 5432))

    def address(self, url: str) -> str:
        """``url`` through the proxy, unencrypted (the proxy reads the messages)."""
        parts = urlsplit(url)
        netloc = parts.netloc.rsplit("@", 1)
        host = f"127.0.0.1:{self.port}"
        netloc_text = f"{netloc[0]}@{host}" if len(netloc) == 2 else host
        query = "&".join(filter(None, [parts.query, "sslmode=disable", "gssencmode=disable"]))
        return urlunsplit((parts.scheme, netloc_text, parts.path, query, parts.fragment))

    def arm(self) -> None:
        self.armed.set()

    def close(self) -> None:
        self._closed = True
        for each in [self.listener, *self._sockets]:
            with contextlib.suppress(OSError):
                each.close()

    # -- internals ---------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self._sockets += [client, server]
            link = _Link(client, server)
            threading.Thread(target=self._upstream, args=(link,), name="pg-proxy-up", daemon=True).start()
            threading.Thread(target=self._downstream, args=(link,), name="pg-proxy-down", daemon=True).start()

    def _upstream(self, link: _Link) -> None:
        """Client to server: the startup message (no type byte), then typed messages."""
        try:
            length = struct.unpack("!I", _exactly(link.client, 4))[0]
            link.server.sendall(struct.pack("!I", length) + _exactly(link.client, length - 4))
            while True:
                kind = _exactly(link.client, 1)
                length = struct.unpack("!I", _exactly(link.client, 4))[0]
                body = _exactly(link.client, length - 4)
                self._watch(link, kind, body)
                link.server.sendall(kind + struct.pack("!I", length) + body)
        except OSError:
            link.close()

    def _watch(self, link: _Link, kind: bytes, body: bytes) -> None:
        if kind == b"Q":  # a simple query
            text = body.rstrip(b"\0")
        elif kind == b"P":  # parse: statement name, then its text
            name, text = body.split(b"\0", 2)[:2]
            if CLAIM_MARK in text:
                link.claim_statements.add(name)
        elif kind == b"B":  # bind: portal name, then the statement's
            if body.split(b"\0", 2)[1] in link.claim_statements:
                link.claiming = True
            return
        else:
            return
        if CLAIM_MARK in text:
            link.claiming = True
        elif text.strip().upper() == b"COMMIT":
            if link.claiming and self.armed.is_set():
                self.armed.clear()
                link.losing = True  # set before the COMMIT goes: its reply is the next thing back
            link.claiming = False
        elif text.strip().upper() in (b"ROLLBACK", b"BEGIN"):
            link.claiming = False

    def _downstream(self, link: _Link) -> None:
        """Server to client, message by message; once losing, up to the end of the reply, then close."""
        try:
            while True:
                kind = _exactly(link.server, 1)
                length_bytes = _exactly(link.server, 4)
                body = _exactly(link.server, struct.unpack("!I", length_bytes)[0] - 4)
                if link.losing:
                    if kind == b"Z":  # ReadyForQuery: the COMMIT's reply is over, and lost
                        self.lost.set()
                        link.close()
                        return
                    continue
                link.client.sendall(kind + length_bytes + body)
        except OSError:
            link.close()


class _Link:
    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client, self.server = client, server
        self.claim_statements: set[bytes] = set()
        self.claiming = False
        self.losing = False

    def close(self) -> None:
        for each in (self.client, self.server):
            with contextlib.suppress(OSError):
                each.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                each.close()


def _exactly(connection: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        piece = connection.recv(size - len(data))
        if not piece:
            raise ConnectionError("closed")
        data += piece
    return bytes(data)
