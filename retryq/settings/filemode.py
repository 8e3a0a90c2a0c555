"""A file's permission bits as a setting: ``dashboard_mode = 0o640`` or ``"0640"``."""

from __future__ import annotations

__all__ = ["FileMode", "parse_file_mode"]

import re
from typing import Annotated, Any

from pydantic import PlainValidator


def parse_file_mode(value: Any) -> int:
    """Permission bits from a TOML octal number (``0o640``) or a string of three octal digits (``"0640"``)."""
    if isinstance(value, str) and re.fullmatch(r"(0o?)?[0-7]{3}", value):
        value = int(value[-3:], 8)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o777:
        raise ValueError(f'expected a file mode such as "0640" or 0o640, not {value!r}')
    return value


FileMode = Annotated[int, PlainValidator(parse_file_mode)]
