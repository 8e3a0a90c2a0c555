"""The pending records of a whole document in the order claims take them, kept from one claim to the next.

A `process` run claims its due jobs one write at a time. Choosing among every pending record at
each claim would cost the square of the queue; instead the pending records are sorted once, in
groups of one workflow and one priority, each by ``executeAt`` and queue order, and kept while
the document changes only through the claims and results of the store that keeps them. A claim
then hands :func:`retryq.record.rules.choose` the first records of each group only: as many as
the workflow has free slots (more when records ahead are excluded or not valid jobs). Within a
group the claim order is ``executeAt`` then queue order whatever the time (a record is overdue
before any later one is), so those are the only ones ``choose`` could take from it: it chooses
among them as it would among all.
"""

from __future__ import annotations

__all__ = ["DueOrder"]

import bisect
from collections.abc import Iterable, Mapping
from datetime import datetime

from ..record import rules
from .base import ClaimRequest
from .entry import _Entry

#: A candidate as :func:`retryq.record.rules.choose` takes it: (executeAt, position, status, workflow, id, item).
Candidate = tuple[datetime, int, str, str, str | None, int]


class DueOrder:
    """The pending records of ``entries``, by workflow and priority, each group in (executeAt, position) order."""

    def __init__(self, entries: list[_Entry]) -> None:
        self.groups: dict[tuple[str, int], list[tuple[datetime, int]]] = {}
        self._placed: dict[int, tuple[str, int, datetime]] = {}  # position -> where its record was sorted
        for position, entry in enumerate(entries):
            self._add(position, entry)

    def replace(self, positions: Iterable[int], before: list[_Entry], after: list[_Entry]) -> None:
        """The records at ``positions`` changed from ``before[p]`` to ``after[p]`` (no record moved)."""
        for position in positions:
            if before[position] is not after[position]:
                self._remove(position)
                self._add(position, after[position])

    def candidates(self, entries: list[_Entry], request: ClaimRequest, free: Mapping[str, int]) -> list[Candidate]:
        """The first due records of each group, enough for ``choose`` to fill every free slot from them."""
        found: list[Candidate] = []
        exclude, due_by = request.exclude, request.due_by
        for (workflow, _), group in self.groups.items():
            room = free.get(workflow, 0)
            for due, position in group:
                if room <= 0 or due > due_by:
                    break
                entry = entries[position]
                ident = entry.job_id() if exclude else None
                if exclude and ident in exclude:
                    continue
                found.append((due, position, rules.PENDING, workflow, ident, position))
                if entry.decoded() is not None:  # what choose's accept says: a record that is not a job takes no slot
                    room -= 1
        return found

    def _key(self, entry: _Entry) -> tuple[str, int, datetime] | None:
        workflow = entry.key[0]
        if entry.status != rules.PENDING or not isinstance(workflow, str):
            return None
        due = entry.execute_at()
        return None if due is None else (workflow, entry.priority(), due)

    def _add(self, position: int, entry: _Entry) -> None:
        key = self._key(entry)
        if key is not None:
            bisect.insort(self.groups.setdefault(key[:2], []), (key[2], position))
            self._placed[position] = key

    def _remove(self, position: int) -> None:
        key = self._placed.pop(position, None)
        if key is not None:
            group = self.groups[key[:2]]
            del group[bisect.bisect_left(group, (key[2], position))]
