"""The typer application, its error handling, and the options every command shares."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

from .. import __version__
from ..config import load_config
from ..errors import ExitCode, RetryqError
from ..queue import RetryQueue

try:  # typer >= 0.25 carries its own copy of click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older typer, on the click package
    from click.exceptions import (  # type: ignore[import-not-found, no-redef, unused-ignore]
        ClickException,
        NoArgsIsHelpError,
        UsageError,
    )


#: The order of `retryq --help`: the daily loop first, then inspection and repair.
COMMAND_ORDER = [
    "schedule",
    "report",
    "process",
    "run",
    "worker",
    "list",
    "show",
    "cancel",
    "requeue",
    "prune",
    "stats",
    "doctor",
    "dashboard",
]


class _Group(TyperGroup):
    """Turns every failure into one line on stderr and a documented exit code."""

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        return sorted(
            names, key=lambda name: COMMAND_ORDER.index(name) if name in COMMAND_ORDER else len(COMMAND_ORDER)
        )

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except NoArgsIsHelpError as error:
            typer.echo(error.format_message(), err=True)  # `retryq` alone: the help, as usage
            sys.exit(ExitCode.USAGE)
        except UsageError as error:
            command = error.ctx.command_path if error.ctx is not None else "retryq"
            fail(f"{error.format_message()} (see '{command} --help')", ExitCode.USAGE)
        except ClickException as error:
            fail(error.format_message(), error.exit_code or ExitCode.USAGE)
        except RetryqError as error:
            fail(str(error), error.exit_code)
        except (KeyboardInterrupt, typer.Abort):
            fail("interrupted", ExitCode.SIGINT)
        except BrokenPipeError:
            sys.exit(ExitCode.FAILURE)  # the reader went away (`retryq list | head`): nothing to report
        except Exception as error:  # the promise is "never a traceback": say what broke, in one line
            if os.environ.get("RETRYQ_DEBUG"):
                raise
            fail(
                f"internal error: {type(error).__name__}: {error} (set RETRYQ_DEBUG=1 for a traceback)",
                ExitCode.SOFTWARE,
            )
        code = result if isinstance(result, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


def fail(message: str, code: int) -> NoReturn:
    """Print one line on stderr and exit with ``code``."""
    first_line = " ".join(str(message).split("\n")[0].split()) if message else "error"
    error(first_line)
    sys.exit(int(code))


def error(message: str) -> None:
    typer.echo(f"retryq: error: {message}", err=True)


app = typer.Typer(
    cls=_Group,
    name="retryq",
    help="A file-backed deferred retry queue driven by cron.\n\n"
    "Schedule a re-run of a fetch workflow for a client and date; `retryq process`, run by cron "
    "every 5 minutes, runs it when due, again while data is still missing, and gives up after "
    "max attempts.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: paragraphs rewrapped, examples kept as written (\b), no rich import
)

# -- shared options ------------------------------------------------------------------------------

QueueFileOption = Annotated[
    Path | None,
    typer.Option(
        "--queue-file",
        help="Queue file [default: $RETRYQ_QUEUE_FILE, else queue_file of the config, else .retry-queue.json].",
        show_default=False,
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Configuration file [default: $RETRYQ_CONFIG, else ./retryq.toml, else ./pyproject.toml's [tool.retryq]].",
        show_default=False,
    ),
]
LockTimeoutOption = Annotated[
    float | None,
    typer.Option(
        "--lock-timeout", help="Seconds to wait for the queue lock before exiting 75 [default: 30].", min=0, max=86400
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
WorkflowOption = Annotated[
    str | None, typer.Option("--workflow", "-w", help="A workflow named in the config [default: the default workflow].")
]
WorkflowFilterOption = Annotated[str | None, typer.Option("--workflow", "-w", help="Only jobs of this workflow.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings, errors and the summary.")]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Also debug lines.")]


def open_queue(queue_file: Path | None, config: Path | None, lock_timeout: float | None = None) -> RetryQueue:
    """The queue the options designate, with the configuration they designate."""
    settings = load_config(config).with_overrides(
        queue_file=queue_file,
        lock_timeout=timedelta(seconds=lock_timeout) if lock_timeout is not None else None,
    )
    return RetryQueue(config=settings)


def echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"retryq {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """A file-backed deferred retry queue driven by cron."""


def main() -> None:
    """Entry point of the ``retryq`` console script."""
    app()
