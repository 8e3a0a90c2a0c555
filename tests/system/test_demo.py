"""The README's main job: the demo resolves a BOAMP inconsistency end to end on a fresh directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_the_demo_resolves_the_inconsistency(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py"), "--dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "total_count=650, fetched=647" in out
    assert "inconsistency (tolerated): missing=3, total=650, ratio=0.46%" in out
    assert "| total_count=650, fetched=650" in out
    assert "succeeded" in out
    [job] = json.loads((tmp_path / "demo" / ".retry-queue.json").read_text())
    assert (job["clientId"], job["date"], job["status"], job["attempt"]) == ("balthazar", "2025-12-19", "completed", 1)
    assert len(json.loads((tmp_path / "demo" / "data" / "balthazar-2025-12-19.json").read_text())) == 650
    assert "resolved at retry 1: 1 (100.0%)" in out
    assert "  #1  " in out  # the attempt, shown by `retryq show`
    assert out.rstrip().endswith("completed at attempt 1; 650 notices saved")


def test_the_fetcher_defers_to_the_queue_when_the_api_is_down(tmp_path: Path) -> None:
    """In-process retries first; when they run out, the whole fetch becomes a deferred retry."""
    env = {**os.environ, "BOAMP_HTTP_RETRY_DELAY": "0", "BOAMP_OUT": str(tmp_path / "data")}
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "boamp_fetcher.py"),
            "balthazar",
            "2025-12-19",
            "--api",
            "http://127.0.0.1:9",
            "--retry-delay",
            "30",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 75
    assert "fetch_page: attempt 3/3 failed: URLError(ConnectionRefusedError(" in result.stderr
    assert "deferred balthazar 2025-12-19 to the queue after 3 attempts" in result.stderr
    [job] = json.loads((tmp_path / ".retry-queue.json").read_text())
    assert (job["clientId"], job["delayMinutes"], job["status"]) == ("balthazar", 30, "pending")
