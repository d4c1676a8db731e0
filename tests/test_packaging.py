"""Packaging: every folder of the library is a package that a wheel will carry, with its type marker."""

from __future__ import annotations

import re
import sys
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


def test_the_extras_install_what_their_documented_commands_need() -> None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib

    pyproject = LIBRARY.parent / "pyproject.toml"
    extras = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["optional-dependencies"]

    def names(extra: str) -> set[str]:
        return {re.split(r"[<>=;\[ ]", requirement)[0].lower() for requirement in extras[extra]}

    assert "uvicorn" in names("fastapi")  # uvicorn examples.fastapi_app:app
    assert {"shtab", "tomli"} <= names("cli")  # aimlops completion; profiles on Python 3.10
    assert {"mkdocs", "mkdocs-material", "mkdocstrings"} <= names("docs")  # mkdocs build --strict
    assert "aimlops-async" in names("test") and "docs" in extras["test"][0]  # CI builds the docs
    assert "requests" in names("bench")  # python -m benchmarks.bulk


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
