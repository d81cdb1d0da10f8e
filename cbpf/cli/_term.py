"""Where the commands write. In a terminal with rich installed (the cbpf[cli] extra), live views redraw in place;
anywhere else (a pipe, a file, no rich) each view is printed as plain lines. --json prints one JSON object per line.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Table:
    title: str
    columns: Sequence[str]
    rows: list[Sequence[Any]] = field(default_factory=list)
    right: Sequence[bool] = ()  # per column: right-aligned (numbers)


@dataclass
class Text:
    title: str
    text: str


def width() -> int:
    return max(20, shutil.get_terminal_size((100, 24)).columns)


def height() -> int:
    return max(5, shutil.get_terminal_size((100, 24)).lines)


def plain_table(table: Table, limit: int | None = None) -> str:
    cells = [[str(c) for c in row] for row in table.rows]
    widths = [len(c) for c in table.columns]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    right = list(table.right) + [False] * (len(table.columns) - len(table.right))

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right)]
        text = "  ".join(parts).rstrip()
        return text if limit is None else text[:limit]

    out = [table.title] if table.title else []
    out.append(line(list(table.columns)))
    out += [line(row) for row in cells]
    return "\n".join(out)


class Screen:
    """live: redraw views in place (a terminal with rich); json: JSON lines; else plain lines."""

    def __init__(self, json_mode: bool = False, live: bool = True, *, start: bool = True) -> None:
        self.json = json_mode
        self.tty = sys.stdout.isatty()
        self._live: Any = None
        self._wants_live = live and self.tty and not json_mode
        if start:
            self.start()

    def start(self) -> None:
        """Starts the live view (a terminal with rich): what is printed to the terminal after this is redrawn."""
        if not self._wants_live or self._live is not None:
            return
        try:
            import rich.console
            import rich.live
        except ImportError:  # without the cli extra: plain lines, which work everywhere
            self._wants_live = False
            return
        self._live = rich.live.Live(console=rich.console.Console(), auto_refresh=False, redirect_stdout=False,
                                    redirect_stderr=False)
        self._live.start()

    @property
    def live(self) -> bool:
        return self._live is not None

    def emit(self, obj: Any) -> None:
        sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    def line(self, text: str) -> None:
        if self._live is not None:  # above the live view, which redraws below it
            self._live.console.print(text, markup=False, highlight=False, no_wrap=True, overflow="ellipsis")
            return
        if self.tty:
            text = text[: width()]  # a narrow terminal: cut, rather than wrap into a mess
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def show(self, blocks: Sequence[Any], header: str = "") -> None:
        """One view: tables and texts, redrawn in place when live, else printed after one another."""
        if self._live is not None:
            self._live.update(self._rich_group(blocks, header), refresh=True)
            return
        parts = [header] if header else []
        limit = width() if self.tty else None
        for block in blocks:
            if isinstance(block, Table):
                parts.append(plain_table(block, limit))
            else:
                parts.append((block.title + "\n" if block.title else "") + block.text)
        sys.stdout.write("\n\n".join(parts) + "\n\n")
        sys.stdout.flush()

    def _rich_group(self, blocks: Sequence[Any], header: str) -> Any:
        import rich.console
        import rich.table
        import rich.text

        items: list[Any] = [rich.text.Text(header, style="bold")] if header else []
        for i, block in enumerate(blocks):
            if i or header:
                items.append(rich.text.Text(""))
            if isinstance(block, Table):
                if block.title:  # above the table, not its title: a narrow table would wrap it
                    items.append(rich.text.Text(block.title, style="bold", no_wrap=True, overflow="ellipsis"))
                t = rich.table.Table(expand=False)
                right = list(block.right) + [False] * (len(block.columns) - len(block.right))
                for i, (name, r) in enumerate(zip(block.columns, right)):
                    # numbers keep their width in a narrow terminal; text columns give way (ellipsis)
                    widest = max((len(str(row[i])) for row in block.rows), default=0) if r else None
                    t.add_column(name, justify="right" if r else "left", overflow="ellipsis", no_wrap=True,
                                 min_width=widest)
                for row in block.rows:
                    t.add_row(*(str(c) for c in row))
                items.append(t)
            else:
                if block.title:
                    items.append(rich.text.Text(block.title, style="bold"))
                items.append(rich.text.Text(block.text, no_wrap=True, overflow="ellipsis"))
        return rich.console.Group(*items)

    def close(self) -> None:
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()
