"""The typer application, its error handling, and the options every command shares."""

from __future__ import annotations

import gc
import importlib
import json
import os
import sys
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperCommand, TyperGroup
from typer.main import get_command_from_info, get_command_name

from .. import __version__
from ..record.errors import ExitCode, RetryqError
from ..settings import declaration as declared
from ._help import Command
from ._options import setting_option

if TYPE_CHECKING:
    from ..queue import RetryQueue

#: Each command, in the order of `retryq --help` (the daily loop first, then inspection and repair):
#: the module that defines it, and the summary --help lists (its docstring's first paragraph; a test
#: keeps the two equal). A command's module is imported, and the command built, only when it runs:
#: `retryq schedule` builds no other command, and `retryq --help` none.
COMMANDS = {
    "schedule": ("adding", "Schedule a deferred retry of the workflow for CLIENT and DATE."),
    "report": (
        "adding",
        "Judge a fetch and schedule a retry if anything is missing: for fetchers not written in Python.",
    ),
    "process": ("running", "Run every due retry: the cron entry point."),
    "run": ("running", "Run the workflow for CLIENT and DATE now, and exit with its exit code."),
    "worker": ("running", "Run due retries as they come, until stopped: an alternative to cron."),
    "list": ("jobs", "List the jobs in the queue, soonest due first."),
    "show": ("jobs", "Show one job: its fields, its attempts and the tail of each attempt's output."),
    "schedules": ("schedules", "List the recurring jobs of the configuration: next occurrence, last one and its job."),
    "cancel": ("jobs", "Cancel pending jobs; they stay in the queue as `cancelled`, for the record."),
    "requeue": ("jobs", "Put failed or cancelled jobs back to pending, with a fresh count of attempts."),
    "prune": ("jobs", "Remove completed, failed and cancelled jobs that ended long enough ago (as `process` does)."),
    "stats": ("health", "How inconsistencies resolve: at which retry, how many persist, how long it takes."),
    "doctor": (
        "health",
        "Check the configuration, the workflow commands, the queue file and the lock; flag stuck jobs.",
    ),
    "incidents": (
        "incidents",
        "Upstream incidents: the open ones (with --all, the closed ones too), and the paused workflows.",
    ),
    "pause": ("incidents", "Hold a workflow's retries on every host, until `retryq resume` (or --for ends it)."),
    "resume": (
        "incidents",
        "Run a workflow's retries again: lift its pause, and close its open incident (the upstream is back).",
    ),
    "dashboard": ("dashboard", "One HTML page about the queue: how retries resolve, open and failed jobs, health."),
    "export": ("transfer", "Write every job of the queue as JSON lines, to move it to another store."),
    "import": ("transfer", "Add the jobs of an export to the queue: all of them or, on a conflict, none."),
}

#: The options of the root command that may also be given after the command (`retryq list --config X`).
GLOBAL_OPTIONS = ("config", "queue", "queue_file", "lock_timeout")
GLOBAL_HELP = (
    "Options of every command, before or after its name: --config PATH, "
    f"--queue {declared.queue.kind.metavar}, --queue-file PATH, "
    f"--lock-timeout {declared.lock_timeout.kind.metavar} (see retryq --help)."
)


def load_commands() -> typer.Typer:
    """The application with every command registered (what tests and embedders see as ``retryq.cli.app``)."""
    for module, _ in COMMANDS.values():
        importlib.import_module(f".{module}", __package__)
    for info in app.registered_commands:
        info.cls = Command
    return app


def _build_command(name: str) -> TyperCommand | None:
    """Import the module of command ``name`` (which registers it on ``app``) and build that command alone."""
    importlib.import_module(f".{COMMANDS[name][0]}", __package__)
    for info in app.registered_commands:
        if (info.name or get_command_name(getattr(info.callback, "__name__", ""))) == name:
            info.cls = Command
            command = get_command_from_info(
                info, pretty_exceptions_short=app.pretty_exceptions_short, rich_markup_mode=app.rich_markup_mode
            )
            assert isinstance(command, TyperCommand)
            return command
    return None


