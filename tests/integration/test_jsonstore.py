"""What only the JSON file store does: the file's format, its safety under failure, corrupt files."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock

from retryq import JsonFileStore
from retryq.record.errors import LockTimeout, QueueCorrupt, StoreIOError
from retryq.record.models import Job, JobStatus

from ..helpers import LEGACY_FILE, make_job, need_xattrs


def unchanged(job: Job) -> Job:
    return job


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / ".retry-queue.json"


@pytest.fixture
def xattrs(path: Path) -> None:
    need_xattrs(path.parent)


def test_a_new_file_is_private(path: Path) -> None:
    JsonFileStore(path).add(make_job(), unchanged)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(f"{path}.lock").stat().st_mode) == 0o600


def test_an_existing_files_mode_is_kept(path: Path) -> None:
    path.write_text("[]\n")
    path.chmod(0o640)
    JsonFileStore(path).add(make_job(), unchanged)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_one_job_per_line_in_a_json_array(path: Path) -> None:
    store = JsonFileStore(path)
    store.add(make_job(id="a"), unchanged)
    store.add(make_job(id="b", client_id="other"), unchanged)
    lines = path.read_text().splitlines()
    assert lines[0] == "[" and lines[-1] == "]"  # noqa: PT018 - one shape
    assert [json.loads(line.rstrip(","))["id"] for line in lines[1:-1]] == ["a", "b"]
    assert [job["id"] for job in json.loads(path.read_text())] == ["a", "b"]


def test_an_emptied_queue_is_an_empty_array(path: Path) -> None:
    store = JsonFileStore(path, archive=False)
    store.add(make_job(id="a"), unchanged)
    store.update({"a": lambda job: None})
    assert path.read_text() == "[]\n"


def test_a_legacy_file_is_read_and_rewritten_without_loss(path: Path) -> None:
    path.write_text(LEGACY_FILE)
    store = JsonFileStore(path)
    [job] = store.load()
    store.update({job.id: lambda job: job.model_copy(update={"status": JobStatus.COMPLETED})})
    [rewritten] = json.loads(path.read_text())
    original = json.loads(LEGACY_FILE)[0]
    assert {key: rewritten[key] for key in original} == {**original, "status": "completed"}
    assert rewritten["id"] == job.id


@pytest.mark.parametrize("with_invalid", [False, True])
def test_reading_in_one_pass_gives_what_reading_record_by_record_gives(path: Path, with_invalid: bool) -> None:
    """A queue of valid jobs is validated whole; any invalid record falls back to reading each on its own."""
    from retryq.stores import DocumentStore

    legacy = json.loads(LEGACY_FILE)[0]
    odd = {
        **make_job(id="odd", client_id="o").to_json_dict(),
        "note": "kept",
        "scheduledAt": "2025-12-19T12:00:00+02:00",
    }
    records = [legacy, odd, make_job(id="plain", client_id="p").to_json_dict()]
    if with_invalid:
        records.append({"clientId": "x", "date": "2025-02-30", "status": "pending"})
    path.write_text("[\n" + ",\n".join(json.dumps(record) for record in records) + "\n]\n")
    store = JsonFileStore(path)
    whole, each = store.load(), DocumentStore.load(store)
    assert whole == each
    assert [job.id for job in whole][1:] == ["odd", "plain"]
    assert [str(problem) for problem in store.invalid()] == [str(p) for p in DocumentStore.invalid(store)]
    assert len(store.invalid()) == int(with_invalid)
    assert whole[1].scheduled_at.isoformat() == "2025-12-19T10:00:00+00:00"  # converted to UTC either way


def test_checking_a_large_queue_never_holds_all_its_jobs_at_once(path: Path) -> None:
    """`process` checks the whole file for invalid records at each start: a slice of jobs at a time,
    so that its peak memory does not grow by one model per job of the queue."""
    import tracemalloc

    line = json.dumps(make_job().to_json_dict())
    records = [line.replace('"balthazar"', f'"client{number}"') for number in range(6_000)]
    path.write_text("[\n" + ",\n".join(records) + "\n]\n")
    assert len(JsonFileStore(path).load()) == 6_000

    def peak_above_the_file(call: Callable[[JsonFileStore], object]) -> int:
        store = JsonFileStore(path)
        tracemalloc.start()
        try:
            call(store)
            return tracemalloc.get_traced_memory()[1] - path.stat().st_size
        finally:
            tracemalloc.stop()

    loading, checking = peak_above_the_file(JsonFileStore.load), peak_above_the_file(JsonFileStore.invalid)
    assert checking < loading / 4, (checking, loading)
    for where, broken in [
        (1, ["42", *records[1:]]),
        (6_000, [*records[:-1], "42"]),
        (3_000, [*records[:2999], "42", *records[3000:]]),
    ]:
        path.write_text("[\n" + ",\n".join(broken) + "\n]\n")
        [problem] = JsonFileStore(path).invalid()
        assert f"job #{where} (?) is invalid: not a JSON object" in str(problem)


def test_the_check_follows_the_file_across_writes(path: Path) -> None:
    """A store that found every record valid, then wrote, still sees a bad record another writer adds,
    and a store that found one keeps reporting it after its own writes."""
    store = JsonFileStore(path)
    store.add(make_job(id="a"), unchanged)
    assert store.invalid() == []
    store.add(make_job(id="b", client_id="other"), unchanged)
    assert store.invalid() == []
    path.write_text(path.read_text().replace("\n]\n", ',\n{"clientId": "x", "date": "2025-02-30"}\n]\n'))
    [problem] = store.invalid()
    store.add(make_job(id="c", client_id="third"), unchanged)
    assert [str(p) for p in store.invalid()] == [str(problem)]
    assert [job.id for job in store.load()] == ["a", "b", "c"]


def test_changes_by_another_writer_are_seen(path: Path) -> None:
    store = JsonFileStore(path)
    store.add(make_job(id="a"), unchanged)
    data = json.loads(path.read_text())
    data.append(make_job(id="b", client_id="other").to_json_dict())
    path.write_text(json.dumps(data))
    store.add(make_job(id="c", client_id="third"), unchanged)
    assert [job.id for job in store.load()] == ["a", "b", "c"]


CORRUPT = {
    "truncated": ('[{"clientId": "balthazar",', "not valid JSON at line 1, column 27"),
    "object": ('{"clientId": "balthazar"}', "expected a JSON array of jobs, found a JSON object"),
    "number": ("42", "found a JSON number"),
    "empty": ("", "the file is empty"),
    "blank": ("  \n", "the file is empty"),
}
INVALID = {
    "item": ("[1, 2]", ["job #1 (?) is invalid: not a JSON object", "job #2 (?) is invalid: not a JSON object"]),
    "bad job": (
        LEGACY_FILE.replace("2025-12-19", "2025-02-30", 1),
        ["job #1 (balthazar) is invalid: date: invalid date '2025-02-30': no such day in the calendar"],
    ),
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_a_corrupt_file_is_reported_and_never_rewritten(path: Path, case: str) -> None:
    content, message = CORRUPT[case]
    path.write_text(content)
    store = JsonFileStore(path)
    with pytest.raises(QueueCorrupt, match=re.escape(message)) as raised:
        store.load()
    assert str(raised.value).startswith(f"{path}: ")
    with pytest.raises(QueueCorrupt):
        store.add(make_job(id="new", client_id="new"), unchanged)
    assert path.read_text() == content


@pytest.mark.parametrize("case", sorted(INVALID))
def test_records_that_are_not_jobs_are_reported_skipped_and_kept(path: Path, case: str) -> None:
    content, problems = INVALID[case]
    path.write_text(content)
    store = JsonFileStore(path)
    assert store.load() == []
    assert [str(problem) for problem in store.invalid()] == [f"{path}: {problem}" for problem in problems]
    store.add(make_job(id="new", client_id="new"), unchanged)  # beside them, harmless
    assert [job.id for job in store.load()] == ["new"]
    assert json.loads(path.read_text())[:-1] == json.loads(content)


def test_not_utf8_is_corrupt(path: Path) -> None:
    path.write_bytes(b"[\xff\xfe]")
    with pytest.raises(QueueCorrupt, match="not UTF-8"):
        JsonFileStore(path).load()


def test_a_failed_replace_leaves_the_old_file_and_no_temp_file(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = JsonFileStore(path)
    store.add(make_job(id="a"), unchanged)
    before = path.read_bytes()

    def crash(src: str, dst: str) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(StoreIOError, match="Input/output error"):
        store.add(make_job(id="b", client_id="other"), unchanged)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == [".retry-queue.json", ".retry-queue.json.lock"]


def test_an_interruption_before_replace_leaves_the_old_file(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = JsonFileStore(path)
    store.add(make_job(id="a"), unchanged)
    before = path.read_bytes()

    def interrupted(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.add(make_job(id="b", client_id="other"), unchanged)
    assert path.read_bytes() == before
    assert not list(path.parent.glob("*.tmp"))
    monkeypatch.undo()
    assert [job.id for job in store.load()] == ["a"]  # and the store still works


def test_a_full_disk_is_an_io_error_and_loses_nothing(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = JsonFileStore(path)
    store.add(make_job(id="a"), unchanged)
    before = path.read_bytes()

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StoreIOError, match="No space left on device"):
        store.add(make_job(id="b", client_id="other"), unchanged)
    assert path.read_bytes() == before
    assert not list(path.parent.glob("*.tmp"))


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tiny file system needs root")
def test_a_really_full_disk_loses_nothing(tmp_path: Path) -> None:
    import subprocess

    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=False).returncode:
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        store = JsonFileStore(mount / "q.json", archive=False)
        added = 0
        error = None
        for i in range(10_000):
            try:
                store.add(make_job(id=f"j{i}", client_id=f"c{i}"), unchanged)
            except StoreIOError as failure:
                error = failure
                break
            added += 1
        assert error is not None
        assert "No space left on device" in str(error)
        assert added > 10
        assert len(store.load()) == added  # every add that returned is there, the file parses
        assert not list(mount.glob("*.tmp"))
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_directory_is_not_a_queue_file(tmp_path: Path) -> None:
    with pytest.raises(StoreIOError, match="is a directory"):
        JsonFileStore(tmp_path).load()
    with pytest.raises(StoreIOError, match="is a directory"):
        JsonFileStore(tmp_path).add(make_job(), unchanged)


def test_a_missing_directory_is_reported(tmp_path: Path) -> None:
    with pytest.raises(StoreIOError, match="does not exist"):
        JsonFileStore(tmp_path / "nowhere" / "q.json").add(make_job(), unchanged)


def test_an_unwritable_directory_is_reported(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    store = JsonFileStore(path)
    store.add(make_job(id="a"), unchanged)

    def denied(**kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(StoreIOError, match="Permission denied"):
        store.add(make_job(id="b", client_id="other"), unchanged)


def test_waiting_for_the_lock_is_bounded(path: Path) -> None:
    store = JsonFileStore(path, lock_timeout=0.2)
    holder = FileLock(f"{path}.lock")
    with holder, pytest.raises(LockTimeout, match=r"could not lock the queue within 0.2s"):
        store.add(make_job(), unchanged)
    store.add(make_job(), unchanged)  # free again


def test_reading_needs_no_lock(path: Path) -> None:
    store = JsonFileStore(path, lock_timeout=0.1)
    store.add(make_job(), unchanged)
    with FileLock(f"{path}.lock"):
        assert len(store.load()) == 1


def test_the_archive_keeps_one_line_per_pruned_job(path: Path) -> None:
    store = JsonFileStore(path)
    store.add(make_job(id="a"), unchanged)
    store.add(make_job(id="b", client_id="other"), unchanged)
    store.update({"a": lambda job: None, "b": lambda job: None})
    archive = Path(f"{path}.archive.jsonl")
    assert [json.loads(line)["id"] for line in archive.read_text().splitlines()] == ["a", "b"]
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600


def test_the_archive_skips_torn_lines_and_duplicates(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    archive = Path(f"{path}.archive.jsonl")
    first = json.dumps(make_job(id="a").to_json_dict())
    archive.write_text(f"{first}\n{first}\n" + '{"clientId": "torn', encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="retryq"):
        jobs = list(JsonFileStore(path).load_archive())
    assert [job.id for job in jobs] == ["a"]
    assert caplog.messages == [f"{archive}: line 3 is not a job; skipped"]


def test_a_job_whose_text_holds_unicode_line_separators_is_one_line_of_the_archive(path: Path) -> None:
    store = JsonFileStore(path)
    note = "a\u2028b\u0085c\x1ed"
    store.add(Job.model_validate({**make_job(id="a").to_json_dict(), "note": note}), unchanged)
    store.update({"a": lambda job: None})
    [job] = store.load_archive()
    assert job.extra_keys == {"note": note}


def test_lines_without_their_commas_are_not_json(path: Path) -> None:
    store = JsonFileStore(path)
    store.add(make_job(id="a"), unchanged)
    store.add(make_job(id="b", client_id="other"), unchanged)
    broken = path.read_text().replace("},\n", "}\n")
    path.write_text(broken)
    with pytest.raises(QueueCorrupt, match="not valid JSON at line 3"):
        JsonFileStore(path).load()
    assert path.read_text() == broken


# -- a schedule reads the records of its own client only ------------------------------------------


def _counting_scanner(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count the records parsed from their line (the JSON scanner's calls) from now on."""
    from retryq.stores.file import layout

    parsed: list[str] = []
    real = layout._SCANNER

    def counting(text: str, index: int) -> tuple[object, int]:
        parsed.append(text)
        return real(text, index)

    monkeypatch.setattr(layout, "_SCANNER", counting)
    return parsed


