"""The `aggregator` command group, its global options, and what every command shares:
the context (config, database), error handling, and the common options.

Each command loads what it needs, calls one library function, formats the result and maps
domain errors to a clean message and exit code (0 good, 1 some feeds failed, 2 bad usage or
configuration).

Every command's module is imported when the command is first asked for (`COMMANDS`), so
`aggregator --help` imports none of them and a command only its own: this module imports
click and nothing heavier at the top, and each helper below imports what it uses.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from aggregator import __version__
from aggregator.times import since_to_iso, utc_now

if TYPE_CHECKING:
    from aggregator.enums import Order
    from aggregator.models import Config, Settings

DEFAULT_CONFIG = "feeds.yaml"
DEFAULT_DB = "data/aggregator.db"

# fmt: off
# Every command of the group: the module of aggregator.cli that defines it, and the first
# sentence of its description, which `aggregator --help` lists without importing any module
# (tests/test_help.py checks both against the commands themselves). A new command's module
# goes here, or the command is never found.
COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("commands", "Validate feeds.yaml without fetching anything; says exactly what is"
              " wrong and where."),
    "export": ("export_command", "A feed for republishing: one entry per story (its lead item,"
               " wire copy first), its sources earliest first, its desks' tags as categories;"
               " every field sanitised."),
    "feeds": ("feed_commands", "Each feed's health: state, last success, next due, last error,"
              " error count; and feeds.yaml managed without hand-editing it (its comments"
              " kept)."),
    "fetch": ("commands", "One pass over every feed (or the NAMEd ones) now, then exit."),
    "items": ("commands", "Newest items first, with the feeds that carried them, their story"
              " and how many items it has."),
    "query": ("commands", "Run one read-only SQL statement, SQL, against the store."),
    "retry": ("retry_command", "Extract article pages again now: the ITEMs' (an item id, or"
              " its URL) and, with --feed, those of every item of the feed whose page failed"
              " or was never fetched, however often they were tried before."),
    "run": ("run_command", "Keep every feed fresh until SIGTERM or SIGINT (the daemon)."),
    "search": ("commands", "Full-text search over titles, summaries and article text, best"
               " match first (--sort: newest first instead)."),
    "serve": ("serve_command", "The store, read-only, in Datasette (tables, canned queries,"
              " SQL), and live feeds for republishing on the same server: /feeds/stories.atom,"
              " .rss and .json, each taking ?tag=, ?feed=, ?since=, ?until=, ?sort= (last_seen,"
              " first_seen, published, as export's --sort), ?min_sources= and ?limit= (at most"
              " 500), with ETag and Last-Modified."),
    "stories": ("story_commands", "One row per story (the items that are the same story: the"
                " same link, or a partner's copy of a wire story), latest first, with the"
                " feeds that carried it."),
    "worker": ("worker_command", "A worker of the distributed mode: polls feeds, fetches"
               " article pages, extracts and fingerprints them, and hands the results to the"
               " one writer (`aggregator run --broker`)."),
    "workers": ("worker_command", "Live workers of the distributed mode (from their heartbeats"
                " in Redis), what each is doing, and the queues: messages ready, delayed, in"
                " flight and dead, and the age of the oldest waiting one."),
}
# fmt: on


class LazyCommands(MutableMapping[str, click.Command]):
    """A group's commands by name. Looking one up imports its module the first time (the
    module's decorators register its commands here); listing the names imports nothing."""

    def __init__(self, lazy: Mapping[str, tuple[str, str]]) -> None:
        self._lazy = dict(lazy)  # name -> (module, description) until the module is imported
        self._commands: dict[str, click.Command] = {}

    def listed(self, name: str) -> click.Command:
        """The command, or while its module is not imported a stand-in with its description:
        what the group's --help lists, importing nothing."""
        if name in self._commands:
            return self._commands[name]
        return click.Command(name, help=self._lazy[name][1])

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._commands and name in self._lazy:
            importlib.import_module(f"{__package__}.{self._lazy[name][0]}")
        return self._commands[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._commands[name] = command

    def __delitem__(self, name: str) -> None:
        found = self._commands.pop(name, None) is not None
        if self._lazy.pop(name, None) is None and not found:
            raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return name in self._commands or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys([*self._commands, *self._lazy]))

    def __len__(self) -> int:
        return len(self._commands.keys() | self._lazy.keys())


class CommandGroup(click.Group):
    """The `aggregator` group: its commands are a LazyCommands, and its --help lists those
    not imported yet by their descriptions in COMMANDS, exactly as click lists commands."""

    commands: LazyCommands

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        listed = {name: self.commands.listed(name) for name in self.list_commands(ctx)}
        click.Group(self.name, commands=listed).format_commands(ctx, formatter)


