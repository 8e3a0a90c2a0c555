"""How a command's ``--help`` reads: a usage line as the command is typed, arguments by their placeholder.

typer writes ``retryq schedule [OPTIONS] {client} {date} [delay]`` and ``client <str>``; a user types
``retryq schedule CLIENT DATE [DELAY]``. Every command of the application is built with :class:`Command`.
"""

from __future__ import annotations

__all__ = ["Command"]

from typing import Any

from typer.core import TyperCommand


def placeholder(param: Any) -> str:
    """An argument as the usage line shows it: ``CLIENT``, ``[DELAY]``, ``FILE...``."""
    name = str(param.metavar or (param.name or "").upper())
    if getattr(param, "nargs", 1) != 1:
        name += "..."
    return name if param.required else f"[{name}]"


class Command(TyperCommand):
    """A typer command whose help shows arguments as they are typed, without Python type names."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        return pieces + [placeholder(param) for param in self.get_params(ctx) if param.param_type_name == "argument"]

    def format_options(self, ctx: Any, formatter: Any) -> None:
        params = self.get_params(ctx)
        arguments = [
            (placeholder(param).strip("[]"), getattr(param, "help", None) or "")
            for param in params
            if param.param_type_name == "argument"
        ]
        options = [
            record
            for param in params
            if param.param_type_name == "option" and (record := param.get_help_record(ctx)) is not None
        ]
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)
