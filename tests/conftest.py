"""Fixtures: a clean working directory and environment, a fake workflow, a queue, a CLI runner."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retryq import JsonFileStore, RetryQueue

from .helpers import FakeWorkflow, fake_workflow, make_config


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's RETRYQ_* variables or config; each runs in its own directory."""
    for name in list(os.environ):
        if name.startswith(("RETRYQ_", "RETRY_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def workflow(tmp_path: Path) -> FakeWorkflow:
    return fake_workflow(tmp_path)


@pytest.fixture
def queue(tmp_path: Path, workflow: FakeWorkflow) -> RetryQueue:
    """A queue on ``.retry-queue.json`` whose default workflow is the fake one."""
    return RetryQueue(JsonFileStore(tmp_path / ".retry-queue.json"), config=make_config(workflow.argv()))


@pytest.fixture
def cli() -> CliRunner:
    return CliRunner()


@pytest.fixture
def retryq_bin() -> str:
    """The installed ``retryq`` script, for tests that need a real process."""
    candidate = Path(sys.executable).with_name("retryq")
    assert candidate.exists(), "retryq is not installed in this environment (pip install -e .)"
    return str(candidate)
