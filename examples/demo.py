"""The main job, end to end, on the default queue file: a BOAMP inconsistency resolved by a retry, in a few seconds.

A local fake of the BOAMP API announces 650 notices and, on the first read, returns 647. The
fetcher sees 3 missing and schedules a retry; `retryq process` (what cron runs every 5 minutes)
re-runs the fetcher, which now gets all 650; the job ends `completed`. The demo asks for a
0-minute delay instead of the usual 60 so that nobody waits an hour.

Runs the real `retryq` command in ./demo (or --dir), which holds retryq.toml and .retry-queue.json,
and leaves the dashboard there: demo/dashboard.html.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CLIENT, DATE = "balthazar", "2025-12-19"


@contextmanager
def fake_api() -> Iterator[str]:
    """Start the fake BOAMP API on a free port; yield its URL."""
    server = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "boamp_api.py"), "--port", "0", "--total", "650", "--drop", "3"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("listening on "):
            raise SystemExit(f"the fake API did not start: {line!r}")
        yield line.split()[-1]
    finally:
        server.terminate()
        server.wait(timeout=10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="retryq demo: schedule → process on the default queue file")
    parser.add_argument("--dir", type=Path, default=ROOT / "demo", help="working directory (recreated)")
    args = parser.parse_args(argv)
    demo: Path = args.dir.resolve()
    shutil.rmtree(demo, ignore_errors=True)
    demo.mkdir(parents=True)
    (demo / "retryq.toml").write_text(
        "# The workflow retryq re-runs is the fetcher itself.\n"
        "[workflow]\n"
        f"command = [{json.dumps(sys.executable)}, {json.dumps(str(EXAMPLES / 'boamp_fetcher.py'))}, "
        '"{client}", "{date}"]\n'
        'timeout = "1m"\n'
    )
    print(f"demo directory: {demo} (retryq.toml, .retry-queue.json)")

    with fake_api() as url:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RETRYQ_")},
            "BOAMP_API_URL": url,
            "BOAMP_RETRY_DELAY": "0",  # a real deployment waits 60 minutes
            "BOAMP_OUT": str(demo / "data"),
        }

        def run(title: str, shown: str, argv: list[str]) -> None:
            print(f"\n== {title}\n$ {shown}", flush=True)
            subprocess.run(argv, cwd=demo, env=env, check=True)

        fetcher = [sys.executable, str(EXAMPLES / "boamp_fetcher.py"), CLIENT, DATE]
        retryq = [sys.executable, "-m", "retryq"]
        run(
            "10:00, the daily fetch finds notices missing", f"python examples/boamp_fetcher.py {CLIENT} {DATE}", fetcher
        )
        run("the queue now holds a retry", "retryq list", [*retryq, "list"])
        run("cron, a few minutes later: retryq process re-runs the fetch", "retryq process", [*retryq, "process"])
        run("the chain is resolved", "retryq list", [*retryq, "list"])
        job_id = json.loads((demo / ".retry-queue.json").read_text())[0]["id"][:8]
        run("its attempts", f"retryq show {job_id}", [*retryq, "show", job_id])
        run("and the resolution statistics", "retryq stats", [*retryq, "stats"])
        run(
            "the same, as a page to open in a browser",
            "retryq dashboard --output dashboard.html",
            [*retryq, "dashboard", "--output", "dashboard.html"],
        )

    jobs = json.loads((demo / ".retry-queue.json").read_text())
    notices = json.loads((demo / "data" / f"{CLIENT}-{DATE}.json").read_text())
    [job] = jobs
    print(f"\ndashboard: {demo / 'dashboard.html'}")
    print(f"outcome: job {job['id'][:8]} {job['status']} at attempt {job['attempt']}; {len(notices)} notices saved")


if __name__ == "__main__":
    main()
