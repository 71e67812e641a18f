"""`aggregator feeds`: each feed's health, and feeds.yaml managed without hand-editing it
(add, remove, pause, resume, OPML import and export, discover). Registered on the
`aggregator` command group.

Every edit keeps the file's comments and layout, is checked as `aggregator check` would before
it is written, is written atomically, and is then announced to the daemon running on the
store (SIGHUP: it reloads feeds.yaml at once).
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from aggregator.cli.group import Context, cli, guarded, pass_context
from aggregator.cli.tables import render
from aggregator.errors import InvalidConfig, UsageError
from aggregator.models import FeedConfig, Settings
from aggregator.sanitize import terminal_text
from aggregator.times import iso_utc, utc_now

if TYPE_CHECKING:
    from aggregator.engine.discover import Candidate

HEALTH_FORMATS = ("table", "json", "csv")


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (--format json).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(HEALTH_FORMATS),
    default="table",
    show_default=True,
    help="Output format; json is stable for scripts.",
)
@click.pass_context
@guarded
def feeds(ctx: click.Context, as_json: bool, fmt: str) -> None:
    """Each feed's health: state, last success, next due, last error, error count; and
    feeds.yaml managed without hand-editing it (its comments kept).

    Feeds that need attention (gone, failing, degraded: over half its article pages of the
    last 24 h failed, stale: no new entry for far longer than usual) come first, each with
    what to do about it. After an edit, a running daemon is
    told to reload feeds.yaml at once.

    \b
    Examples:
      aggregator feeds
      aggregator feeds --format csv > feeds.csv
      aggregator feeds discover https://tass.com/
      aggregator feeds add tass-en https://tass.com/rss/v2.xml --tag wire --priority 10
      aggregator feeds pause tass-en
      aggregator feeds import subscriptions.opml
    """
    if ctx.invoked_subcommand is not None:
        return
    if as_json and fmt not in ("table", "json"):
        raise click.UsageError("--json is --format json; give only one of them")
    obj = ctx.find_object(Context)
    assert obj is not None  # the `aggregator` group made it
    _show_health(obj, "json" if as_json else fmt)


def _show_health(obj: Context, fmt: str) -> None:
    from aggregator.cli.feed_health import ADVICE, table_rows, with_health
    from aggregator.cli.page_health import page_health, pages_since
    from aggregator.schedule.due import policy_from, rate_window_start
    from aggregator.store import open_reader

    reader = open_reader(obj.db_path())
    configured: set[str] | None = None
    policy = policy_from(Settings())
    # A broken (or absent) feeds.yaml must not hide the feeds' health; an absent one is not
    # looked for (the YAML parser would cost the command 20 ms of start-up).
    if obj.config_named or Path(obj.config_path).exists():
        try:
            config = obj.config()
            policy, configured = policy_from(config.settings), {f.name for f in config.feeds}
        except InvalidConfig:
            pass
    now = utc_now()
    histories = reader.feed_histories(since=iso_utc(rate_window_start(now, policy)))
    pages = page_health(reader.recent_pages(since=pages_since(now)))
    rows = with_health(
        reader.feeds(), histories, now=now, policy=policy, pages=pages, configured=configured
    )
    if fmt != "table":
        render(rows, fmt)
        return
    render(table_rows(rows, now), "table", wrap=(ADVICE,))


# -- editing feeds.yaml -------------------------------------------------------------------------


@feeds.command()
@click.argument("name")
@click.argument("url")
@click.option("--interval", help="Poll exactly this often (10m, 1h) instead of adaptively.")
@click.option("--tag", "tags", multiple=True, help="A desk the feed belongs to; repeatable.")
@click.option("--priority", type=int, help="Higher leads a story (wire copy first); default 0.")
@click.option("--no-extract", is_flag=True, help="The feed carries the full text: no page fetch.")
@pass_context
@guarded
def add(
    obj: Context,
    name: str,
    url: str,
    interval: str | None,
    tags: tuple[str, ...],
    priority: int | None,
    no_extract: bool,
) -> None:
    """Add a feed to feeds.yaml (created if there is none). NAME is lower-case letters,
    digits and '-'; a NAME or URL already there is refused, saying which feed has it.

    \b
    Examples:
      aggregator feeds add tass-en https://tass.com/rss/v2.xml --interval 10m --tag wire
      aggregator feeds add partner-x https://partner.example/feed.xml --no-extract
    """
    # Each command imports the YAML editing it needs: ruamel.yaml and PyYAML cost every
    # command's start-up (`aggregator --help`, `items`) 70 ms.
    from aggregator.config.editing import NewFeed, editing

    feed = NewFeed(
        name=name,
        url=url.strip(),
        interval=interval.strip() if interval else None,
        priority=priority,
        tags=tuple(dict.fromkeys(tag.strip() for tag in tags if tag.strip())),
        extract=False if no_extract else None,
    )
    with editing(obj.config_path, create=True) as edit:
        edit.add(feed)
        edit.save()
    click.echo(f"Added {name} ({terminal_text(feed.url)}) to {edit.path}.")
    _tell_daemon(obj)


@feeds.command()
@click.argument("name")
@pass_context
@guarded
def remove(obj: Context, name: str) -> None:
    """Remove the feed NAME from feeds.yaml. Its items stay in the store; `aggregator
    feeds` shows it as disabled.

    \b
    Example:
      aggregator feeds remove partner-x
    """
    from aggregator.config.editing import editing

    with editing(obj.config_path) as edit:
        gone = edit.remove(name)
        edit.save()
    click.echo(
        f"Removed {name} ({terminal_text(gone.url)}) from {edit.path}; its items stay in the store."
    )
    _tell_daemon(obj)


@feeds.command()
@click.argument("name")
@pass_context
@guarded
def pause(obj: Context, name: str) -> None:
    """Stop polling NAME without removing it (`paused: true` in feeds.yaml); its items and
    history stay, and `aggregator feeds` shows it as paused.

    \b
    Example:
      aggregator feeds pause partner-x
    """
    _set_paused(obj, name, paused=True)


@feeds.command()
@click.argument("name")
@pass_context
@guarded
def resume(obj: Context, name: str) -> None:
    """Poll the paused feed NAME again (its `paused` key is removed); it is due at once.

    \b
    Example:
      aggregator feeds resume partner-x
    """
    _set_paused(obj, name, paused=False)


def _set_paused(obj: Context, name: str, *, paused: bool) -> None:
    from aggregator.config.editing import editing

    with editing(obj.config_path) as edit:
        if not edit.set_paused(name, paused):
            state = "already paused" if paused else "not paused, nothing to resume"
            click.echo(f"{name} is {state}; {edit.path} is unchanged.")
            return
        edit.save()
    if paused:
        click.echo(f"Paused {name}: not polled until `aggregator feeds resume {name}`.")
    else:
        click.echo(f"Resumed {name}: it is polled again.")
    _tell_daemon(obj)


# -- OPML ---------------------------------------------------------------------------------------


@feeds.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@pass_context
@guarded
def import_opml(obj: Context, file: Path) -> None:
    """Add the feeds the OPML file FILE lists (exported by another reader). Names are made
    from their titles; the folders they sit in, and their categories, become tags; addresses
    already in feeds.yaml are skipped and listed.

    \b
    Example:
      aggregator feeds import subscriptions.opml
    """
    from aggregator.config.editing import editing
    from aggregator.config.opml import MAX_OPML_BYTES, plan_import, read_opml

    try:
        with file.open("rb") as opened:
            data = opened.read(MAX_OPML_BYTES + 1)  # read_opml refuses anything longer
    except OSError as exc:
        raise UsageError(f"cannot read {file}: {exc.strerror or exc}") from None
    outlines = read_opml(data, source=str(file))
    if not outlines:
        raise UsageError(f"{file} lists no feeds (no outline with an xmlUrl); nothing imported")
    with editing(obj.config_path, create=True) as edit:
        plan = plan_import(outlines, edit.config.feeds, edit.config.settings)
        if plan.added:
            edit.add(*plan.added)
            edit.save()
    if plan.added:
        click.echo(f"Added {len(plan.added)} feeds from {file} to {edit.path}:")
        render(
            [{"feed": f.name, "url": f.url, "tags": ", ".join(f.tags)} for f in plan.added],
            "table",
            widths={"url": 70},
        )
    for skipped in plan.skipped:
        click.echo(f"Skipped {terminal_text(skipped.url)}: {terminal_text(skipped.why)}")
    for note in plan.notes:
        click.echo(f"Note: {terminal_text(note)}")
    if not plan.added:
        click.echo(f"Nothing added: {edit.path} already has every feed {file} lists.")
        return
    _tell_daemon(obj)


@feeds.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("opml",)),
    default="opml",
    show_default=True,
    help="OPML 2.0, what feed readers import.",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write here, not stdout."
)
@pass_context
@guarded
def export_opml(obj: Context, fmt: str, out: Path | None) -> None:
    """The feeds of feeds.yaml as OPML 2.0, for another reader or `aggregator feeds
    import` elsewhere (interval, priority, extract and paused come along). With --out the
    file is replaced whole or not at all.

    \b
    Examples:
      aggregator feeds export > feeds.opml
      aggregator feeds export --format opml --out public/feeds.opml
    """
    from aggregator.config.file_lines import replace_file
    from aggregator.config.opml import render_opml

    config = obj.config()
    text = render_opml(
        config.feeds, title=f"aggregator: {Path(config.path).name}", created=utc_now()
    )
    if out is None:
        click.echo(text, nl=False)
        return
    replace_file(out, text)
    click.echo(f"{len(config.feeds)} feeds written to {out}", err=True)


# -- discovery ----------------------------------------------------------------------------------


@feeds.command()
@click.argument("url")
@pass_context
@guarded
def discover(obj: Context, url: str) -> None:
    """The feeds the site or page at URL offers: those the page advertises and those at
    the usual addresses (/feed, /rss.xml, /atom.xml, ...), each fetched and checked to be a
    feed, with the `aggregator feeds add` command for it. Fetched like any feed: a private
    address is refused unless feeds.yaml allows it. Exit code 1 when no feed is found.

    \b
    Examples:
      aggregator feeds discover https://tass.com/
      aggregator feeds discover www.aljazeera.com
    """
    import asyncio

    from aggregator.config.editing import suggested_name
    from aggregator.engine.discover import discover_feeds, site_url

    page = site_url(url)
    settings = obj.settings()
    configured = _configured(obj)
    found = asyncio.run(discover_feeds(page, settings))
    if found.page_error:
        click.echo(f"The page could not be fetched: {terminal_text(found.page_error)}")
    if not found.feeds:
        click.echo(
            f"No feed found at {terminal_text(page)}: the page advertises none that works, and no "
            f"usual feed address answers with a feed ({found.tried} addresses tried)."
        )
        _list_not_feeds(found.not_feeds)
        sys.exit(1)
    click.echo(f"Feeds found at {terminal_text(page)}:")
    taken = {feed.name for feed in configured}
    for feed in found.feeds:
        title = terminal_text(feed.title or "(untitled)")
        click.echo(f"\n  {title}: {feed.format}, {feed.entries} entries ({feed.found})")
        click.echo(f"    {terminal_text(feed.url)}")
        already = _polled_by(configured, feed.url)
        if already is not None:
            click.echo(f"    already in feeds.yaml as {already}")
            continue
        name = suggested_name(feed.title or "", feed.url, taken)
        taken.add(name)
        click.echo(f"    aggregator feeds add {name} {terminal_text(shlex.quote(feed.url))}")
    _list_not_feeds(found.not_feeds)


def _list_not_feeds(not_feeds: Sequence[tuple[Candidate, str]]) -> None:
    if not_feeds:
        click.echo("\nAdvertised by the page, but not a feed:")
    for candidate, why in not_feeds:
        click.echo(f"  {terminal_text(candidate.url)}: {terminal_text(why)}")


def _configured(obj: Context) -> tuple[FeedConfig, ...]:
    """The feeds feeds.yaml has (none when there is no feeds.yaml yet)."""
    return obj.config().feeds if Path(obj.config_path).exists() else ()


def _polled_by(configured: Sequence[FeedConfig], url: str) -> str | None:
    from aggregator.urls import canonical_url

    wanted = canonical_url(url)
    return next((f.name for f in configured if canonical_url(f.url) == wanted), None)


# -- telling the daemon ---------------------------------------------------------------------------


def _tell_daemon(obj: Context) -> None:
    """SIGHUP to the daemon keeping this store fresh (its pid is in the store's instance
    lock): it reloads feeds.yaml at once. Without one, the next run reads the file."""
    from aggregator.daemon.instance_lock import running_daemon

    db = obj.db_path()
    pid = running_daemon(db)
    if pid is not None:
        try:
            os.kill(pid, signal.SIGHUP)
        except ProcessLookupError:
            pid = None  # it stopped in the meantime
        except PermissionError:
            click.echo(
                f"The daemon on {db} (pid {pid}) runs as another user: it notices the change "
                f"within a tick, or tell it now with `kill -HUP {pid}`."
            )
            return
    if pid is None:
        click.echo(
            f"No daemon is running on {db}: the change takes effect at the next "
            "`aggregator run` or `aggregator fetch`."
        )
    else:
        click.echo(f"Told the running daemon (pid {pid}) to reload feeds.yaml; it does so at once.")
