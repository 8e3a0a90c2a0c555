"""The fast path of reading (views without a model per job) agrees with the models on every record."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from retryq.record.models import Attempt, Detection, Job, JobStatus, Outcome, Owner, job_list
from retryq.record.views import JobView, _validator, _View, views_of

from ..helpers import T0, make_job


def _same(view: Any, model: Any, where: str = "job") -> None:
    """Every field of ``view`` holds what the model's does: equal, of the same type, at the same UTC offset."""
    assert isinstance(view, _View), where
    assert view.__slots__ == tuple(type(model).model_fields), where
    for name in view.__slots__:
        mine, theirs = getattr(view, name), getattr(model, name)
        at = f"{where}.{name}"
        if isinstance(mine, _View):
            _same(mine, theirs, at)
        elif isinstance(mine, tuple):
            assert len(mine) == len(theirs), at
            for number, (one, other) in enumerate(zip(mine, theirs, strict=True)):
                _same(one, other, f"{at}.{number}")
        else:
            assert type(mine) is type(theirs), (at, mine, theirs)
            assert mine == theirs, (at, mine, theirs)
            if isinstance(mine, datetime):
                assert mine.isoformat() == theirs.isoformat(), at


def _file(*records: object, ascii_only: bool = False) -> bytes:
    body = ",\n".join(json.dumps(record, ensure_ascii=ascii_only) for record in records)
    return f"[\n{body}\n]\n".encode("utf-8", "surrogatepass")


def _models(raw: bytes) -> list[Job] | None:
    try:
        return job_list().validate_json(raw)
    except ValidationError:
        return None


def test_the_fast_path_is_built_from_the_models_schema() -> None:
    # None would mean a model gained a Python check the fast path has no replacement for.
    assert _validator() is not None


def test_jobs_as_retryq_writes_them_are_read_as_views_with_the_models_values() -> None:
    jobs = [
        make_job(),
        make_job(
            client_id="balthazar",
            workflow="nightly",
            status=JobStatus.RUNNING,
            attempt=2,
            max_attempts=4,
            started_at=T0,
            lease_until=T0 + timedelta(minutes=5),
            owner=Owner(host="h1", pid=42, boot_id="b", started=7, pid_ns="ns"),
            run_id="r1",
            workflow_pid=4242,
            last_error="fetched 647/650 — é",
            history=(Attempt(attempt=1, started_at=T0, finished_at=T0, outcome=Outcome.INCOMPLETE, exit_code=75),),
            detection=Detection(status="DEGRADED", total=650, missing=3, ratio=0.0046, delay_minutes=60),
        ),
    ]
    raw = _file(*(job.to_json_dict() for job in jobs))
    views = views_of(raw)
    assert views is not None
    assert all(isinstance(view, JobView) for view in views)
    for view, job in zip(views, jobs, strict=True):
        _same(view, job)
        assert view.key == job.key
        assert view.label == job.label


def test_a_view_is_read_only() -> None:
    raw = _file(make_job().to_json_dict())
    [view] = views_of(raw) or []
    with pytest.raises(AttributeError, match="read-only"):
        view.status = JobStatus.FAILED  # type: ignore[misc]
    assert view == (views_of(raw) or [])[0]
    assert hash(view) == hash((views_of(raw) or [])[0])
    assert "JobView(client_id='balthazar'" in repr(view)


def test_what_only_the_models_can_say_is_left_to_them() -> None:
    record = make_job().to_json_dict()
    legacy = {key: value for key, value in record.items() if key != "id"}  # the original scripts' records
    assert views_of(_file(legacy)) is None
    assert _models(_file(legacy)) is not None
    offset = {**record, "executeAt": "2025-12-19T12:00:00.000+02:00"}  # valid, made UTC by the model
    assert views_of(_file(offset)) is None
    assert _models(_file(offset)) is not None
    assert views_of(_file({**record, "date": "2025-02-30"})) is None
    assert views_of(_file({**record, "lastError": "a\x00b"})) is None
    raw_nul = _file({**record, "lastError": "a-b"}).replace(b"a-b", b"a\x00b")  # not even valid JSON
    assert views_of(raw_nul) is None
    assert _models(raw_nul) is None
    assert views_of(_file(record, {"not": "a job"})) is None


# -- generated records: valid ones, and each field spoilt in the ways a hand or another tool might --

_TIMES = st.sampled_from(
    [
        "2025-12-19T10:00:00.000Z",
        "2025-12-19T10:00:00Z",
        "2025-12-19T10:00:00.000+00:00",
        "2025-12-19T12:00:00.000+02:00",
        "2025-12-19T10:00:00.123456Z",
        "2025-12-19T10:00:00.1234Z",
        "2025-12-19T10:00:00",
        "2025-12-19",
        "1766138400",
        "1766138400.1234",
        1766138400,
        1766138400.5,
        "yesterday",
        "",
        None,
    ]
)
_NAMES = st.sampled_from(["balthazar", "a", "Client_1.eu-west", "x" * 64, "x" * 65, "", "-rf", "a b", "é", "a\x00", 7])
_DATES = st.sampled_from(["2025-12-19", "2024-02-29", "2025-02-29", "2025-02-30", "2025-1-9", "٢٠٢٥-١٢-١٩", 20251219])
_INTS = st.sampled_from([0, 1, 3, 60, 100, 101, 43200, 43201, -1, "60", 60.0, 60.5, True, None, "x"])
_TEXT = st.sampled_from(["fetched 647/650", "", "é — ✓", "a\x00b", "\ud800", "\U0001f600", "line\nbreak", 5])
_IDS = st.sampled_from(["0123456789abcdef", "a", "a" * 64, "a" * 65, "", "-x", "a.b", "a_b-c", 12])


