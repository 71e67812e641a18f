"""The core commands: fetch, feeds, items, search, query, check."""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import click

from aggregator.cli.group import (
    ITEM_COLUMNS,
    Context,
    cli,
    format_option,
    guarded,
    pass_context,
    since_iso,
    since_option,
    tag_option,
)
from aggregator.cli.tables import render
from aggregator.cli.worker_command import broker_option
from aggregator.errors import InvalidConfig, QueryInterrupted
from aggregator.models import FeedStatus, Settings
from aggregator.times import iso_utc, parse_duration, utc_now


@cli.command()
@click.argument("names", nargs=-1)
@click.option("--no-extract", is_flag=True, help="Store entries without fetching article pages.")
@click.option("--workers", type=click.IntRange(0, 64), help="Processes for parse/extract.")
@broker_option
@pass_context
@guarded
def fetch(
    obj: Context,
    names: tuple[str, ...],
    no_extract: bool,
    workers: int | None,
    broker: str | None,
) -> None:
    """One pass over every feed (or the NAMEd ones) now, then exit.

    Exit code 0 when every feed was fetched, 1 when some failed (their errors are recorded
    and shown by `aggregator feeds`), 2 on bad configuration.

    With --broker (or AGGREGATOR_BROKER) the pass goes through the distributed mode's
    workers (`aggregator worker`), this command committing what they send; it ends when every
    feed and article page is done. settings.broker alone does not change `fetch`.

    \b
    Examples:
      aggregator fetch
      aggregator fetch tass-en bbc-world --no-extract
      aggregator fetch --broker redis://queue.example:6379/0
    """
    from aggregator.cli.fetch_progress import FetchView
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
    feeds = [f for f in config.feeds if not names or f.name in names]
    store = Store.open(obj.db_path())
    view = FetchView(total=len(feeds))
    try:
        with view:
            if broker:
                from aggregator.engine.distributed import fetch_feeds_distributed

                run = fetch_feeds_distributed(
                    config, store, feeds, url=broker, extract=not no_extract, on_done=view.done
                )
            else:
                run = fetch_feeds(
                    config,
                    store,
                    feeds,
                    extract=not no_extract,
                    workers=Workers(workers),
                    on_done=view.done,
                )
            outcomes = asyncio.run(run)
    finally:
        store.close()
    view.summary(outcomes)
    sys.exit(1 if any(o.failed for o in outcomes) else 0)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
@guarded
def feeds(obj: Context, as_json: bool) -> None:
    """Each feed's health: state, last success, next due, last error, error count.

    Feeds that need attention (gone, failing, stale: no new entry for far longer than
    usual) come first, each with what to do about it.

    \b
    Example:
      aggregator feeds
    """
    from aggregator.cli.feed_health import relative, with_health
    from aggregator.schedule.due import policy_from, rate_window_start
    from aggregator.store import open_reader

    reader = open_reader(obj.db_path())
    try:
        policy = policy_from(obj.config().settings)
    except InvalidConfig:  # a broken (or absent) feeds.yaml must not hide the feeds' health
        policy = policy_from(Settings())
    now = utc_now()
    histories = reader.feed_histories(since=iso_utc(rate_window_start(now, policy)))
    rows = with_health(reader.feeds(), histories, now=now, policy=policy)
    if as_json:
        render(rows, "json")
        return
    view = [
        {
            "feed": r["name"],
            "state": "stale" if r["stale"] and r["state"] == FeedStatus.OK else r["state"],
            "items": r["items"],
            "last fetch": relative(r["last_fetched_at"], now),
            "last success": relative(r["last_success_at"], now),
            "next due": relative(r["next_fetch_at"], now),
            "errors": r["error_count"],
            "what happened / what to do": r["advice"],
        }
        for r in rows
    ]
    render(view, "table", wrap=("what happened / what to do",))


@cli.command()
@since_option
@click.option("--feed", help="Only items seen in this feed.")
@tag_option
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@format_option
@pass_context
@guarded
def items(
    obj: Context, since: str | None, feed: str | None, tag: str | None, limit: int, fmt: str
) -> None:
    """Newest items first, with the feeds that carried them.

    \b
    Examples:
      aggregator items --since 2h
      aggregator items --feed tass-en --limit 10 --format json
    """
    from aggregator.store import open_reader

    reader = open_reader(obj.db_path())
    reader.check_names(feed=feed, tag=tag)
    rows = reader.items(since=since_iso(since), feed=feed, tag=tag, limit=limit)
    render(rows, fmt, columns=ITEM_COLUMNS, widths={"feeds": 24})


@cli.command()
@click.argument("query")
@since_option
@click.option("--feed", help="Only items seen in this feed.")
@tag_option
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True)
@format_option
@pass_context
@guarded
def search(
    obj: Context,
    query: str,
    since: str | None,
    feed: str | None,
    tag: str | None,
    limit: int,
    fmt: str,
) -> None:
    """Full-text search over titles and article text, best match first.

    QUERY may use FTS5 syntax: words, "exact phrases", OR, NOT, prefix*.

    \b
    Examples:
      aggregator search Libya
      aggregator search '"Security Council" NOT Libya' --since 1d
    """
    from aggregator.store import open_reader

    reader = open_reader(obj.db_path())
    reader.check_names(feed=feed, tag=tag)
    rows = reader.search(query, since=since_iso(since), feed=feed, tag=tag, limit=limit)
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
    """Run one read-only SQL statement against the store (tables: feeds, fetches, items,
    sightings, stories, items_fts). Writes, ATTACH and functions that reach into SQLite's
    internals are refused; a query stops after --timeout or at Ctrl-C (exit 130).

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
