"""What a processor writes with its next claim: the results, pid records and releases of its runs.

Each is applied to the job as stored at the instant of the write, so that a change for a run that
no longer holds its job (recovered meanwhile by another process) does nothing.
"""

from __future__ import annotations

__all__ = ["Active", "Change", "Pending"]

import enum
from dataclasses import dataclass

from ..record import lifecycle
from ..record.models import Job
from ..settings.config import WorkflowSettings
from ..stores import Mutation


class Change(enum.Enum):
    """What a change waiting for the next write does to the job its run claimed."""

    RECORD_PID = "record the workflow's process group"
    FINISH = "record the run's result"
    RELEASE = "give the job back untouched"


@dataclass
class Pending:
    """A change waiting for the next write; ``held`` says whether the run still held its job when written."""

    change: Change
    run_id: str
    mutation: Mutation
    held: bool = False

    def apply(self, job: Job) -> Job | None:
        # Decided on the job as stored at the instant of the write: another process may have
        # recovered it since (and then the change does nothing, see lifecycle).
        self.held = lifecycle.holds(job, self.run_id)
        return self.mutation(job)


@dataclass
class Active:
    """A run this process supervises: its job as claimed, and the settings it runs with."""

    job: Job
    settings: WorkflowSettings