@pytest.mark.usefixtures("xattrs")
def test_a_schedule_parses_only_the_records_that_may_hold_its_client(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = JsonFileStore(path)
    store.insert([make_job(id=f"j{n}", client_id=f"client{n}") for n in range(50)])
    parsed = _counting_scanner(monkeypatch)
    job, created = JsonFileStore(path).add(make_job(id="new", client_id="client7x"), unchanged)
    assert created
    assert parsed == []  # no other record names client7x
    job, created = JsonFileStore(path).add(make_job(id="again", client_id="client7"), unchanged)
    assert (job.id, created) == ("j7", False)  # the open job of that key, found among 51 records
    assert len(parsed) == 1
    assert [job.id for job in JsonFileStore(path).load()] == [*(f"j{n}" for n in range(50)), "new"]


def test_a_schedule_finds_an_open_job_whose_client_id_is_written_with_escapes(path: Path) -> None:
    record = make_job(id="hand", client_id="acme").to_json_dict()
    text = json.dumps(record).replace('"acme"', '"\\u0061cme"')
    path.write_text(f"[\n{text}\n]\n")
    job, created = JsonFileStore(path).add(make_job(id="new", client_id="acme"), unchanged)
    assert (job.id, created) == ("hand", False)
    assert path.read_text() == f"[\n{text}\n]\n"


def test_a_schedule_keeps_every_other_record_byte_for_byte(path: Path) -> None:
    others = [
        '{"clientId": "acme", "date": "2025-02-30", "status": "pending"}',  # not a valid job
        '"not even an object"',
        json.dumps(make_job(id="spaced", client_id="zed").to_json_dict(), indent=None, separators=(" ,", " : ")),
    ]
    content = "[\n" + ",\n".join(others) + "\n]\n"
    path.write_text(content)
    new = make_job(id="new", client_id="acme")
    _job, created = JsonFileStore(path).add(new, unchanged)
    assert created
    assert path.read_text() == content[: -len("\n]\n")] + ",\n" + new.to_json_line() + "\n]\n"


def test_a_schedule_updates_the_open_job_of_its_key_in_place(path: Path) -> None:
    store = JsonFileStore(path)
    store.insert([make_job(id=f"j{n}", client_id=f"client{n}") for n in range(3)])
    before = path.read_text().splitlines()

    def later(job: Job) -> Job:
        return job.model_copy(update={"follow_up_minutes": 5})

    job, created = JsonFileStore(path).add(make_job(id="dup", client_id="client1"), later)
    assert (job.id, job.follow_up_minutes, created) == ("j1", 5, False)
    after = path.read_text().splitlines()
    assert after[:2] == before[:2] and after[3:] == before[3:]  # noqa: PT018 - the other lines as they were
    assert json.loads(after[2].rstrip(","))["followUpMinutes"] == 5


def test_a_schedule_finds_an_escaped_client_id_among_records_full_of_escapes(path: Path) -> None:
    noisy = [
        make_job(id=f"n{n}", client_id=f"c{n}", status="failed", last_error="out\n" * 400, finished_at=None)
        for n in range(5)
    ]
    record = json.dumps(make_job(id="hand", client_id="acme").to_json_dict()).replace('"acme"', '"\\u0061cme"')
    lines = [job.to_json_line() for job in noisy]
    path.write_text("[\n" + ",\n".join([*lines, record, *lines]) + "\n]\n")
    job, created = JsonFileStore(path).add(make_job(id="new", client_id="acme"), unchanged)
    assert (job.id, created) == ("hand", False)


# -- what a claim and a result cost: the records they touch, not every record ---------------------


def test_a_result_is_applied_without_decoding_or_asking_every_record_for_its_id(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from retryq.stores.entry import _Entry

    JsonFileStore(path).insert([make_job(id=f"j{n}", client_id=f"client{n}") for n in range(50)])
    store = JsonFileStore(path)  # reads the records from their lines
    asked: list[str] = []
    real = _Entry.job_id

    def counting(entry: _Entry) -> str | None:
        asked.append(entry.ident or "?")
        return real(entry)

    monkeypatch.setattr(_Entry, "job_id", counting)
    result = store.update({"j30": lambda job: job.model_copy(update={"delay_minutes": 5})})
    assert result["j30"] is not None
    assert len(asked) <= 1
    assert [job.delay_minutes for job in store.load() if job.id == "j30"] == [5]


def test_a_records_execute_at_is_read_once_however_many_claims_look_at_it(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from retryq.stores import Claimant, ClaimRequest, entry

    from ..helpers import T0

    JsonFileStore(path).insert([make_job(id=f"j{n}", client_id=f"client{n}") for n in range(20)])
    store = JsonFileStore(path)  # reads the records from their lines
    parsed: list[str] = []
    real = entry.parse_utc

    def counting(text: str) -> object:
        parsed.append(text)
        return real(text)

    monkeypatch.setattr(entry, "parse_utc", counting)
    owner = make_job(id="x").owner
    claimant = Claimant(owner=owner, now=T0, leases={"default": timedelta(minutes=5)}, max_attempts={"default": 3})  # type: ignore[arg-type]
    request = ClaimRequest(due_by=T0 + timedelta(days=1), limit=1, claimant=claimant, slots={"default": 1})
    for _ in range(3):
        [claimed], _ = store.claim(request)
        store.update({claimed.id: lambda job: None})
    assert len(parsed) <= 20, len(parsed)


def test_a_line_broken_by_hand_elsewhere_in_the_file_still_stops_a_schedule(path: Path) -> None:
    store = JsonFileStore(path)
    store.insert([make_job(id=f"j{n}", client_id=f"client{n}") for n in range(3)])
    broken = path.read_text().replace('"client1", "date"', '"client1" "date"')  # a missing colon, in place
    path.write_text(broken)
    with pytest.raises(QueueCorrupt, match="not valid JSON at line 3"):
        JsonFileStore(path).add(make_job(id="new", client_id="acme"), unchanged)
    assert path.read_text() == broken


def test_a_file_replaced_by_hand_is_read_whole_by_the_next_schedule(path: Path) -> None:
    JsonFileStore(path).insert([make_job(id="a", client_id="acme")])
    content = path.read_text()
    path.unlink()
    path.write_text(content.replace('"acme"', '"acme", "acme"'))  # valid layout, not valid JSON
    with pytest.raises(QueueCorrupt):
        JsonFileStore(path).add(make_job(id="new", client_id="zed"), unchanged)


# -- the check for invalid records, trusted from the mark of a writer that knew -------------------------


def _no_record_by_record_check(monkeypatch: pytest.MonkeyPatch) -> None:
    from retryq.stores.file import store as module

    def refuse(raw: bytes) -> bool:
        raise AssertionError("every record was checked again")

    monkeypatch.setattr(module, "all_jobs_valid", refuse)


@pytest.mark.usefixtures("xattrs")
def test_a_file_whose_writer_knew_every_record_valid_is_not_checked_record_by_record_again(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = JsonFileStore(path)
    writer.insert([make_job(id=f"j{n}", client_id=f"client{n}") for n in range(50)])
    assert writer.invalid() == []  # what every command checks first: now known
    writer.add(make_job(id="new", client_id="acme"), lambda job: job)  # a schedule: one line added
    _no_record_by_record_check(monkeypatch)
    reader = JsonFileStore(path)
    assert reader.invalid() == []
    reader.add(make_job(id="newer", client_id="zed"), lambda job: job)  # marked in turn, unchecked
    assert JsonFileStore(path).invalid() == []
    assert len(JsonFileStore(path).load()) == 52


def test_an_invalid_record_copied_by_later_writes_is_named_by_every_reader(path: Path) -> None:
    path.write_text(LEGACY_FILE.replace('"pending"', '"done"'))  # a status retryq does not know
    JsonFileStore(path).add(make_job(id="a", client_id="acme"), lambda job: job)  # read whole, copied as it is
    JsonFileStore(path).add(make_job(id="b", client_id="zed"), lambda job: job)  # the quick path, from a mark
    [problem] = JsonFileStore(path).invalid()
    assert "(balthazar) is invalid: status" in str(problem)


def test_a_record_edited_by_hand_after_a_write_that_knew_is_named(path: Path) -> None:
    writer = JsonFileStore(path)
    writer.insert([make_job(id="a", client_id="acme"), make_job(id="b", client_id="zed")])
    assert writer.invalid() == []
    writer.add(make_job(id="c", client_id="other"), lambda job: job)
    edited = path.read_text().replace('"status": "pending"', '"status": "done"', 1)
    os.utime(path, ns=(0, 0))  # whatever its time becomes, the mark no longer matches the file
    path.write_text(edited)
    assert len(JsonFileStore(path).invalid()) == 1
