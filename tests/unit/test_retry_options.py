"""RetryOptions: the one list of options every in-process form takes, checked once."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from retryq.inprocess.forms import RetryContext, RetryManager, retry, retrying
from retryq.inprocess.policy import RetryOptions
from retryq.record.backoff import RetryState, constant

ROOT = Path(__file__).resolve().parents[2]


def test_defaults() -> None:
    options = RetryOptions()
    assert (options.max_attempts, options.backoff_factor, options.initial_delay, options.max_delay) == (3, 2.0, 1, 60)
    assert options.exceptions == (Exception,)
    assert (options.retry_if, options.backoff, options.on_retry, options.on_exhausted) == (None, None, None, None)
    assert (options.respect_retry_after, options.sleep, options.name) == (True, None, None)


def test_options_are_frozen_and_compare_by_value() -> None:
    options = RetryOptions(max_attempts=4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.max_attempts = 5  # type: ignore[misc]
    assert options == RetryOptions(max_attempts=4)
    assert options != RetryOptions(max_attempts=5)
    assert hash(options) == hash(RetryOptions(max_attempts=4))


def test_options_are_taken_by_keyword_only() -> None:
    with pytest.raises(TypeError):
        RetryOptions(3)  # type: ignore[misc]


def test_a_single_exception_class_becomes_a_tuple() -> None:
    assert RetryOptions(exceptions=KeyError).exceptions == (KeyError,)


def test_copy_changes_some_options_and_checks_them_again() -> None:
    options = RetryOptions(max_attempts=4, initial_delay=2)
    changed = options.copy(max_delay=30)
    assert (changed.max_attempts, changed.initial_delay, changed.max_delay) == (4, 2, 30)
    assert options.max_delay == 60
    assert options.copy() is options
    with pytest.raises(ValueError, match="max_attempts"):
        options.copy(max_attempts=0)
    with pytest.raises(TypeError, match="nope"):
        options.copy(nope=1)


def test_copy_keeps_what_the_environment_said(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETRY_MAX_ATTEMPTS", "5")
    options = RetryOptions()
    monkeypatch.setenv("RETRY_MAX_ATTEMPTS", "7")
    assert options.copy(initial_delay=2).max_attempts == 5
    assert RetryOptions().max_attempts == 7


def test_the_wait_is_the_backoff_capped_by_max_delay() -> None:
    def waits(options: RetryOptions, attempts: int) -> list[float | None]:
        return [options.after_failure(ConnectionError(), n, "test") for n in range(1, attempts + 1)]

    assert waits(RetryOptions(max_attempts=5), 5) == [1, 2, 4, 8, None]
    slow_start = RetryOptions(max_attempts=4, backoff_factor=3, initial_delay=0.5, max_delay=4)
    assert waits(slow_start, 4) == [0.5, 1.5, 4, None]
    assert waits(RetryOptions(max_attempts=3, backoff=constant(90)), 3) == [60, 60, None]
    assert waits(RetryOptions(max_attempts=3, backoff=lambda state: state.attempt / 10), 3) == [0.1, 0.2, None]
    assert RetryOptions(max_attempts=2).after_failure(ValueError(), 1, "test") == 1
    assert RetryOptions(retry_if=lambda exc: False).after_failure(ValueError(), 1, "test") is None


def test_every_form_takes_exactly_the_options() -> None:
    """The list is declared once: the forms forward whatever they get to RetryOptions."""
    names = {field.name for field in dataclasses.fields(RetryOptions) if field.init}
    assert names == {
        "max_attempts",
        "backoff_factor",
        "initial_delay",
        "max_delay",
        "exceptions",
        "retry_if",
        "backoff",
        "on_retry",
        "on_exhausted",
        "respect_retry_after",
        "sleep",
        "name",
        "logger",
    }
    chosen = {
        "max_attempts": 5,
        "backoff_factor": 3,
        "initial_delay": 0.5,
        "max_delay": 10,
        "exceptions": (OSError,),
        "retry_if": callable,
        "backoff": constant(1),
        "on_retry": print,
        "on_exhausted": print,
        "respect_retry_after": False,
        "sleep": print,
        "name": "x",
        "logger": None,
    }
    assert set(chosen) == names
    assert retrying(**chosen).options == RetryOptions(**chosen)
    assert RetryContext(**chosen).options == RetryOptions(**chosen)
    assert RetryManager(**chosen).options == RetryOptions(**chosen)
    assert RetryManager().context(**chosen).options == RetryOptions(**chosen)
    retry(**chosen)  # accepted as a whole
    RetryManager().retry(**chosen)
    for name in names:
        with pytest.raises(TypeError):
            retrying(**{f"{name}s": 1})
    assert RetryOptions(backoff=constant(1)).strategy()(RetryState(1)) == 1
    assert RetryOptions(initial_delay=3).strategy()(RetryState(2)) == 6


def test_the_environment_is_not_read_when_both_values_are_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETRY_MAX_ATTEMPTS", "many")
    monkeypatch.setenv("RETRY_BACKOFF_FACTOR", "fast")
    assert RetryOptions(max_attempts=2, backoff_factor=1.5).max_attempts == 2


@pytest.mark.slow
def test_type_checkers_see_the_options_of_every_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """mypy reads the one list through each form: a misspelt or mistyped option is an error."""
    mypy_api = pytest.importorskip("mypy.api")
    monkeypatch.setenv("MYPYPATH", str(ROOT))  # the editable install is invisible to mypy
    # Each line is followed by what mypy must say about it: the words of its message that matter.
    cases = {
        "from retryq import RetryContext, RetryManager, retry, retrying": None,
        "@retry\ndef bare(x: int) -> str:\n    return str(x)": None,
        "@retry(max_attempts=2, backoff_factor=1.5)\ndef called(x: int) -> str:\n    return str(x)": None,
        "manager = RetryManager(max_attempts=4)": None,
        "reveal_type(bare)": "def (x: int) -> str",
        "reveal_type(called)": "def (x: int) -> str",
        "reveal_type(manager.retry(name='x')(bare))": "def (x: int) -> str",
        "reveal_type(RetryContext(name='x').call(called, 3))": "str",
        "retry(max_attemps=3)": '"max_attemps"',
        "retrying(max_attempts='3')": '"max_attempts"',
        "RetryContext(initial_delay='1s')": '"initial_delay"',
        "manager.context(on_retry=3)": '"on_retry"',
        "manager.retry(sleeps=None)": '"sleeps"',
        "RetryContext().call(called, 'three')": '"str"',
    }
    source, expected = "", {}
    for code, message in cases.items():
        source += code + "\n"
        if message is not None:
            expected[source.count("\n")] = message
    (tmp_path / "snippet.py").write_text(source)
    out, _, _ = mypy_api.run(["--strict", "--no-incremental", "--no-error-summary", "snippet.py"])
    said: dict[int, str] = {}
    for line in out.splitlines():
        _, number, text = line.split(":", 2)
        said[int(number)] = said.get(int(number), "") + text
    assert said.keys() == expected.keys(), out
    for number, words in expected.items():
        assert words in said[number], out