def _spoilt(base: dict[str, Any], fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """``base`` with one or two of ``fields`` given another value (or removed)."""
    change = st.sampled_from(sorted(fields)).flatmap(
        lambda name: st.one_of(st.just((name, _ABSENT)), fields[name].map(lambda value: (name, value)))
    )
    return st.lists(change, min_size=1, max_size=2).map(
        lambda changes: {key: value for key, value in {**base, **dict(changes)}.items() if value is not _ABSENT}
    )


_ABSENT = object()
_ATTEMPT = {
    "attempt": 1,
    "startedAt": "2025-12-19T11:00:00.000Z",
    "finishedAt": "2025-12-19T11:00:02.000Z",
    "outcome": "incomplete",
    "exitCode": 75,
    "outputTail": "fetched 647/650",
}
_ATTEMPTS = _spoilt(
    _ATTEMPT,
    {
        "attempt": _INTS,
        "startedAt": _TIMES,
        "finishedAt": _TIMES,
        "outcome": st.sampled_from(["succeeded", "timeout", "done", None]),
        "exitCode": _INTS,
        "outputTail": _TEXT,
    },
)
_OWNER = {"host": "h1", "pid": 42, "bootId": "b", "started": 7, "pidNs": "ns"}
_OWNERS = _spoilt(_OWNER, {"host": _TEXT, "pid": _INTS, "bootId": _TEXT, "started": _INTS, "pidNs": _TEXT})
_DETECTION = {"status": "DEGRADED", "total": 650, "missing": 3, "ratio": 0.0046, "delayMinutes": 60, "theirs": "x"}
_DETECTIONS = _spoilt(
    _DETECTION,
    {
        "status": st.sampled_from(["OK", "ERROR", "BAD"]),
        "total": _INTS,
        "missing": _INTS,
        "ratio": st.sampled_from([0, 0.5, 1, 1.5, -0.1, "0.5"]),
        "delayMinutes": _INTS,
        "reason": _TEXT,
        "attempt": _INTS,
        "theirs": _TEXT,
    },
)
_JOB = {
    "clientId": "balthazar",
    "date": "2025-12-19",
    "scheduledAt": "2025-12-19T10:00:00.000Z",
    "executeAt": "2025-12-19T11:00:00.000Z",
    "delayMinutes": 60,
    "status": "running",
    "id": "0123456789abcdef",
    "workflow": "nightly",
    "attempt": 2,
    "maxAttempts": 3,
    "startedAt": "2025-12-19T11:00:00.000Z",
    "finishedAt": None,
    "lastExitCode": 75,
    "lastError": "fetched 647/650",
    "leaseUntil": "2025-12-19T11:05:00.000Z",
    "owner": _OWNER,
    "runId": "r1",
    "workflowPid": 4242,
    "followUpMinutes": None,
    "history": [_ATTEMPT],
    "detection": _DETECTION,
}
_JOBS = _spoilt(
    _JOB,
    {
        "clientId": _NAMES,
        "date": _DATES,
        "scheduledAt": _TIMES,
        "executeAt": _TIMES,
        "delayMinutes": _INTS,
        "status": st.sampled_from(["pending", "completed", "failed", "cancelled", "done", None]),
        "id": _IDS,
        "workflow": _NAMES,
        "attempt": _INTS,
        "maxAttempts": _INTS,
        "startedAt": _TIMES,
        "finishedAt": _TIMES,
        "lastExitCode": _INTS,
        "lastError": _TEXT,
        "leaseUntil": _TIMES,
        "owner": st.one_of(st.none(), _OWNERS, _TEXT),
        "runId": _TEXT,
        "workflowPid": _INTS,
        "followUpMinutes": _INTS,
        "history": st.one_of(st.lists(_ATTEMPTS, max_size=2), _TEXT),
        "detection": st.one_of(st.none(), _DETECTIONS),
        "theirs": st.one_of(_TEXT, st.dictionaries(_TEXT.filter(lambda key: isinstance(key, str)), _TEXT, max_size=2)),
    },
)
_VALID = st.fixed_dictionaries(
    {
        "clientId": st.sampled_from(["balthazar", "a", "Client_1.eu-west"]),
        "date": st.sampled_from(["2025-12-19", "2024-02-29"]),
        "scheduledAt": st.just("2025-12-19T10:00:00.000Z"),
        "executeAt": st.sampled_from(["2025-12-19T11:00:00.000Z", "2025-12-19T11:00:00Z"]),
        "delayMinutes": st.integers(0, 43200),
        "id": st.sampled_from(["0123456789abcdef", "a_b-c"]),
    }
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(st.one_of(_JOBS, st.just(_JOB), _VALID), min_size=1, max_size=3), ascii_only=st.booleans())
def test_the_fast_path_accepts_only_what_the_models_accept_with_the_same_values(
    records: list[dict[str, Any]], ascii_only: bool
) -> None:
    raw = _file(*records, ascii_only=ascii_only)
    views, models = views_of(raw), _models(raw)
    if views is not None:
        assert models is not None, "the fast path accepted a record the models refuse"
        assert len(views) == len(models)
        for view, model in zip(views, models, strict=True):
            _same(view, model)


@settings(max_examples=200, deadline=None)
@given(record=_VALID)
def test_valid_records_in_the_form_retryq_writes_take_the_fast_path(record: dict[str, Any]) -> None:
    written = Job.model_validate(record).to_json_dict()
    views = views_of(_file(written))
    assert views is not None
    _same(views[0], Job.model_validate(written))
