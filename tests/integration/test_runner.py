"""The supervisor of workflow processes: argv without a shell, stops that race a start, bounded output."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import pytest

from retryq import JsonFileStore
from retryq.record.models import JobKey
from retryq.running.commands import build_argv, invocation
from retryq.running.runner import TAIL_CHARS, RunResult, Supervisor

from ..helpers import make_job


def test_placeholders_are_replaced_inside_items_and_nothing_else_is_interpreted() -> None:
    argv = build_argv(
        ["fetch", "--client={client}", "{date}", "$HOME", "{unknown}", "{{client}}"],
        {"client": "balthazar", "date": "2025-12-19"},
    )
    assert argv == ["fetch", "--client=balthazar", "2025-12-19", "$HOME", "{unknown}", "{balthazar}"]


def test_the_environment_names_the_job() -> None:
    job = make_job(id="j", client_id="c", workflow="w", attempt=2, max_attempts=3)
    queue = JsonFileStore("q.json").environment()  # what the store says a nested `retryq` needs
    _, env = invocation(["x"], job.key, job=job, run_id="r", queue=queue, config_file=None)
    assert {key: env[key] for key in env if key.startswith("RETRYQ_")} == {
        "RETRYQ_CLIENT": "c",
        "RETRYQ_DATE": "2025-12-19",
        "RETRYQ_ATTEMPT": "2",
        "RETRYQ_MAX_ATTEMPTS": "3",
        "RETRYQ_JOB_ID": "j",
        "RETRYQ_WORKFLOW": "w",
        "RETRYQ_QUEUE_FILE": os.path.realpath("q.json"),
        "RETRYQ_QUEUE": os.path.realpath("q.json"),
        "RETRYQ_RUN_ID": "r",
    }
    _, outside = invocation(
        ["x"], JobKey.of("c", "2025-12-19"), max_attempts=3, run_id="r", queue=None, config_file=None
    )
    assert (outside["RETRYQ_ATTEMPT"], outside["RETRYQ_MAX_ATTEMPTS"], outside["RETRYQ_JOB_ID"]) == ("1", "3", "")


def test_a_run_started_after_a_stop_request_is_stopped_too() -> None:
    supervisor = Supervisor()
    supervisor.stop_all()  # the signal lands while the next run is being started
    supervisor.start(
        "k", [sys.executable, "-c", "import time; time.sleep(60)"], dict(os.environ), timeout=60, kill_grace=1
    )
    finished = []
    for _ in range(30):  # a wake-up left by stop_all may end the first wait early
        finished += supervisor.wait(1)
        if finished:
            break
    [(key, result)] = finished
    assert key == "k"
    assert result.stopped
    assert result.exit_code == 128 + 15


def _run_to_the_end(supervisor: Supervisor, argv: list[str]) -> RunResult:
    supervisor.start("k", argv, dict(os.environ), timeout=600, kill_grace=1)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        for _, result in supervisor.wait(5):
            return result
    raise AssertionError("the run did not end")


def test_a_very_long_output_line_is_read_in_bounded_pieces_and_only_its_tail_kept() -> None:
    # 50 MB without a newline, then a short line: the run completes, and neither the kept tail nor
    # a logged line holds more than a bounded part of it.
    writer = (
        "import sys\n"
        "chunk = 'x' * 65536\n"
        "for _ in range(763): sys.stdout.write(chunk)\n"
        "sys.stdout.write('the end of the long line\\n')\n"
        "sys.stdout.write('short line\\n')\n"
    )
    lines: list[str] = []
    result = _run_to_the_end(Supervisor(on_line=lambda label, line: lines.append(line)), [sys.executable, "-c", writer])
    assert result.exit_code == 0
    assert len(result.output_tail) <= TAIL_CHARS + 1
    assert result.output_tail.endswith("the end of the long line\nshort line")
    assert len(lines) == 2
    assert all(len(line) <= 100_000 for line in lines)  # a logged line is cut too (to its last 64 KiB)
    assert lines[0].endswith("the end of the long line")
    assert "cut" in lines[0][:100]  # says that the start of the line was left out
    assert lines[1] == "short line"


def test_output_lines_split_across_reads_and_a_last_line_without_newline_are_whole() -> None:
    writer = (
        "import sys, time\n"
        "sys.stdout.write('é' * 30000); sys.stdout.flush(); time.sleep(0.05)\n"
        "sys.stdout.write('\\r\\nsecond\\nno newline at the end')\n"
    )
    lines: list[str] = []
    result = _run_to_the_end(Supervisor(on_line=lambda label, line: lines.append(line)), [sys.executable, "-c", writer])
    assert lines == ["é" * 30000, "second", "no newline at the end"]
    assert result.output_tail.endswith("é\nsecond\nno newline at the end")


def test_the_end_of_a_run_reads_only_the_environments_of_processes_started_since(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from retryq.running import platform

    if not platform.searchable():
        return
    read: list[str] = []
    real_open = open

    def counting(file: str, *args: Any, **kwargs: Any) -> Any:
        if str(file).endswith("/environ"):
            read.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(platform, "open", counting, raising=False)
    result = _run_to_the_end(Supervisor(), ["true"])
    assert result.exit_code == 0
    older = {f"/proc/{pid}/environ" for pid in (1, os.getppid())}
    assert not older & set(read), "the leftover scan read processes that were there before the run"
