"""State documents on Redis: read with their versions and the server's clock, decided in Python by a plan,
and written by the commit script of the jobs they go with, which first checks that no version moved.

A plan over some keys checks those keys' versions (a key never written has version 0, and a deleted
key keeps its version: a reader can never mistake a key written and deleted since for one untouched);
a plan over every document checks the version of the whole state. Jobs the plan saw but nothing
changes are checked too, so that what it decided from them still held when it was written.
"""

from __future__ import annotations

__all__ = ["Snapshot", "Write", "arguments", "chain", "expectations", "snapshot"]

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ...record.models import Job
from ..base import StateDoc
from ..plans import Decision
from .records import from_ms

#: A job being written: (the job as read, its version, the new job or None to remove it).
Write = tuple[Job, int, "Job | None"]


@dataclass(frozen=True)
class Snapshot:
    """The documents read for a plan, their versions, the server's clock, and (for an add) its key's open job."""

    now: datetime | None
    docs: dict[str, StateDoc]
    versions: dict[str, int]
    whole: int | None  # the whole state's version, for a plan over every document
    holder: list[str] | None  # the row of the open job of the key asked for


def snapshot(reply: Sequence[Any], keys: Collection[str] | None, *, server_clock: bool) -> Snapshot:
    """A :class:`Snapshot` from the reply of the read script's ``state`` mode."""
    now_ms, whole, holder = reply[0], int(reply[1]), reply[2]
    docs, versions = {}, {}
    for index in range(3, len(reply), 3):
        key, version, text = reply[index], int(reply[index + 1]), reply[index + 2]
        versions[key] = version
        if text:
            docs[key] = json.loads(text)
    return Snapshot(
        now=from_ms(now_ms) if server_clock else None,
        docs=docs,
        versions=versions if keys is not None else {},
        whole=whole if keys is None else None,
        holder=list(holder) if holder else None,
    )


def arguments(keys: Collection[str] | None, open_key: str = "") -> list[str]:
    """The read script's arguments for the documents of ``keys`` (all: None) and the open job of ``open_key``."""
    return ["state", "all" if keys is None else "some", open_key, *sorted(keys or ())]


def expectations(read: Snapshot, decision: Decision) -> dict[str, Any]:
    """The ``state`` part of a commit: the versions to check, the documents to write and delete."""
    payload: dict[str, Any] = {
        "expect": read.versions,
        "put": {key: text for key, text in decision.texts.items() if text is not None},
        "del": sorted(key for key, text in decision.texts.items() if text is None),
    }
    if read.whole is not None:
        payload["whole"] = read.whole
    return payload


def chain(
    decision: Decision,
    writes: dict[str, Write],
    seen: Mapping[str, tuple[Job, int]],
    results: dict[str, Job | None],
    fetch: Callable[[list[str]], Mapping[str, tuple[Job, int]]],
) -> dict[str, tuple[Job, int]]:
    """Add a plan's mutations to ``writes`` (each after what the caller's change left), and their results.

    ``seen`` holds the jobs read for the caller's changes; ``fetch`` reads the others a mutation names.
    Returns every job read, with its version: those not written are checked by the commit.
    """
    missing = [ident for ident in decision.mutations if ident not in writes and ident not in seen]
    found = {**seen, **(fetch(missing) if missing else {})}
    for ident, mutation in decision.mutations.items():
        if ident in writes:
            old, version, current = writes[ident]
            if current is None:
                continue  # removed by the caller's change: nothing left to change
        elif ident in found:
            current, version = found[ident]
            old = current
        else:
            continue  # no such job
        new = mutation(current)
        results[ident] = new
        if new is not current:
            writes[ident] = (old, version, new)
    return found
