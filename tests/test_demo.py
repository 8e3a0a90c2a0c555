"""The README's main job: the demo runs seed 000's scenario 1 end to end on a fresh directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

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
