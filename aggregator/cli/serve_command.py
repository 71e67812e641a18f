"""`aggregator serve`: the store read-only in Datasette, with live feeds for republishing.
Registered on the `aggregator` command group."""

from __future__ import annotations

import click

from aggregator.cli.group import Context, cli, guarded, pass_context


@cli.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; 0.0.0.0 opens it to the network (put a proxy in front).",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8001,
    show_default=True,
    help="Port to listen on (0: any free port, printed when it starts).",
)
@pass_context
@guarded
def serve(obj: Context, host: str, port: int) -> None:
    """The store, read-only, in Datasette (tables, canned queries, SQL), and live feeds for
    republishing on the same server: /feeds/stories.atom, .rss and .json, each taking
    ?tag=, ?feed=, ?since=, ?until=, ?sort= (last_seen, first_seen, published, as export's
    --sort), ?min_sources= and ?limit= (at most 500), with ETag and Last-Modified. An
    unknown tag or feed answers 400 naming the known ones. The feed's self link is
    settings.publish.link, else the URL it was asked at.

    Nothing is ever written to the store. Runs until Ctrl-C or SIGTERM.

    \b
    Examples:
      aggregator serve                      # http://127.0.0.1:8001/
      curl -s 'http://127.0.0.1:8001/feeds/stories.atom?tag=world&since=1d'
      curl -s 'http://127.0.0.1:8001/feeds/stories.json?sort=first_seen&until=2h'
      open http://127.0.0.1:8001/aggregator/latest_stories
    """
    from aggregator.publish.serve import serve as serve_store

    serve_store(obj.db_path(), host=host, port=port, publishing=obj.settings().publish)
