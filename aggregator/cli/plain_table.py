"""Tables into a pipe or a file, written directly: the same characters Rich writes for them
(tables.py's layout: fixed column widths, a heavy header box, long cells cut with an
ellipsis or folded onto more lines), without Rich.

Rich measures and renders every cell through several layers: 0.8 ms a row, which made
`aggregator feeds` on 300 feeds cost 0.3 s, and importing Rich cost every listing 25 ms more.
This handles what tables.py gives it into anything but a terminal, as long as every
character takes one cell (Latin, Greek, Cyrillic, common punctuation) and the table fits
its width; `render` answers None for anything else (wide or combining characters, a tab,
a terminal, a table too wide), and Rich draws it. tests/test_plain_table.py compares the
two on many tables.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Sequence

# Characters one cell wide, whose width Rich measures the same way.
_SINGLE_CELL_RANGES = (
    (0x20, 0x7E),
    (0xA0, 0xAC),  # not the soft hyphen, 0xAD
    (0xAE, 0x2FF),
    (0x370, 0x482),  # Greek, Cyrillic (not its combining marks, 0x483-0x489)
    (0x48A, 0x52F),
    (0x2010, 0x2027),  # dashes, quotes, bullets, the ellipsis
    (0x2030, 0x205E),
)
_SINGLE_CELLS = frozenset(
    chr(code) for start, end in _SINGLE_CELL_RANGES for code in range(start, end + 1)
)
_WORD = re.compile(r"\s*\S+\s*")
_TRAILING_SPACE = re.compile(r"\s+$")
# Environment variables that make Rich treat a pipe as a terminal, or size it otherwise.
_RICH_ENVIRONMENT = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS")
ELLIPSIS = "…"


def render(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    widths: Sequence[int],
    folded: Sequence[bool],
    *,
    title: str | None,
    total: int,
    encoding: str | None,
) -> str | None:
    """The table as Rich prints it to a console `total` cells wide that is not a terminal,
    or None when this module does not draw it the same (the caller asks Rich). `widths`
    are the columns' contents (Rich's padding adds one cell each side); `folded` columns
    wrap their cells onto more lines, the others cut them with an ellipsis."""
    if any(name in os.environ for name in _RICH_ENVIRONMENT):
        return None
    if not (encoding or "utf-8").lower().startswith("utf"):
        return None  # Rich draws the box in ASCII then
    inner = sum(width + 2 for width in widths) + len(widths) + 1
    cells = [*headers, *(cell for row in rows for cell in row), title or ""]
    if inner > total or not all(_SINGLE_CELLS.issuperset(cell.replace("\n", "")) for cell in cells):
        return None
    if title and ("\n" in title or len(title.rstrip()) > inner):
        return None
    out: list[str] = []
    if title:  # Rich writes no line for an empty title
        text = title.rstrip()
        left = (inner - len(text)) // 2
        out.append(" " * left + text + " " * (inner - left - len(text)))
    out.append(_rule("┏", "━", "┳", "┓", widths))
    out.extend(_row(headers, widths, folded, "┃", bottom=True))
    out.append(_rule("┡", "━", "╇", "┩", widths))
    for row in rows:
        out.extend(_row(row, widths, folded, "│"))
    out.append(_rule("└", "─", "┴", "┘", widths))
    return "\n".join(out) + "\n"


def _rule(left: str, line: str, cross: str, right: str, widths: Sequence[int]) -> str:
    return left + cross.join(line * (width + 2) for width in widths) + right


def _row(
    cells: Sequence[str],
    widths: Sequence[int],
    folded: Sequence[bool],
    bar: str,
    *,
    bottom: bool = False,
) -> list[str]:
    """A row's lines: its cells top-aligned (a header's bottom-aligned, as Rich does)."""
    columns = [
        _lines(cell, width, fold) for cell, width, fold in zip(cells, widths, folded, strict=True)
    ]
    height = max(len(lines) for lines in columns)
    if height == 1:  # most rows: no padding to add
        return [bar + bar.join(f" {lines[0]} " for lines in columns) + bar]
    for lines, width in zip(columns, widths, strict=True):
        blank = [" " * width] * (height - len(lines))
        lines[:] = [*blank, *lines] if bottom else [*lines, *blank]
    return [bar + bar.join(f" {lines[n]} " for lines in columns) + bar for n in range(height)]


def _lines(text: str, width: int, fold: bool) -> list[str]:
    """A cell's lines, each exactly `width` cells: Rich's Text.wrap, left-justified."""
    if len(text) <= width and "\n" not in text:  # most cells: as they are
        return [text.ljust(width)]
    lines: list[str] = []
    for line in text.split("\n"):
        for piece in _folded(line, width) if fold else [line]:
            cut = piece[:width] if fold else piece[: width - 1] + ELLIPSIS
            lines.append((cut if len(piece) > width else piece).ljust(width))
    return lines


# Cached: a column of advice repeats the same few texts (`feeds`: 60 distinct for 300 feeds).
@functools.lru_cache(maxsize=512)
def _folded(line: str, width: int) -> tuple[str, ...]:
    """rich._wrap.divide_line, then Text.rstrip_end, for one-cell characters."""
    breaks: list[int] = []
    offset = 0
    for match in _WORD.finditer(line):
        start, word = match.start(), match.group(0)
        length = len(word.rstrip())
        if width - offset >= length:
            offset += len(word)
        elif length > width:
            chunks = [word[n : n + width] for n in range(0, len(word), width)]
            for number, chunk in enumerate(chunks):
                if start:
                    breaks.append(start)
                if number == len(chunks) - 1:
                    offset = len(chunk)
                else:
                    start += len(chunk)
        elif offset and start:
            breaks.append(start)
            offset = len(word)
    pieces = [line[a:b] for a, b in zip([0, *breaks], [*breaks, len(line)], strict=True)]
    return tuple(_rstrip_end(piece, width) for piece in pieces)


def _rstrip_end(piece: str, width: int) -> str:
    excess = len(piece) - width
    if excess > 0 and (space := _TRAILING_SPACE.search(piece)):
        return piece[: len(piece) - min(len(space.group(0)), excess)]
    return piece
