"""The supervisor of workflow processes: argv without a shell, stops that race a start."""

from __future__ import annotations

import os
import sys

from retryq import JsonFileStore
from retryq.record.models import JobKey
from retryq.running.commands import build_argv, invocation
from retryq.running.runner import Supervisor

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
