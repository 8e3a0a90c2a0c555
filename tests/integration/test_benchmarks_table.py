"""The table of docs/performance.md is exactly what benchmarks/readme_table.py makes of the committed results."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"


@pytest.fixture
def readme_table(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("readme_table")


def test_the_performance_page_table_is_regenerated_from_the_committed_results(readme_table: ModuleType) -> None:
    results = readme_table.load_results(BENCHMARKS / "results")
    assert {data["benchmark"] for data in results} >= {"startup", "schedule", "concurrent", "process", "postgres"}
    page = (ROOT / "docs" / "performance.md").read_text()
    regenerated = readme_table.rewrite(page, readme_table.render(results))
    assert regenerated == page, "docs/performance.md's table differs from benchmarks/results: run `make bench-table`"


def test_every_readme_row_names_a_measured_row(readme_table: ModuleType) -> None:
    for data in readme_table.load_results(BENCHMARKS / "results"):
        groups = {group["name"]: {row["name"] for row in group["rows"]} for group in data["groups"]}
        for entry in data["readme"]:
            assert entry["row"] in groups[entry["group"]]
            assert entry.get("versus") is None or entry["versus"] in groups[entry["group"]]
