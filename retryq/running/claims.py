"""The claims this process holds, as it knows them: what tells its own runs from claims it never heard of.

A store may write a claim whose reply never comes back (the connection drops during COMMIT):
the job then runs for this process, under a run id that no processor of it knows, and no run
will ever end it. Nothing outside this process can tell such a claim from a live one before its
lease ends; this process can, at once, because it knows its runs. Every processor of the process
notes here the runs it claimed until their last change is written; a claim of this process that
is not noted, looked for while no processor of it is claiming, was never heard of: it is given
back without counting an attempt (it never started).
"""

from __future__ import annotations

__all__ = ["OWN_CLAIMS", "OwnClaims"]

import contextlib
import threading
from collections.abc import Iterable, Iterator

from ..record.models import Job, JobStatus, Owner
from . import platform


class OwnClaims:
    """The run ids this process holds claims for (one registry per process, shared by its processors)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._runs: set[str] = set()

    @contextlib.contextmanager
    def claiming(self) -> Iterator[None]:
        """Held while claiming and noting what was claimed, and while looking for claims never heard of:
        a claim is never taken for unheard of between its write and its note."""
        with self._lock:
            yield

    def hold(self, run_ids: Iterable[str]) -> None:
        with self._lock:
            self._runs.update(run_ids)

    def drop(self, run_ids: Iterable[str]) -> None:
        """These runs' last change (result, or job given back) is written: they hold nothing any more."""
        with self._lock:
            self._runs.difference_update(run_ids)

    def __contains__(self, run_id: object) -> bool:
        with self._lock:
            return run_id in self._runs

    def unheard_of(self, job: Job) -> bool:
        """Whether ``job`` runs for this very process under a run id none of its processors holds
        (to be asked inside :meth:`claiming`, from jobs read there)."""
        return job.status is JobStatus.RUNNING and self.of_this_process(job) and job.run_id not in self

    @staticmethod
    def of_this_process(job: Job) -> bool:
        """Whether ``job`` was claimed by this very process (whether or not it heard of the claim)."""
        return job.owner is not None and _same(job.owner, platform.current_owner())


def _same(one: Owner, other: Owner) -> bool:
    return (one.host, one.pid, one.boot_id, one.started, one.pid_ns) == (
        other.host,
        other.pid,
        other.boot_id,
        other.started,
        other.pid_ns,
    )


#: This process's registry: every processor notes its runs here.
OWN_CLAIMS = OwnClaims()
