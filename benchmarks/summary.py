"""The summary table at the top of benchmarks/README.md: each benchmark's headline figures.

Each benchmark ends by writing its headline rows (`write`): a JSON file at the path in
$BENCHMARK_SUMMARY, which `python -m benchmarks` sets, else benchmarks/results/ (not kept in
git). `python -m benchmarks` then turns the rows of the benchmarks it ran into table rows
(`table_rows`) and rewrites only the part of the README between the two markers
(`rewrite_readme`); the rows of benchmarks it did not run stay as they were, with their date.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

ENV = "BENCHMARK_SUMMARY"
RESULTS = Path(__file__).resolve().parent / "results"
START = "<!-- summary:start -->"
END = "<!-- summary:end -->"
HEADER = (
    "| benchmark | measured | ours | reference, same run | ratio | target | met | run | command |",
    "|---|---|---|---|---:|---|---|---|---|",
)
INTRO = (
    "## Summary",
    "",
    "Written by `python -m benchmarks` (`make bench`) from the figures each benchmark measured:",
    "rerun it rather than edit this table. A benchmark left out of a run keeps its earlier rows",
    "and their date (`--only NAME` updates NAME's). The ratio is ours against the reference;",
    "a **quick** run is a small size, not the one the target is about.",
)


@dataclass(frozen=True)
class Row:
    """One headline figure: ours beside its reference from the same run, and the target."""

    work: str  # what was measured
    ours: str  # our figure, with its unit
    reference: str = ""  # the reference's figure, measured in the same run
    ratio: float | None = None  # ours against the reference, as the target reads it
    target: str = ""
    met: bool | None = None  # None: no target
    command: str = ""  # the command that measured it; `write` fills in its own


def against(
    value: float | None,
    *,
    at_least: float | None = None,
    at_most: float | None = None,
    unit: str = "x",
) -> tuple[str, bool | None]:
    """(target, met) for `value`: `Row(..., ratio, *against(ratio, at_least=3))`."""
    if at_least is not None:
        return f">= {at_least:g}{unit}", None if value is None else value >= at_least
    if at_most is not None:
        return f"<= {at_most:g}{unit}", None if value is None else value <= at_most
    return "", None


def write(benchmark: str, rows: Sequence[Row], argv: Sequence[str] | None = None) -> Path:
    """Save `rows` for `python -m benchmarks`; a row without a command gets this run's."""
    args = sys.argv[1:] if argv is None else argv
    command = " ".join([".venv/bin/python -m", f"benchmarks.{benchmark}", *args])
    path = Path(os.environ.get(ENV) or RESULTS / f"summary-{benchmark}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    saved = [asdict(row) | {"command": row.command or command} for row in rows]
    path.write_text(json.dumps({"benchmark": benchmark, "rows": saved}, indent=2) + "\n")
    print(f"\nsummary: {len(rows)} headline rows written to {path}")
    return path


def read(path: Path) -> list[Row]:
    return [Row(**row) for row in json.loads(path.read_text())["rows"]]


@dataclass(frozen=True)
class Run:
    """How a benchmark ran: the table's `run` column."""

    started: datetime  # UTC
    cores: int
    load: float  # 1-minute load average at the start
    quick: bool
    exit_code: int = 0

    def describe(self) -> str:
        return (
            f"{self.started:%Y-%m-%d %H:%M} UTC"
            + (", **quick**" if self.quick else "")
            + f", {self.cores} cores, load {self.load:.1f}"
            + (f", exit {self.exit_code}" if self.exit_code else "")
        )


def table_rows(benchmark: str, rows: Sequence[Row], run: Run) -> list[str]:
    """The markdown rows of one benchmark's run."""

    def cell(text: str) -> str:
        return " ".join(text.split()).replace("|", "\\|")

    lines = []
    for r in rows:
        ratio = (
            "" if r.ratio is None else f"{r.ratio:.2f}x" if r.ratio >= 0.1 else f"{r.ratio:.3f}x"
        )
        met = {None: "", True: "yes", False: "**no**"}[r.met]
        command = f"`{r.command.replace('`', '')}`" if r.command else ""
        cells = [benchmark, r.work, r.ours, r.reference, ratio, r.target, met, run.describe()]
        lines.append("| " + " | ".join(map(cell, [*cells, command])) + " |")
    return lines


def _benchmark_of(line: str) -> str | None:
    """The benchmark a table row belongs to (its first cell); None for any other line."""
    if not line.startswith("| ") or line in HEADER:
        return None
    return line.split("|")[1].strip()


def merge(
    old: Sequence[str], fresh: Mapping[str, Sequence[str]], order: Sequence[str]
) -> list[str]:
    """The table's rows: `fresh` ones for the benchmarks that ran, `old` ones for the others,
    in `order` (any other benchmark's old rows last, as they were)."""
    kept: dict[str, list[str]] = {}
    for line in old:
        name = _benchmark_of(line)
        if name is not None and name not in fresh:
            kept.setdefault(name, []).append(line)
    rows = {**kept, **fresh}
    names = [n for n in order if n in rows] + [n for n in rows if n not in order]
    return [line for name in names for line in rows[name]]


def rewrite_readme(text: str, fresh: Mapping[str, Sequence[str]], order: Sequence[str]) -> str:
    """`text` (the README) with its summary section holding `fresh` rows merged into the old;
    every byte outside the markers kept. Without markers, the section goes after the first
    heading."""
    starts, ends = text.count(START), text.count(END)
    if (starts, ends) == (0, 0):
        lines = text.splitlines(keepends=True)
        at = next((n + 1 for n, line in enumerate(lines) if line.startswith("#")), 0)
        head, tail = "".join(lines[:at]), "".join(lines[at:])
        section = _section(merge([], fresh, order))
        return f"{head}\n{section}\n{tail}" if at else f"{section}\n\n{tail}"
    if (starts, ends) != (1, 1) or text.index(START) > text.index(END):
        raise ValueError(
            f"the README must hold {START} once, then {END} once (it has {starts} and {ends});"
            " mend them by hand, or remove both to have the section written anew"
        )
    begin, end = text.index(START), text.index(END) + len(END)
    old = text[begin:end].splitlines()
    return text[:begin] + _section(merge(old, fresh, order)) + text[end:]


def _section(rows: Sequence[str]) -> str:
    return "\n".join([START, *INTRO, "", *HEADER, *rows, "", END])
