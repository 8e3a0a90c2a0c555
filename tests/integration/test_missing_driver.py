"""A queue whose backend's driver is not installed: exit 78 and one line naming the extra, for every command."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from retryq.record.errors import DriverMissing, ExitCode
from retryq.stores import open_store

from ..helpers import invoke

SECRET = "s3cr3t-Pa55"
QUEUE = f"postgresql://retryq:{SECRET}@db.internal/jobs"
COMMANDS = [
    ["list"],
    ["schedule", "balthazar", "2025-12-19", "60"],
    ["report", "balthazar", "2025-12-19", "--total", "650", "--fetched", "647"],
    ["process"],
    ["worker"],
    ["cancel", "abc"],
    ["prune"],
    ["stats"],
    ["doctor"],
    ["export"],
    ["dashboard", "--output", "page.html"],
]


@pytest.fixture
def without_psycopg(monkeypatch: pytest.MonkeyPatch) -> None:
    """``import psycopg`` fails, as on an install without the extra (None in sys.modules stops an import)."""
    monkeypatch.setitem(sys.modules, "psycopg", None)


@pytest.mark.usefixtures("without_psycopg")
@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command[0])
def test_every_command_says_which_extra_to_install(cli: CliRunner, command: list[str]) -> None:
    result = invoke(cli, *command, env={"RETRYQ_QUEUE": QUEUE})
    assert result.exit_code == ExitCode.CONFIG, result.output
    assert result.stderr.startswith("retryq: error: postgresql://retryq@db.internal/jobs: psycopg is not installed")
    assert result.stderr.rstrip("\n").endswith(": pip install 'retryq[postgres]'")
    assert result.stderr.count("\n") == 1
    assert SECRET not in result.output


@pytest.mark.usefixtures("without_psycopg")
def test_the_library_raises_a_configuration_error() -> None:
    with pytest.raises(DriverMissing, match=r"pip install 'retryq\[postgres\]'") as raised:
        open_store(QUEUE)
    assert raised.value.exit_code == 78
    assert SECRET not in str(raised.value)
