"""What `aggregator fetch` shows: a progress bar on a terminal, plain lines otherwise, and a
closing summary table."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from aggregator.cli.tables import table_width
from aggregator.models import FeedOutcome, Outcome
from aggregator.sanitize import terminal_text


def _line(outcome: FeedOutcome) -> str:
    """The plain line off a terminal (often a log); errors quote what servers sent, so
    controls and newlines are escaped."""
    return terminal_text(_said(outcome))


def _said(outcome: FeedOutcome) -> str:
    if outcome.failed:
        return f"{outcome.feed}: {outcome.outcome}: {outcome.error}"
    if outcome.outcome == Outcome.NOT_MODIFIED:
        return f"{outcome.feed}: not modified"
    if outcome.outcome == Outcome.LEASED:
        return f"{outcome.feed}: {outcome.warning}"
    return f"{outcome.feed}: {outcome.entries} entries, {outcome.new_items} new"


class FetchView:
    def __init__(self, total: int, *, interactive: bool | None = None) -> None:
        self.err = Console(stderr=True)
        self.interactive = self.err.is_terminal if interactive is None else interactive
        self.progress: Progress | None = None
        if self.interactive:
            self.progress = Progress(
                TextColumn("fetching"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.description}", markup=False),  # a feed name, not markup
                TimeElapsedColumn(),
                console=self.err,
                transient=True,
            )
            self.task = self.progress.add_task("", total=total)

    def __enter__(self) -> FetchView:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.progress is not None:
            self.progress.stop()

    def done(self, outcome: FeedOutcome) -> None:
        if self.progress is not None:
            self.progress.update(self.task, advance=1, description=outcome.feed)
        else:
            print(_line(outcome), file=sys.stderr, flush=True)

    def summary(self, outcomes: Sequence[FeedOutcome]) -> None:
        table = Table(title="aggregator fetch", header_style="bold")
        for column in ("feed", "result", "entries", "new", "updated", "pages", "seconds"):
            table.add_column(column, justify="left" if column in ("feed", "result") else "right")
        table.add_column("error / warning", max_width=70, overflow="fold")
        for o in sorted(outcomes, key=lambda o: (not o.failed, o.feed)):
            # Text, not str: an error quotes what a server sent, and Rich would read "[/b]"
            # in it as markup (and crash) or "[link=...]" as a terminal hyperlink.
            table.add_row(
                *(
                    Text(terminal_text(cell, multiline=True))
                    for cell in (
                        o.feed,
                        o.outcome,
                        str(o.entries),
                        str(o.new_items),
                        str(o.updated_items),
                        str(o.pages_fetched),
                        f"{o.duration_ms / 1000:.1f}",
                        o.error or o.warning or "",
                    )
                )
            )
        failed = sum(o.failed for o in outcomes)
        new = sum(o.new_items for o in outcomes)
        console = Console(soft_wrap=False, width=table_width(sys.stdout))
        console.print(table)
        console.print(
            f"{len(outcomes)} feeds, {new} new items, {failed} failed"
            + ("; see `aggregator feeds` for what to do" if failed else "")
        )
