"""A throwaway Redis server for the tests: a temp directory, a loopback port, the append-only file on.

Used by ``.ci/run`` (``python3 tests/redis_server.py start DIR`` prints the URL; ``stop DIR``) and by
the test fixtures when no server is given; standard library only, so that it runs before the virtual
environment exists. Every write is fsynced before it is acknowledged (``appendfsync always``), so
that a test may SIGKILL the server (``kill DIR``), start it again from its files (``restart DIR``)
and find every acknowledged job.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

#: How long a server may take to start, or to load its append-only file again.
START_TIMEOUT = 60.0


def binary() -> str | None:
    return shutil.which("redis-server") or next(
        (path for path in ("/usr/bin/redis-server", "/usr/local/bin/redis-server") if os.access(path, os.X_OK)), None
    )


def start(directory: Path, *, password: str | None = None, settings: Sequence[str] = ()) -> str:
    """Configure and start a server in ``directory`` (``settings``: more lines of its configuration);
    return its URL. Raises RuntimeError with the reason."""
    server = binary()
    if server is None:
        raise RuntimeError("no Redis server here (no redis-server; Debian: apt-get install redis-server)")
    directory.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    lines = [
        "bind 127.0.0.1",
        f"port {port}",
        f"dir {directory}",
        "daemonize yes",
        f"pidfile {directory / 'redis.pid'}",
        f"logfile {directory / 'redis.log'}",
        f"unixsocket {directory / 'redis.sock'}",
        "unixsocketperm 700",
        "appendonly yes",
        "appendfsync always",
        'save ""',
        "databases 16",
        "maxmemory-policy noeviction",
    ]
    if password:
        lines.append(f"requirepass {password}")
    lines += settings
    (directory / "redis.conf").write_text("\n".join(lines) + "\n")
    (directory / "port").write_text(f"{port}\n")
    _launch(directory)
    credentials = f":{password}@" if password else ""
    (directory / "url").write_text(f"redis://{credentials}127.0.0.1:{port}/0\n")
    return url(directory)


def url(directory: Path) -> str:
    return (directory / "url").read_text().strip()


def socket_path(directory: Path) -> Path:
    return directory / "redis.sock"


def _launch(directory: Path) -> None:
    server = binary() or "redis-server"
    _run([server, str(directory / "redis.conf")])
    port = int((directory / "port").read_text())
    deadline = time.monotonic() + START_TIMEOUT
    while not _answers(port):
        if time.monotonic() > deadline:
            log = directory / "redis.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"redis-server did not answer on port {port} within {START_TIMEOUT:g}s: {tail}")
        time.sleep(0.05)


def _answers(port: int) -> bool:
    """Whether the server takes commands (not refusing connections, nor still loading its files)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as connection:
            connection.sendall(b"PING\r\n")
            reply = connection.recv(64)
    except OSError:
        return False
    return reply.startswith((b"+PONG", b"-NOAUTH"))


def pid(directory: Path) -> int | None:
    try:
        return int((directory / "redis.pid").read_text())
    except (OSError, ValueError):
        return None


def kill(directory: Path) -> None:
    """SIGKILL the server, as a crash or the OOM killer would: what it acknowledged must be on disk."""
    number = pid(directory)
    if number is None:
        return
    try:
        os.kill(number, signal.SIGKILL)
    except ProcessLookupError:
        return
    _wait_gone(number)
    (directory / "redis.pid").unlink(missing_ok=True)


def restart(directory: Path) -> None:
    """Start the server again on its port, from what its append-only file holds."""
    _launch(directory)


def stop(directory: Path) -> None:
    number = pid(directory)
    if number is None:
        return
    try:
        os.kill(number, signal.SIGTERM)
    except ProcessLookupError:
        return
    _wait_gone(number)


def _wait_gone(number: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(number, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}: {(result.stderr or result.stdout).strip()}")


if __name__ == "__main__":
    command, where = sys.argv[1], Path(sys.argv[2])
    if command == "start":
        print(start(where))
    elif command == "stop":
        stop(where)
    elif command == "kill":
        kill(where)
    elif command == "restart":
        restart(where)
    else:
        sys.exit(f"usage: {sys.argv[0]} start|stop|kill|restart DIRECTORY")
