"""The command line as users read and type it: every --help, and every option that overrides a setting."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from retryq.cli import app
from retryq.cli._app import COMMANDS
from retryq.settings import declaration as declared
from retryq.settings.declaration import SETTINGS
from retryq.settings.setting import Setting

from ..helpers import invoke

#: What typer shows when an option or argument has no placeholder of its own: Python's type names.
PYTHON_TYPES = re.compile(r"<(?:str|int|float|bool|path|file|dir|[a-z]+\[[^>]*\]|[a-z]+ range)>|\brange>|\[[0-9x.]+<=")


def command(name: str) -> Any:
    group = typer.main.get_group(app)
    context = group.make_context("retryq", [name], resilient_parsing=True)
    return group.get_command(context, name)


@pytest.mark.parametrize("name", [*COMMANDS, ""])
def test_every_help_reads_as_a_user_types(cli: CliRunner, name: str) -> None:
    result = invoke(cli, *([name] if name else []), "--help")
    assert result.exit_code == 0
    text = result.stdout
    assert PYTHON_TYPES.search(text) is None, PYTHON_TYPES.search(text)
    usage = text.splitlines()[0]
    assert "{" not in usage
    assert re.fullmatch(r"Usage: retryq[ a-z]* \[OPTIONS\]( \[?[A-Z]+\]?)*( COMMAND \[ARGS\]\.\.\.)?", usage)
    if name:
        assert f"retryq {name}" in text.split("Example", 1)[1]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_option_states_its_default_at_most_once(name: str) -> None:
    built = command(name)
    context = built.make_context(name, [], resilient_parsing=True)
    for param in built.get_params(context):
        record = param.get_help_record(context)
        if record is not None:
            assert record[1].count("[default") <= 1, record
            assert param.param_type_name != "option" or param.is_flag or param.metavar, f"{name} {record[0]}"


def test_a_command_that_does_not_apply_a_default_does_not_claim_one(cli: CliRunner) -> None:
    cancel = invoke(cli, "cancel", "--help").stdout
    assert "default workflow" not in cancel
    requeue = " ".join(invoke(cli, "requeue", "--help").stdout.split())
    assert "--delay DELAY Minutes before it runs: 0 (now), 30, 2h. [default: 0]" in requeue


REFUSED = {"lock_timeout": "2d", "concurrency": "0", "timeout": "0", "max_attempts": "101", "keep_days": "-1"}
OPTIONS = [(setting, name) for setting in SETTINGS if setting.option for name in setting.commands]


@pytest.mark.parametrize(("setting", "name"), OPTIONS, ids=[f"{name}-{s.key}" for s, name in OPTIONS])
def test_every_declared_option_is_on_its_commands_and_reads_as_the_file_does(setting: Setting[Any], name: str) -> None:
    built = typer.main.get_group(app) if name == "*" else command(name)
    [param] = [param for param in built.params if set(param.opts) == set(setting.option)]
    kind = setting.option_kind or setting.kind
    assert param.metavar == kind.metavar
    example = setting.example if kind is setting.kind else "3"
    context = built.make_context(name, [], resilient_parsing=True)
    assert param.process_value(context, str(example)) == kind.parse(str(example))
    if setting.key in REFUSED:
        with pytest.raises(typer.BadParameter):
            param.process_value(context, REFUSED[setting.key])


def test_process_and_worker_take_their_overrides_from_the_declaration(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    from retryq.running import processor

    seen: list[tuple[Any, dict[str, Any]]] = []

    class Recorder:
        def __init__(self, store: object, config: Any, **options: Any) -> None:
            seen.append((config, options))

        def run(self, **_: object) -> Any:
            raise typer.Exit(0)

    monkeypatch.setattr(processor, "Processor", Recorder)
    Path("retryq.toml").write_text('concurrency = 2\ntimeout = "10m"\n')
    options = ["-j", "4", "--timeout", "5m", "--metrics-file", "m.prom", "--dashboard", "d.html"]
    for args in (["process", *options, "--keep-days", "3"], ["worker", *options]):
        assert invoke(cli, *args).exit_code == 0
    for config, given in seen:
        assert (config.concurrency, config.metrics_file, config.dashboard_file) == (4, Path("m.prom"), Path("d.html"))
        assert given["timeout"] == timedelta(minutes=5)
    assert seen[0][1]["keep_days"] == 3
    seen.clear()
    assert invoke(cli, "process").exit_code == 0
    assert (seen[0][0].concurrency, seen[0][1]["timeout"], seen[0][1]["keep_days"]) == (2, None, None)


def test_the_global_options_override_the_configuration(cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    from retryq import queue as queue_module

    opened: list[Any] = []
    original = queue_module.RetryQueue.__init__

    def recording(self: Any, *args: Any, config: Any = None, **kwargs: Any) -> None:
        opened.append(config)
        original(self, *args, config=config, **kwargs)

    monkeypatch.setattr(queue_module.RetryQueue, "__init__", recording)
    Path("retryq.toml").write_text('lock_timeout = "5s"\nqueue = "from-file.json"\n')
    assert invoke(cli, "list", "--lock-timeout", "2m", "--queue", "cli.json").exit_code == 0
    assert invoke(cli, "list").exit_code == 0
    assert [(config.lock_timeout, config.queue) for config in opened] == [
        (timedelta(minutes=2), "cli.json"),
        (declared.lock_timeout.kind.parse("5s"), "from-file.json"),
    ]
