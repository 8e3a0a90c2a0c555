"""Text in records and messages: what the queue can store, how it is shown, and counted nouns."""

from __future__ import annotations

__all__ = ["plural", "printable", "storable", "storable_tree", "text_problem"]

import re
from typing import Any

# Text the queue cannot hold: a lone surrogate (half of a UTF-16 pair, as JavaScript's JSON.stringify
# writes a string cut in the middle of an emoji) has no UTF-8 form, so the file could not be written
# back; a NUL ends the string wherever C reads it (an argument, a PostgreSQL text).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """What makes ``value`` impossible to store (a NUL, a lone surrogate), or None when it can be stored."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "holds a NUL character"
    return f"holds a lone surrogate \\u{ord(found.group()):04x} (half a character, not UTF-8 text)"


def printable(text: str) -> str:
    """``text`` fit for one line of a message: escaped as Python writes it when it holds a control character."""
    return text if text.isprintable() else repr(text)[1:-1]


def storable(value: str) -> str:
    """``value`` itself, when it can be stored; else ValueError saying why (a validator of text fields)."""
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def storable_tree(value: Any, where: str) -> None:
    """Raise ValueError naming the first key (``where``) whose text, or name, cannot be stored."""
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            raise ValueError(f"{where}: {problem}")
    elif isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{printable(key)}" if where else printable(key)
            problem = text_problem(key)
            if problem is not None:
                raise ValueError(f"key '{path}' {problem}")
            storable_tree(item, path)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            storable_tree(item, f"{where}.{index}")


def plural(count: int, unit: str, units: str | None = None) -> str:
    """``1 minute``, ``2 minutes``, ``0 jobs``: a count and its noun, in every message that counts.

    ``units`` is the plural when adding an "s" does not make it (``entry``, ``entries``).
    """
    return f"{count} {unit if abs(count) == 1 else units or unit + 's'}"
