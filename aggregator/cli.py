"""The `aggregator` command: thin commands over the library.

Each command loads what it needs, calls one library function, formats the result and maps
domain errors to a clean message and exit code (0 good, 1 some feeds failed, 2 bad usage or
configuration).
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from aggregator import __version__
from aggregator.errors import AggregatorError, InvalidConfig, StoreError
from aggregator.models import Config, Settings
from aggregator.output import FORMATS, render
from aggregator.times import iso_utc, since_to_iso, utc_now

DEFAULT_CONFIG = "feeds.yaml"
DEFAULT_DB = "data/aggregator.db"


class Context:
    def __init__(self, config_path: str, db_path: str | None) -> None:
        self.config_path = config_path
        self.db_override = db_path
        self._config: Config | None = None
        self._warned = False

    def config(self) -> Config:
        if self._config is None:
            from aggregator.config import load_config

            self._config = load_config(self.config_path)
        return self._config

    def db_path(self) -> str:
        """--db / AGGREGATOR_DB, else the config's database (relative to the config file).

        A feeds.yaml with problems does not stop the commands that only read the store:
        its settings.database is read on its own, with a warning, else the default."""
        if self.db_override:
            return self.db_override
        if not Path(self.config_path).exists():
            return DEFAULT_DB
        try:
            database = Path(self.config().settings.database)
        except InvalidConfig:
            from aggregator.config import database_setting

            database = Path(database_setting(self.config_path) or Settings().database)
            self._warn(f"{self.config_path} has problems (run `aggregator check`)")
        if not database.is_absolute():
            database = Path(self.config_path).parent / database
        return str(database)

    def _warn(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            click.echo(f"aggregator: warning: {message}", err=True)


pass_context = click.make_pass_decorator(Context)


def _fail(message: str, code: int) -> None:
    click.echo(f"aggregator: {message}", err=True)
    sys.exit(code)


def guarded(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn domain errors into a message and exit code instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InvalidConfig as exc:
            _fail(f"{len(exc.problems)} problem(s) in the configuration:\n{exc}", 2)
        except StoreError as exc:
            _fail(str(exc), 2)
        except AggregatorError as exc:
            _fail(str(exc), 1)

    return wrapper


# What `items` and `search` tables show; json, ndjson and csv carry every column.
ITEM_COLUMNS = (
    "id",
    "first_seen_at",
    "feeds",
    "story_id",
    "story_items",
    "extract_status",
    "title",
)

format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="Output format; json and ndjson are stable for scripts.",
)


def since_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--since",
        help="Only items first seen after this: a duration back from now (2h, 3d) "
        "or a date (2026-11-27).",
    )(func)


def _since(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return since_to_iso(value, now=utc_now())
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="aggregator")
@click.option(
    "--config",
    "config_path",
    envvar="AGGREGATOR_CONFIG",
    default=DEFAULT_CONFIG,
    show_default=True,
    help="feeds.yaml to use (env AGGREGATOR_CONFIG).",
)
@click.option(
    "--db",
    "db_path",
    envvar="AGGREGATOR_DB",
    help="SQLite store (env AGGREGATOR_DB); default: settings.database, else data/aggregator.db.",
)
@click.pass_context
def cli(ctx: click.Context, config_path: str, db_path: str | None) -> None:
    """A newsroom's feed aggregator: polls wire and partner feeds, extracts the articles and
    keeps every story once in one SQLite store.

    \b
    Example:
      aggregator fetch && aggregator items --since 2h
    """
    ctx.obj = Context(config_path, db_path)


@cli.command()
@click.argument("names", nargs=-1)
@click.option("--no-extract", is_flag=True, help="Store entries without fetching article pages.")
@click.option("--workers", type=click.IntRange(0, 64), help="Processes for parse/extract.")
@pass_context
@guarded
def fetch(obj: Context, names: tuple[str, ...], no_extract: bool, workers: int | None) -> None:
    """One pass over every feed (or the NAMEd ones) now, then exit.

    Exit code 0 when every feed was fetched, 1 when some failed (their errors are recorded
    and shown by `aggregator feeds`), 2 on bad configuration.

    \b
    Examples:
      aggregator fetch
      aggregator fetch tass-en bbc-world --no-extract
    """
    from aggregator.fetchview import FetchView
    from aggregator.pipeline import fetch_feeds
    from aggregator.store import Store
    from aggregator.workers import Workers

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
            outcomes = asyncio.run(
                fetch_feeds(
                    config,
                    store,
                    feeds,
                    extract=not no_extract,
                    workers=Workers(workers),
                    on_done=view.done,
                )
            )
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
    from aggregator.advice import relative, with_health
    from aggregator.schedule import policy_from, rate_window_start
    from aggregator.store import open_reader, reads
    from aggregator.store.schedule import feed_histories

    db = open_reader(obj.db_path())
    try:
        policy = policy_from(obj.config().settings)
    except InvalidConfig:  # a broken (or absent) feeds.yaml must not hide the feeds' health
        policy = policy_from(Settings())
    now = utc_now()
    histories = feed_histories(db, since=iso_utc(rate_window_start(now, policy)))
    rows = with_health(reads.feeds(db), histories, now=now, policy=policy)
    if as_json:
        render(rows, "json")
        return
    view = [
        {
            "feed": r["name"],
            "state": "stale" if r["stale"] and r["state"] == "ok" else r["state"],
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
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@format_option
@pass_context
@guarded
def items(obj: Context, since: str | None, feed: str | None, limit: int, fmt: str) -> None:
    """Newest items first, with the feeds that carried them.

    \b
    Examples:
      aggregator items --since 2h
      aggregator items --feed tass-en --limit 10 --format json
    """
    from aggregator.store import open_reader, reads

    rows = reads.items(open_reader(obj.db_path()), since=_since(since), feed=feed, limit=limit)
    render(rows, fmt, columns=ITEM_COLUMNS, widths={"feeds": 24})


@cli.command()
@click.argument("query")
@since_option
@click.option("--feed", help="Only items seen in this feed.")
@click.option("--limit", type=click.IntRange(1), default=20, show_default=True)
@format_option
@pass_context
@guarded
def search(
    obj: Context, query: str, since: str | None, feed: str | None, limit: int, fmt: str
) -> None:
    """Full-text search over titles and article text, best match first.

    QUERY may use FTS5 syntax: words, "exact phrases", OR, NOT, prefix*.

    \b
    Examples:
      aggregator search Libya
      aggregator search '"Security Council" NOT Libya' --since 1d
    """
    from aggregator.store import open_reader, reads

    db = open_reader(obj.db_path())
    rows = reads.search(db, query, since=_since(since), feed=feed, limit=limit)
    render(rows, fmt, columns=(*ITEM_COLUMNS, "snippet"), widths={"feeds": 24, "title": 50})


@cli.command()
@click.argument("sql")
@format_option
@pass_context
@guarded
def query(obj: Context, sql: str, fmt: str) -> None:
    """Run read-only SQL against the store (tables: feeds, fetches, items, sightings,
    stories, items_fts). Writes are refused.

    \b
    Example:
      aggregator query "select feed, count(*) n from sightings group by feed"
    """
    from aggregator.store import open_reader, read_query

    render(read_query(open_reader(obj.db_path()), sql), fmt)


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


def main() -> None:
    cli(prog_name="aggregator")


from aggregator import (  # noqa: E402  each module registers its commands on `cli` above
    cli_export,  # noqa: F401  registers `aggregator export`
    cli_run,  # noqa: F401  registers `aggregator run`
    cli_stories,  # noqa: F401  registers `aggregator stories`
)
