"""The backend seam: a backend from another package plugs in by an entry point; the stores stand on record/ alone."""

from __future__ import annotations

import ast
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

import retryq
from retryq import MemoryStore
from retryq.record.errors import ConfigError, DriverMissing
from retryq.stores import Backend, Store, backend_for, known_schemes, open_store, registry

PACKAGE = Path(retryq.__file__).parent


class MemoryBackend(Backend):
    """A backend as another package would ship it: ``mem://anything`` is a fresh in-memory queue."""

    name = "mem"

    def open(self, address: str, *, lock_timeout: float, archive: bool, namespace: str | None, **options: Any) -> Store:
        return MemoryStore(archive=archive)


BACKEND = MemoryBackend()
NOT_A_BACKEND = object()


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Entry points as installed packages would declare them (without installing any)."""
    points = [
        EntryPoint(name="mem", value=f"{__name__}:BACKEND", group=registry.ENTRY_POINT_GROUP),
        EntryPoint(name="odd", value=f"{__name__}:NOT_A_BACKEND", group=registry.ENTRY_POINT_GROUP),
        EntryPoint(name="gone", value="retryq_no_such_package.backend:BACKEND", group=registry.ENTRY_POINT_GROUP),
    ]
    monkeypatch.setattr(registry, "_entry_points", lambda: points)
    monkeypatch.setattr(registry, "_loaded", {})


@pytest.mark.usefixtures("installed")
def test_a_backend_of_another_package_plugs_in_by_its_entry_point() -> None:
    assert backend_for("MEM://queue") is BACKEND
    assert isinstance(open_store("mem://queue", archive=False), MemoryStore)
    assert {"mem", "file", "postgresql"} <= set(known_schemes())


@pytest.mark.usefixtures("installed")
def test_a_broken_entry_point_is_one_line_and_exit_78() -> None:
    with pytest.raises(DriverMissing, match=r"gone://u@h: the backend for gone:// .* cannot be imported") as raised:
        backend_for("gone://u:s3cret@h")
    assert "s3cret" not in str(raised.value)
    with pytest.raises(ConfigError, match=r"is not a retryq\.stores\.Backend"):
        backend_for("odd://x")


@pytest.mark.usefixtures("installed")
def test_a_built_in_scheme_is_never_taken_over() -> None:
    assert backend_for("postgresql://u@h/db").name == "postgres"


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            found.add(module)
            found.update(f"{module}.{alias.name}" if node.module else module + alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_stores_stand_on_record_alone() -> None:
    """No lifecycle, settings or anything above: a store that retries its lost connections drives the
    retry state machine of record/ directly, never the in-process toolkit."""
    wrong = {}
    for path in sorted((PACKAGE / "stores").rglob("*.py")):
        depth = len(path.relative_to(PACKAGE / "stores").parts)  # 1: stores/x.py, 2: stores/file/x.py
        outside = {name[depth + 1 :] for name in imports_of(path) if name.startswith("." * (depth + 1))}
        allowed = ("record",)
        bad = {name for name in outside if not name.startswith(allowed) or name.startswith("record.lifecycle")}
        if bad:
            wrong[str(path.relative_to(PACKAGE))] = bad
    assert wrong == {}


def test_nothing_in_retryq_imports_the_test_suite() -> None:
    for path in PACKAGE.rglob("*.py"):
        if path.name != "testing.py":
            assert not {"pytest", "retryq.testing", ".testing", "..testing"} & imports_of(path), path
