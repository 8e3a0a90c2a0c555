"""The configuration reference in the docs is rendered from the declaration, and kept current."""

from __future__ import annotations

from pathlib import Path

import retryq
from retryq.settings.declaration import SETTINGS
from retryq.settings.reference import markdown

PAGE = Path(retryq.__file__).parents[1] / "docs" / "configuration.md"


def test_the_page_in_the_docs_is_current() -> None:
    assert PAGE.read_text(encoding="utf-8") == markdown(), "docs/configuration.md is stale: run `make config-reference`"


def test_every_key_variable_and_option_is_in_the_reference() -> None:
    text = markdown()
    for setting in SETTINGS:
        assert f"| `{setting.key}`" in text
        assert all(f"`{name}`" in text for name in (*setting.aliases, *setting.env, *setting.option))
        assert setting.help in text


def test_a_cell_never_breaks_the_table() -> None:
    rows = [line for line in markdown().splitlines() if line.startswith("| ")]
    assert {line.replace("\\|", "").count("|") for line in rows} == {8}