class _Commands(MutableMapping[str, Any]):
    """The group's commands by name, in the order of :data:`COMMANDS`, each built on first access.

    Its keys are known without importing anything, so that a typo still gets typer's "Did you mean".
    """

    def __init__(self, built: Mapping[str, Any]) -> None:
        self._built = dict(built)

    def __getitem__(self, name: str) -> Any:
        if name not in self._built:
            command = _build_command(name) if name in COMMANDS else None
            if command is None:
                raise KeyError(name)
            self._built[name] = command
        command = self._built[name]
        if not command.epilog:
            command.epilog = GLOBAL_HELP
        return command

    def __setitem__(self, name: str, command: Any) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        del self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*COMMANDS, *self._built]))

    def __len__(self) -> int:
        return len(set(COMMANDS) | set(self._built))


class _Group(TyperGroup):
    """Builds only the command that runs; turns every failure into one line on stderr and a documented exit code."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _Commands(self.commands)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """List the commands from their summaries in :data:`COMMANDS`, building none of them."""
        # A stand-in command that carries only the summary shortens it as typer shortens the real one's.
        rows = {
            name: TyperCommand(name=name, help=COMMANDS[name][1]) if name in COMMANDS else self.commands[name]
            for name in self.commands
        }
        limit = formatter.width - 6 - max(len(name) for name in rows)
        with formatter.section("Commands"):
            formatter.write_dl([(name, command.get_short_help_str(limit)) for name, command in rows.items()])

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        args = self._globals_first(list(sys.argv[1:] if args is None else args))
        # A command is a short process that makes many objects and no garbage cycles worth collecting:
        # on a large queue the collector's passes cost more than the command (list of 100,000 jobs:
        # 8.9 s with them, 3.1 s without). `process`, `worker` and `dashboard --serve` turn it back on.
        gc.disable()
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except RetryqError as error:
            fail(str(error), error.exit_code)
        except typer.Exit as done:
            result = done.exit_code
        except (KeyboardInterrupt, typer.Abort):
            fail("interrupted", ExitCode.SIGINT)
        except BrokenPipeError:
            sys.exit(ExitCode.FAILURE)  # the reader went away (`retryq list | head`): nothing to report
        except typer.TyperException as error:  # click's usage and parameter errors derive from it
            context = getattr(error, "ctx", None)
            command = getattr(context, "command_path", None) or "retryq"
            if error.exit_code == ExitCode.USAGE:
                fail(f"{error.format_message()} (see '{command} --help')", ExitCode.USAGE)
            fail(error.format_message(), error.exit_code or ExitCode.USAGE)
        except Exception as error:  # the promise is "never a traceback": say what broke, in one line
            if os.environ.get("RETRYQ_DEBUG", "").strip().lower() in ("1", "true", "yes", "on"):
                raise
            fail(
                f"internal error: {type(error).__name__}: {error} (set RETRYQ_DEBUG=1 for a traceback)",
                ExitCode.SOFTWARE,
            )
        finally:
            gc.enable()
        code = result if isinstance(result, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code

    def _globals_first(self, args: list[str]) -> list[str]:
        """Move the global options given after the command name before it, where the root command parses them.

        Client ids, dates and job ids never start with ``-``, so an option name is never a value here;
        ``--`` ends the options as usual.
        """
        takes_value = {
            option: not getattr(param, "is_flag", False)
            for param in self.params
            if param.name in GLOBAL_OPTIONS
            for option in param.opts
        }
        hoisted: list[str] = []
        rest: list[str] = []
        index = 0
        while index < len(args):
            arg = args[index]
            if arg == "--":
                rest += args[index:]
                break
            name = arg.split("=", 1)[0]
            if name in takes_value:
                hoisted.append(arg)
                if takes_value[name] and "=" not in arg and index + 1 < len(args):
                    hoisted.append(args[index + 1])
                    index += 1
            else:
                rest.append(arg)
            index += 1
        return hoisted + rest


def fail(message: str, code: int) -> NoReturn:
    """Print one line on stderr and exit with ``code``."""
    error(" ".join(str(message).split("\n")[0].split()) if message else "error")
    sys.exit(int(code))


def error(message: str) -> None:
    typer.echo(f"retryq: error: {message}", err=True)


def warn(message: str) -> None:
    typer.echo(f"retryq: warning: {message}", err=True)


def warn_invalid(queue: RetryQueue, consequence: str = "left as it is") -> None:
    """Name on stderr each record of the queue that is not a valid job: once, by every command that reads the queue."""
    for problem in queue.store.invalid():
        warn(f"{problem}; {consequence}")


app = typer.Typer(
    cls=_Group,
    name="retryq",
    help="A file-backed deferred retry queue driven by cron.\n\n"
    "Schedule a re-run of a fetch workflow for a client and date; `retryq process`, run by cron "
    "every 5 minutes, runs it when due, again while data is still missing, and gives up after "
    "max attempts.",
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: paragraphs rewrapped, examples kept as written (\b), no rich import
)

# -- options ---------------------------------------------------------------------------------------

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
WorkflowOption = Annotated[
    str | None,
    typer.Option(
        "--workflow", "-w", metavar="NAME", help="A workflow named in the config [default: the default workflow]."
    ),
]
WorkflowFilterOption = Annotated[
    str | None, typer.Option("--workflow", "-w", metavar="NAME", help="Only jobs of this workflow.")
]
ClientFilterOption = Annotated[str | None, typer.Option("--client", metavar="CLIENT", help="Only jobs of this client.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings, errors and the summary.")]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Also debug lines.")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Show what would be done; change nothing.")]
ChainsSinceOption = Annotated[
    str | None,
    typer.Option(
        "--since",
        metavar="DURATION",
        help="Only chains scheduled within this long: 30 (days), 30d, 12h [default: all].",
    ),
]


@dataclass(frozen=True)
class GlobalOptions:
    config: Path | None = None
    queue: str | None = None
    lock_timeout: timedelta | None = None


def open_queue(ctx: typer.Context) -> RetryQueue:
    """The queue the global options designate, with the configuration they designate."""
    from ..queue import RetryQueue
    from ..settings.config import load_config

    options = ctx.find_root().obj
    if not isinstance(options, GlobalOptions):  # a command invoked without the root callback (tests of one command)
        options = GlobalOptions()
    settings = load_config(options.config).with_overrides(queue=options.queue, lock_timeout=options.lock_timeout)
    return RetryQueue(config=settings)


def echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"retryq {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            metavar="PATH",
            help="Configuration file [default: $RETRYQ_CONFIG, else ./retryq.toml, else ./pyproject.toml's "
            "[tool.retryq]].",
            show_default=False,
        ),
    ] = None,
    queue: Annotated[str | None, setting_option(declared.queue)] = None,
    queue_file: Annotated[
        Path | None,
        typer.Option(
            "--queue-file", metavar="PATH", help="The queue file (as --queue, for a file).", show_default=False
        ),
    ] = None,
    lock_timeout: Annotated[timedelta | None, setting_option(declared.lock_timeout)] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """A file-backed deferred retry queue driven by cron.

    The options below may also be given after the command: `retryq list --config X` is `retryq --config X list`.
    """
    if queue is not None and queue_file is not None:
        raise typer.BadParameter("give --queue or --queue-file, not both")
    ctx.obj = GlobalOptions(config, queue or (str(queue_file) if queue_file is not None else None), lock_timeout)
    if ctx.invoked_subcommand is None:  # `retryq` alone: the help, as a usage error
        typer.echo(ctx.get_help(), err=True)
        raise typer.Exit(ExitCode.USAGE)


def main() -> None:
    """Entry point of the ``retryq`` console script."""
    try:
        app()
    finally:
        gc.freeze()  # what the command made is not walked once more by the interpreter's last collection
