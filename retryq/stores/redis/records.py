"""How a job lives in a Redis queue: its times in milliseconds, what the scripts index it by, what a
claim asks the commit script for, and the claim laid over its record on reading (see :mod:`.scripts`)."""

from __future__ import annotations

__all__ = ["BAND", "MS", "claim_arguments", "due_score", "from_ms", "meta_of", "to_ms", "with_claim"]

import json
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from ...record import rules
from ...record.models import Job, JobStatus
from ...record.timeutil import format_utc
from ..base import ClaimRequest

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MS = timedelta(milliseconds=1)


def to_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // MS


def from_ms(ms: int | str) -> datetime:
    return _EPOCH + timedelta(milliseconds=int(ms))


#: A due score is ``band × BAND + executeAt in ms`` (see :mod:`.scripts`).
BAND = 2**43


def due_score(job: Job) -> str:
    """Where a pending job sorts among its workflow's: its band (``-priority``) first, then its due time (see
    :mod:`.scripts`); a due time outside 1970 to 2248 sorts at the nearer end, within its band."""
    return str(-job.priority * BAND + min(max(to_ms(job.execute_at), 0), BAND - 1))


def meta_of(job: Job) -> dict[str, str]:
    """What the scripts index a job by (its version is theirs to keep)."""
    return {"s": job.status.value, "w": job.workflow, "k": " ".join(job.key), "e": due_score(job)}


def claim_arguments(request: ClaimRequest, *, server_clock: bool) -> dict[str, Any] | None:
    """The ``claim`` part of a commit (None: nothing to claim); without ``server_clock``, judged by the claimant's."""
    claimant = request.claimant
    workflows = [
        {
            "name": name,
            "free": free,
            "cap": request.caps.get(name, -1),
            "lease": claimant.leases[name] // MS,
            "max": claimant.max_attempts[name],
        }
        for name, free in request.slots.items()
        if free > 0
    ]
    if request.limit <= 0 or not workflows:
        return None
    arguments: dict[str, Any] = {
        "limit": request.limit,
        "ahead": (request.due_by - claimant.now) // MS,
        "workflows": workflows,
        "exclude": list(request.exclude),
        "owner": claimant.owner.to_json_line(),
        "runs": [uuid.uuid4().hex for _ in range(request.limit)],
        "overdue_rank": rules.OVERDUE_RANK,
    }
    if not server_clock:
        arguments["now"] = to_ms(claimant.now)
    if request.max_wait is not None:  # absent, not null: a JSON null is a true value in the script
        arguments["max_wait"] = request.max_wait // MS
    return arguments


def with_claim(record: dict[str, Any], claim: Mapping[str, Any]) -> dict[str, Any]:
    """The record with the claim laid over it, as :func:`retryq.record.lifecycle.claim` writes it."""
    record = dict(record)
    values: dict[str, Any] = {
        "status": JobStatus.RUNNING.value,
        "owner": json.loads(claim["o"]),
        "runId": claim["r"],
        "startedAt": format_utc(from_ms(claim["s"])),
        "finishedAt": None,
        "leaseUntil": format_utc(from_ms(claim["l"])),
        "workflowPid": None,
        "followUpMinutes": None,
        "maxAttempts": record.get("maxAttempts") or claim["m"],
    }
    for key, value in values.items():
        if key in record or value is not None:
            record[key] = value
    return record
