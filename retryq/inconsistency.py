"""Judging a fetch: the source announced ``total`` results and ``fetched`` arrived.

The BOAMP fetcher's rule: nothing missing is ``OK``; a few missing (at most ``max_missing``, or at most
``max_ratio`` of the total) is ``DEGRADED`` and tolerated; more is ``ERROR``. Whatever the
status, anything missing is worth a deferred retry: the source is often only late.
"""

from __future__ import annotations

__all__ = ["Assessment", "FetchStatus", "InconsistencyThresholds", "assess"]

import enum
from dataclasses import dataclass

from .errors import InvalidInput


@dataclass(frozen=True)
class InconsistencyThresholds:
    """The BOAMP fetcher's tolerance: DEGRADED while missing <= max_missing or missing/total <= max_ratio."""

    max_missing: int = 3
    max_ratio: float = 0.005
    delay: int = 60  # minutes before the retry


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
