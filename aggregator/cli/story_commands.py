"""`aggregator stories`: stories (clusters of duplicate items), why items were joined, and an
editor's corrections. Registered on the `aggregator` command group."""

from __future__ import annotations

import time
from pathlib import Path

import click

from aggregator.cli.group import (
    COUNT,
    Context,
    cli,
    format_option,
    guarded,
    pass_context,
    sort_option,
    tag_option,
    window,
)
from aggregator.cli.tables import render
from aggregator.enums import Order
from aggregator.errors import StoreError
from aggregator.sanitize import terminal_text
from aggregator.times import iso_utc, utc_now

SIGNALS = {
    "canonical_url": "canonical URL",
    "title": "headline",
    "minhash": "text",
    "editor": "an editor's merge",
}


@cli.group(invoke_without_command=True)
@click.option(
    "--since",
    help="Only stories carried since this (with --sort: first seen, or published, since it):"
    " a duration back from now (2h, 3d) or a date.",
)
@click.option(
    "--until",
    help="Only stories last carried before this (with --sort: first seen, or published,"
    " before it): a duration back from now (30m, 1d) or a date.",
)
@sort_option(Order.LAST_SEEN, Order.FIRST_SEEN, Order.PUBLISHED, default=Order.LAST_SEEN)
@click.option(
    "--min-sources",
    type=COUNT,
    default=1,
    show_default=True,
    help="Only stories carried by at least N feeds (2: picked up by more than one source).",
)
@click.option("--feed", help="Only stories with an item seen in this feed.")
@tag_option
@click.option("--limit", type=COUNT, default=50, show_default=True, help="At most N stories.")
@format_option
@click.pass_context
@guarded
def stories(
    ctx: click.Context,
    since: str | None,
    until: str | None,
    sort: Order,
    min_sources: int,
    feed: str | None,
    tag: str | None,
    limit: int,
    fmt: str,
) -> None:
    """One row per story (the items that are the same story: the same link, or a partner's
    copy of a wire story), latest first, with the feeds that carried it. --sort first_seen
    puts the newest stories first instead of the latest carried; --sort published orders by
    the lead item's own date. --since and --until bound the time it sorts by.

    A story's lead item comes from its highest-priority feed, then the earliest. See why
    items were joined with `show`, undo a wrong merge with `split`, join what belongs
    together with `merge`, re-cluster after changing the dedup_* settings with `rebuild`.

    \b
    Examples:
      aggregator stories --since 6h --min-sources 2
      aggregator stories --sort first_seen --since 2026-11-27 --until 2026-11-28
      aggregator stories show 42
      aggregator stories split 1234
      aggregator stories merge 42 57
      aggregator stories rebuild
    """
    if ctx.invoked_subcommand is not None:
        return
    from aggregator.store import open_reader

    obj = ctx.find_object(Context)
    assert obj is not None  # the `aggregator` group made it
    start, end = window(since, until)
    reader = open_reader(obj.db_path())
    reader.check_names(feed=feed, tag=tag)
    rows = reader.stories(
        since=start,
        until=end,
        sort=sort,
        min_sources=min_sources,
        feed=feed,
        tag=tag,
        limit=limit,
    )
    render(rows, fmt, widths={"title": 60, "feeds": 30, "lead_url": 40})


@stories.command()
@click.argument("story_id", metavar="STORY", type=int)
@format_option
@pass_context
@guarded
def show(obj: Context, story_id: int, fmt: str) -> None:
    """STORY's items, lead first: the feeds that carried each, and the signal and score
    that joined it (canonical_url: its page names the other's URL; title: the same headline,
    confirmed by the text; minhash: the texts' estimated Jaccard similarity; editor: an
    editor's `stories merge`).

    \b
    Example:
      aggregator stories show 42
    """
    from aggregator.store import open_reader

    reader = open_reader(obj.db_path())
    head = reader.story(story_id)
    if head is None:
        raise StoreError(f"there is no story {story_id}; `aggregator stories` lists them")
    if fmt == "table":
        title = terminal_text(str(head["title"]))
        click.echo(
            f"story {story_id}: {title}\n{head['items']} item(s), first seen "
            f"{head['first_seen_at']}, last seen {head['last_seen_at']}"
        )
    render(reader.story_items(story_id), fmt, widths={"title": 50, "url": 40})


