"""Lines fit for cron everywhere; a progress bar only on a terminal."""

from __future__ import annotations

import io
import logging
import re
import sys

import pytest

from retryq.cli._output import LogOutput

from ..helpers import make_job

log = logging.getLogger("retryq")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_progress_bar_when_stdout_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    with LogOutput(progress=True) as output:
        assert not output.show_progress
        log.info("started", extra={"job": make_job(attempt=2)})
        output.advance()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z balthazar 2025-12-19 #2 started\n", out.getvalue())


def test_a_progress_bar_on_a_terminal_keeps_the_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    out = Terminal()
    monkeypatch.setattr(sys, "stdout", out)
    with LogOutput(progress=True) as output:
        assert output.show_progress
        output.expect(2)
        log.info("one done", extra={"job": make_job()})
        output.advance()
        output.advance()
        output.advance()  # more than expected: the bar grows, nothing breaks
    assert "balthazar 2025-12-19 #1 one done" in out.getvalue()


def test_quiet_means_no_bar_and_warnings_only(monkeypatch: pytest.MonkeyPatch) -> None:
    out = Terminal()
    monkeypatch.setattr(sys, "stdout", out)
    with LogOutput(progress=True, quiet=True) as output:
        assert not output.show_progress
        log.info("hidden")
        log.warning("shown")
    assert out.getvalue().endswith(" warning: shown\n")
    assert "hidden" not in out.getvalue()


def test_verbose_shows_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    with LogOutput(verbose=True):
        log.debug("details")
    assert out.getvalue().endswith(" debug: details\n")
