"""`aggregator run`: the daemon, registered on the `aggregator` command group."""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Any

import click

from aggregator.cli.group import Context, cli, guarded, pass_context
from aggregator.cli.worker_command import broker_option

# daemon.logs.FORMATS, written out: importing the daemon's logging to print `--help` cost
# every command's start-up (tests/test_query_plans.py checks they agree).
LOG_FORMATS = ("human", "json")


@cli.command()
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default="human",
    show_default=True,
    help="human: one readable line per event; json: one JSON object per line, for collectors.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    help="Serve Prometheus metrics on /metrics and a health check on /healthz (0: any port).",
)
@click.option(
    "--metrics-host", default="127.0.0.1", show_default=True, help="Address for --metrics-port."
)
@click.option("--workers", type=click.IntRange(0, 64), help="Processes for parse/extract.")
@broker_option
@pass_context
@guarded
def run(
    obj: Context,
    log_format: str,
    metrics_port: int | None,
    metrics_host: str,
    workers: int | None,
    broker: str | None,
) -> None:
    """Keep every feed fresh until SIGTERM or SIGINT (the daemon).

    Each feed is polled on its own schedule: adaptive to how often it posts (within
    min_interval and max_interval), honouring the server's hints, backing off on errors.
    The schedule is kept in the database, so a restart resumes where it stopped.
    feeds.yaml is re-read when it changes or on SIGHUP. One daemon per database: a second
    one exits with code 2; `aggregator fetch` may run beside it.

    With a broker (--broker, AGGREGATOR_BROKER or settings.broker) this is the distributed
    mode's scheduler and one writer: due feeds go to the workers (`aggregator worker`, on any
    machines) and what they send back is committed here. One writer per broker: a second
    exits with code 2.

    \b
    Examples:
      aggregator run
      aggregator --config /etc/aggregator/feeds.yaml run --log-format json --metrics-port 9108
      aggregator run --broker redis://queue.example:6379/0
    """
    import asyncio

    from aggregator.daemon.instance_lock import AlreadyRunning
    from aggregator.daemon.logs import setup_logging
    from aggregator.daemon.metrics import MetricsUnavailable
    from aggregator.daemon.service import Daemon

    config = obj.config()
    setup_logging(log_format)
    url = broker or config.settings.broker
    options: dict[str, Any] = {
        "workers": workers,
        "metrics_address": None if metrics_port is None else (metrics_host, metrics_port),
    }
    if url:
        from aggregator.daemon.distributed import DistributedDaemon

        config = replace(config, settings=replace(config.settings, broker=url))
        daemon: Daemon = DistributedDaemon(config, obj.db_path(), url=url, **options)
    else:
        daemon = Daemon(config, obj.db_path(), **options)
    try:
        code = asyncio.run(daemon.run())
    except (AlreadyRunning, MetricsUnavailable) as exc:
        click.echo(f"aggregator: {exc}", err=True)
        sys.exit(2)
    sys.exit(code)
