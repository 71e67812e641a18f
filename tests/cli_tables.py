"""Reading the CLI's tables (rich boxes) in tests: a row's cells, by position or by column."""

from __future__ import annotations


def cells(table: str, first: str) -> list[str]:
    """The cells of the table row whose first cell is `first`."""
    for line in table.splitlines():
        parts = [cell.strip() for cell in line.replace("┃", "│").split("│")[1:-1]]
        if parts and parts[0] == first:
            return parts
    raise AssertionError(f"no row {first!r} in:\n{table}")


def row(table: str, first: str, *, header: str = "feed") -> dict[str, str]:
    """The row whose first cell is `first`, by the column names of the row starting `header`."""
    return dict(zip(cells(table, header), cells(table, first), strict=True))
