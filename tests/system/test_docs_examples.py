"""Every example of the README and of docs/ runs against the installed package, and shows what it prints.

The rules (which fences run, how varying output is matched) are in tests/docs_examples.py. Each page
runs in a directory of its own, its blocks in order: a file one block writes, or a job one command
schedules, is there for the next. The package is the wheel the ``installed`` fixture builds, installed
with the dashboard extra in a venv of its own (the pages show the dashboard).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .. import docs_examples
from ..conftest import Installed

pytestmark = pytest.mark.slow

BLOCKS = [block for block in docs_examples.all_blocks() if block.runs]
#: Seconds any one command or block may take: generous, since a loaded machine is several times slower.
DEADLINE = 300


@pytest.fixture(scope="session")
def docs_venv(request: pytest.FixtureRequest) -> Iterator[Path]:
    """The installed wheel with its dashboard extra, in a venv every page's commands run from.

    ``DOCS_EXAMPLES_VENV=.venv`` runs the pages against that venv instead, without building the wheel:
    a shortcut while writing a page, never what the suite runs.
    """
    given = os.environ.get("DOCS_EXAMPLES_VENV")
    if given:
        yield Path(given).resolve()
        return
    installed: Installed = request.getfixturevalue("installed")
    root = Path(tempfile.mkdtemp(prefix="retryq-docs-"))
    try:
        venv = root / "venv"
        subprocess.run([installed.python, "-m", "venv", str(venv)], check=True, timeout=DEADLINE)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", f"{installed.wheel}[dashboard]"],
            check=True,
            timeout=DEADLINE,
            capture_output=True,
        )
        yield venv
    finally:
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Page:
    """What one page's examples share: their directory, the ids they learnt, their Python process."""

    directory: Path
    env: dict[str, str]
    names: dict[str, str] = field(default_factory=dict)
    python: subprocess.Popen[str] | None = None
    failed: str | None = None

    def run_python(self, venv: Path, code: str, name: str, mode: str) -> dict[str, str]:
        if self.python is None:
            self.python = subprocess.Popen(
                [str(venv / "bin" / "python"), "-c", docs_examples.DRIVER],
                cwd=self.directory,
                env=self.env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        assert self.python.stdin is not None
        assert self.python.stdout is not None
        self.python.stdin.write(json.dumps({"code": code, "name": name, "mode": mode}) + "\n")
        self.python.stdin.flush()
        answer = self.python.stdout.readline()
        if not answer:
            raise AssertionError(f"{name}: the Python process of the page ended (exit {self.python.wait()})")
        result: dict[str, str] = json.loads(answer)
        return result

    def close(self) -> None:
        if self.python is not None:
            assert self.python.stdin is not None
            self.python.stdin.close()
            self.python.wait(timeout=DEADLINE)


@pytest.fixture(scope="module")
def pages(docs_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Page]]:
    opened: dict[str, Page] = {}
    base = tmp_path_factory.mktemp("docs-pages")

    def page(name: str) -> Page:
        if name not in opened:
            directory = base / name.replace("/", "_").removesuffix(".md")
            directory.mkdir()
            clean = {key: value for key, value in os.environ.items() if not key.startswith(("RETRYQ_", "PYTHON"))}
            env = {
                **clean,
                "PATH": f"{docs_venv / 'bin'}:/usr/bin:/bin",
                "HOME": str(directory),
                "TZ": "UTC",
                "LANG": "C.UTF-8",
                "COLUMNS": "80",
                "PYTHONUNBUFFERED": "1",  # stdout and stderr reach the shared pipe in the order written
            }
            opened[name] = Page(directory, env)
        return opened[name]

    yield page  # type: ignore[misc]
    for each in opened.values():
        each.close()


def run_console(block: docs_examples.Block, page: Page) -> None:
    for command in docs_examples.commands(block):
        argv = ["bash", "-o", "pipefail", "-c", docs_examples.substitute(command.command, page.names)]
        result = subprocess.run(
            argv,
            cwd=page.directory,
            env=page.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=DEADLINE,
            check=False,
        )
        where = f"{block.page}:{command.line}: $ {command.command}"
        assert result.returncode == 0, f"{where}\nexited {result.returncode}:\n{result.stdout}"
        try:
            docs_examples.match(command.output, result.stdout, page.names)
        except docs_examples.Mismatch as mismatch:
            raise AssertionError(f"{where}\n{mismatch}") from None


def run_pycon(block: docs_examples.Block, page: Page, venv: Path) -> None:
    for example in docs_examples.pycon_examples(block):
        where = f"{block.page}:{example.line}"
        source = docs_examples.substitute(example.source, page.names)
        answer = page.run_python(venv, source, where, "single")
        shown = example.output
        if not answer["ok"]:
            last = shown.strip().splitlines()[-1:] if shown.strip().startswith("Traceback") else None
            assert last is not None, f"{where}: >>> {example.source}{answer['error']}"
            actual = answer["last"]
            shown = last[0]
        else:
            actual = answer["output"]
        try:
            docs_examples.match(shown, actual, page.names)
        except docs_examples.Mismatch as mismatch:
            raise AssertionError(f"{where}: >>> {example.source}{mismatch}") from None


def run_toml(block: docs_examples.Block, page: Page) -> None:
    scratch = page.directory / ".config-checks"
    scratch.mkdir(exist_ok=True)
    config = scratch / f"line-{block.line}.toml"
    config.write_text(block.text)
    # The configuration alone is checked: the queue it names is replaced by a scratch file.
    argv = ["retryq", "--config", str(config), "--queue-file", str(scratch / "queue.json"), "list"]
    result = subprocess.run(argv, cwd=page.directory, env=page.env, capture_output=True, text=True, timeout=DEADLINE)
    assert result.returncode == 0, f"{block.name}: this configuration is refused:\n{result.stderr}"


@pytest.mark.parametrize("block", BLOCKS, ids=[f"{block.name}:{block.title or block.language}" for block in BLOCKS])
def test_the_example_runs_as_shown(block: docs_examples.Block, pages: dict[str, Page], docs_venv: Path) -> None:
    page = pages(block.page)  # type: ignore[operator]
    assert page.failed is None, f"an earlier example of this page failed ({page.failed}); this one builds on it"
    try:
        if block.title is not None:
            path = page.directory / block.title
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(block.text)
            if block.text.startswith("#!"):
                path.chmod(0o755)
        elif block.language == "console":
            run_console(block, page)
        elif block.language == "python":
            answer = page.run_python(docs_venv, docs_examples.substitute(block.text, page.names), block.name, "exec")
            assert answer["ok"], f"{block.name}:\n{answer['error']}"
        elif block.language == "pycon":
            run_pycon(block, page, docs_venv)
        elif block.language == "toml":
            run_toml(block, page)
    except BaseException:
        page.failed = block.name
        raise
