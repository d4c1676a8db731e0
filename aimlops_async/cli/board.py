"""The live progress display: one line per platform, totals and elapsed time, drawn on stderr with rich."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping
from types import TracebackType

import attrs
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from .render import duration, state_text

__all__ = ["Board", "Row"]

_REFRESH_SECONDS = 0.125
# Lines the board keeps for its header, bar and totals, around the platform lines.
_CHROME_LINES = 6
_MIN_ROWS = 5


@attrs.define
class Row:
    """What the board knows about one platform (or one release being waited for)."""

    index: int
    name: str
    release_id: str | None = None
    state: str | None = None
    note: str | None = None
    started: float | None = None
    changed: float | None = None
    finished: float | None = None
    ok: bool | None = None
    spinner: Spinner = attrs.field(factory=lambda: Spinner("dots", style="cyan"))

    @property
    def active(self) -> bool:
        return self.started is not None and self.finished is None


class Board:
    """A live table of platforms, refreshed from the event loop (never from another thread).

    ``async with Board(console, names, title=...) as board:`` then ``board.update(index, ...)``
    as things happen. When ``enabled`` is False nothing is drawn and updates only keep the record.
    For more platforms than the terminal has lines, the active ones are shown with the most
    recently finished, and a line counts the rest. On a console that is not a terminal (progress
    forced into a file or pipe) each change is written as one plain line instead.
    """

    def __init__(
        self,
        console: Console,
        names: Iterable[str],
        *,
        title: str,
        enabled: bool = True,
        transient: bool = True,
        notes: Mapping[str, str] | None = None,
    ) -> None:
        self.console = console
        self.title = title
        self.enabled = enabled
        self.transient = transient
        self.rows = [Row(index, name) for index, name in enumerate(names)]
        self.notes = dict(notes or {})
        self.totals: dict[str, int] | None = None
        self.started = time.monotonic()
        self.stopped: float | None = None
        self._live: Live | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._lines = enabled and not console.is_terminal

    # ------------------------------------------------------------------ updates

    def update(
        self,
        index: int,
        *,
        release_id: str | None = None,
        state: str | None = None,
        note: str | None = None,
        done: bool = False,
        ok: bool | None = None,
    ) -> None:
        row = self.rows[index]
        now = time.monotonic()
        changed = False
        if row.started is None:
            row.started = now
        if release_id:
            row.release_id = release_id
        if state is not None and str(state) != row.state:
            row.state = str(state)
            row.changed = now
            changed = True
        if note is not None:
            row.note = note
        if done and row.finished is None:
            row.finished = now
            row.ok = ok
            changed = True
        if changed and self._lines:
            self._write_line(row)

    def _write_line(self, row: Row) -> None:
        line = Text.assemble(
            (f"{duration(self.elapsed):>7}  ", "dim"), (row.name, ""), ("  ", ""),
            state_text(row.state or ""),
        )
        if row.finished is not None:
            line.append("  done" if row.ok else "  failed", style="green" if row.ok else "red")
        note = self._note(row)
        if note:
            line.append("  ")
            line.append(note)
        self.console.print(line, soft_wrap=True)

    def set_totals(self, totals: Mapping[str, int]) -> None:
        self.totals = dict(totals)

    @property
    def elapsed(self) -> float:
        end = self.stopped if self.stopped is not None else time.monotonic()
        return end - self.started

    # ------------------------------------------------------------------ drawing

    def __rich__(self) -> RenderableType:
        return self.render()

    def render(self) -> RenderableType:
        finished = sum(1 for row in self.rows if row.finished is not None)
        total = len(self.rows)
        header = Text.assemble(
            (self.title, "bold"), ("  ", ""), (duration(self.elapsed), "dim"),
        )
        bar = Table.grid(padding=(0, 1))
        bar.add_row(
            ProgressBar(total=max(total, 1), completed=finished, width=40),
            Text(f"{finished}/{total} done", style="dim"),
        )
        return Group(header, bar, self._rows_table(), self._totals_text())

    def _visible_rows(self) -> tuple[list[Row], int]:
        room = max(_MIN_ROWS, self.console.size.height - _CHROME_LINES)
        if len(self.rows) <= room:
            return self.rows, 0
        active = [row for row in self.rows if row.active]
        done = sorted(
            (row for row in self.rows if row.finished is not None),
            key=lambda row: row.finished or 0.0, reverse=True,
        )
        # Failures stay in view: they are what the user has to act on.
        failed = [row for row in done if row.ok is False]
        chosen: list[Row] = []
        for group in (failed, active, done):
            for row in group:
                if len(chosen) >= room:
                    break
                if row not in chosen:
                    chosen.append(row)
        chosen.sort(key=lambda row: row.index)
        return chosen, len(self.rows) - len(chosen)

    def _rows_table(self) -> Table:
        # Fixed widths for what identifies a platform; the note gets whatever is left.
        name_width = min(40, max((len(row.name) for row in self.rows), default=8))
        table = Table.grid(padding=(0, 2), expand=True)
        table.add_column(width=1)
        table.add_column(no_wrap=True, min_width=name_width)
        table.add_column(no_wrap=True, style="dim", width=13)
        table.add_column(no_wrap=True, min_width=10)
        table.add_column(justify="right", no_wrap=True, style="dim", min_width=6)
        table.add_column(overflow="ellipsis", no_wrap=True, ratio=1)
        visible, hidden = self._visible_rows()
        now = time.monotonic()
        for row in visible:
            table.add_row(
                self._marker(row),
                Text(row.name),
                Text(_short_id(row.release_id)),
                state_text(row.state or ("waiting" if row.started is None else "starting")),
                duration((row.finished or now) - row.started) if row.started is not None else "",
                self._note(row),
            )
        if hidden:
            table.add_row("", Text(f"… {hidden} more", style="dim"), "", "", "",
                          Text(self._hidden_summary(visible), style="dim"))
        return table

    def _hidden_summary(self, visible: list[Row]) -> str:
        shown = {row.index for row in visible}
        hidden = [row for row in self.rows if row.index not in shown]
        counts = (
            ("not started", sum(1 for row in hidden if row.started is None)),
            ("in progress", sum(1 for row in hidden if row.active)),
            ("done", sum(1 for row in hidden if row.ok)),
            ("failed", sum(1 for row in hidden if row.ok is False)),
        )
        return ", ".join(f"{count} {label}" for label, count in counts if count)

    def _marker(self, row: Row) -> RenderableType:
        if row.finished is not None:
            return Text("✓", style="green") if row.ok else Text("✗", style="red")
        if row.started is None:
            return Text("·", style="dim")
        return row.spinner

    def _note(self, row: Row) -> Text:
        extra = self.notes.get(row.name)
        parts = [part for part in (row.note, extra) if part]
        style = "red" if row.ok is False and not extra else "dim"
        return Text(" · ".join(parts), style=style)

    def _totals_text(self) -> Text:
        if self.totals is not None:
            counts = self.totals
        else:
            counts = {
                "total": len(self.rows),
                "in_progress": sum(1 for row in self.rows if row.active),
                "done": sum(1 for row in self.rows if row.ok),
                "failed": sum(1 for row in self.rows if row.ok is False),
            }
        text = Text()
        for key, value in counts.items():
            if text:
                text.append("  ·  ", style="dim")
            style = "red" if key == "failed" and value else ("green" if key in ("deployed", "done") else "")
            text.append(f"{key.replace('_', ' ')} ", style="dim")
            text.append(str(value), style=style or "bold")
        return text

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Board:
        self.started = time.monotonic()
        if self._lines:
            self.console.print(Text(self.title, style="bold"))
        elif self.enabled:
            self._live = Live(
                get_renderable=self.render, console=self.console, auto_refresh=False,
                transient=self.transient, redirect_stdout=False, redirect_stderr=True,
            )
            self._live.start(refresh=True)
            self._ticker = asyncio.get_running_loop().create_task(self._tick())
        return self

    async def _tick(self) -> None:
        live = self._live
        while live is not None:
            await asyncio.sleep(_REFRESH_SECONDS)
            live.refresh()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stopped = time.monotonic()
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        live, self._live = self._live, None
        if live is not None:
            live.refresh()
            live.stop()


def _short_id(release_id: str | None) -> str:
    if not release_id:
        return ""
    return release_id if len(release_id) <= 12 else release_id[:12] + "…"

