"""Running a :class:`~retryq.stores.base.Plan` the same way on every backend: on copies of the
documents, its result checked before anything is written, its mutations chained after the caller's.

A plan is the caller's code running inside a store's step. What it returns is checked here, so that
a plan that writes a key it did not name (which no backend locked or versioned for it), or a value
that is not JSON, fails before anything is written, whatever the backend.
"""

from __future__ import annotations

__all__ = ["Decision", "capped", "checked_keys", "decide", "encode", "merged", "selected", "then"]

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime

from ..record.models import Job
from .base import Mutation, Plan, StateDoc, check_state_key


@dataclass(frozen=True)
class Decision:
    """A plan's result, checked: each document written with its JSON text (None: deleted)."""

    abort: bool
    writes: dict[str, StateDoc | None]
    texts: dict[str, str | None]
    mutations: Mapping[str, Mutation]
    slots: Mapping[str, int] | None


def encode(doc: object, key: str) -> str:
    """The JSON text of a state document; ValueError if it is not a JSON object that JSON keeps as it is."""
    if not isinstance(doc, dict):
        raise ValueError(f"state document {key!r} is not a JSON object: {type(doc).__name__}")
    try:
        text = json.dumps(doc, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        text.encode("utf-8")
    except (TypeError, ValueError) as error:  # UnicodeEncodeError is a ValueError
        raise ValueError(f"state document {key!r} is not JSON: {error}") from None
    if json.loads(text) != doc:
        raise ValueError(f"state document {key!r} holds what JSON does not keep (a tuple, a key that is not a string)")
    return text


def copied(doc: StateDoc) -> StateDoc:
    """A copy a plan may change without changing what the store holds."""
    value: StateDoc = json.loads(json.dumps(doc))
    return value


def checked_keys(keys: Collection[str] | None) -> list[str] | None:
    """``keys`` as asked for (None: all), each checked to be a state key."""
    return None if keys is None else [check_state_key(key) for key in keys]


def selected(state: Mapping[str, StateDoc], keys: Collection[str] | None) -> dict[str, StateDoc]:
    """Copies of the documents of ``keys`` that exist (all of them without ``keys``)."""
    if keys is None:
        return {key: copied(doc) for key, doc in state.items()}
    return {key: copied(state[key]) for key in keys if key in state}


def decide(plan: Plan, state: Mapping[str, StateDoc], now: datetime | None, jobs: Mapping[str, Job | None]) -> Decision:
    """Call ``plan`` on copies of its documents in ``state`` and check what it returns."""
    result = plan(selected(state, plan.keys), now, dict(jobs))
    if result.abort:
        return Decision(True, {}, {}, {}, None)
    writes: dict[str, StateDoc | None] = {}
    texts: dict[str, str | None] = {}
    for key, doc in result.writes.items():
        check_state_key(key)
        if plan.keys is not None and key not in plan.keys:
            raise ValueError(f"a plan wrote the state document {key!r}, which is not among its keys")
        texts[key] = None if doc is None else encode(doc, key)
        writes[key] = None if doc is None else copied(doc)
    slots = None if result.slots is None else dict(result.slots)
    for workflow, room in (slots or {}).items():
        if not isinstance(room, int) or room < 0:
            raise ValueError(f"a plan gave workflow {workflow!r} {room!r} slots: a whole number, at least 0")
    return Decision(False, writes, texts, dict(result.mutations), slots)


def merged(state: Mapping[str, StateDoc], writes: Mapping[str, StateDoc | None]) -> dict[str, StateDoc] | None:
    """``state`` with ``writes`` applied, or None when they change nothing."""
    new = dict(state)
    for key, doc in writes.items():
        if doc is None:
            new.pop(key, None)
        else:
            new[key] = doc
    return None if new == state else new


def capped(slots: Mapping[str, int], caps: Mapping[str, int] | None) -> dict[str, int]:
    """A claim's free slots, each at most what a plan gave its workflow (a workflow it did not name is unchanged)."""
    if not caps:
        return dict(slots)
    return {workflow: min(room, caps.get(workflow, room)) for workflow, room in slots.items()}


def then(first: Mutation | None, second: Mutation) -> Mutation:
    """``second`` applied to what ``first`` left (nothing when ``first`` removed the job)."""
    if first is None:
        return second

    def both(job: Job) -> Job | None:
        middle = first(job)
        return None if middle is None else second(middle)

    return both