class Context:
    def __init__(
        self, config_path: str, db_path: str | None, *, config_named: bool = False
    ) -> None:
        self.config_path = config_path
        self.config_named = config_named  # by --config or AGGREGATOR_CONFIG: it must exist
        self.db_override = db_path
        self._config: Config | None = None
        self._warned = False

    def config(self) -> Config:
        if self._config is None:
            from aggregator.config.loader import load_config

            self._config = load_config(self.config_path)
        return self._config

    def settings(self) -> Settings:
        """feeds.yaml's settings; the defaults when there is no feeds.yaml (unless one was
        named: a --config that is not there is an error, never the defaults)."""
        if not self.config_named and not Path(self.config_path).exists():
            from aggregator.models import Settings

            return Settings()
        return self.config().settings

    def db_path(self) -> str:
        """--db / AGGREGATOR_DB, else the config's database (relative to the config file).

        A feeds.yaml with problems does not stop the commands that only read the store:
        its settings.database is read on its own, with a warning, else the default."""
        if self.db_override:
            return self.db_override
        if not Path(self.config_path).exists():
            if self.config_named or not Path(DEFAULT_DB).exists():
                self._missing_config()
            return DEFAULT_DB
        from aggregator.errors import InvalidConfig

        try:
            database = Path(self.config().settings.database)
        except InvalidConfig:
            from aggregator.config.loader import database_setting

            database = Path(database_setting(self.config_path) or DEFAULT_DB)
            self._warn(f"{self.config_path} has problems (run `aggregator check`)")
        if not database.is_absolute():
            database = Path(self.config_path).parent / database
        return str(database)

    def _missing_config(self) -> None:
        """Without feeds.yaml there is no settings.database to find the store by: say that
        the file is missing, not that the store is (which is where the default points)."""
        from aggregator.config.loader import missing_config
        from aggregator.errors import ConfigError, InvalidConfig

        why = missing_config(self.config_path)
        if not self.config_named:
            why += f"; or read a store without it with --db PATH (there is none at {DEFAULT_DB})"
        raise InvalidConfig([ConfigError(why, path=self.config_path)])

    def _warn(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            click.echo(f"aggregator: warning: {message}", err=True)


pass_context = click.make_pass_decorator(Context)


def _fail(message: str, code: int) -> NoReturn:
    from aggregator.sanitize import terminal_text

    # Errors may quote what a server sent (a Content-Type, a title): escaped for the terminal.
    click.echo(f"aggregator: {terminal_text(message, multiline=True)}", err=True)
    sys.exit(code)


# Ctrl-C: 128 + SIGINT, as shells report it; 1 would read as "some feeds failed".
INTERRUPTED = 130


def interrupted(kept: str) -> NoReturn:
    """Exit after Ctrl-C, saying what was kept."""
    _fail(f"interrupted (Ctrl-C): {kept}", INTERRUPTED)


def guarded(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn domain errors into a message and exit code instead of a traceback, and Ctrl-C
    into exit code 130 with what was kept (a command that knows more says it itself)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from aggregator.errors import AggregatorError, InvalidConfig, StoreError, UsageError

        try:
            return func(*args, **kwargs)
        except KeyboardInterrupt:
            out = kwargs.get("out")
            kept = f"; {out} is as it was (it is replaced whole or not at all)" if out else ""
            interrupted(
                "what was committed to the store before is kept, nothing half-done was"
                f" written{kept}"
            )
        except InvalidConfig as exc:
            _fail(f"{len(exc.problems)} problem(s) in the configuration:\n{exc}", 2)
        except (StoreError, UsageError) as exc:
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


def format_option(func: Callable[..., Any]) -> Callable[..., Any]:
    from aggregator.cli.tables import FORMATS

    return click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="Output format; json and ndjson are stable for scripts.",
    )(func)


def since_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--since",
        help="Only items first seen after this (with --sort published: published after it):"
        " a duration back from now (2h, 3d) or a date (2026-11-27).",
    )(func)


tag_option = click.option("--tag", help="Only what feeds with this tag (a desk) carried.")


def since_iso(value: str | None, hint: str = "--since") -> str | None:
    if value is None:
        return None
    try:
        return since_to_iso(value, now=utc_now())
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=hint) from None


def until_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--until",
        help="Only items first seen before this (with --sort published: published before"
        " it): a duration back from now (30m, 1d) or a date (2026-11-28).",
    )(func)


# --limit and --min-sources: SQLite's largest integer bounds them, so a longer number is a
# usage error naming the range rather than an overflow deep in a query.
COUNT = click.IntRange(1, 2**63 - 1)


def sort_option(*orders: Order, default: Order) -> Callable[..., Any]:
    """`--sort`: which time orders a listing, newest first; --since and --until bound it."""
    from aggregator.enums import Order

    described = {
        Order.FIRST_SEEN: "first_seen: when this store first saw it",
        Order.LAST_SEEN: "last_seen: when a feed last carried it",
        Order.PUBLISHED: "published: the feed's own date (undated last)",
        Order.RELEVANCE: "relevance: best match first",
    }
    return click.option(
        "--sort",
        type=click.Choice([str(o) for o in orders]),
        default=str(default),
        show_default=True,
        callback=lambda _ctx, _param, value: Order(value),
        help="Newest first by: " + "; ".join(described[o] for o in orders) + ".",
    )


def window(since: str | None, until: str | None) -> tuple[str | None, str | None]:
    """--since and --until as stored times; a window that is empty is an error, never an
    empty listing."""
    start, end = since_iso(since), since_iso(until, "--until")
    if start is not None and end is not None and end <= start:
        raise click.BadParameter(
            f"{until!r} ({end}) is not after --since {since!r} ({start}): nothing can be in"
            " between; give an --until later than --since",
            param_hint="--until",
        )
    return start, end


@click.group(
    cls=CommandGroup,
    commands=LazyCommands(COMMANDS),
    context_settings={"help_option_names": ["-h", "--help"]},
)
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
    named = ctx.get_parameter_source("config_path") != click.core.ParameterSource.DEFAULT
    ctx.obj = Context(config_path, db_path, config_named=named)
