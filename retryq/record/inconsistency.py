"""Judging a fetch: the source announced ``total`` results and ``fetched`` arrived; and how long its retry waits.

The BOAMP fetcher's rule: nothing missing is ``OK``; a few missing (at most ``max_missing``, or at most
``max_ratio`` of the total) is ``DEGRADED`` and tolerated; more is ``ERROR``. Whatever the
status, anything missing is worth a deferred retry: the source is often only late. How late
depends on the verdict: :class:`DelayPolicy` gives one delay, a delay per status, or a delay per
band of the missing ratio, and :func:`decide_delay` spaces the follow-ups of a chain with the
workflow's backoff.
"""

from __future__ import annotations

__all__ = [
    "Assessment",
    "Decision",
    "DelayBand",
    "DelayPolicy",
    "FetchStatus",
    "InconsistencyThresholds",
    "assess",
    "decide_delay",
    "parse_delay_policy",
    "record_detection",
]

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .backoff import Backoff, RetryState
from .errors import InvalidInput
from .limits import MAX_MISSING, MAX_RATIO, REPORT_DELAY_MINUTES
from .timeutil import MAX_DELAY, parse_delay

if TYPE_CHECKING:
    from .models import Job

#: The longest delay a retry may wait, in minutes (as for any job).
MAX_DELAY_MINUTES = int(MAX_DELAY.total_seconds() // 60)


@dataclass(frozen=True)
class InconsistencyThresholds:
    """The BOAMP fetcher's tolerance: DEGRADED while missing <= max_missing or missing/total <= max_ratio."""

    max_missing: int = MAX_MISSING
    max_ratio: float = MAX_RATIO
    #: Before the retry: minutes (60), a duration ("1h"), or a :class:`DelayPolicy` by verdict.
    delay: int | str | DelayPolicy = REPORT_DELAY_MINUTES

    def __post_init__(self) -> None:
        parse_delay_policy(self.delay)  # a nonsensical delay is refused here, not at the first retry

    @property
    def policy(self) -> DelayPolicy:
        """The delay as a :class:`DelayPolicy`."""
        return parse_delay_policy(self.delay)


class FetchStatus(str, enum.Enum):
    OK = "OK"
    DEGRADED = "DEGRADED"  # something is missing, within the tolerance
    ERROR = "ERROR"  # too much is missing: the fetch should fail fast

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Assessment:
    """What a fetch got compared with what the source announced."""

    total: int
    fetched: int
    missing: int
    ratio: float  # missing / total (0 when the total is 0)
    status: FetchStatus
    thresholds: InconsistencyThresholds

    @property
    def needs_retry(self) -> bool:
        return self.missing > 0

    @property
    def surplus(self) -> int:
        """Results beyond the announced total: an oddity of the source, worth a warning, not a retry."""
        return max(0, self.fetched - self.total)

    def describe(self) -> str:
        """The verdict in one line, thresholds included when something is missing."""
        limits = self.thresholds
        if self.surplus:
            return (
                f"the source returned more than it announced: {self.fetched} fetched of {self.total} "
                "announced; nothing scheduled"
            )
        if self.status is FetchStatus.OK:
            return f"complete: {self.fetched} of {self.total} fetched; no retry needed"
        missing = f"{self.missing} of {self.total} missing ({self.ratio:.2%})"
        if self.status is FetchStatus.DEGRADED:
            return f"DEGRADED: {missing}, tolerated (at most {limits.max_missing}, or at most {limits.max_ratio:.2%})"
        return (
            f"ERROR: {missing}, beyond the threshold (more than {limits.max_missing} "
            f"and more than {limits.max_ratio:.2%})"
        )

    def to_json_dict(self) -> dict[str, object]:
        return {
            "total": self.total,
            "fetched": self.fetched,
            "missing": self.missing,
            "ratio": self.ratio,
            "status": self.status.value,
            "surplus": self.surplus,
        }


def assess(total: int, fetched: int, thresholds: InconsistencyThresholds | None = None) -> Assessment:
    """Classify a fetch of ``fetched`` results out of ``total`` announced."""
    thresholds = thresholds or InconsistencyThresholds()
    for name, value in (("total", total), ("fetched", fetched)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidInput(f"{name} must be a whole number >= 0, not {value!r}")
    # More results than announced is an oddity of the source, not missing data.
    missing = max(0, total - fetched)
    ratio = missing / total if total else 0.0
    if missing == 0:
        status = FetchStatus.OK
    elif missing <= thresholds.max_missing or ratio <= thresholds.max_ratio:
        status = FetchStatus.DEGRADED
    else:
        status = FetchStatus.ERROR
    return Assessment(total, fetched, missing, ratio, status, thresholds)


# -- how long the retry waits ---------------------------------------------------------------------


@dataclass(frozen=True)
class DelayBand:
    """Retries of fetches missing at most ``up_to`` of the total wait ``minutes`` (``up_to=None``: any ratio)."""

    up_to: float | None
    minutes: int


@dataclass(frozen=True)
class DelayPolicy:
    """How long the retry of an incomplete fetch waits: one delay, a delay per status, or per band of missing ratio.

    ``DelayPolicy(60)``; ``DelayPolicy(by_status={FetchStatus.ERROR: 20})``, where a status left out
    waits ``minutes``; ``DelayPolicy(bands=(DelayBand(0.005, 60), DelayBand(0.05, 30), DelayBand(None, 15)))``,
    where the first band whose ``up_to`` the ratio does not exceed applies, the last one open-ended.
    """

    minutes: int = REPORT_DELAY_MINUTES
    by_status: Mapping[FetchStatus, int] = field(default_factory=dict)
    bands: tuple[DelayBand, ...] = ()

    def __post_init__(self) -> None:
        _check_minutes(self.minutes, "delay")
        if self.by_status and self.bands:
            raise InvalidInput("give a delay per status or per band of missing ratio, not both")
        for status, minutes in self.by_status.items():
            if status not in (FetchStatus.DEGRADED, FetchStatus.ERROR):
                raise InvalidInput(f"no delay for {status!s}: only DEGRADED and ERROR fetches are retried")
            _check_minutes(minutes, f"delay for {status}")
        previous: float | None = None
        for number, band in enumerate(self.bands, start=1):
            where = f"band {number}"
            _check_minutes(band.minutes, f"{where}: delay")
            if band.up_to is None:
                if number < len(self.bands):
                    raise InvalidInput(f"{where}: only the last band may leave out up_to")
                continue
            if isinstance(band.up_to, bool) or not isinstance(band.up_to, (int, float)) or not 0 < band.up_to < 1:
                raise InvalidInput(
                    f"{where}: up_to is a ratio of the total, more than 0 and less than 1 (0.05 is 5%), "
                    f"not {band.up_to!r}"
                )
            if previous is not None and band.up_to <= previous:
                raise InvalidInput(f"{where}: up_to {band.up_to:g} must be more than the band before ({previous:g})")
            previous = band.up_to
        if self.bands and self.bands[-1].up_to is not None:
            raise InvalidInput(
                f"the last band must leave out up_to, to take every ratio above {self.bands[-1].up_to:g}"
            )

    def pick(self, assessment: Assessment) -> tuple[int, str]:
        """The delay for ``assessment``'s verdict, and the rule that gave it ("" for the one delay)."""
        floor: float | None = None
        for band in self.bands:  # the last band is open-ended: one of them always applies
            if band.up_to is None:
                return band.minutes, f"delay for missing over {_percent(floor)}" if floor is not None else ""
            if assessment.ratio <= band.up_to:
                return band.minutes, f"delay for missing up to {_percent(band.up_to)}"
            floor = band.up_to
        if self.by_status:
            status = assessment.status
            if status in self.by_status:
                return self.by_status[status], f"delay for {status}"
            return self.minutes, f"default delay for {status}"
        return self.minutes, ""


@dataclass(frozen=True)
class Decision:
    """How long a retry waits, and why (for the log line and the job)."""

    minutes: int
    reason: str = ""  # empty when the one configured delay applies as it is


def decide_delay(
    assessment: Assessment, policy: DelayPolicy, attempt: int = 1, backoff: Backoff | None = None
) -> Decision:
    """The wait before retry ``attempt`` (1: the first of its chain) of a fetch judged ``assessment``.

    The policy picks the delay for the verdict. A later attempt is a follow-up asked from inside
    a retry run: ``backoff`` (the workflow's) spaces it as it spaces retries after an exit code,
    with the picked delay as its base: the default ``fixed`` keeps it, ``exponential`` doubles it
    after each attempt, a backoff with an ``initial`` delay of its own ignores it, and ``jitter``
    makes the result random.
    """
    if not assessment.needs_retry:
        raise InvalidInput("nothing is missing: there is no retry to delay")
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise InvalidInput(f"attempt counts the retries of a chain from 1, not {attempt!r}")
    minutes, rule = policy.pick(assessment)
    if attempt == 1 or backoff is None:
        return Decision(minutes, rule)
    seconds = backoff(RetryState(attempt - 1, base_delay=minutes * 60.0))
    spaced = round(min(seconds / 60, MAX_DELAY_MINUTES))  # to the minute: jobs count delays in minutes
    if spaced == minutes:
        return Decision(minutes, rule)
    try:  # a backoff with an initial delay of its own needs no base, and ignores the verdict's
        backoff(RetryState(attempt - 1))
        base = "its own initial delay"
    except ValueError:
        base = f"the {minutes}-minute {rule or 'delay'}"
    return Decision(spaced, f"backoff after attempt {attempt - 1} on {base}")


def record_detection(assessment: Assessment, decision: Decision, attempt: int) -> Callable[[Job], Job]:
    """A store mutation recording the verdict that scheduled retry ``attempt`` on a job that records none yet.

    The first verdict of a chain is the one kept: later follow-ups are logged, not recorded.
    """
    from .models import Detection

    found = Detection(
        status=assessment.status.value,
        total=assessment.total,
        missing=assessment.missing,
        ratio=assessment.ratio,
        delay_minutes=decision.minutes,
        reason=decision.reason or None,
        attempt=attempt,
    )
    return lambda job: job if job.detection is not None else job.model_copy(update={"detection": found})


def parse_delay_policy(value: Any) -> DelayPolicy:
    """``[report] delay`` as written: minutes or a duration, a table per status, or an array of bands."""
    if isinstance(value, DelayPolicy):
        return value
    if isinstance(value, Mapping):
        if not value:
            raise InvalidInput("the table is empty: give degraded, error or both")
        by_status = {}
        for key, given in value.items():
            if key not in ("degraded", "error"):
                raise InvalidInput(f"unknown status {key!r} in the table (degraded, error)")
            by_status[FetchStatus(key.upper())] = _parse_minutes(given, key)
        return DelayPolicy(by_status=by_status)
    if isinstance(value, (list, tuple)):
        if not value:
            raise InvalidInput("no band: give at least one, the last without up_to")
        return DelayPolicy(bands=tuple(_parse_band(item, number) for number, item in enumerate(value, start=1)))
    return DelayPolicy(_parse_minutes(value))


def _parse_band(item: Any, number: int) -> DelayBand:
    where = f"band {number}"
    if not isinstance(item, Mapping):
        raise InvalidInput(f'{where}: a band is a table, {{ up_to = 0.05, delay = "30m" }}, not {item!r}')
    unknown = sorted(str(key) for key in item if key not in ("up_to", "delay"))
    if unknown:
        raise InvalidInput(f"{where}: unknown key {unknown[0]!r} (up_to, delay)")
    if "delay" not in item:
        raise InvalidInput(f"{where}: delay is missing")
    return DelayBand(item.get("up_to"), _parse_minutes(item["delay"], where))


def _parse_minutes(value: Any, where: str | None = None) -> int:
    prefix = f"{where}: " if where else ""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise InvalidInput(f'{prefix}expected minutes or a duration such as "60m", not {value!r}')
    if isinstance(value, float):  # TOML's 60.0
        if not value.is_integer():
            raise InvalidInput(f"{prefix}delay {value!r} is not a whole number of minutes")
        value = int(value)
    try:
        return parse_delay(value)
    except InvalidInput as error:
        raise InvalidInput(f"{prefix}{error}") from None


def _check_minutes(value: object, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DELAY_MINUTES:
        raise InvalidInput(f"{where} must be whole minutes from 0 to 30 days, not {value!r}")


def _percent(ratio: float) -> str:
    return f"{ratio * 100:g}%"
