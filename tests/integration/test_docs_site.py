"""The documentation site builds with no warning, and its generated command-line reference is current."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import typer

from retryq.cli import app

from ..helpers import unavailable

ROOT = Path(__file__).resolve().parents[2]


def gen_cli() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_cli", ROOT / "docs" / "gen_cli.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_site_builds_with_no_warning(tmp_path: Path) -> None:
    """`mkdocs build --strict`: a broken link or anchor, or a page outside the navigation, fails it."""
    if importlib.util.find_spec("mkdocs") is None:
        unavailable("the docs extra is not installed: pip install 'retryq[docs]'")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    assert (tmp_path / "site" / "cli" / "index.html").is_file()


def test_the_command_line_reference_is_what_the_commands_say() -> None:
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert gen_cli().render() == page, "docs/cli.md differs from the commands' --help: run `make docs-cli`"


def test_every_command_has_a_section_in_the_command_line_reference() -> None:
    page = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    assert len(commands) >= 15
    missing = [name for name in commands if f"\n## retryq {name}\n" not in page]
    assert missing == []


def test_the_readme_is_a_front_door_with_a_two_command_quick_start() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    quick_start = readme.split("## Quick start\n", 1)[1].split("\n## ", 1)[0]
    block = quick_start.split("```sh\n", 1)[1].split("```", 1)[0]
    assert block.splitlines() == ["make demo", "make test"]


def test_every_relative_link_of_the_readme_names_a_file_of_the_repository() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme)
    local = [target for target in targets if "://" not in target]
    assert local
    assert [target for target in local if not (ROOT / target).exists()] == []