@stories.command()
@click.argument("item_id", metavar="ITEM", type=int)
@pass_context
@guarded
def split(obj: Context, item_id: int) -> None:
    """Take ITEM out of its story into a story of its own: undo a wrong merge.

    The split is remembered: ITEM is never joined again with the items it shared the story
    with, not even by `aggregator stories rebuild`.

    \b
    Example:
      aggregator stories split 1234
    """
    from aggregator.engine.corrections import split_item
    from aggregator.store import Store

    store = Store.open(obj.db_path(), create=False)
    try:
        done = split_item(store, item_id, now=iso_utc(utc_now()))
    finally:
        store.close()
    click.echo(
        f"item {item_id} left story {done.old_story_id} ({done.remaining} item(s) remain) and"
        f" is story {done.new_story_id} on its own; it will not be joined with them again"
    )


@stories.command()
@click.argument("story_ids", metavar="STORY STORY [STORY ...]", nargs=-1, type=int)
@pass_context
@guarded
def merge(obj: Context, story_ids: tuple[int, ...]) -> None:
    """Join each STORY into one story: undo a wrong split, or join copies the matching
    missed. The merged story keeps the lowest number; its lead is chosen as always (the
    highest-priority feed's item, wire first, then the earliest).

    The merge is remembered: `aggregator stories rebuild` keeps the items together, and any
    split between them is forgotten. A later `split` of one of them wins over the merge, as
    the merge won over the splits before it: the latest correction holds.

    \b
    Examples:
      aggregator stories merge 42 57
      aggregator stories merge 42 57 61
    """
    from aggregator.engine.corrections import merge_stories
    from aggregator.store import Store, open_reader

    if len(story_ids) < 2:
        raise click.UsageError("name two or more stories to merge: `stories merge 42 57`")
    store = Store.open(obj.db_path(), create=False)
    try:
        done = merge_stories(store, story_ids, now=iso_utc(utc_now()))
    finally:
        store.close()
    reader = open_reader(obj.db_path())
    try:
        head = reader.story(done.story_id)
    finally:
        reader.close()
    merged = ("story " if len(done.merged) == 1 else "stories ") + ", ".join(
        str(s) for s in done.merged
    )
    lead = (
        f", led by item {head['lead_item_id']} ({terminal_text(str(head['title']))})"
        if head is not None  # None only if another writer changed it since
        else ""
    )
    click.echo(
        f"{merged} joined story {done.story_id}: {done.items} items{lead}; they stay together"
        " through `stories rebuild` until one of them is split"
    )


@stories.command()
@pass_context
@guarded
def rebuild(obj: Context) -> None:
    """Re-cluster every stored item with the current dedup_* settings of feeds.yaml, oldest
    first, as if each arrived again; remembered splits hold.

    Runs in one transaction: readers see the old stories until it commits, and a running
    daemon's writes wait for it (on large stores, stop the daemon first).

    \b
    Example:
      aggregator stories rebuild
    """
    from aggregator.engine.corrections import rebuild_stories
    from aggregator.models import Settings
    from aggregator.store import Store
    from aggregator.stories.dedup import DedupPolicy

    config_exists = Path(obj.config_path).exists()
    settings = obj.config().settings if config_exists else Settings()
    store = Store.open(obj.db_path(), create=False)
    started = time.monotonic()
    try:
        done = rebuild_stories(store, DedupPolicy.from_settings(settings), now=iso_utc(utc_now()))
    finally:
        store.close()
    joined = ", ".join(f"{n} by {SIGNALS.get(s, s)}" for s, n in sorted(done.joined.items()))
    click.echo(
        f"{done.items} items in {done.stories} stories ({joined or 'none joined'});"
        f" {done.fingerprinted} fingerprinted from their stored text;"
        f" {time.monotonic() - started:.1f} s"
    )
