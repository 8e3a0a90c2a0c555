"""Command-line options that override a setting, built from its declaration (names, placeholder, parser,
bounds, help and default), so that an option and its key in retryq.toml cannot drift apart."""

from __future__ import annotations

__all__ = ["NO_OVERRIDES", "Overrides", "overriding", "parser", "setting_option"]

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import typer

from ..settings.kinds import Kind
from ..settings.setting import Scope, Setting

T = TypeVar("T")
R = TypeVar("R")


def parser(kind: Kind[Any]) -> Callable[[str], Any]:
    """The option's value read as ``kind`` reads it in a file; a refusal is a usage error naming the option."""

    def parse(text: str) -> Any:
        try:
            return kind.parse(text)
        except ValueError as error:
            raise typer.BadParameter(str(error)) from None

    return parse


def setting_option(setting: Setting[Any], *, help: str = "", default: str = "") -> Any:  # noqa: A002 - typer's word
    """The typer option of ``setting``: ``help`` and ``default`` replace the declared ones for one command."""
    kind = setting.option_kind or setting.kind
    text = (help or setting.option_help or setting.help).rstrip(".")
    bounds = kind.bounds()
    if bounds and bounds not in text:
        text += f" ({bounds})"
    return typer.Option(
        *setting.option,
        metavar=kind.metavar,
        parser=parser(kind),
        show_default=False,
        help=f"{text} [default: {default or setting.option_default()}].",
    )


@dataclass(frozen=True)
class Overrides:
    """The settings given on the command line, by setting (options left out are not there)."""

    values: Mapping[Setting[Any], Any] = field(default_factory=dict)

    def get(self, setting: Setting[T]) -> T | None:
        value: T | None = self.values.get(setting)
        return value

    def top_level(self) -> dict[str, Any]:
        """The top-level settings given, by their attribute of Config (for ``Config.with_overrides``)."""
        return {setting.name: value for setting, value in self.values.items() if setting.scope is Scope.TOP}


NO_OVERRIDES = Overrides()


def overriding(*settings: Setting[Any]) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Give a command the option of each of ``settings``, in place of its ``overrides`` parameter, which
    then receives the values given as :class:`Overrides`.

    Commands that share settings (``process`` and ``worker``) name them once here instead of
    repeating their options; typer reads the options from the signature this writes.
    """

    import functools
    import inspect  # here: `retryq --help` and most commands never need it

    def decorate(command: Callable[..., R]) -> Callable[..., R]:
        signature = inspect.signature(command, eval_str=True)
        added = [
            inspect.Parameter(
                setting.name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=None,
                annotation=Annotated[Any, setting_option(setting)],
            )
            for setting in settings
        ]
        params = [new for old in signature.parameters.values() for new in (added if old.name == "overrides" else [old])]

        @functools.wraps(command)
        def run(*args: Any, **kwargs: Any) -> R:
            given = {setting: kwargs.pop(setting.name) for setting in settings}
            overrides = Overrides({setting: value for setting, value in given.items() if value is not None})
            return command(*args, overrides=overrides, **kwargs)

        run.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        run.__annotations__ = {param.name: param.annotation for param in params}
        return run

    return decorate
