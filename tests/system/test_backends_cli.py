"""The backend seam seen from a real process: a driver that is missing, a warning on stderr, what is imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SECRET = "s3cr3t-Pa55"

#: Runs `retryq ARGS` in this interpreter with psycopg unimportable (as on an install without the extra),
#: then prints the modules it imported.
WITHOUT_PSYCOPG = """
import atexit, json, sys

class NoPsycopg:
    def find_spec(self, name, path=None, target=None):
        if name == "psycopg" or name.startswith("psycopg."):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, NoPsycopg())
atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))
from retryq.cli import main
sys.argv = ["retryq", *sys.argv[1:]]
main()
"""


def retryq(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_PSYCOPG, *args],
        cwd=tmp_path,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_doctor_without_the_driver_says_which_extra_to_install(tmp_path: Path) -> None:
    (tmp_path / "retryq.toml").write_text(f'queue = "postgresql://retryq:{SECRET}@db.internal/jobs"\n')
    done = retryq(tmp_path, "doctor")
    error, modules = done.stderr.rstrip("\n").rsplit("\n", 1)
    assert done.returncode == 78
    assert error == (
        "retryq: error: postgresql://retryq@db.internal/jobs: psycopg is not installed (No module named 'psycopg'): "
        "pip install 'retryq[postgres]'"
    )
    assert "psycopg" not in json.loads(modules)


def test_a_file_queue_imports_no_other_backend(tmp_path: Path) -> None:
    done = retryq(tmp_path, "schedule", "balthazar", "2025-12-19", "60")
    assert done.returncode == 0, done.stderr
    modules = json.loads(done.stderr.rstrip("\n").rsplit("\n", 1)[-1])
    assert "retryq.stores.file.backend" in modules
    assert not [name for name in modules if name.startswith(("retryq.stores.postgres", "psycopg"))]


def test_a_namespace_beside_a_file_queue_is_one_warning_on_stderr(tmp_path: Path) -> None:
    (tmp_path / "retryq.toml").write_text('schema = "jobs_a"\n[workflow]\ncommand = ["true"]\n')
    done = retryq(tmp_path, "--queue", "old.json", "schedule", "balthazar", "2025-12-19", "60")
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()[:-1]  # the last line is the probe's
    assert lines == ["namespace 'jobs_a' is for a queue on a server; the queue file old.json has none: ignored"]
