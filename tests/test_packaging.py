"""Packaging: every folder of the library is a package that a wheel will carry, with its type marker."""

from __future__ import annotations

from pathlib import Path

LIBRARY = Path(__file__).resolve().parent.parent / "aimlops_async"


def test_every_folder_with_code_is_a_package_the_wheel_includes() -> None:
    # pyproject finds packages by their __init__.py: a folder without one works in an editable
    # install and silently vanishes from a wheel.
    folders = {path.parent for path in LIBRARY.rglob("*.py") if "__pycache__" not in path.parts}
    assert sorted(str(f.relative_to(LIBRARY)) for f in folders if not (f / "__init__.py").is_file()) == []


def test_the_package_is_marked_typed() -> None:
    assert (LIBRARY / "py.typed").is_file()
