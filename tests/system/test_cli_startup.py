"""Start-up: a command imports and builds only what it uses (read from sys.modules in a fresh process, never timed)."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer.core import TyperGroup

from retryq.cli import app
from retryq.cli._app import COMMANDS

#: Runs `retryq ARGS` in this interpreter, then prints the modules it imported and the records it built.
PROBE = """
import atexit, json, sys

def report():
    modules = sorted(sys.modules)
    built = sorted(
        f"{module}.{name}"
        for module in ("retryq.record.models", "retryq.settings.config") if module in sys.modules
        for name, value in vars(sys.modules[module]).items()
        if getattr(value, "__pydantic_complete__", False) and value.__module__ == module
    )
    print(json.dumps({"modules": modules, "built": built}), file=sys.stderr)

atexit.register(report)
from retryq.cli import main
sys.argv = ["retryq", *sys.argv[1:]]
main()
"""
SCHEDULE = ("schedule", "balthazar", "2025-12-19", "60")


def probe(tmp_path: Path, *args: str) -> dict[str, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=tmp_path, capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, list[str]] = json.loads(done.stderr.strip().splitlines()[-1])
    return found


#: What every command shares: the application, its help's layout, the options built from the settings' declaration.
SHARED = {"retryq.cli._app", "retryq.cli._help", "retryq.cli._options"}


def command_modules(modules: list[str]) -> set[str]:
    return {name for name in modules if name.startswith("retryq.cli.") and name not in SHARED}


@pytest.mark.parametrize(
    ("args", "module"),
    [
        (SCHEDULE, "adding"),
        (("report", "balthazar", "2025-12-19", "--total", "650", "--fetched", "647"), "adding"),
        (("list",), "jobs"),
    ],
)
def test_a_command_imports_no_other_command(tmp_path: Path, args: tuple[str, ...], module: str) -> None:
    found = probe(tmp_path, *args)
    assert command_modules(found["modules"]) == {f"retryq.cli.{module}", "retryq.cli._output"}
    unused = {
        "retryq.running.processor",
        "retryq.running.runner",
        "retryq.reporting.dashboard",
        "retryq.reporting.stats",
        "retryq.reporting.doctor",
        "retryq.settings.reference",
        "rich",
    }
    assert unused.isdisjoint(found["modules"])


def test_schedule_builds_only_the_record_it_writes(tmp_path: Path) -> None:
    found = probe(tmp_path, *SCHEDULE)
    # Attempts and owners are validated inside jobs, never on their own; without a file, no configuration is.
    assert found["built"] == ["retryq.record.models.Job"]
    assert "tomllib" not in found["modules"]  # no configuration file here


def test_schedule_does_not_load_the_fast_reading_path(tmp_path: Path) -> None:
    # A short queue is checked by the models, which schedule builds anyway: the views' module would cost more.
    assert "retryq.record.views" not in probe(tmp_path, *SCHEDULE)["modules"]


@pytest.mark.parametrize("command", ["list", "stats", "doctor"])
def test_reading_commands_take_the_fast_path_and_build_no_model_but_the_jobs_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    from retryq.record.models import Job

    monkeypatch.setenv("RETRYQ_COMMAND", "true")  # doctor exits 1 without a workflow command
    jobs = [Job.model_validate(record).to_json_line() for record in _records(600)]  # past FAST_CHECK_BYTES
    (tmp_path / ".retry-queue.json").write_text("[\n" + ",\n".join(jobs) + "\n]\n")
    found = probe(tmp_path, command)
    assert "retryq.record.views" in found["modules"]
    # Job's schema is what the views' validator is derived from; no Attempt, Owner or Detection is built.
    assert found["built"] == ["retryq.record.models.Job"]


def _records(count: int) -> list[dict[str, object]]:
    return [
        {
            "clientId": f"client{number}",
            "date": "2025-12-19",
            "scheduledAt": "2025-12-19T10:00:00.000Z",
            "executeAt": "2025-12-19T11:00:00.000Z",
            "delayMinutes": 60,
            "status": "completed",
            "id": f"{number:016x}",
            "attempt": 1,
            "finishedAt": "2025-12-19T11:00:02.000Z",
            "lastError": "x" * 900,
            "history": [
                {
                    "attempt": 1,
                    "startedAt": "2025-12-19T11:00:00.000Z",
                    "finishedAt": "2025-12-19T11:00:02.000Z",
                    "outcome": "succeeded",
                    "exitCode": 0,
                }
            ],
        }
        for number in range(count)
    ]


def test_help_imports_no_command_and_no_pydantic_model(tmp_path: Path) -> None:
    found = probe(tmp_path, "--help")
    assert command_modules(found["modules"]) == set()
    assert {"retryq.record.models", "retryq.settings.config", "pydantic.main"}.isdisjoint(found["modules"])


def test_a_mistyped_command_is_still_told_the_right_name(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "retryq", "schedle"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert "Did you mean 'schedule'" in done.stderr


def test_each_summary_is_the_first_paragraph_of_its_commands_docstring() -> None:
    registered = {
        info.name or getattr(info.callback, "__name__", ""): info.callback for info in app.registered_commands
    }
    assert set(registered) == set(COMMANDS)
    for name, (module, summary) in COMMANDS.items():
        callback = registered[name]
        assert callback is not None
        assert callback.__module__ == f"retryq.cli.{module}"
        first_paragraph = " ".join((inspect.getdoc(callback) or "").split("\n\n")[0].split())
        assert summary == first_paragraph, f"COMMANDS[{name!r}] no longer says what {name}'s docstring says"


def test_help_lists_the_commands_as_typer_would_from_the_built_commands() -> None:
    group = typer.main.get_group(app)
    context = group.make_context("retryq", [], resilient_parsing=True)
    from_summaries, from_commands = context.make_formatter(), context.make_formatter()
    group.format_commands(context, from_summaries)
    TyperGroup.format_commands(group, context, from_commands)
    assert from_summaries.getvalue() == from_commands.getvalue()
    rows = [line.split(maxsplit=1) for line in from_summaries.getvalue().splitlines()[1:]]
    assert [name for name, _ in rows] == list(COMMANDS)


def test_importing_retryq_builds_no_validator() -> None:
    code = (
        "import sys; from retryq import RetryQueue; from retryq.record.models import Job; "
        "print(Job.__pydantic_complete__, 'pydantic.plugin._loader' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "False False\n"
