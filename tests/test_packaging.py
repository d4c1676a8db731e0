"""Packaging: every folder of the library is a package that a wheel will carry, with its type marker."""

from __future__ import annotations

from importlib.metadata import requires
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement

LIBRARY = Path(__file__).resolve().parent.parent / "aimlops_async"


def test_every_folder_with_code_is_a_package_the_wheel_includes() -> None:
    # pyproject finds packages by their __init__.py: a folder without one works in an editable
    # install and silently vanishes from a wheel.
    folders = {path.parent for path in LIBRARY.rglob("*.py") if "__pycache__" not in path.parts}
    assert sorted(str(f.relative_to(LIBRARY)) for f in folders if not (f / "__init__.py").is_file()) == []


def test_the_package_is_marked_typed() -> None:
    assert (LIBRARY / "py.typed").is_file()


def _orjson_marker() -> Marker:
    core = [
        Requirement(text) for text in requires("aimlops-async") or ()
        if text.startswith("orjson") and "extra ==" not in text
    ]
    assert len(core) == 1 and core[0].marker is not None
    return core[0].marker


@pytest.mark.parametrize(
    ("implementation", "machine", "installed"),
    [
        ("CPython", "x86_64", True), ("CPython", "aarch64", True), ("CPython", "AMD64", True),
        ("CPython", "arm64", True), ("CPython", "armv7l", True),
        # No orjson wheel there: installing would need a Rust toolchain, so the stdlib serves.
        ("PyPy", "x86_64", False), ("CPython", "s390x", False), ("CPython", "riscv64", False),
    ],
)
def test_orjson_is_a_dependency_exactly_where_it_has_wheels(
    implementation: str, machine: str, installed: bool
) -> None:
    environment = {"platform_python_implementation": implementation, "platform_machine": machine}
    assert _orjson_marker().evaluate(environment) is installed
