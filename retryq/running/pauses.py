"""What a person or a fetcher does to a workflow's breaker state: pause it, resume it, report an ERROR.

Each is one write of the workflow's state document (with the job changes an incident that opens
brings: the attempts it gives back), and runs ``on_incident`` when an incident opens or closes.
The processor's own changes are :mod:`retryq.running.breaker`'s.
"""

from __future__ import annotations

__all__ = ["by_whom", "pause", "report_error", "resume"]

import getpass
import logging
import socket
from collections.abc import Callable, Mapping
from datetime import datetime

from ..record import incidents as rules
from ..record.breakerstate import Incident, Pause, WorkflowState, state_key
from ..record.errors import InvalidInput, RetryqError
from ..record.models import Job
from ..record.text import storable
from ..record.timeutil import MAX_DELAY, format_duration, format_utc, to_utc
from ..settings.config import Config
from ..stores import Plan, PlanResult, StateDoc, Store
from .notify import IncidentHooks

log = logging.getLogger("retryq")

#: The longest reason a pause may give.
MAX_REASON = 200


def pause(
    store: Store,
    config: Config,
    workflow: str,
    *,
    now: datetime,
    until: datetime | None = None,
    reason: str | None = None,
    by: str | None = None,
) -> Pause:
    """Hold ``workflow``'s jobs on every host until ``until`` (None: until resumed); a new pause replaces one."""
    name = config.workflow(workflow).name
    if until is not None and until.tzinfo is None:
        raise InvalidInput("`until` must carry a time zone")
    until = None if until is None else to_utc(until)
    if until is not None and until <= now:
        raise InvalidInput(f"a pause must end after now ({format_utc(now)}), not at {format_utc(until)}")
    if until is not None and until - now > MAX_DELAY:
        raise InvalidInput(
            f"a pause ends at most {format_duration(MAX_DELAY)} from now, as every delay (leave its end out "
            "to pause until `retryq resume`)"
        )
    if reason is not None:
        reason = " ".join(storable(reason).split())
        if len(reason) > MAX_REASON or not reason:
            raise InvalidInput(f"a pause's reason is 1 to {MAX_REASON} characters of one line")
    verdict = _change(store, config, name, lambda state: rules.pause(state, now=now, until=until, reason=reason, by=by))
    assert verdict.state.pause is not None
    return verdict.state.pause


def resume(store: Store, config: Config, workflow: str, *, now: datetime) -> tuple[Pause | None, Incident | None]:
    """Lift ``workflow``'s pause and close its open incident; what was lifted and closed (None: nothing)."""
    name = config.workflow(workflow).name
    verdict = _change(store, config, name, lambda state: rules.resume(state, now=now))
    lifted = next((event.pause for event in verdict.events if isinstance(event, rules.PauseEnded)), None)
    closed = next((event.incident for event in verdict.events if isinstance(event, rules.Closed)), None)
    return lifted, closed


def report_error(store: Store, config: Config, workflow: str, job: str, *, now: datetime) -> Incident | None:
    """A fetcher's ``report`` judged ERROR for ``job``'s chain: a failure for the breaker. The incident it
    opens, if it does."""
    settings = config.settings_of(workflow)
    if settings.breaker is None:
        return None
    try:
        verdict = _change(
            store,
            config,
            workflow,
            lambda state: rules.reported_error(state, job, settings.breaker, workflow=workflow, now=now),
        )
    except RetryqError as error:  # the retry is scheduled: the breaker's count is what is lost
        log.warning("%s; this ERROR is not counted toward an upstream incident", error)
        return None
    return next((event.incident for event in verdict.events if isinstance(event, rules.Opened)), None)


def by_whom() -> str:
    """Who this is, for the record of a pause: ``user@host``."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no name for this uid (a container)
        user = "?"
    return f"{user}@{socket.gethostname()}"


def _change(
    store: Store, config: Config, workflow: str, rule: Callable[[WorkflowState], rules.Verdict]
) -> rules.Verdict:
    """Apply ``rule`` to ``workflow``'s state in one write, with the job changes it brings; tell what happened."""
    key = state_key(workflow)
    decided: list[rules.Verdict] = []

    def decide(docs: Mapping[str, StateDoc], _: datetime | None, jobs: Mapping[str, Job | None]) -> PlanResult:
        try:
            state = WorkflowState.of(docs.get(key))
        except ValueError as error:
            log.warning("state document %s: %s; started afresh", key, error)
            state = WorkflowState()
        verdict = rule(state)
        decided[:] = [verdict]
        new = verdict.state.to_doc()
        writes: dict[str, StateDoc | None] = {} if new == docs.get(key) else {key: new}
        return PlanResult(writes=writes, mutations=dict(verdict.changes))

    store.update({}, plan=Plan([key], decide))
    [verdict] = decided
    hooks = IncidentHooks(config, queue=store.environment())
    for event in verdict.events:
        if isinstance(event, rules.Opened):
            log.warning(
                "incident %s opened: %s reports and failures of workflow %s",
                event.incident.id,
                event.incident.failures,
                workflow,
            )
            hooks.notify(event.incident, "opened")
        elif isinstance(event, rules.Closed):
            hooks.notify(event.incident, "closed")
    hooks.wait()
    return verdict
