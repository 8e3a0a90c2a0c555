"""A naive locked JSON queue: the least a JSON-file queue does to add a job safely, as retryq's floor and peer.

Read the whole file, append, write the whole file, all under ``<file>.lock`` (filelock); the
write goes to a temp file that is fsynced and ``os.replace``d, then the directory is fsynced:
the same durability as retryq, without its validation, duplicate check or job model.

Also a script, for the command-line comparison: ``python _naive.py QUEUE_FILE CLIENT DATE``.
It imports only what it needs, so that its start-up is the least a Python command pays.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timedelta, timezone

from filelock import FileLock

#: retryq polls its lock every 5 ms; filelock's default (50 ms) would slow this peer down under contention.
POLL_INTERVAL = 0.005


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def pending_job(client: str, date: str, delay_minutes: int = 60) -> dict[str, object]:
    """A new job with the keys retryq writes."""
    now = datetime.now(timezone.utc)
    return {
        "clientId": client,
        "date": date,
        "scheduledAt": _stamp(now),
        "executeAt": _stamp(now + timedelta(minutes=delay_minutes)),
        "delayMinutes": delay_minutes,
        "status": "pending",
        "id": os.urandom(8).hex(),
        "workflow": "default",
        "attempt": 0,
        "maxAttempts": 3,
        "startedAt": None,
        "finishedAt": None,
        "lastExitCode": None,
        "lastError": None,
        "leaseUntil": None,
        "owner": None,
        "runId": None,
        "workflowPid": None,
        "followUpMinutes": None,
        "history": [],
    }


def schedule(path: str | os.PathLike[str], job: dict[str, object], *, directory_fsync: bool = True) -> None:
    """Append ``job`` to the JSON array in ``path``: locked read-modify-write, fsynced, atomically replaced."""
    path = os.fspath(path)
    with FileLock(f"{path}.lock", poll_interval=POLL_INTERVAL):
        try:
            with open(path, "rb") as handle:
                jobs = json.loads(handle.read())
        except FileNotFoundError:
            jobs = []
        jobs.append(job)
        data = json.dumps(jobs, ensure_ascii=False).encode()
        tmp = f"{path}.tmp"  # one name is enough: only the lock holder writes it
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        if directory_fsync:  # for the rename itself to survive a power loss
            fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def raw_rewrite(path: str | os.PathLike[str], job: dict[str, object]) -> None:
    """Add ``job`` as a last line without parsing the file: locked, read, write, fsync, replace, fsync the directory.

    What a JSON-file queue cannot go below: it reads and rewrites every byte, but looks at none.
    """
    path = os.fspath(path)
    with FileLock(f"{path}.lock", poll_interval=POLL_INTERVAL):
        with open(path, "rb") as handle:
            raw = handle.read()
        line = json.dumps(job, ensure_ascii=False).encode()
        data = raw[:-3] + b",\n" + line + b"\n]\n" if raw.endswith(b"\n]\n") else b"[\n" + line + b"\n]\n"
        tmp = f"{path}.tmp"
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


if __name__ == "__main__":
    schedule(sys.argv[1], pending_job(sys.argv[2], sys.argv[3]))
