"""The core commands: fetch, items, search, query, check (`feeds`: feed_commands.py)."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from aggregator.cli.group import (
    COUNT,
    ITEM_COLUMNS,
    Context,
    cli,
    format_option,
    guarded,
    interrupted,
    pass_context,
    since_option,
    sort_option,
    tag_option,
    until_option,
    window,
)
from aggregator.cli.tables import render
from aggregator.cli.worker_command import broker_option
from aggregator.enums import ExtractStatus, Order
from aggregator.errors import QueryInterrupted
from aggregator.times import parse_duration

if TYPE_CHECKING:
    from aggregator.models import FeedOutcome


@cli.command()
@click.argument("names", nargs=-1)
@click.option("--no-extract", is_flag=True, help="Store entries without fetching article pages.")
@click.option("--workers", type=click.IntRange(0, 64), help="Processes for parse/extract.")
@click.option(
    "--force",
    is_flag=True,
    help="Fetch every feed in full, without its stored ETag / Last-Modified (never a 304).",
)
@broker_option
@pass_context
@guarded
def fetch(
    obj: Context,
    names: tuple[str, ...],
    no_extract: bool,
    workers: int | None,
    force: bool,
    broker: str | None,
) -> None:
    """One pass over every feed (or the NAMEd ones) now, then exit.

    Exit code 0 when every feed was fetched, 1 when some failed (their errors are recorded
    and shown by `aggregator feeds`), 2 on bad configuration. The table counts each feed's
    article pages fetched and failed; a feed whose pages mostly fail (degraded: 5 or more
    in the last 24 h, over half failed) gets a warning line under it, and does not change
    the exit code.

    --force asks each feed without the validators stored from its last answer, for this
    pass only: the server sends the whole feed even if it would say 304 Not Modified, and
    the validators of that answer are stored as usual.

    With --broker (or AGGREGATOR_BROKER) the pass goes through the distributed mode's
    workers (`aggregator worker`), this command committing what they send; it ends when every
    feed and article page is done. settings.broker alone does not change `fetch`.

    \b
    Examples:
      aggregator fetch
      aggregator fetch tass-en bbc-world --no-extract
      aggregator fetch tass-en --force
      aggregator fetch --broker redis://queue.example:6379/0
    """
    import asyncio  # here, not at the top: 25 ms of every command's start-up

    from aggregator.cli.fetch_progress import FetchView, recent_page_health
    from aggregator.engine.pool import Workers
    from aggregator.engine.run import fetch_feeds
    from aggregator.store import Store

    config = obj.config()
    unknown = [n for n in names if config.feed(n) is None]
    if unknown:
        known = ", ".join(f.name for f in config.feeds)
        raise click.UsageError(
            f"no feed named {', '.join(unknown)} in {config.path}; known: {known}"
        )
    paused = [n for n in names if (named := config.feed(n)) is not None and named.paused]
    if paused:
        raise click.UsageError(
            f"{', '.join(paused)} paused in {config.path}; "
            f"`aggregator feeds resume {paused[0]}` first"
        )
    feeds = [f for f in config.feeds if not f.paused and (not names or f.name in names)]
    store = Store.open(obj.db_path())
    view = FetchView(total=len(feeds))
    finished: list[FeedOutcome] = []
    pool = Workers(workers)

    def done(outcome: FeedOutcome) -> None:
        finished.append(outcome)
        view.done(outcome)

    try:
        with view:
            if broker:
                from aggregator.engine.distributed import fetch_feeds_distributed

                run = fetch_feeds_distributed(
                    config,
                    store,
                    feeds,
                    url=broker,
                    extract=not no_extract,
                    force=force,
                    on_done=done,
                )
            else:
                run = fetch_feeds(
                    config,
                    store,
                    feeds,
                    extract=not no_extract,
                    force=force,
                    workers=pool,
                    on_done=done,
                )
            outcomes = asyncio.run(run)
    except KeyboardInterrupt:
        interrupted(_fetch_kept(finished, len(feeds)))
    finally:
        pool.close()
        store.close()
    view.summary(outcomes, pages=recent_page_health(obj.db_path()))
    sys.exit(1 if any(o.failed for o in outcomes) else 0)


def _fetch_kept(finished: list[FeedOutcome], total: int) -> str:
    """What an interrupted `fetch` leaves: each feed commits in one transaction at its end,
    so a finished feed is stored whole and one still in flight stored nothing."""
    left = total - len(finished)
    return (
        f"{len(finished)} of {total} feeds had finished and what they fetched is stored;"
        f" the {left} still in flight stored nothing and stay due (run `aggregator fetch`"
        " again)"
    )


@cli.command()
@since_option
@until_option
@sort_option(Order.FIRST_SEEN, Order.PUBLISHED, default=Order.FIRST_SEEN)
@click.option("--feed", help="Only items seen in this feed.")
@tag_option
@click.option(
    "--status",
    type=click.Choice([s.value for s in ExtractStatus]),
    help="Only items whose article page stands so: ok (extracted), failed, pending (not"
    " tried yet), skipped (no link, or extraction off); feed (the feed had the full text).",
)
@click.option("--limit", type=COUNT, default=50, show_default=True, help="At most N items.")
@format_option
@pass_context
@guarded
def items(
    obj: Context,
    since: str | None,
    until: str | None,
    sort: Order,
    feed: str | None,
    tag: str | None,
    status: str | None,
    limit: int,
    fmt: str,
) -> None:
    """Newest items first, with the feeds that carried them, their story and how many items
    it has. --sort published orders them by the feeds' own dates instead of when this store
    first saw them; --since and --until then bound that date.

    \b
    Examples:
      aggregator items --since 2h
      aggregator items --since 2026-11-27 --until 2026-11-28 --sort published
      aggregator items --feed tass-en --limit 10 --format json
      aggregator items --feed tass-en --status failed
    """
    from aggregator.store import open_reader

    start, end = window(since, until)
    reader = open_reader(obj.db_path())
    reader.check_names(feed=feed, tag=tag)
    rows = reader.items(
        since=start, until=end, sort=sort, feed=feed, tag=tag, limit=limit, status=status
    )
    # Failed pages: the table says why, whole (json, ndjson and csv always carry extract_error).
    why = ("extract_error",) if status == ExtractStatus.FAILED else ()
    render(rows, fmt, columns=(*ITEM_COLUMNS, *why), widths={"feeds": 24}, wrap=why)


@cli.command()
@click.argument("query")
@since_option
@until_option
@sort_option(Order.RELEVANCE, Order.FIRST_SEEN, Order.PUBLISHED, default=Order.RELEVANCE)
@click.option("--feed", help="Only items seen in this feed.")
@tag_option
@click.option("--limit", type=COUNT, default=20, show_default=True, help="At most N items.")
@format_option
@pass_context
@guarded
def search(
    obj: Context,
    query: str,
    since: str | None,
    until: str | None,
    sort: Order,
    feed: str | None,
    tag: str | None,
    limit: int,
    fmt: str,
) -> None:
    """Full-text search over titles, summaries and article text, best match first (--sort:
    newest first instead). Best among the newest 10,000 matches: --since, --until, --feed or
    more words reach further back.

    QUERY may use FTS5 syntax: words, "exact phrases", OR, NOT, prefix*, title:word. Plain
    words always work: a query that is not valid FTS5 is searched for its words, with a note
    on stderr saying what is wrong with its syntax; a query with no words is an error (exit 2).

    \b
    Examples:
      aggregator search Libya
      aggregator search '"Security Council" NOT Libya' --since 1d
      aggregator search Tripoli --sort published --until 2026-11-28
    """
    from aggregator.sanitize import terminal_text
    from aggregator.store import open_reader

    if not any(ch.isalnum() for ch in query):  # FTS5 reads "" or "!!" as a syntax error
        raise click.UsageError(
            f"QUERY {query!r} has no words to look for; for example: aggregator search Libya"
        )
    start, end = window(since, until)
    reader = open_reader(obj.db_path())
    reader.check_names(feed=feed, tag=tag)
    problem = reader.search_problem(query)
    rows = reader.search(query, since=start, until=end, sort=sort, feed=feed, tag=tag, limit=limit)
    if problem is not None:  # searched for its words instead: say why
        click.echo(f"aggregator: note: {terminal_text(problem)}; its words were searched", err=True)
    render(rows, fmt, columns=(*ITEM_COLUMNS, "snippet"), widths={"feeds": 24, "title": 50})


def _timeout(_ctx: click.Context, _param: click.Parameter, value: str) -> int:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@contextmanager
def _ctrl_c_cancels() -> Iterator[threading.Event]:
    """While the block runs, Ctrl-C (SIGINT) sets the event instead of raising: SQLite runs
    the query in C, where a KeyboardInterrupt would wait for it to end; the query's
    progress handler sees the event and stops it."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.signal(signal.SIGINT, lambda _signum, _frame: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


