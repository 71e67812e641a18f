"""`aggregator worker` and `aggregator workers`: the distributed mode's workers, and who is
running. `broker_option` is the `--broker` of these and of `fetch` and `run`."""

from __future__ import annotations

import math
import sys
from typing import Any

import click

from aggregator.cli.group import Context, cli, guarded, pass_context
from aggregator.cli.tables import render
from aggregator.errors import UsageError
from aggregator.sanitize import escaped_json


def _broker(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if not value:
        return None
    from aggregator.config.settings_keys import broker_url

    try:
        return broker_url(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


broker_option = click.option(
    "--broker",
    envvar="AGGREGATOR_BROKER",
    callback=_broker,
    metavar="URL",
    help="Redis of the distributed mode, e.g. redis://queue.example:6379/0 "
    "(env AGGREGATOR_BROKER; default: settings.broker).",
)


def broker_url(obj: Context, given: str | None) -> str:
    """--broker, else AGGREGATOR_BROKER, else settings.broker; a UsageError without any."""
    url = given or obj.settings().broker
    if not url:
        raise UsageError(
            "no broker: give --broker redis://HOST:6379/0, set AGGREGATOR_BROKER, or set "
            "settings.broker in feeds.yaml"
        )
    return url


def _queues(_ctx: click.Context, _param: click.Parameter, value: str) -> tuple[str, ...]:
    from aggregator.engine.broker import WORKER_QUEUES

    names = tuple(dict.fromkeys(q.strip() for q in value.split(",") if q.strip()))
    wrong = [q for q in names if q not in WORKER_QUEUES]
    if wrong or not names:
        raise click.BadParameter(
            f"{', '.join(wrong) or 'nothing'}: a worker consumes {' and/or '.join(WORKER_QUEUES)}"
            " (the commit queue is the writer's, `aggregator run --broker`)"
        )
    return names


@cli.command()
@broker_option
@click.option(
    "--queues",
    default="fetch,extract",
    show_default=True,
    callback=_queues,
    help="fetch: poll feeds and fetch article pages (network); extract: extract and "
    "fingerprint pages (CPU).",
)
@click.option(
    "--processes",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="Worker processes (extraction uses one core each).",
)
@click.option(
    "--threads",
    type=click.IntRange(1, 256),
    default=8,
    show_default=True,
    help="Threads per process (messages in progress at once).",
)
@click.option(
    "--log-format",
    type=click.Choice(("human", "json")),
    default="human",
    show_default=True,
    help="human: one readable line per event; json: one JSON object per line.",
)
@pass_context
@guarded
def worker(
    obj: Context,
    broker: str | None,
    queues: tuple[str, ...],
    processes: int,
    threads: int,
    log_format: str,
) -> None:
    """A worker of the distributed mode: polls feeds, fetches article pages, extracts and
    fingerprints them, and hands the results to the one writer (`aggregator run --broker`).

    Run any number, on any machines that reach the broker and the web; each needs only the
    broker's URL and feeds.yaml's settings (timeouts, size caps, allow_networks, politeness;
    the feeds themselves are not read). Per-host politeness (per_host, host_gap, robots.txt
    Crawl-delay) holds across all workers together. Stops on SIGTERM or SIGINT, finishing
    the messages in hand.

    \b
    Examples:
      aggregator worker --broker redis://queue.example:6379/0
      aggregator worker --queues extract --processes 4 --threads 2
    """
    from aggregator.daemon.logs import setup_logging
    from aggregator.engine.tasks import run_workers

    url = broker_url(obj, broker)
    settings = obj.settings()
    setup_logging(log_format)
    run_workers(settings, url, queues=queues, processes=processes, threads=threads)
    sys.exit(0)


@cli.command()
@broker_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
@guarded
def workers(obj: Context, broker: str | None, as_json: bool) -> None:
    """Live workers of the distributed mode (from their heartbeats in Redis), what each is
    doing, and the queues: messages ready, delayed, in flight and dead, and the age of the
    oldest waiting one.

    \b
    Example:
      aggregator workers --broker redis://queue.example:6379/0
    """
    from aggregator.engine import broker as brokers

    url = broker_url(obj, broker)
    brokers.check(url)
    with brokers.client(url) as conn:
        live = brokers.live_workers(conn)
        queues = brokers.depths(conn)
    if as_json:
        import json  # here: the listings' module imports this one (fetch's --broker)
        from dataclasses import asdict

        found = {"workers": live, "queues": [asdict(q) for q in queues]}
        click.echo(escaped_json(json.dumps(found, ensure_ascii=False, indent=2)))
        return
    rows = worker_rows(live)
    if rows:
        render(rows, "table", title=f"{len(rows)} live workers", wrap=("doing",))
    else:
        click.echo("no live workers (start one with `aggregator worker --broker URL`)")
    render(
        [
            {
                "queue": q.queue,
                "ready": q.ready,
                "delayed": q.delayed,
                "in flight": q.in_flight,
                "dead": q.dead,
                "oldest": "" if q.oldest_s is None else f"{q.oldest_s:.0f}s",
            }
            for q in queues
        ],
        "table",
        title="queues",
    )


def worker_rows(live: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The table's rows from the workers' heartbeats. A heartbeat says what a worker was doing
    when it was sent (every BEAT_S): `heard` is how long ago that was (`heard_s`, on Redis's
    clock), and each job's time is counted to now. A worker not heard from for longer than
    that is frozen or cut off from Redis; it drops off the list once its heartbeat expires."""
    rows = []
    for w in live:
        ago = _seconds(w.get("heard_s"))
        rows.append(
            {
                "worker": w.get("id"),
                "queues": ",".join(w.get("queues") or ()),
                "threads": w.get("threads"),
                "since": w.get("started_at"),
                "heard": "?" if ago is None else f"{ago:.0f}s ago",
                "done": w.get("done"),
                "failed": w.get("failed"),
                "doing": _doing(w.get("doing") or [], ago or 0.0),
            }
        )
    return rows


def _seconds(value: object) -> float | None:
    """A number of seconds from a heartbeat; None for anything else (another version's)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _doing(jobs: list[dict[str, Any]], ago: float) -> str:
    if not jobs:
        return "idle"
    return "; ".join(
        f"{j.get('task')} {j.get('subject')} ({(_seconds(j.get('for_s')) or 0.0) + ago:.0f}s)"
        for j in jobs
    )
