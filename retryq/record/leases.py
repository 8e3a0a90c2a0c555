"""When a running job's claim still holds: its lease, never trusted beyond what the configuration
allows a run, and why a job is taken for abandoned. Recovery (``process``, ``worker``) and ``doctor``
judge by these rules alike."""

from __future__ import annotations

__all__ = ["OwnerCheck", "RunLimits", "describe_skew", "lease_end", "stale_reason"]

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from .models import Job, Owner
from .timeutil import format_duration, format_utc

#: Whether an owner's process is alive: True or False when this host can tell, None when it cannot.
OwnerCheck = Callable[[Owner], "bool | None"]


class RunLimits(Protocol):
    """How long a workflow's run may last (:class:`retryq.WorkflowSettings` is one)."""

    @property
    def timeout(self) -> timedelta: ...
    @property
    def kill_grace(self) -> timedelta: ...


def lease_end(job: Job, settings: RunLimits, lease_grace: timedelta) -> datetime | None:
    """When a running job's lease ends: as recorded, but never after its start plus what the
    configuration allows a run (timeout, kill grace, lease grace): a lease until 2100 is not a lease."""
    allowed = None if job.started_at is None else job.started_at + settings.timeout + settings.kill_grace + lease_grace
    ends = [end for end in (job.lease_until, allowed) if end is not None]
    return min(ends, default=None)


def stale_reason(
    job: Job, *, now: datetime, settings: RunLimits, lease_grace: timedelta, owner_alive: OwnerCheck
) -> str | None:
    """Why a running job is abandoned by its runner (a phrase for logs), or None while its claim holds.

    A runner on this host is asked directly: gone, or alive and holding the job while its lease
    lasts (a live runner whose lease ended may never have heard of its claim). A runner elsewhere
    is judged by its lease, bounded by the configuration; and a job that started further in the
    future than ``lease_grace`` (the clock skew hosts may have) is not trusted at all.
    """
    owner = job.owner
    holder = f"{owner.host}:{owner.pid}" if owner is not None else "an unknown runner"
    if owner is not None:
        alive = owner_alive(owner)
        if alive is True:  # the same host, the same clock: its lease alone says whether it holds
            end = lease_end(job, settings, lease_grace)
            if end is None or end >= now:
                return None
            return (
                f"lease of {holder} expired at {format_utc(end)}, though it is alive "
                "(the reply to its claim was lost, or it is stuck)"
            )
        if alive is False:
            return f"runner {holder} is gone"
    if job.started_at is not None and job.started_at > now + lease_grace:
        return (
            f"started in the future ({format_utc(job.started_at)}, more than lease_grace ahead): "
            f"the clock of {holder} is ahead, or the file was edited; its lease is not trusted"
        )
    end = lease_end(job, settings, lease_grace)
    if end is None:
        return f"running for {holder} with no lease"
    if end >= now:
        return None
    if job.lease_until is not None and job.lease_until > end:
        return (
            f"holds a lease until {format_utc(job.lease_until)}, beyond what the configuration allows "
            f"(start + timeout + kill_grace + lease_grace = {format_utc(end)}, passed)"
        )
    return f"lease of {holder} expired at {format_utc(end)}"


def describe_skew(skew: timedelta, location: str) -> str:
    """A phrase for a host's clock that is ``skew`` ahead of (or behind) the clock of the store at ``location``."""
    shown = format_duration(timedelta(seconds=round(abs(skew).total_seconds())))
    return f"this host's clock is {shown} {'ahead of' if skew > timedelta(0) else 'behind'} the clock of {location}"