@cli.command()
@click.argument("sql")
@click.option(
    "--timeout",
    default="30s",
    show_default=True,
    callback=_timeout,
    help="Stop the query after this long (90s, 2m, 1h).",
)
@format_option
@pass_context
@guarded
def query(obj: Context, sql: str, timeout: int, fmt: str) -> None:
    """Run one read-only SQL statement, SQL, against the store. Writes, ATTACH and functions
    that reach into SQLite's internals are refused; a query stops after --timeout or at
    Ctrl-C (exit 130).

    Tables: feeds, feed_tags, feed_counts (each feed's number of sightings), fetches, items,
    sightings, stories, story_links (why each item joined its story), story_splits and
    story_merges (an editor's corrections), items_fts (full-text index), item_fingerprints
    and lsh_bands (near-duplicate matching), _sqlite_migrations (the schema's version).
    README.md, "The store", has their columns.

    \b
    Examples:
      aggregator query "select feed, count(*) n from sightings group by feed"
      aggregator query --timeout 2m "select count(*) from items where text like '%Libya%'"
    """
    from aggregator.store import open_reader

    with _ctrl_c_cancels() as stop:
        reader = open_reader(obj.db_path())
        try:
            rows = reader.query(sql, timeout_s=timeout, cancelled=stop.is_set)
        except QueryInterrupted as exc:
            click.echo(f"aggregator: {exc}", err=True)
            sys.exit(130)
        finally:
            reader.close()
    render(rows, fmt)


@cli.command()
@pass_context
@guarded
def check(obj: Context) -> None:
    """Validate feeds.yaml without fetching anything; says exactly what is wrong and where.

    \b
    Example:
      aggregator --config feeds.yaml check
    """
    config = obj.config()
    click.echo(f"{config.path}: ok, {len(config.feeds)} feeds; database {obj.db_path()}")
