"""What `aggregator fetch` shows: a progress bar on a terminal, plain lines otherwise, and a
closing summary table, with a warning line under it for each degraded feed (page_health.py)."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from aggregator.cli.page_health import PageHealth, next_step, page_health, pages_since, reason
from aggregator.cli.tables import table_width
from aggregator.errors import StoreError
from aggregator.models import FeedOutcome, Outcome
from aggregator.sanitize import terminal_text
from aggregator.times import utc_now


def _line(outcome: FeedOutcome) -> str:
    """The plain line off a terminal (often a log); errors quote what servers sent, so
    controls and newlines are escaped."""
    return terminal_text(_said(outcome))


def _said(outcome: FeedOutcome) -> str:
    if outcome.failed:
        return f"{outcome.feed}: {outcome.outcome}: {outcome.error}"
    if outcome.outcome == Outcome.NOT_MODIFIED:
        return f"{outcome.feed}: not modified{_pages(outcome)}"  # earlier pages retried
    if outcome.outcome == Outcome.LEASED:
        return f"{outcome.feed}: {outcome.warning}"
    return f"{outcome.feed}: {outcome.entries} entries, {outcome.new_items} new{_pages(outcome)}"


def _pages(outcome: FeedOutcome) -> str:
    if not outcome.pages_fetched:
        return ""
    return f", {outcome.pages_fetched} pages ({outcome.pages_failed} failed)"


def recent_page_health(db_path: str) -> dict[str, PageHealth]:
    """How each feed's article pages of the last 24 h fared, read once the pass is stored; a
    store that cannot be read now only costs the warnings (the pass itself is done)."""
    from aggregator.store import open_reader

    try:
        reader = open_reader(db_path)
        try:
            return page_health(reader.recent_pages(since=pages_since(utc_now())))
        finally:
            reader.close()
    except StoreError:
        return {}


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

    def summary(
        self, outcomes: Sequence[FeedOutcome], *, pages: Mapping[str, PageHealth] | None = None
    ) -> None:
        """The table: one row per feed, this pass's article pages fetched and failed; then a
        warning for each feed whose recent pages mostly fail (`pages`: from the store)."""
        degraded = {o.feed: pages[o.feed] for o in outcomes if pages and _degraded(pages, o)}
        table = Table(title="aggregator fetch", header_style="bold")
        columns = ("feed", "result", "entries", "new", "updated", "pages", "failed", "seconds")
        for column in columns:
            table.add_column(column, justify="left" if column in ("feed", "result") else "right")
        table.add_column("error / warning", max_width=70, overflow="fold")
        for o in sorted(outcomes, key=lambda o: (not o.failed, o.feed not in degraded, o.feed)):
            # Text, not str: an error quotes what a server sent, and Rich would read "[/b]"
            # in it as markup (and crash) or "[link=...]" as a terminal hyperlink.
            table.add_row(
                *(
                    Text(terminal_text(cell, multiline=True))
                    for cell in (
                        o.feed,
                        f"{o.outcome} (degraded)" if o.feed in degraded else o.outcome,
                        str(o.entries),
                        str(o.new_items),
                        str(o.updated_items),
                        str(o.pages_fetched),
                        str(o.pages_failed),
                        f"{o.duration_ms / 1000:.1f}",
                        o.error or o.warning or "",
                    )
                )
            )
        failed = sum(o.failed for o in outcomes)
        new = sum(o.new_items for o in outcomes)
        console = Console(soft_wrap=False, width=table_width(sys.stdout))
        console.print(table)
        for feed, health in sorted(degraded.items()):
            # Text: the error quotes what a server sent.
            said = f"warning: {feed} is degraded: {reason(health)}. {next_step(feed, health)}"
            console.print(Text(terminal_text(said)))
        console.print(
            f"{len(outcomes)} feeds, {new} new items, {failed} failed"
            + (f", {len(degraded)} degraded" if degraded else "")
            + ("; see `aggregator feeds` for what to do" if failed or degraded else "")
        )


def _degraded(pages: Mapping[str, PageHealth], outcome: FeedOutcome) -> bool:
    health = pages.get(outcome.feed)
    return health is not None and health.degraded
