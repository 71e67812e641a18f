"""Rows -> table, JSON, NDJSON or CSV on stdout. JSON output is stable: keys are column names."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

FORMATS = ("table", "json", "ndjson", "csv")


def render(
    rows: Sequence[dict[str, Any]],
    fmt: str,
    *,
    out: TextIO | None = None,
    title: str | None = None,
    widths: dict[str, int] | None = None,
) -> None:
    out = out or sys.stdout
    if fmt == "json":
        json.dump(list(rows), out, ensure_ascii=False, indent=2)
        out.write("\n")
    elif fmt == "ndjson":
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    elif fmt == "csv":
        if rows:
            writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
    else:
        _table(rows, out, title=title, widths=widths or {})


def _table(
    rows: Sequence[dict[str, Any]], out: TextIO, *, title: str | None, widths: dict[str, int]
) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(file=out, soft_wrap=False)
    if not rows:
        console.print("(no rows)")
        return
    table = Table(title=title, show_lines=False, header_style="bold")
    for column in rows[0]:
        table.add_column(column, max_width=widths.get(column), overflow="ellipsis")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row.values()))
    console.print(table)
