"""`aggregator export`: stories as an Atom, RSS or JSON feed for republishing. Registered on
the `aggregator` command group."""

from __future__ import annotations

from pathlib import Path

import click

from aggregator.cli.group import Context, cli, guarded, pass_context, since_iso, since_option
from aggregator.errors import StoreError
from aggregator.publish.syndication import FORMATS, Channel, StoryEntry, render
from aggregator.times import iso_utc, utc_now


@cli.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="atom",
    show_default=True,
    help="Atom 1.0, RSS 2.0 or JSON Feed 1.1.",
)
@since_option
@click.option("--feed", help="Only stories with an item seen in this feed.")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@click.option("--title", default="aggregator: latest stories", show_default=True)
@click.option(
    "--link",
    default="https://example.org/",
    show_default=True,
    help="The address the exported feed is published at.",
)
@click.option("--out", type=click.Path(dir_okay=False), help="Write here instead of stdout.")
@pass_context
@guarded
def export(
    obj: Context,
    fmt: str,
    since: str | None,
    feed: str | None,
    limit: int,
    title: str,
    link: str,
    out: str | None,
) -> None:
    """A feed for republishing: one entry per story (its lead item, wire copy first), with
    sanitised HTML only.

    \b
    Examples:
      aggregator export --format atom --since 1d --out public/stories.xml
      aggregator export --format json --feed tass-en --limit 20
    """
    from aggregator.store import open_reader

    rows = open_reader(obj.db_path()).export_entries(since=since_iso(since), feed=feed, limit=limit)
    entries = [
        StoryEntry(
            **{**row, "sources": tuple(sorted(filter(None, (row["sources"] or "").split(","))))}
        )
        for row in rows
    ]
    text = render(entries, fmt, Channel(title=title, link=link, updated=iso_utc(utc_now())))
    if out is None:
        click.echo(text, nl=False)
        return
    try:
        Path(out).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise StoreError(f"cannot write {out}: {exc.strerror or exc}") from None
    click.echo(f"{len(entries)} stories written to {out}", err=True)
