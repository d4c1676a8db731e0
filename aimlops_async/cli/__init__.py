"""The ``aimlops`` command line (console script ``aimlops_async.cli:main``), on the public API only."""

from __future__ import annotations

from .main import main

__all__ = ["main"]
