"""``python -m aimlops_async.cli``: the same as the ``aimlops`` command."""

from __future__ import annotations

import sys

from .main import main

if __name__ == "__main__":
    sys.exit(main())
