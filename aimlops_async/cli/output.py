"""Where output goes: results on stdout (tables, JSON or YAML), progress and notes on stderr."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from .board import Board
from .common import print_data

__all__ = ["OUTPUT_FORMATS", "Output", "plain_table"]

OUTPUT_FORMATS = ("table", "json", "yaml")
_PIPE_WIDTH = 240


def _plain_cell(cell: object) -> str:
    text = cell.plain if isinstance(cell, Text) else str(cell)
    # One record per line, one field per tab: a value must not break either.
    return " ".join(text.split())


def plain_table(table: Table) -> str:
    """A table as lines of tab-separated cells: no rules, no padding, a header when the table has one."""
    columns = table.columns
    lines = []
    if table.show_header:
        lines.append("\t".join(_plain_cell(column.header) for column in columns))
    for row in zip(*(list(column.cells) for column in columns), strict=True):
        lines.append("\t".join(_plain_cell(cell) for cell in row))
    return "\n".join(lines)


class Output:
    """The output settings of one command run.

    ``output_format``: ``table`` (for people), ``json`` or ``yaml`` (results only on stdout, nothing
    else there; ``json`` is then true). Tables are plain, tab-separated and unpadded when stdout is
    not a terminal. ``progress``: live displays and notes on stderr; by default only when stderr is
    a terminal (``--progress`` forces them, ``--no-progress`` turns them off).
    """

    def __init__(self, *, output_format: str = "table", progress: bool | None, verbose: int = 0) -> None:
        self.format = output_format
        self.json = output_format != "table"  # machine-readable results, whichever the format
        self.verbose = verbose
        self.out = Console(highlight=False)
        self.plain = not self.out.is_terminal
        if self.plain and "COLUMNS" not in os.environ:
            # Into a pipe or file, nothing may be cut to fit an 80-column guess.
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
        """Print a command's result: ``data`` as JSON or YAML, else ``renderable`` (or ``data``)."""
        if self.json:
            print_data(data, self.format)
            return
        self._show(renderable if renderable is not None else data)

    def _show(self, renderable: Any) -> None:
        """For a person: rich at a terminal; into a pipe or file, tables and texts as plain lines."""
        if not self.plain:
            self.out.print(renderable)
        elif isinstance(renderable, Table):
            self._plain_line(plain_table(renderable))
        elif isinstance(renderable, Text):
            self._plain_line(renderable.plain.rstrip())
        elif isinstance(renderable, str):
            self._plain_line(renderable.rstrip())
        elif isinstance(renderable, Group):
            for part in renderable.renderables:
                self._show(part)
        elif isinstance(renderable, Padding):
            self._show(renderable.renderable)
        else:
            self.out.print(renderable)

    def _plain_line(self, text: str) -> None:
        self.out.file.write(text + "\n")
        self.out.file.flush()

    def note(self, text: str | Text, *, style: str | None = "dim") -> None:
        """A line for the person at the terminal (stderr); silent when progress output is off."""
        if self.progress:
            self.err.print(text if isinstance(text, Text) else Text(text, style=style or ""))

    def say(self, text: str | Text | RenderableType) -> None:
        """Narrative on stdout in human mode (nothing with --json or --output yaml)."""
        if not self.json:
            self._show(text)

    def board(
        self, names: Iterable[str], *, title: str, notes: Mapping[str, str] | None = None
    ) -> Board:
        return Board(self.err, names, title=title, enabled=self.progress, notes=notes)

    def warn(self, text: str, *, prefix: str = "warning") -> None:
        """Always shown (stderr), progress or not."""
        print(f"aimlops: {prefix}: {text}", file=sys.stderr, flush=True)
