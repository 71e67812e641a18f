"""`aggregator export`: stories as an Atom, RSS or JSON feed for republishing. Registered on
the `aggregator` command group."""

from __future__ import annotations

import os
from pathlib import Path

import click

from aggregator.cli.group import (
    COUNT,
    Context,
    cli,
    guarded,
    pass_context,
    sort_option,
    window,
)
from aggregator.enums import Order
from aggregator.errors import StoreError
from aggregator.models import StoryFilter

# The same formats as publish.syndication's, from the module that imports nothing heavy:
# the renderer's XML and e-mail date modules cost every command's start-up.
from aggregator.publish.serve_metadata import FEED_FORMATS as FORMATS


@cli.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="atom",
    show_default=True,
    help="Atom 1.0, RSS 2.0 or JSON Feed 1.1.",
)
@click.option(
    "--since",
    help="Only stories carried since this (with --sort: first seen, or published, since it):"
    " a duration back from now (2h, 3d) or a date (2026-11-27).",
)
@click.option(
    "--until",
    help="Only stories last carried before this (with --sort: first seen, or published,"
    " before it): a duration back from now (30m, 1d) or a date (2026-11-28).",
)
@sort_option(Order.LAST_SEEN, Order.FIRST_SEEN, Order.PUBLISHED, default=Order.LAST_SEEN)
@click.option("--feed", help="Only stories carried by this feed.")
@click.option("--tag", help="Only stories carried by a feed with this tag (a desk).")
@click.option(
    "--min-sources",
    type=COUNT,
    default=1,
    show_default=True,
    help="Only stories carried by at least this many feeds.",
)
@click.option("--limit", type=COUNT, default=50, show_default=True, help="At most N stories.")
@click.option("--title", help="The feed's title; default: settings.publish.title.")
@click.option(
    "--link",
    help="The address the exported feed is published at (its rel=self); default:"
    " settings.publish.link.",
)
@click.option("--out", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
@pass_context
@guarded
def export(
    obj: Context,
    fmt: str,
    since: str | None,
    until: str | None,
    sort: Order,
    feed: str | None,
    tag: str | None,
    min_sources: int,
    limit: int,
    title: str | None,
    link: str | None,
    out: str | None,
) -> None:
    """A feed for republishing: one entry per story (its lead item, wire copy first), its
    sources earliest first, its desks' tags as categories; every field sanitised.

    The stories carried most lately come first; --sort first_seen takes the newest stories
    instead, --sort published orders by the lead item's own date, and --since and --until
    bound the time it sorts by. An unknown --feed or --tag is an error (exit 2) and writes
    nothing. With --out the file is replaced whole or not at all.

    \b
    Examples:
      aggregator export --tag world --since 1d --out public/world.atom
      aggregator export --sort first_seen --since 2026-11-27 --until 2026-11-28 --format rss
      aggregator export --format json --feed tass-en --limit 20 --link https://desk.example/tass.json
    """
    from aggregator.publish.story_feed import publish_link, story_feed
    from aggregator.store import open_reader

    publishing = obj.settings().publish
    start, end = window(since, until)
    wanted = StoryFilter(
        since=start,
        until=end,
        sort=sort,
        feed=feed,
        tag=tag,
        min_sources=min_sources,
        limit=limit,
    )
    done = story_feed(
        open_reader(obj.db_path()),
        wanted,
        fmt,
        link=publish_link(link, publishing.link),
        title=title or publishing.title,
    )
    if out is None:
        click.echo(done.body, nl=False)
        return
    write_atomically(Path(out), done.body)
    click.echo(f"{done.stories} stories written to {out}", err=True)


def write_atomically(path: Path, text: str) -> None:
    """A temporary file beside `path`, then a rename: readers of `path` see the old feed or
    the new one, never half of one, and a failed export leaves the old one in place."""
    import tempfile  # with shutil, bz2 and lzma: not for every command's start-up

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise StoreError(f"cannot write {path}: {exc.strerror or exc}") from None
