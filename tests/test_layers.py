"""The layers of DESIGN.md, read from the source: no import cycle, and no layer imports one above it.

Imports are read by parsing every module (``TYPE_CHECKING`` blocks and imports inside functions
included), so a cycle hidden from the interpreter by a deferred import is still found.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "aimlops_async"
NAME = "aimlops_async"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports, wherever the import statement stands."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # "from . import x" names a submodule, or an attribute of the module ``stem``.
            targets = [
                f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in known else stem
                for alias in node.names
            ]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and target.startswith(NAME):
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: imported_modules(name, path, known) for name, path in found.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the chain of modules, or None."""
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> list[str] | None:
        if module in visiting:
            return [*visiting[visiting.index(module):], module]
        if module in done:
            return None
        visiting.append(module)
        for target in sorted(graph.get(module, ())):
            cycle = visit(target)
            if cycle:
                return cycle
        visiting.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        cycle = visit(module)
        if cycle:
            return cycle
    return None


def test_the_package_has_no_import_cycle() -> None:
    assert find_cycle(import_graph()) is None


def test_the_cycle_finder_sees_a_cycle_through_a_type_checking_import(tmp_path: Path) -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    source = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\n"
    module = tmp_path / "a.py"
    module.write_text(source, encoding="utf-8")
    found = imported_modules(f"{NAME}.pkg.a", module, {f"{NAME}.pkg.a", f"{NAME}.pkg.b"})
    assert found == {f"{NAME}.pkg.b"}


# Who may import whom (DESIGN.md, "Layers"): a module of the left never imports one on the right.
FORBIDDEN = [
    ("aimlops_async.resources", "aimlops_async.lifecycle"),
    ("aimlops_async.resources", "aimlops_async.cli"),
    ("aimlops_async.session", "aimlops_async.resources"),
    ("aimlops_async.session", "aimlops_async.lifecycle"),
    ("aimlops_async.pagination", "aimlops_async.resources"),
    ("aimlops_async.models", "aimlops_async.session"),
    ("aimlops_async.errors", "aimlops_async.session"),
    ("aimlops_async.lifecycle", "aimlops_async.client"),
    ("aimlops_async.lifecycle", "aimlops_async.cli"),
    ("aimlops_async.emulator", "aimlops_async.models"),
    ("aimlops_async.emulator", "aimlops_async.converter"),
]


@pytest.mark.parametrize(("lower", "upper"), FORBIDDEN, ids=[f"{a}-{b}" for a, b in FORBIDDEN])
def test_no_layer_imports_one_above_it(lower: str, upper: str) -> None:
    offenders = {
        module: sorted(target for target in targets if target == upper or target.startswith(upper + "."))
        for module, targets in import_graph().items()
        if module == lower or module.startswith(lower + ".")
    }
    assert {module: targets for module, targets in offenders.items() if targets} == {}
def _inside(module: str, *packages: str) -> bool:
    return any(module == package or module.startswith(package + ".") for package in packages)


# What the command line takes from inside the package: nothing, it uses the public API.
KNOWN_INTERNAL_IMPORTS: dict[str, list[str]] = {}


def test_the_command_line_and_contrib_use_the_public_api_only() -> None:
    """``cli`` and ``contrib`` import ``aimlops_async`` itself (and the emulator, for the
    ``emulator`` and ``demo`` commands), never its internals."""
    cli, contrib, emulator = f"{NAME}.cli", f"{NAME}.contrib", f"{NAME}.emulator"
    offenders: dict[str, list[str]] = {}
    for module, targets in import_graph().items():
        if not _inside(module, cli, contrib):
            continue
        inner = sorted(
            target for target in targets
            if target != NAME and not _inside(target, cli, contrib, emulator)
        )
        if inner:
            offenders[module] = inner
    assert offenders == KNOWN_INTERNAL_IMPORTS
