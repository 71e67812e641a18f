"""Rows -> table, JSON, NDJSON or CSV on stdout. JSON output is stable: keys are column names.

Stored text came from the network, so none of it reaches a terminal raw: table cells and CSV
shown on a terminal are escaped (`sanitize.terminal_text`: ESC as `\\x1b`, CSI as `\\u009b`);
JSON and NDJSON always write every control character as a JSON escape (`sanitize.escaped_json`),
which any reader decodes back to the exact data; CSV into a file or a pipe is the raw data.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from aggregator.cli import plain_table
from aggregator.sanitize import escaped_json, terminal_text

FORMATS = ("table", "json", "ndjson", "csv")
PIPE_WIDTH = 160
_ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
# Columns of long text that a narrow terminal may cut short in a table.
SHRINKABLE = frozenset({"title", "snippet", "url", "lead_url", "feeds", "summary", "text"})


def render(
    rows: Sequence[dict[str, Any]],
    fmt: str,
    *,
    out: TextIO | None = None,
    title: str | None = None,
    widths: dict[str, int] | None = None,
    columns: Sequence[str] | None = None,
    wrap: Sequence[str] = (),
) -> None:
    """`columns` picks what a table shows (the machine formats always carry every column);
    cells are cut with an ellipsis to fit the terminal, except in the `wrap` columns."""
    out = out or sys.stdout
    if fmt in ("json", "ndjson"):
        import json  # here: tables, the default, need neither it nor csv

        if fmt == "json":
            out.write(escaped_json(json.dumps(list(rows), ensure_ascii=False, indent=2)) + "\n")
        else:
            for row in rows:
                out.write(escaped_json(json.dumps(row, ensure_ascii=False)) + "\n")
    elif fmt == "csv":
        _csv(rows, out)
    else:
        if columns is not None:
            rows = [{c: row.get(c) for c in columns} for row in rows]
        _table(rows, out, title=title, widths=widths or {}, wrap=wrap)


def is_terminal(out: TextIO) -> bool:
    return hasattr(out, "isatty") and out.isatty()


def table_width(out: TextIO) -> int | None:
    """A terminal's own width; 160 columns into a pipe or file (where Rich would assume 80 and
    squeeze the text columns to nothing), unless COLUMNS says otherwise."""
    if os.environ.get("COLUMNS") or is_terminal(out):
        return None
    return PIPE_WIDTH


def _csv(rows: Sequence[dict[str, Any]], out: TextIO) -> None:
    """The raw data into a file or a pipe; on a terminal, text cells escaped (terminal_text).
    No rows is still a header (the columns the query has), so that a script reading the
    file by column name finds them, and an empty result is told from a failed one."""
    import csv

    columns = list(rows[0]) if rows else list(getattr(rows, "columns", ()))
    if not columns:
        return
    shown = is_terminal(out)

    def cell(value: Any) -> Any:
        return terminal_text(value, multiline=True) if shown and isinstance(value, str) else value

    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([cell(column) for column in columns])
    writer.writerows([cell(row.get(column)) for column in columns] for row in rows)


def _cell(value: Any) -> str:
    """Stored times shown to the minute in tables; machine formats keep them whole."""
    if value is None:
        return ""
    text = str(value)
    if _ISO_TIME.match(text):
        return text[:10] + " " + text[11:16]
    return terminal_text(text, multiline=True)


def _cells(rows: Sequence[dict[str, Any]]) -> list[list[str]]:
    """Each row's cells as shown, in the first row's column order."""
    return [[_cell(row.get(column)) for column in rows[0]] for row in rows]


def _widths(
    rows: Sequence[dict[str, Any]],
    total: int,
    caps: dict[str, int],
    flexible: set[str],
    cells: Sequence[Sequence[str]] | None = None,
) -> dict[str, int]:
    """Each column's width: short columns (ids, times, states) get what they need, up to 20;
    long text shares what is left of the terminal, none below 8. `cells`: `_cells(rows)`,
    when the caller has them."""
    shown = _cells(rows) if cells is None else cells
    natural = {
        column: max(len(column), *(len(line[n]) for line in shown))
        for n, column in enumerate(rows[0])
    }
    widths = {c: min(n, caps.get(c, 20)) for c, n in natural.items() if c not in flexible}
    room = total - sum(widths.values()) - 3 * len(natural) - 1  # borders and padding
    stretchy = [c for c in natural if c in flexible]
    for index, column in enumerate(stretchy):
        share = max(8, room // (len(stretchy) - index))
        widths[column] = min(natural[column], caps.get(column, share), share)
        room -= widths[column]
    return {column: widths[column] for column in natural}  # in the rows' column order


def _table(
    rows: Sequence[dict[str, Any]],
    out: TextIO,
    *,
    title: str | None,
    widths: dict[str, int],
    wrap: Sequence[str],
) -> None:
    """Into a pipe or a file, written directly when plain_table draws it as Rich would (0.3 s
    less for 300 feeds, and no Rich to import); on a terminal, and otherwise, by Rich."""
    total = table_width(out)
    if rows and total is not None:
        cells = _cells(rows)
        sizes = _widths(rows, total, widths, set(SHRINKABLE) | set(wrap), cells)
        drawn = plain_table.render(
            [terminal_text(column) for column in sizes],
            cells,
            list(sizes.values()),
            [column in wrap for column in sizes],
            title=None if title is None else terminal_text(title),
            total=total,
            encoding=getattr(out, "encoding", None),
        )
        if drawn is not None:
            out.write(drawn)
            return
    rich_table(rows, out, title=title, widths=widths, wrap=wrap)


def rich_table(
    rows: Sequence[dict[str, Any]],
    out: TextIO,
    *,
    title: str | None,
    widths: dict[str, int],
    wrap: Sequence[str],
) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=out, soft_wrap=False, width=table_width(out))
    if not rows:
        console.print("(no rows)")
        return
    # Every cell, header and title is Text, never a str: Rich would read "[/b]" in a
    # feed's headline as markup (and crash) and "[link=...]" as a terminal hyperlink.
    table = Table(
        title=None if title is None else Text(terminal_text(title)),
        show_lines=False,
        header_style="bold",
    )
    flexible = set(SHRINKABLE) | set(wrap)
    for column, width in _widths(rows, console.width, widths, flexible).items():
        table.add_column(
            Text(terminal_text(column)),
            min_width=width,
            max_width=width,
            overflow="fold" if column in wrap else "ellipsis",
            no_wrap=column not in wrap,
        )
    for row in rows:
        table.add_row(*(Text(_cell(v)) for v in row.values()))
    console.print(table)
