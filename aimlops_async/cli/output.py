"""Where output goes: results on stdout (tables, or JSON with --json), progress and notes on stderr."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from rich.console import Console, RenderableType
from rich.text import Text

from .board import Board
from .common import print_json

__all__ = ["Output"]

_PIPE_WIDTH = 240


class Output:
    """The output settings of one command run.

    ``json``: results as JSON on stdout, nothing else there. ``progress``: live displays and notes
    on stderr; by default only when stderr is a terminal (``--progress`` forces them,
    ``--no-progress`` turns them off).
    """

    def __init__(self, *, json_mode: bool, progress: bool | None, verbose: int = 0) -> None:
        self.json = json_mode
        self.verbose = verbose
        self.out = Console(highlight=False)
        if not self.out.is_terminal and "COLUMNS" not in os.environ:
            # Into a pipe or file, a table must not lose text to an 80-column guess.
            self.out = Console(highlight=False, width=_PIPE_WIDTH)
        self.err = Console(stderr=True, highlight=False)
        self.progress = self.err.is_terminal if progress is None else progress
        if progress and not self.err.is_terminal:
            # Forced progress into a pipe or file: plain text, no cursor movement tricks.
            self.err = Console(stderr=True, highlight=False, force_terminal=False)

    @property
    def width(self) -> int:
        """Columns available for a table on stdout."""
        return self.out.width

    def result(self, data: Any, renderable: RenderableType | None = None) -> None:
        """Print a command's result: ``data`` as JSON with --json, else ``renderable`` (or ``data``)."""
        if self.json:
            print_json(data)
        else:
            self.out.print(renderable if renderable is not None else data)

    def note(self, text: str | Text, *, style: str | None = "dim") -> None:
        """A line for the person at the terminal (stderr); silent when progress output is off."""
        if self.progress:
            self.err.print(text if isinstance(text, Text) else Text(text, style=style or ""))

    def say(self, text: str | Text | RenderableType) -> None:
        """Narrative on stdout in human mode (nothing with --json)."""
        if not self.json:
            self.out.print(text)

    def board(
        self, names: Iterable[str], *, title: str, notes: Mapping[str, str] | None = None
    ) -> Board:
        return Board(self.err, names, title=title, enabled=self.progress, notes=notes)

    def warn(self, text: str) -> None:
        """Always shown (stderr), progress or not."""
        print(f"aimlops: warning: {text}", file=sys.stderr, flush=True)
