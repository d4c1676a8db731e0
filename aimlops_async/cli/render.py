"""Human-readable output with rich: state colours, durations, and tables of models."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from enum import Enum
from typing import Any

import attrs
from rich import box
from rich.table import Table
from rich.text import Text

__all__ = ["Column", "detail_table", "duration", "fmt", "rows_table", "state_text", "when"]

STATE_STYLES = {
    "DEPLOYED": "bold green",
    "DELETED": "green",
    "FAILED": "bold red",
    "ERROR": "bold red",
    "TIMEOUT": "bold red",
    "CREATING": "yellow",
    "INSTALLING": "cyan",
    "UPDATING": "cyan",
    "DELETING": "magenta",
    "RUNNING": "green",
}


def state_text(state: Any) -> Text:
    label = fmt(state)
    return Text(label, style=STATE_STYLES.get(label.upper(), "dim" if label.islower() else ""))


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def fmt(value: Any) -> str:
    """A field value as short text: ``-`` for missing, local-free ISO time, lists joined."""
    if value is None or value == "":
        return "-"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return when(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(item) for item in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{key}={fmt(item)}" for key, item in value.items()) or "-"
    return str(value)


def when(value: datetime | None, *, seconds: bool = True) -> str:
    """A timestamp in UTC, in a form that sorts and reads well in a table."""
    if value is None:
        return "-"
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%d %H:%M:%SZ" if seconds else "%Y-%m-%d %H:%MZ")


@attrs.frozen
class Column:
    """A table column: its header and how to get the cell from an item (an attribute name or a function)."""

    header: str
    get: str | Callable[[Any], Any]
    style: str | None = None
    no_wrap: bool = False
    keep: bool = False  # never shortened: ids and names must survive copy and paste
    drop: int = 0  # when the terminal is too narrow, columns with the highest drop go first

    def cell(self, item: Any) -> Text:
        value = getattr(item, self.get, None) if isinstance(self.get, str) else self.get(item)
        if isinstance(value, Text):
            return value
        if self.header.lower() in ("state", "status"):
            return state_text(value)
        return Text(fmt(value))


def rows_table(
    columns: Sequence[Column], items: Iterable[Any], *, title: str | None = None, width: int | None = None
) -> Table:
    """A table of ``items``; with ``width``, optional columns are left out until the rest fits."""
    rows = [[column.cell(item) for column in columns] for item in items]
    widest = [
        max([len(column.header), *(row[position].cell_len for row in rows)])
        for position, column in enumerate(columns)
    ]
    shown = list(range(len(columns)))
    while width is not None and sum(widest[i] for i in shown) + 3 * (len(shown) - 1) > width:
        droppable = [i for i in shown if columns[i].drop]
        if not droppable:
            break
        shown.remove(max(droppable, key=lambda i: (columns[i].drop, i)))
    table = Table(
        title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, show_edge=False,
        pad_edge=False,
    )
    for position in shown:
        column = columns[position]
        table.add_column(
            column.header, style=column.style, no_wrap=column.no_wrap or column.keep,
            min_width=widest[position] if column.keep else None,
        )
    for row in rows:
        table.add_row(*(row[position] for position in shown))
    return table


def detail_table(model: Any, *, title: str | None = None) -> Table:
    """One model as two columns, field and value, in the model's field order."""
    table = Table(title=title, title_justify="left", show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for field in attrs.fields(type(model)):
        value = getattr(model, field.name)
        if value is None:
            continue
        cell = state_text(value) if field.name.endswith("_state") else Text(fmt(value))
        table.add_row(field.name, cell)
    return table
