"""Human output (aligned tables, colour only on a terminal) or JSON for scripts (shapes: docs/cli.md).

rich is imported on the first table, never for `--help` or `--output json`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

JSON = "json"
TABLE = "table"
# Outside a terminal rich would wrap at 80 columns; a pipe or a file gets whole lines instead.
_PIPE_WIDTH = 240


def iso(value: Any) -> str | None:
    """A timestamp as ISO 8601 in UTC (what the JSON output uses)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(value)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    return str(value)


def seconds_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{rest:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Printer:
    """Writes one command's answer in the chosen mode."""

    def __init__(self, mode: str = TABLE) -> None:
        self.mode = mode
        self._console: Any = None

    @property
    def json(self) -> bool:
        return self.mode == JSON

    @property
    def console(self) -> Any:
        if self._console is None:
            from rich.console import Console

            terminal = sys.stdout.isatty()
            self._console = Console(
                highlight=False, soft_wrap=not terminal, width=None if terminal else _PIPE_WIDTH
            )
        return self._console

    def data(self, value: Any) -> None:
        """The JSON answer (only in JSON mode)."""
        sys.stdout.write(json.dumps(value, indent=2, default=_default, ensure_ascii=False) + "\n")
        sys.stdout.flush()

    def line(self, text: str = "", style: str | None = None) -> None:
        if self.json:
            return
        self.console.print(text, style=style, markup=False)

    def heading(self, text: str) -> None:
        self.line(text, style="bold")

    def table(
        self,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        *,
        title: str | None = None,
        empty: str = "none",
        styles: dict[str, str] | None = None,
    ) -> None:
        """An aligned table; `styles` colours a row that has a cell equal to one of its keys."""
        if self.json:
            return
        from rich.table import Table

        rows = list(rows)
        if title:
            self.heading(title)
        if not rows:
            self.line(f"  {empty}", style="dim")
            return
        table = Table(box=None, header_style="bold", pad_edge=False, padding=(0, 2, 0, 0), show_edge=False)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            cells = ["-" if cell is None or cell == "" else str(cell) for cell in row]
            style = next((s for cell in cells for value, s in (styles or {}).items() if cell == value), None)
            table.add_row(*cells, style=style)
        # Indent by two spaces to sit under the title.
        from rich.padding import Padding

        self.console.print(Padding(table, (0, 0, 0, 2), expand=False) if title else table)

    def pairs(self, items: Iterable[tuple[str, Any]], *, title: str | None = None) -> None:
        if self.json:
            return
        items = [(k, v) for k, v in items if v not in (None, "")]
        if title:
            self.heading(title)
        width = max((len(k) for k, _ in items), default=0)
        indent = "  " if title else ""
        for key, value in items:
            self.line(f"{indent}{key + ':':<{width + 1}} {value}")


STATUS_STYLES = {
    "FAILED": "red",
    "TIMED_OUT": "red",
    "ABORTED": "red",
    "Failed": "red",
    "SUCCEEDED": "green",
    "InService": "green",
    "RUNNING": "yellow",
    "PendingManualApproval": "yellow",
}
