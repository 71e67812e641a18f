"""`aggregator stories`: stories (clusters of duplicate items), why items were joined, and an
editor's corrections. Registered on the `aggregator` command group."""

from __future__ import annotations

import time
from pathlib import Path

import click

from aggregator.cli.group import (
    Context,
    cli,
    format_option,
    guarded,
    pass_context,
    since_iso,
    tag_option,
)
from aggregator.cli.tables import render
from aggregator.errors import StoreError
from aggregator.sanitize import terminal_text
from aggregator.times import iso_utc, utc_now

SIGNALS = {"canonical_url": "canonical URL", "title": "headline", "minhash": "text"}


@cli.group(invoke_without_command=True)
@click.option(
    "--since",
    help="Only stories carried since this: a duration back from now (2h, 3d) or a date.",
)
@click.option(
    "--min-sources",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Only stories carried by at least N feeds (2: picked up by more than one source).",
)
@click.option("--feed", help="Only stories with an item seen in this feed.")
@tag_option
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@format_option
@click.pass_context
@guarded
def stories(
    ctx: click.Context,
    since: str | None,
    min_sources: int,
    feed: str | None,
    tag: str | None,
    limit: int,
    fmt: str,
) -> None:
    """One row per story (the items that are the same story: the same link, or a partner's
    copy of a wire story), latest first, with the feeds that carried it.

    A story's lead item comes from its highest-priority feed, then the earliest. See why
    items were joined with `show`, undo a wrong merge with `split`, re-cluster after
    changing the dedup_* settings with `rebuild`.

    \b
    Examples:
      aggregator stories --since 6h --min-sources 2
      aggregator stories show 42
      aggregator stories split 1234
      aggregator stories rebuild
    """
    if ctx.invoked_subcommand is not None:
        return
    from aggregator.store import open_reader

    obj = ctx.find_object(Context)
    assert obj is not None  # the `aggregator` group made it
    reader = open_reader(obj.db_path())
    reader.check_names(feed=feed, tag=tag)
    rows = reader.stories(
        since=since_iso(since), min_sources=min_sources, feed=feed, tag=tag, limit=limit
    )
    render(rows, fmt, widths={"title": 60, "feeds": 30, "lead_url": 40})


@stories.command()
@click.argument("story_id", metavar="STORY", type=int)
@format_option
@pass_context
@guarded
def show(obj: Context, story_id: int, fmt: str) -> None:
    """A story's items, lead first: the feeds that carried each, and the signal and score
    that joined it (canonical_url: its page names the other's URL; title: the same headline,
    confirmed by the text; minhash: the texts' estimated Jaccard similarity).

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
