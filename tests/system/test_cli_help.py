"""Every command explains itself with an example; the package imports without the CLI."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from retryq import __version__
from retryq.cli import app

from ..helpers import invoke

COMMANDS = sorted(command.name or command.callback.__name__ for command in app.registered_commands)  # type: ignore[union-attr]


def test_the_command_list_is_known() -> None:
    assert set(COMMANDS) >= {"schedule", "process", "run", "list"}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(cli: CliRunner, command: str) -> None:
    result = invoke(cli, command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.stdout
    assert f"retryq {command}" in result.stdout.split("Example", 1)[1]


def test_top_level_help_and_version(cli: CliRunner) -> None:
    assert "deferred retry queue" in invoke(cli, "--help").stdout
    assert invoke(cli, "--version").stdout == f"retryq {__version__}\n"
    bare = invoke(cli)
    assert "Usage: retryq" in bare.stdout + bare.stderr


def test_python_dash_m_works() -> None:
    result = subprocess.run([sys.executable, "-m", "retryq", "--version"], capture_output=True, text=True, check=True)
    assert result.stdout == f"retryq {__version__}\n"


def test_importing_the_library_does_not_import_the_cli() -> None:
    code = "import sys, retryq; retryq.RetryQueue; print('typer' in sys.modules, 'retryq.cli' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout == "False False\n"


def test_the_cli_module_is_typer() -> None:
    assert isinstance(app, typer.Typer)


def test_no_public_name_is_shadowed_by_a_submodule() -> None:
    """Importing retryq.x binds `x` in the package: a public name `x` would then be the module."""
    import pkgutil

    import retryq

    submodules = {module.name for module in pkgutil.iter_modules(retryq.__path__)}
    assert set(retryq.__all__) & submodules == set()
    code = (
        "import types, retryq; from retryq import is_recoverable, retrying, retry, defer; "
        "print([n for n in retryq.__all__ if isinstance(getattr(retryq, n), types.ModuleType)])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout == "[]\n"
