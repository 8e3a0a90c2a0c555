"""A throwaway PostgreSQL cluster for the tests: a temp directory, a non-root user, loopback only.

Used by ``.ci/run`` (``python3 tests/postgres_cluster.py start DIR`` prints the URL; ``stop DIR``)
and by the test fixtures when no server is given; standard library only, so that it runs before
the virtual environment exists.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
from pathlib import Path

#: initdb refuses to run as root; the cluster is run by this user when the tests run as root.
CLUSTER_USER = "postgres"
SUPERUSER = "retryq"
#: The roles that must give their password (see _require_passwords); the tests create the group.
PASSWORD_GROUP = "retryq_passwords"


def binary(name: str) -> str | None:
    """``name`` from PATH, else from Debian's versioned directories (newest first)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_version, reverse=True)
    return candidates[0] if candidates else None


def _version(path: str) -> int:
    try:
        return int(Path(path).parts[-3])
    except ValueError:
        return 0


def _as_owner(argv: list[str], directory: Path) -> list[str]:
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", pwd.getpwuid(directory.stat().st_uid).pw_name, "--", *argv]


def start(directory: Path) -> str:
    """Create and start a cluster in ``directory``; return its URL. Raises RuntimeError with the reason."""
    initdb, pg_ctl = binary("initdb"), binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise RuntimeError("no PostgreSQL server here (no initdb and pg_ctl; Debian: apt-get install postgresql)")
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam(CLUSTER_USER)
        except KeyError:
            raise RuntimeError(f"running as root, and there is no {CLUSTER_USER!r} user to run the cluster") from None
        for path in (directory, *directory.parents):  # the cluster's user must reach its directory
            if path == Path("/"):
                break
            path.chmod(path.stat().st_mode | 0o011)
        os.chown(directory, user.pw_uid, user.pw_gid)
    data = directory / "data"
    _run(_as_owner([initdb, "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync"], directory))
    _require_passwords(data / "pg_hba.conf")
    port = _free_port()
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={directory} -c fsync=off"
    log = str(directory / "server.log")
    _run(_as_owner([pg_ctl, "-D", str(data), "-o", options, "-l", log, "-w", "start"], directory))
    (directory / "url").write_text(f"postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres\n")
    return url(directory)


def _require_passwords(hba: Path) -> None:
    """Every role trusted on loopback, but the members of :data:`PASSWORD_GROUP`, which log in with their
    password: the tests of a wrong password create such a role (the first matching line wins)."""
    lines = [
        "# retryq's tests: members of this group log in with their password; every other role is trusted.",
        *(f"host all +{PASSWORD_GROUP} {address} scram-sha-256" for address in ("127.0.0.1/32", "::1/128")),
    ]
    hba.write_text("\n".join(lines) + "\n" + hba.read_text())


def url(directory: Path) -> str:
    return (directory / "url").read_text().strip()


def restart(directory: Path) -> None:
    """Restart the server at once, dropping every connection (``pg_ctl restart -m fast``)."""
    log = str(directory / "server.log")  # the server must not inherit our pipes: it would hold them open
    pg_ctl = binary("pg_ctl") or "pg_ctl"
    _run(_as_owner([pg_ctl, "-D", str(directory / "data"), "-l", log, "-m", "fast", "-w", "restart"], directory))


def stop(directory: Path) -> None:
    if (directory / "data" / "postmaster.pid").exists():
        pg_ctl = binary("pg_ctl") or "pg_ctl"
        _run(_as_owner([pg_ctl, "-D", str(directory / "data"), "-m", "fast", "-w", "stop"], directory))


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
    elif command == "restart":
        restart(where)
    else:
        sys.exit(f"usage: {sys.argv[0]} start|stop|restart DIRECTORY")
