"""`aggregator retry`: extract article pages again now, the named items' or a feed's failed
and pending ones, however often they were tried before. Registered on the command group."""

from __future__ import annotations

import difflib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import click

from aggregator.cli.group import Context, cli, guarded, pass_context
from aggregator.enums import ExtractStatus
from aggregator.errors import UsageError
from aggregator.sanitize import terminal_text
from aggregator.urls import canonical_url

if TYPE_CHECKING:
    from aggregator.engine.refresh import PageRetried, PageRetry
    from aggregator.store import Reader, Row


@cli.command()
@click.argument("refs", nargs=-1, metavar="[ITEM]...")
@click.option("--feed", help="Every item of this feed whose page failed or is pending.")
@click.option("--workers", type=click.IntRange(0, 64), help="Processes for extraction.")
@pass_context
@guarded
def retry(obj: Context, refs: tuple[str, ...], feed: str | None, workers: int | None) -> None:
    """Extract article pages again now: the ITEMs' (an item id, or its URL) and, with
    --feed, those of every item of the feed whose page failed or was never fetched, however
    often they were tried before.

    The pages go through the same pipeline as `aggregator fetch` and the daemon (fetched,
    extracted, the item placed in its story again by its text), holding the leases of the
    items' feeds as `fetch` does: an item whose feed the daemon is refreshing right now is
    skipped, saying so. One line per item; exit 0 when every page was extracted, 1 when some
    still failed, 2 for an unknown item or feed.

    \b
    Examples:
      aggregator retry --feed tass-en
      aggregator retry 1234 https://tass.com/world/1234567
    """
    import asyncio

    from aggregator.engine.pool import Workers
    from aggregator.engine.run import retry_pages
    from aggregator.store import Store, open_reader

    if not refs and feed is None:
        raise click.UsageError("name the items to retry (ids or URLs), or a feed with --feed")
    config = obj.config()
    reader = open_reader(obj.db_path())
    try:
        reader.check_names(feed=feed)
        rows = _named_items(reader, refs)
        if feed is not None:
            rows += reader.unextracted_items(feed)
        rows = list({int(row["id"]): row for row in rows}.values())  # named twice: once
        carried_by = reader.feeds_of([int(row["id"]) for row in rows])
    finally:
        reader.close()
    if not rows:
        click.echo(f"nothing to retry: no item of {feed} has a failed or pending page")
        return
    pages = [_page(row, carried_by.get(int(row["id"]), []), feed) for row in rows]
    store = Store.open(obj.db_path())
    try:
        done = asyncio.run(retry_pages(config, store, pages, carried_by, workers=Workers(workers)))
    finally:
        store.close()
    for result in done:
        click.echo(terminal_text(_said(result)))
    failed = sum(r.failed for r in done)
    click.echo(f"{len(done)} pages: {len(done) - failed} extracted, {failed} failed")
    sys.exit(1 if failed else 0)


def _page(row: Row, feeds: Sequence[str], wanted: str | None) -> PageRetry:
    from aggregator.engine.refresh import PageRetry

    return PageRetry(
        item_id=int(row["id"]),
        url=str(row["url"]),
        link=str(row["link"]),
        feed=wanted if wanted is not None and wanted in feeds else (feeds[0] if feeds else ""),
        has_text=row["extract_status"] in (ExtractStatus.OK, ExtractStatus.FEED),
    )


def _said(result: PageRetried) -> str:
    page = result.page
    if result.error is not None:
        kept = " (its text from before is kept)" if page.has_text else ""
        return f"item {page.item_id} {page.url}: failed: {result.error}{kept}"
    return f"item {page.item_id} {page.url}: extracted, {result.words} words"


def _named_items(reader: Reader, refs: Sequence[str]) -> list[Row]:
    """The items named by id or URL; every name that is not one is an error (all of them
    at once), as is an item that has no page to fetch."""
    found: list[Row] = []
    problems: list[str] = []
    for ref in refs:
        row = _lookup(reader, ref, problems)
        if row is None:
            continue
        if not row["url"] or not row["link"]:
            problems.append(f"item {row['id']} has no page to fetch: its entry had no link")
            continue
        found.append(row)
    if problems:
        raise UsageError("; ".join(problems))
    return found


def _lookup(reader: Reader, ref: str, problems: list[str]) -> Row | None:
    text = ref.strip()
    if text.isdecimal():
        row = reader.item_by_id(int(text))
        if row is None:
            problems.append(_no_such_id(reader, text))
        return row
    if "://" in text:
        urls = [u for u in dict.fromkeys((text, canonical_url(text))) if u]
        row = reader.item_by_url(urls)
        if row is None:
            problems.append(_no_such_url(reader, urls[-1]))
        return row
    problems.append(f"{ref!r} is neither an item id (a number) nor a URL")
    return None


def _no_such_id(reader: Reader, text: str) -> str:
    ids = reader.item_id_range()
    where = f"item ids run from {ids[0]} to {ids[1]}" if ids else "the store has no items yet"
    return f"there is no item {text} ({where}; `aggregator items` lists them)"


def _no_such_url(reader: Reader, url: str) -> str:
    parts = urlsplit(url)
    site = f"{parts.scheme}://{parts.netloc}/"
    close = difflib.get_close_matches(url, reader.urls_like(site), n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else f" (none on {site})"
    return f"there is no item with the URL {url!r}{hint}"
