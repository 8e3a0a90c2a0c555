"""The shape of the package, read from its source: no import cycle, a core without the CLI, readable modules."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import retryq

PACKAGE = Path(retryq.__file__).parent
#: A module may be longer only if its docstring says why (none needs to today).
MAX_LINES = 450
#: A function longer than this is two functions (declarations of options aside, none needs more).
MAX_FUNCTION_LINES = 60


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules ``name`` imports, at the top, for type hints only, or inside functions alike."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            targets.add(module)
            targets.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
    return {target for target in targets if target in known and target != name}


def test_the_package_has_no_import_cycle() -> None:
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


#: The page that draws the package's tree, in its first fenced block.
ARCHITECTURE_PAGE = PACKAGE.parent / "docs" / "architecture.md"


def drawn_layers() -> dict[str, int]:
    """The wings of the tree of docs/architecture.md (``record/``, ``queue.py``…), by line (0 for the first)."""
    text = ARCHITECTURE_PAGE.read_text(encoding="utf-8")
    block = text.split("\n```", 1)[1].split("\n", 1)[1].split("\n```", 1)[0]
    wings = [line.split()[0] for line in block.splitlines() if line.startswith("  ") and not line.startswith("   ")]
    return {wing.removesuffix("/").removesuffix(".py"): number for number, wing in enumerate(wings)}


def test_the_architecture_page_draws_every_wing_of_the_package() -> None:
    wings = {
        path.stem
        for path in PACKAGE.iterdir()
        if (path / "__init__.py").is_file() or (path.suffix == ".py" and not path.name.startswith("_"))
    }
    assert set(drawn_layers()) == wings


def test_each_wing_imports_only_itself_and_the_wings_above_it() -> None:
    known = modules()
    layers = drawn_layers()
    top = {name: name.split(".")[1] for name in known if name.count(".") >= 1 and name != "retryq.__main__"}
    wrong = [
        f"{name} imports {target}"
        for name, path in known.items()
        if name in top
        for target in imports(name, path, known)
        if target in top and layers[top[target]] > layers[top[name]]
    ]
    assert wrong == []


def test_the_core_never_imports_the_command_line() -> None:
    known = modules()
    offenders = {}
    for name, path in known.items():
        if name.startswith("retryq.cli") or name == "retryq.__main__":  # `python -m retryq` is the command
            continue
        source = path.read_text(encoding="utf-8")
        found = {target for target in imports(name, path, known) if target.startswith("retryq.cli")}
        if "import typer" in source or "from typer" in source:
            found.add("typer")
        if found:
            offenders[name] = found
    assert offenders == {}


@pytest.mark.parametrize("name", sorted(modules()))
def test_modules_stay_readable_in_one_sitting(name: str) -> None:
    path = modules()[name]
    lines = len(path.read_text(encoding="utf-8").splitlines())
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    assert lines <= MAX_LINES or "long because" in docstring, f"{path.name}: {lines} lines"


def test_functions_stay_short() -> None:
    long = [
        f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for name, path in modules().items()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


def test_every_public_name_resolves_from_the_module_the_stub_names() -> None:
    stub = ast.parse((PACKAGE / "__init__.pyi").read_text(encoding="utf-8"))
    listed = [
        (alias.asname or alias.name, node.module)
        for node in stub.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    ]
    assert len({name for name, _ in listed}) == len(listed), "a name is listed twice"
    for name, module in listed:
        assert getattr(retryq, name) is getattr(importlib.import_module(f"retryq.{module}"), name)
    assert retryq.__all__ == sorted([*(name for name, _ in listed), "__version__"])
