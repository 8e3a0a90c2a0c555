"""Upstream incidents under faults, with the installed command: a `retryq process` SIGKILLed while its probe
runs leaves the incident open, and its probe job is recovered (its attempt given back, not counted)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ..helpers import write_script

pytestmark = pytest.mark.slow

DEADLINE = 120.0  # seconds: generous, for a loaded machine


def wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {DEADLINE:g}s for {what}")
        time.sleep(0.05)


def test_a_process_killed_while_probing_leaves_the_incident_open_and_its_probe_is_recovered(
    tmp_path: Path, retryq_bin: str
) -> None:
    mode = tmp_path / "mode"  # what the fetcher does: fail, hang (the upstream never answers), or succeed
    probing = tmp_path / "probing"
    fetch = write_script(
        tmp_path / "fetch.sh",
        f"""
case "$(cat {mode})" in
  fail) exit 75 ;;
  hang) echo "$RETRYQ_JOB_ID" > {probing}; sleep 300 ;;
  *) exit 0 ;;
esac
""",
    )
    (tmp_path / "retryq.toml").write_text(
        f'[breaker]\nfailures = 2\nprobe_every = "1s"\n[workflow]\ncommand = ["{fetch}"]\nkill_grace = "1s"\n'
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("RETRYQ_")}

    def retryq(*args: str) -> str:
        result = subprocess.run(
            [retryq_bin, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=DEADLINE, check=False
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def incidents() -> list[dict[str, object]]:
        return json.loads(retryq("incidents", "--json"))["incidents"]  # type: ignore[no-any-return]

    mode.write_text("fail")
    for client in ("a", "b", "c"):
        retryq("schedule", client, "2025-12-19", "0")
    retryq("process")
    [opened] = incidents()
    assert (opened["failures"], opened["givenBack"]) == (2, 2)

    # The next probe hangs: the process running it is killed with it in flight.
    mode.write_text("hang")
    prober = None

    def probe_started() -> bool:
        nonlocal prober
        if prober is None or prober.poll() is not None:  # no probe due yet: that run ended, try again
            prober = subprocess.Popen([retryq_bin, "process"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL)
        return probing.exists()

    wait_for(probe_started, "a probe to start")
    assert prober is not None
    prober.send_signal(signal.SIGKILL)
    prober.wait(timeout=DEADLINE)
    probe = probing.read_text().strip()
    jobs = {job["id"]: job for job in json.loads(retryq("list", "--json"))}
    assert jobs[probe]["status"] == "running"
    [still] = incidents()
    assert (still["id"], still["closedAt"], still["probes"]) == (opened["id"], None, 1)

    # The next run finds the prober gone (on this host, at once; from another host, once its lease is over):
    # the probe's attempt is recovered, interrupted, and given back; the incident stays open.
    mode.write_text("fail")
    retryq("process")
    jobs = {job["id"]: job for job in json.loads(retryq("list", "--json"))}
    recovered = jobs[probe]
    assert (recovered["status"], recovered["attempt"]) == ("pending", 1)
    last = recovered["history"][-1]
    assert (last["outcome"], last["incident"]) == ("interrupted", opened["id"])
    [after] = incidents()
    assert after["closedAt"] is None
    assert after["seen"].get("interrupted") == 1  # type: ignore[union-attr]
    assert not [job for job in jobs.values() if job["status"] == "failed"]

    # And the incident closes at the next probe that succeeds: everything runs, nothing was counted.
    mode.write_text("ok")
    wait_for(lambda: "succeeded 3" in retryq("process"), "the probe that closes the incident")
    assert incidents() == []
    finished = json.loads(retryq("list", "--json"))
    assert {(job["status"], job["attempt"]) for job in finished} == {("completed", 1)}
