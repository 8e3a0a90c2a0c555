"""Shared by the benchmark scripts: the machine, a table printer, realistic jobs, timing."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return f"{platform.system()} {platform.release()} {cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def header(title: str) -> None:
    print(f"\n## {title}\n\nmachine: {machine()}\n")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A Markdown table, ready to paste into the README."""
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("| " + " | ".join("-" * w for w in widths) + " |")
    for row in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def best_median(run: Callable[[], float], repeats: int) -> float:
    """The median of ``repeats`` measurements (seconds): robust to a noisy neighbour."""
    return statistics.median(run() for _ in range(repeats))


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def finished_job(number: int) -> dict[str, object]:
    """A completed job as retryq writes it, with one attempt in its history."""
    return {
        "clientId": f"client{number}",
        "date": "2025-12-19",
        "scheduledAt": "2025-12-19T10:00:00.000Z",
        "executeAt": "2025-12-19T11:00:00.000Z",
        "delayMinutes": 60,
        "status": "completed",
        "id": uuid.uuid4().hex[:16],
        "workflow": "default",
        "attempt": 1,
        "maxAttempts": 3,
        "startedAt": "2025-12-19T11:00:00.000Z",
        "finishedAt": "2025-12-19T11:00:02.000Z",
        "lastExitCode": 0,
        "lastError": None,
        "leaseUntil": None,
        "owner": None,
        "runId": None,
        "workflowPid": None,
        "followUpMinutes": None,
        "history": [
            {
                "attempt": 1,
                "startedAt": "2025-12-19T11:00:00.000Z",
                "finishedAt": "2025-12-19T11:00:02.000Z",
                "outcome": "succeeded",
                "exitCode": 0,
                "outputTail": "fetched 650 of 650 notices",
            }
        ],
    }


def write_queue(path: Path, jobs: Sequence[dict[str, object]]) -> None:
    """Write jobs in retryq's own layout, one per line."""
    body = ",\n".join(json.dumps(job, ensure_ascii=False) for job in jobs)
    path.write_text(f"[\n{body}\n]\n" if jobs else "[]\n")
