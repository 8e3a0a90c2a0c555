"""Bad input: one line on stderr, the documented exit code, no traceback, and the queue file untouched."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from filelock import FileLock
from typer.testing import CliRunner

from retryq.record.timeutil import utcnow

from ..helpers import LEGACY_FILE, T0, FakeWorkflow, invoke, make_job

QUEUE = Path(".retry-queue.json")

BAD_ARGUMENTS = {
    "impossible date": (["schedule", "balthazar", "2025-02-30"], "invalid date '2025-02-30'"),
    "french date": (["schedule", "balthazar", "19/12/2025"], "invalid date '19/12/2025'"),
    "word date": (["schedule", "balthazar", "tomorrow"], "invalid date 'tomorrow'"),
    "negative delay": (["schedule", "balthazar", "2025-12-19", "--", "-5"], "duration must not be negative"),
    "word delay": (["schedule", "balthazar", "2025-12-19", "soon"], "not a duration: 'soon'"),
    "absurd delay": (["schedule", "balthazar", "2025-12-19", "50000"], "longer than the 30-day maximum"),
    "absurd hours": (["schedule", "balthazar", "2025-12-19", "800h"], "longer than the 30-day maximum"),
    "empty client": (["schedule", "", "2025-12-19"], "invalid client id ''"),
    "long client": (["schedule", "x" * 65, "2025-12-19"], "invalid client id"),
    "space": (["schedule", "bal thazar", "2025-12-19"], "invalid client id 'bal thazar'"),
    "slash": (["schedule", "../etc", "2025-12-19"], "invalid client id '../etc'"),
    "semicolon": (["schedule", "a;rm", "2025-12-19"], "invalid client id 'a;rm'"),
    "dollar": (["schedule", "$HOME", "2025-12-19"], "invalid client id '$HOME'"),
    "quote": (["schedule", "a'b", "2025-12-19"], "invalid client id"),
    "double quote": (["schedule", 'a"b', "2025-12-19"], "invalid client id"),
    "control": (["schedule", "a\x07b", "2025-12-19"], "invalid client id"),
    "newline": (["schedule", "a\nb", "2025-12-19"], "invalid client id"),
    "option-like": (["schedule", "--", "-rf", "2025-12-19"], "invalid client id '-rf'"),
    "bad at": (["schedule", "balthazar", "2025-12-19", "--at", "someday"], "not a date and time: 'someday'"),
    "max attempts": (
        ["schedule", "balthazar", "2025-12-19", "--max-attempts", "0"],
        "Invalid value for '--max-attempts': must be a whole number from 1 to 100, not '0'",
    ),
    "missing date": (["schedule", "balthazar"], "Missing argument 'DATE'"),
    "unknown option": (["schedule", "balthazar", "2025-12-19", "--bogus"], "No such option: --bogus"),
    "unknown command": (["reschedule"], "No such command 'reschedule'"),
    "run bad client": (["run", "-x", "2025-12-19"], "No such option: -x"),
    "list bad status": (["list", "--status", "done"], "unknown status"),
    "huge delay": (["schedule", "balthazar", "2025-12-19", "99999999999999999"], "duration out of range"),
    "huge days": (["schedule", "balthazar", "2025-12-19", "9999999999d"], "duration out of range"),
    "year one": (["schedule", "balthazar", "2025-12-19", "--at", "0001-01-01"], "days in the past"),
    "end of time": (["schedule", "balthazar", "2025-12-19", "--at", "9999-12-31 23:59 -05:00"], "not a date and time"),
    "zero timeout": (
        ["process", "--timeout", "0"],
        "Invalid value for '--timeout': must be more than 0 seconds, not '0'",
    ),
    "zero run timeout": (["run", "balthazar", "2025-12-19", "--timeout", "0"], "must be more than 0 seconds, not '0'"),
    "huge timeout": (["process", "--timeout", "9999999999999d"], "duration out of range"),
    "lock timeout": (["schedule", "a", "2025-12-19", "--lock-timeout", "1e300"], "not a duration: '1e300'"),
    "long lock timeout": (["schedule", "a", "2025-12-19", "--lock-timeout", "2d"], "must be at most 1d, not '2d'"),
    # An empty name is no workflow's, not the default workflow's (which is the option left out).
    "empty workflow": (["schedule", "a", "2025-12-19", "-w", ""], "the workflow's name is empty"),
    "pause empty workflow": (["pause", ""], "the workflow's name is empty"),
    "resume empty workflow": (["resume", ""], "the workflow's name is empty"),
    "pause for ever": (["pause", "default", "--for", "99999d"], "a pause ends at most 30d from now"),
    "dashboard to nowhere": (["dashboard", "--output", ""], "--output needs a file name"),
}


@pytest.mark.parametrize("case", sorted(BAD_ARGUMENTS))
def test_bad_arguments(cli: CliRunner, case: str) -> None:
    QUEUE.write_text(LEGACY_FILE)
    args, message = BAD_ARGUMENTS[case]
    result = invoke(cli, *args, env={"RETRYQ_COMMAND": "true"})
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("retryq: error: ")
    assert message in line
    assert QUEUE.read_text() == LEGACY_FILE


CORRUPT = {
    "not json": '[{"clientId": ',
    "not a list": '{"jobs": []}',
}
INVALID_RECORDS = {
    "not objects": '["balthazar"]',
    "bad job": LEGACY_FILE.replace('"pending"', '"done"'),
    # As Node's JSON.stringify writes a string cut in the middle of an emoji: valid JSON, not UTF-8 text.
    "half an emoji": LEGACY_FILE.replace('"status": "pending"', '"status": "pending", "note": "\\ud83d"'),
    "NUL in a key of another tool": LEGACY_FILE.replace('"status": "pending"', '"status": "pending", "x": "a\\u0000"'),
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
@pytest.mark.parametrize("command", [["schedule", "other", "2025-12-19"], ["process"], ["list"]])
def test_a_corrupt_queue_file_exits_65_and_is_left_alone(cli: CliRunner, case: str, command: list[str]) -> None:
    QUEUE.write_text(CORRUPT[case])
    result = invoke(cli, *command, env={"RETRYQ_COMMAND": "true"})
    assert result.exit_code == 65, result.output
    [line] = result.stderr.splitlines()
    assert line.startswith(f"retryq: error: {QUEUE}: ")
    assert QUEUE.read_text() == CORRUPT[case]


@pytest.mark.parametrize("case", sorted(INVALID_RECORDS))
@pytest.mark.parametrize("command", [["schedule", "other", "2025-12-19"], ["process"], ["list"]])
def test_an_invalid_record_is_reported_and_kept_but_stops_nothing(
    cli: CliRunner, case: str, command: list[str]
) -> None:
    QUEUE.write_text(INVALID_RECORDS[case])
    record = json.loads(INVALID_RECORDS[case])[0]
    result = invoke(cli, *command, env={"RETRYQ_COMMAND": "true"})
    assert result.exit_code == 0, result.output
    assert json.loads(QUEUE.read_text())[0] == record
    assert result.stderr.count(f"retryq: warning: {QUEUE}: job #1 (") == 1, result.stderr


#: Every command that reads the queue, as it runs on a queue holding a failed job `done1` (and the invalid record).
READERS = {
    "schedule": ["schedule", "other", "2025-12-19"],
    "report": ["report", "other", "2025-12-19", "--total", "10", "--fetched", "9"],
    "process": ["process"],
    "list": ["list"],
    "show": ["show", "done1"],
    "cancel": ["cancel", "--client", "other", "--date", "2025-12-19", "--status", "pending"],
    "requeue": ["requeue", "done1"],
    "prune": ["prune"],
    "stats": ["stats"],
    "dashboard": ["dashboard", "--output", "page.html"],
    "export": ["export", "--skip-invalid", "--output", "out.jsonl"],
    "import": ["import", "in.jsonl"],
}


@pytest.mark.parametrize("command", sorted(READERS))
def test_every_command_that_reads_the_queue_names_its_invalid_records_once(cli: CliRunner, command: str) -> None:
    failed = make_job(id="done1", status="failed", finished_at=utcnow(), execute_at=T0).to_json_line()
    invalid = '{"clientId": "acme", "date": "2025-02-30", "status": "pending"}'
    QUEUE.write_text(f"[\n{invalid},\n{failed}\n]\n")
    Path("in.jsonl").write_text(make_job(id="new1", client_id="zoe").to_json_line() + "\n")
    result = invoke(cli, *READERS[command], env={"RETRYQ_COMMAND": "true"})
    assert result.exit_code == 0, result.output
    warning = f"retryq: warning: {QUEUE}: job #1 (acme) is invalid: date: invalid date '2025-02-30'"
    assert result.stderr.count(warning) == 1, result.stderr
    assert QUEUE.read_text().splitlines()[1] == invalid + ","


def test_the_message_says_where_the_json_breaks(cli: CliRunner) -> None:
    QUEUE.write_text('[\n  {"clientId": "a",\n   "date" "2025-12-19"}\n]\n')
    result = invoke(cli, "list")
    assert result.stderr == (
        "retryq: error: .retry-queue.json: not valid JSON at line 3, column 11: Expecting ':' delimiter\n"
    )


def test_a_directory_as_queue_file(cli: CliRunner, tmp_path: Path) -> None:
    result = invoke(cli, "schedule", "balthazar", "2025-12-19", "--queue-file", str(tmp_path))
    assert result.exit_code == 74
    assert result.stderr == f"retryq: error: {tmp_path}: is a directory, not a queue file\n"


def test_a_lock_held_too_long_exits_75(cli: CliRunner) -> None:
    QUEUE.write_text(LEGACY_FILE)
    with FileLock(f"{QUEUE}.lock"):
        result = invoke(cli, "schedule", "other", "2025-12-19", "--lock-timeout", "0.2")
    assert result.exit_code == 75
    assert result.stderr.startswith("retryq: error: .retry-queue.json: could not lock the queue within 0.2s")
    assert QUEUE.read_text() == LEGACY_FILE


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a read-only file system needs root")
def test_a_read_only_directory_exits_74(tmp_path: Path, retryq_bin: str) -> None:
    readonly = tmp_path / "ro"
    readonly.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(readonly)], check=False).returncode:
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        (readonly / ".retry-queue.json").write_text(LEGACY_FILE)
        subprocess.run(["mount", "-o", "remount,ro", str(readonly)], check=True)
        result = subprocess.run(
            [retryq_bin, "schedule", "other", "2025-12-19"],
            cwd=readonly,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 74, result.stderr
        assert result.stderr == (
            "retryq: error: .retry-queue.json.lock: cannot create or lock the lock file: Read-only file system\n"
        )
        assert (readonly / ".retry-queue.json").read_text() == LEGACY_FILE
    finally:
        subprocess.run(["umount", str(readonly)], check=True)


def test_a_bad_config_exits_78(cli: CliRunner) -> None:
    Path("retryq.toml").write_text("[workflow]\ncommand = 12\n")
    result = invoke(cli, "schedule", "balthazar", "2025-12-19")
    assert result.exit_code == 78
    assert result.stderr.startswith("retryq: error: retryq.toml: workflow.command")


def test_an_infinite_timeout_in_the_config_is_refused(cli: CliRunner) -> None:
    Path("retryq.toml").write_text("timeout = inf\n")
    result = invoke(cli, "list")
    assert result.exit_code == 78
    assert result.stderr == "retryq: error: retryq.toml: timeout: duration out of range: inf\n"


def test_a_config_typo_is_caught(cli: CliRunner) -> None:
    Path("retryq.toml").write_text("max_attemps = 5\n")
    result = invoke(cli, "list")
    assert result.exit_code == 78
    assert result.stderr == (
        "retryq: error: retryq.toml: max_attemps: unknown key in the top level; did you mean `max_attempts`?\n"
    )


def test_an_unexpected_error_is_one_line_too(cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    from retryq import JsonFileStore

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(JsonFileStore, "_read_bytes", broken)  # whichever way a command reads the queue
    result = invoke(cli, "list")
    assert result.exit_code == 70
    assert result.stderr == "retryq: error: internal error: RuntimeError: boom (set RETRYQ_DEBUG=1 for a traceback)\n"


@pytest.mark.parametrize("bad", ["\\ud83d", "\\udc00 tail", "a\\u0000b"])
@pytest.mark.parametrize("layout", ["retryq", "one line"])
def test_a_record_with_text_utf8_cannot_hold_is_kept_named_and_stops_no_other_job(
    cli: CliRunner, workflow: FakeWorkflow, bad: str, layout: str
) -> None:
    """A lone surrogate or a NUL (escaped, as JSON allows) makes one record invalid, not the queue."""
    due = "2025-12-19T10:00:00.000Z"
    broken = make_job(id="broken1", client_id="acme", execute_at=T0).to_json_line()
    broken = broken.replace('"status": "pending"', f'"status": "pending", "note": "{bad}"')
    good = make_job(id="good1", execute_at=T0).to_json_line()
    content = f"[\n{broken},\n{good}\n]\n" if layout == "retryq" else f"[{broken}, {good}]"
    QUEUE.write_text(content)
    env = {"RETRYQ_COMMAND": workflow.command}
    result = invoke(cli, "process", env=env)
    assert result.exit_code == 0, result.output
    assert [call["client"] for call in workflow.calls()] == ["balthazar"]
    assert f"retryq: warning: {QUEUE}: job #1 (broken1) is invalid: " in result.stderr
    assert due in broken
    if layout == "retryq":
        assert QUEUE.read_text().splitlines()[1] == broken + ","  # byte for byte
    else:
        assert json.loads(QUEUE.read_text())[0] == json.loads(broken)
    doctor = invoke(cli, "doctor", env=env)
    assert f"problem: {QUEUE}: job #1 (broken1) is invalid: " in doctor.stdout


@pytest.mark.parametrize("value", ["0", "false", "no", "off", ""])
def test_retryq_debug_off_keeps_the_one_line(cli: CliRunner, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    from retryq import JsonFileStore

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(JsonFileStore, "_read_bytes", broken)  # whichever way a command reads the queue
    result = invoke(cli, "list", env={"RETRYQ_DEBUG": value})
    assert (result.exit_code, result.stderr.count("\n")) == (70, 1)


@pytest.mark.parametrize("value", ["1", "true", "YES"])
def test_retryq_debug_on_shows_the_traceback(cli: CliRunner, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    from retryq import JsonFileStore

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(JsonFileStore, "_read_bytes", broken)  # whichever way a command reads the queue
    with pytest.raises(RuntimeError, match="boom"):
        invoke(cli, "list", env={"RETRYQ_DEBUG": value})


def test_a_tz_that_names_no_zone_is_said_once_where_local_times_are_shown(cli: CliRunner) -> None:
    QUEUE.write_text(f"[\n{make_job(id='job1', execute_at=T0).to_json_line()}\n]\n")
    for command in (["list", "--local"], ["show", "job1", "--local"]):
        result = invoke(cli, *command, env={"TZ": "Nowhere/Bogus"})
        assert result.exit_code == 0, result.output
        assert result.stderr == (
            "retryq: warning: TZ='Nowhere/Bogus' is not a known time zone: local times are taken as UTC\n"
        )
        assert "2025-12-19T10:00:00.000Z (10:00 UTC)" in result.stdout
