"""The main job, end to end: schedule a retry, let `retryq process` run it, look at the queue.

Runs the real `retryq` command in ./demo, on the default queue file (./demo/.retry-queue.json),
with examples/fetch_workflow.py as the configured workflow.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "demo"
RETRYQ = [sys.executable, "-m", "retryq"]


def step(*args: str) -> None:
    print(f"\n$ retryq {shlex.join(args)}", flush=True)
    subprocess.run([*RETRYQ, *args], cwd=DEMO, check=True)


def main() -> None:
    shutil.rmtree(DEMO, ignore_errors=True)
    DEMO.mkdir()
    workflow = ROOT / "examples" / "fetch_workflow.py"
    (DEMO / "retryq.toml").write_text(
        f'[workflow]\ncommand = [{_toml(sys.executable)}, {_toml(str(workflow))}, "{{client}}", "{{date}}"]\n'
    )
    print(f"demo directory: {DEMO}")
    step("schedule", "balthazar", "2025-12-19", "0")
    step("list")
    step("process")
    step("list")


def _toml(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


if __name__ == "__main__":
    main()
