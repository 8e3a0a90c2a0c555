"""What users install: the wheel and the sdist, installed without ``-e`` in a fresh venv, must work."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from ..conftest import Installed
from ..helpers import write_script

pytestmark = pytest.mark.slow

SOURCE = Path(__file__).resolve().parents[2]


def package_files() -> set[str]:
    """Every file of the package in the source tree (modules and data), as paths inside the wheel."""
    return {
        path.relative_to(SOURCE).as_posix()
        for path in (SOURCE / "retryq").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def test_the_wheel_holds_every_file_of_the_package(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    assert package_files() - names == set()
    assert "retryq/cli/__init__.py" in names  # the subpackage a hand-written list once left out


def test_the_sdist_holds_every_file_of_the_package(installed: Installed) -> None:
    with tarfile.open(installed.sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert package_files() - names == set()


def run(
    installed: Installed, *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("RETRYQ_", "PYTHON"))}
    return subprocess.run(
        list(args), cwd=cwd, env={**clean, **(env or {})}, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_installed_command_and_module_start(installed: Installed, tmp_path: Path) -> None:
    version = run(installed, installed.retryq, "--version", cwd=tmp_path)
    assert (version.returncode, version.stderr) == (0, "")
    assert version.stdout.startswith("retryq ")
    module = run(installed, installed.python, "-m", "retryq", "--help", cwd=tmp_path)
    assert module.returncode == 0, module.stderr
    assert "schedule" in module.stdout
    where = run(installed, installed.python, "-c", "import retryq, retryq.cli; print(retryq.__file__)", cwd=tmp_path)
    assert where.stdout.strip().startswith(str(installed.venv)), "the test must exercise the installed copy"


def test_the_installed_command_runs_the_whole_loop(installed: Installed, tmp_path: Path) -> None:
    workflow = write_script(tmp_path / "fetch.sh", 'echo "fetched $1 $2"\n')
    env = {"RETRYQ_COMMAND": f"{workflow} {{client}} {{date}}"}
    scheduled = run(installed, installed.retryq, "schedule", "balthazar", "2025-12-19", "0", cwd=tmp_path, env=env)
    assert scheduled.returncode == 0, scheduled.stderr
    processed = run(installed, installed.retryq, "process", cwd=tmp_path, env=env)
    assert processed.returncode == 0, processed.stderr
    assert "fetched balthazar 2025-12-19" in processed.stdout
    listed = run(installed, installed.retryq, "list", "--json", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    [job] = json.loads(listed.stdout)
    assert (job["clientId"], job["date"], job["status"]) == ("balthazar", "2025-12-19", "completed")
    assert (tmp_path / ".retry-queue.json").exists()
