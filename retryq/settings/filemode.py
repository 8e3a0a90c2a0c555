"""A file's permission bits as a setting: ``dashboard_mode = 0o640`` or ``"0640"``."""

from __future__ import annotations

__all__ = ["FileMode"]

import re

from .kinds import Invalid, Kind, said


class FileMode(Kind[int]):
    """Permission bits: a TOML octal number (``0o640``) or a string of three octal digits (``"0640"``)."""

    name = "file mode"
    metavar = "MODE"

    def parse(self, value: object) -> int:
        if isinstance(value, str) and re.fullmatch(r"(0o?)?[0-7]{3}", value):
            value = int(value[-3:], 8)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o777:
            raise Invalid(f'expected a file mode such as "0640" or 0o640, not {said(value)}')
        return value

    def bounds(self) -> str:
        return "0o000 to 0o777"

    def show(self, value: object) -> str:
        return f'"{value:04o}"' if isinstance(value, int) else str(value)
