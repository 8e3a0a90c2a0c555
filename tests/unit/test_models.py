"""The job record: validation of its parts, the file format, and old files."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from retryq.record.errors import InvalidInput
from retryq.record.models import (
    Job,
    JobStatus,
    describe_validation_error,
    validate_client_id,
    validate_date,
    validate_workflow_name,
)

from ..helpers import LEGACY_FILE, T0, make_job


@pytest.mark.parametrize("client", ["balthazar", "a", "Client_1.eu-west", "0abc", "x" * 64])
def test_valid_client_ids(client: str) -> None:
    assert validate_client_id(client) == client


@pytest.mark.parametrize(
    "client",
    ["", "x" * 65, "a b", "a/b", "a;b", "a$b", "a'b", 'a"b', "a\nb", "a\x00b", "-rf", "--help", ".hidden", "_x", "é"],
)
def test_invalid_client_ids(client: str) -> None:
    with pytest.raises(InvalidInput, match="invalid client id"):
        validate_client_id(client)


@pytest.mark.parametrize("date", ["2025-12-19", "2024-02-29", "2000-01-01"])
def test_valid_dates(date: str) -> None:
    assert validate_date(date) == date


@pytest.mark.parametrize("date", ["2025-02-30", "2025-13-01", "19/12/2025", "tomorrow", "20251219", "2025-12-1", ""])
def test_invalid_dates(date: str) -> None:
    with pytest.raises(InvalidInput, match="invalid date"):
        validate_date(date)


def test_workflow_names_follow_the_client_id_rule() -> None:
    assert validate_workflow_name("ftp-import") == "ftp-import"
    with pytest.raises(InvalidInput):
        validate_workflow_name("--x")


def test_timestamps_are_written_like_the_original_scripts() -> None:
    job = make_job(scheduled_at=datetime(2025, 12, 19, 10, 0, 0, 123456, tzinfo=timezone.utc))
    data = job.to_json_dict()
    assert data["scheduledAt"] == "2025-12-19T10:00:00.123Z"
    assert data["executeAt"] == "2025-12-19T11:00:00.000Z"


def test_timestamps_with_an_offset_are_stored_in_utc() -> None:
    job = Job.model_validate({**make_job().to_json_dict(), "executeAt": "2025-12-19T12:30:00+02:00"})
    assert job.execute_at == datetime(2025, 12, 19, 10, 30, tzinfo=timezone.utc)
    assert job.to_json_dict()["executeAt"] == "2025-12-19T10:30:00.000Z"


def test_a_timestamp_without_zone_is_refused() -> None:
    with pytest.raises(ValidationError, match="time zone"):
        Job.model_validate({**make_job().to_json_dict(), "executeAt": "2025-12-19T12:30:00"})


def test_a_legacy_job_loads_with_defaults_for_the_added_keys() -> None:
    [raw] = json.loads(LEGACY_FILE)
    job = Job.model_validate(raw)
    assert (job.client_id, job.date, job.status, job.delay_minutes) == (
        "balthazar",
        "2025-12-19",
        JobStatus.PENDING,
        60,
    )
    assert job.execute_at - job.scheduled_at == timedelta(hours=1)
    # No limit of its own: the workflow's max_attempts applies (and is fixed on the job at its first claim).
    assert (job.attempt, job.max_attempts, job.workflow, job.history) == (1, None, "default", ())
    # Every key of the original is written back with the same value.
    rewritten = job.to_json_dict()
    assert {key: rewritten[key] for key in raw} == raw


def test_an_old_job_gets_a_stable_id_until_it_is_rewritten() -> None:
    [raw] = json.loads(LEGACY_FILE)
    first, second = Job.model_validate(raw), Job.model_validate(dict(raw))
    assert first.id == second.id
    assert len(first.id) == 16
    other = Job.model_validate({**raw, "clientId": "other"})
    assert other.id != first.id


def test_unknown_keys_are_kept() -> None:
    raw = {**make_job().to_json_dict(), "source": "boamp", "meta": {"total": 650}}
    job = Job.model_validate(raw)
    assert job.extra_keys == {"source": "boamp", "meta": {"total": 650}}
    assert job.to_json_dict()["meta"] == {"total": 650}
    changed = job.model_copy(update={"status": JobStatus.COMPLETED})
    assert changed.to_json_dict()["source"] == "boamp"


@pytest.mark.parametrize(
    ("key", "value"),
    [("status", "done"), ("delayMinutes", -1), ("delayMinutes", 60 * 24 * 31), ("attempt", 0), ("clientId", "-x")],
)
def test_invalid_fields_are_refused(key: str, value: object) -> None:
    with pytest.raises(ValidationError):
        Job.model_validate({**make_job().to_json_dict(), key: value})


def test_label_names_client_date_and_attempt() -> None:
    assert make_job(attempt=2).label == "balthazar 2025-12-19 #2"
    assert make_job(workflow="ftp").label == "ftp:balthazar 2025-12-19 #1"


def test_key_is_workflow_client_and_date() -> None:
    assert make_job().key == ("default", "balthazar", "2025-12-19")
    assert make_job(scheduled_at=T0).key == make_job(scheduled_at=T0 + timedelta(days=1)).key


DETECTION = {"status": "ERROR", "total": 650, "missing": 50, "ratio": 50 / 650, "delayMinutes": 20, "attempt": 1}


def test_the_verdict_at_detection_is_optional_and_round_trips() -> None:
    [raw] = json.loads(LEGACY_FILE)
    assert Job.model_validate(raw).detection is None  # files without the key load
    job = Job.model_validate({**make_job().to_json_dict(), "detection": {**DETECTION, "reason": "delay for ERROR"}})
    assert job.detection is not None
    assert (job.detection.status, job.detection.delay_minutes, job.detection.reason) == ("ERROR", 20, "delay for ERROR")
    assert job.to_json_dict()["detection"] == {**DETECTION, "reason": "delay for ERROR"}
    # A key written by a later version inside the record is kept too.
    later = Job.model_validate({**make_job().to_json_dict(), "detection": {**DETECTION, "source": "boamp"}})
    assert later.to_json_dict()["detection"]["source"] == "boamp"


@pytest.mark.parametrize(
    ("key", "value"),
    [("status", "LATE"), ("status", "error"), ("missing", -1), ("ratio", 1.5), ("delayMinutes", -1), ("attempt", 0)],
)
def test_an_invalid_verdict_is_refused(key: str, value: object) -> None:
    with pytest.raises(ValidationError):
        Job.model_validate({**make_job().to_json_dict(), "detection": {**DETECTION, key: value}})


def test_a_list_of_jobs_prints_as_each_job_does_in_one_pass() -> None:
    import json

    from retryq.record.models import Detection, jobs_json

    jobs = [
        make_job(id="a", client_id="zoe", last_error="é 647/650 <b>", history=()),
        Job.model_validate({**make_job(id="b").to_json_dict(), "extra": {"nested": [1, 2.5, None]}, "note": "ü"}),
        make_job(
            id="c",
            detection=Detection(status="DEGRADED", total=650, missing=3, ratio=3 / 650, delay_minutes=60),
        ),
    ]
    assert jobs_json(jobs) == json.dumps([job.to_json_dict() for job in jobs], indent=2, ensure_ascii=False)
    assert jobs_json([]) == "[]"


def test_records_given_the_same_fields_share_one_set_and_copies_get_their_own() -> None:
    first, second = make_job(id="a"), make_job(id="b")
    assert first.model_fields_set is second.model_fields_set
    changed = first.model_copy(update={"last_error": "x"})
    assert "last_error" in changed.model_fields_set
    assert "last_error" not in first.model_fields_set
    assert "last_error" not in second.model_fields_set
    assert make_job(id="c", last_error="y").model_fields_set is not first.model_fields_set


# -- text that cannot be stored: lone surrogates and NULs ------------------------------------------

HALF_AN_EMOJI = "\ud83d"  # what JavaScript's JSON.stringify writes for a string cut in the middle of an emoji


@pytest.mark.parametrize("bad", [HALF_AN_EMOJI, "\udc00", "a\x00b"])
@pytest.mark.parametrize(
    "where",
    [
        "a key of another tool",
        "a nested key of another tool",
        "the name of a key of another tool",
        "lastError",
        "runId",
        "an output tail",
        "the owner's host",
        "the verdict's reason",
        "a key of another tool in the verdict",
    ],
)
def test_text_that_utf8_cannot_hold_or_that_ends_c_strings_makes_a_record_invalid(bad: str, where: str) -> None:
    raw = make_job().to_json_dict()
    attempt = {"attempt": 1, "startedAt": "2025-12-19T11:00:00.000Z", "finishedAt": "2025-12-19T11:00:01.000Z"}
    record = {
        "a key of another tool": {**raw, "note": f"relancé {bad}"},
        "a nested key of another tool": {**raw, "meta": {"tags": ["x", bad]}},
        "the name of a key of another tool": {**raw, f"note{bad}": 1},
        "lastError": {**raw, "lastError": bad},
        "runId": {**raw, "runId": bad},
        "an output tail": {**raw, "history": [{**attempt, "outcome": "failed", "outputTail": f"token {bad}"}]},
        "the owner's host": {**raw, "owner": {"host": bad, "pid": 42}},
        "the verdict's reason": {**raw, "detection": {**DETECTION, "reason": bad}},
        "a key of another tool in the verdict": {**raw, "detection": {**DETECTION, "note": bad}},
    }[where]
    with pytest.raises(ValidationError) as caught:
        Job.model_validate(record)
    message = describe_validation_error(caught.value)
    assert ("NUL character" if bad == "a\x00b" else "lone surrogate") in message, message
    # The same record, as bytes of JSON, is refused the same way (with its escapes: what a file holds).
    with pytest.raises(ValidationError):
        Job.model_validate_json(json.dumps(record))


def test_text_beyond_the_basic_plane_and_other_control_characters_are_fine() -> None:
    job = Job.model_validate({**make_job().to_json_dict(), "note": "\U0001f600 \t\x01 é", "lastError": "\x7f"})
    assert job.extra_keys == {"note": "\U0001f600 \t\x01 é"}
    assert Job.model_validate_json(job.to_json_line()) == job


# -- an attempt given back for an upstream incident ------------------------------------------------


def test_an_attempt_given_back_keeps_the_incident_and_one_without_writes_no_key() -> None:
    from retryq.record.models import Attempt

    plain = {"attempt": 1, "startedAt": "2025-12-19T11:00:00.000Z", "finishedAt": "2025-12-19T11:00:01.000Z"}
    written_before = Job.model_validate({**make_job().to_json_dict(), "history": [{**plain, "outcome": "failed"}]})
    assert written_before.history[0].incident is None
    assert "incident" not in written_before.to_json_dict()["history"][0]  # files stay as they were
    assert '"incident"' not in written_before.to_json_line()
    given_back = Attempt.model_validate({**plain, "outcome": "incomplete", "exitCode": 75, "incident": "api-1"})
    job = make_job(history=(given_back,))
    assert job.to_json_dict()["history"][0]["incident"] == "api-1"
    assert Job.model_validate_json(job.to_json_line()) == job
    from retryq.record.models import jobs_json

    assert json.loads(jobs_json([job]))[0]["history"][0]["incident"] == "api-1"
    with pytest.raises(ValidationError):
        Attempt.model_validate({**plain, "outcome": "failed", "incident": "a\x00b"})


def test_a_job_has_a_priority_from_minus_100_to_100_and_a_record_without_one_is_0() -> None:
    [raw] = json.loads(LEGACY_FILE)
    legacy = Job.model_validate(raw)
    assert legacy.priority == 0
    # Written back with the key, as every key of retryq's is: older versions keep it as a key they do not know.
    assert legacy.to_json_dict()["priority"] == 0
    assert make_job(priority=-100).priority == -100
    assert Job.model_validate({**make_job().to_json_dict(), "priority": 100}).priority == 100
    for bad in (101, -101, 1.5, "high", True):
        with pytest.raises(ValidationError):
            Job.model_validate({**make_job().to_json_dict(), "priority": bad})
