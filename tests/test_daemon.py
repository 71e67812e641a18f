"""The daemon against a real HTTP server on 127.0.0.1, with a 100 ms tick and 1-2 s intervals.

Nothing sleeps to wait for timing: tests poll the database (or the server's log) with a
bounded deadline, and assert on what was recorded. A daemon in this process runs on a
FastClock where a test waits for its schedule (backoffs, Retry-After, the next round).
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from daemon_helpers import (
    FastClock,
    ThreadDaemon,
    config_text,
    query,
    scalar,
    spawn,
    terminate,
    wait_for,
)
from feeds_builder import article_page, rss
from localserver import LocalServer, RecordedRequest, ResponseWriter

from aggregator.cli import cli
from aggregator.times import parse_iso, utc_now

pytestmark = pytest.mark.slow


def one_item_feed(server: LocalServer, name: str) -> str:
    return rss([{"title": f"{name} story", "link": server.url(f"/p/{name}"), "guid": name}])


def fetches(db: Path, feed: str) -> list[tuple[str, int | None]]:
    rows = query(db, "SELECT outcome, http_status FROM fetches WHERE feed = ? ORDER BY id", feed)
    return [(str(o), s) for o, s in rows]


def test_daemon_keeps_feeds_on_schedule(server: LocalServer, tmp_path: Path) -> None:
    """Due feeds fetched, 304s on the next rounds, a failing feed backs off, a Retry-After
    is respected, and the metrics and health endpoints tell about it."""
    server.add("/wire.xml", one_item_feed(server, "wire"), etag='"w1"')
    # The wire story's page is there to extract (the others' answer 404).
    report = [f"Paragraph {n} of the wire's report on the grain talks in Geneva." for n in range(9)]
    server.add("/p/wire", article_page("wire story", report), content_type="text/html")
    server.add(
        "/partner.xml",
        one_item_feed(server, "partner"),
        last_modified="Thu, 26 Nov 2026 10:00:00 GMT",
    )
    server.add("/broken.xml", "down", status=500, content_type="text/plain")
    clock = FastClock()  # the daemon's: seconds of backoff pass in a fifth of that
    limited: list[float] = []  # when the rate-limited feed was asked, on the daemon's clock

    def rate_limited(request: RecordedRequest, writer: ResponseWriter) -> None:
        limited.append(clock.seconds())
        if len(limited) == 1:
            writer.send_status(429)
            writer.send_header("Retry-After", "3")
            writer.end_headers()
            return
        body = one_item_feed(server, "limited").encode()
        writer.send_status(200)
        writer.send_header("Content-Type", "application/rss+xml")
        writer.end_headers()
        writer.write(body)

    server.add_handler("/limited.xml", rate_limited)
    names = ("wire", "partner", "broken", "limited")
    config = tmp_path / "feeds.yaml"
    config.write_text(config_text(((n, server.url(f"/{n}.xml")) for n in names), extract="true"))
    db = tmp_path / "news.db"

    with ThreadDaemon(config, db, metrics_address=("127.0.0.1", 0), clock=clock) as running:
        wait_for(lambda: len(fetches(db, "wire")) >= 3, what="three rounds of the wire feed")
        wait_for(lambda: len(fetches(db, "partner")) >= 3, what="three rounds of the partner")
        wait_for(lambda: len(fetches(db, "broken")) >= 4, what="four failures in a row")
        wait_for(lambda: len(limited) >= 2, what="the rate-limited feed's second request")
        port = running.daemon.metrics_port
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
        health = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz")

    # The first round stored the entries; later rounds were conditional and answered 304.
    for feed in ("wire", "partner"):
        assert fetches(db, feed)[0] == ("ok", 200)
        assert set(fetches(db, feed)[1:]) == {("not_modified", 304)}
    wire_requests = [r for r in server.requests if r.path == "/wire.xml"]
    assert wire_requests[-1].headers["if-none-match"] == '"w1"'
    partner_requests = [r for r in server.requests if r.path == "/partner.xml"]
    assert partner_requests[-1].headers["if-modified-since"] == "Thu, 26 Nov 2026 10:00:00 GMT"
    assert scalar(db, "SELECT count(*) FROM items") == 3

    # Each failure in a row waits longer: 1 s, 2 s, 4 s (give or take jitter and the
    # stored times' whole seconds).
    attempts = query(db, "SELECT started_at FROM fetches WHERE feed = 'broken' ORDER BY id")
    times = [parse_iso(t) for (t,) in attempts]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert gaps[0] <= 3
    assert gaps[2] >= 3
    assert gaps[2] > gaps[0]
    assert scalar(db, "SELECT error_count FROM feeds WHERE name = 'broken'") == len(times)
    assert scalar(db, "SELECT state FROM feeds WHERE name = 'broken'") == "failing"

    # The server said "come back in 3 s": the second request waited at least that long
    # (on the daemon's clock, the one it schedules by).
    assert limited[1] - limited[0] >= 3.0
    assert fetches(db, "limited")[:2] == [("rate_limited", 429), ("ok", 200)]

    assert health.status == 200
    assert 'aggregator_fetches_total{outcome="not_modified"}' in metrics
    assert 'aggregator_fetches_total{outcome="server_error"}' in metrics
    assert "aggregator_new_items_total 3.0" in metrics
    assert 'aggregator_feeds{state="failing"} 1.0' in metrics
    assert "aggregator_due_lag_seconds" in metrics
    assert "aggregator_fetch_seconds_count" in metrics
    assert "aggregator_extract_seconds_count 1.0" in metrics  # the wire story's page
    assert scalar(db, "SELECT extract_status FROM items WHERE url LIKE '%/p/wire'") == "ok"
    assert scalar(db, "SELECT count(*) FROM feeds WHERE lease_holder IS NOT NULL") == 0


def test_a_new_feed_in_feeds_yaml_is_picked_up_without_a_restart(
    server: LocalServer, tmp_path: Path
) -> None:
    for name in ("first", "second"):
        server.add(f"/{name}.xml", one_item_feed(server, name))
    config = tmp_path / "feeds.yaml"
    config.write_text(config_text([("first", server.url("/first.xml"))]))
    db = tmp_path / "news.db"
    with ThreadDaemon(config, db, clock=FastClock()):
        wait_for(lambda: fetches(db, "first"), what="the first feed")
        config.write_text(config_text([("second", server.url("/second.xml"))]))
        wait_for(lambda: fetches(db, "second"), what="the feed added to feeds.yaml")
        assert scalar(db, "SELECT state FROM feeds WHERE name = 'first'") == "disabled"
        # A broken edit is logged and ignored: the daemon keeps the feeds it has.
        config.write_text("feeds: [oops\n")
        before = len(fetches(db, "second"))
        wait_for(lambda: len(fetches(db, "second")) > before, what="another round")
    assert scalar(db, "SELECT count(*) FROM items") == 2


def test_fetch_skips_the_feed_the_daemon_is_fetching(server: LocalServer, tmp_path: Path) -> None:
    release = threading.Event()

    def slow(request: RecordedRequest, writer: ResponseWriter) -> None:
        release.wait(10)
        writer.send_status(200)
        writer.send_header("Content-Type", "application/rss+xml")
        writer.end_headers()
        writer.write(one_item_feed(server, "slow").encode())

    server.add_handler("/slow.xml", slow)
    server.add("/quick.xml", one_item_feed(server, "quick"))
    config = tmp_path / "feeds.yaml"
    feeds = [("slow", server.url("/slow.xml")), ("quick", server.url("/quick.xml"))]
    config.write_text(config_text(feeds))
    db = tmp_path / "news.db"
    with ThreadDaemon(config, db):
        wait_for(lambda: server.hits("/slow.xml"), what="the daemon to start on the slow feed")
        result = CliRunner().invoke(
            cli, ["--config", str(config), "--db", str(db), "fetch", "--workers", "0"]
        )
        assert server.hits("/slow.xml") == 1  # `aggregator fetch` did not ask for it
        release.set()
        wait_for(lambda: fetches(db, "slow"), what="the daemon's slow refresh")
    assert result.exit_code == 0, result.output
    slow_row = next(line for line in result.stdout.splitlines() if "│ slow " in line)
    assert "│ leased " in slow_row
    assert "skipped:" in slow_row
    assert "0 failed" in result.stdout
    assert fetches(db, "slow")[0] == ("ok", 200)
    assert scalar(db, "SELECT count(*) FROM items") == 2


def test_sigterm_stops_within_the_deadline_and_a_second_daemon_is_refused(
    server: LocalServer, tmp_path: Path
) -> None:
    hung = threading.Event()

    def hang(request: RecordedRequest, writer: ResponseWriter) -> None:
        hung.set()
        writer.wait_for_stop()  # past the 1 s stop deadline; the daemon must not wait for it

    server.add_handler("/hang.xml", hang)
    server.add("/ok.xml", one_item_feed(server, "ok"))
    config = tmp_path / "feeds.yaml"
    # A fetch timeout longer than any wait below: the hung request is still in flight at
    # SIGTERM however slowly the second daemon starts on a busy machine.
    feeds = [("hang", server.url("/hang.xml")), ("ok", server.url("/ok.xml"))]
    config.write_text(config_text(feeds, timeout="120s"))
    db, log = tmp_path / "news.db", tmp_path / "daemon.log"
    daemon = spawn(config, db, log=log)
    try:
        wait_for(hung.is_set, what="the hanging feed to be in flight")
        wait_for(lambda: fetches(db, "ok"), what="the good feed")
        second = spawn(config, db, log=tmp_path / "second.log")
        assert second.wait(10) == 2
        refusal = (tmp_path / "second.log").read_text()
        assert f"pid {daemon.pid}" in refusal
        assert "one daemon per database" in refusal
        started = time.monotonic()
        code = terminate(daemon)
        stopped_in = time.monotonic() - started
    finally:
        terminate(daemon)
    assert code == 0
    assert stopped_in < 5.0  # the 1 s deadline and closing up; the hung request never ends
    text = log.read_text()
    assert "stopping: SIGTERM received" in text
    assert "abandoned 1 feeds" in text
    assert query(db, "PRAGMA integrity_check") == [("ok",)]
    # The abandoned feed committed nothing, holds no lease and is due at the next start.
    assert fetches(db, "hang") == []
    hang_row = query(db, "SELECT lease_holder, next_fetch_at FROM feeds WHERE name = 'hang'")
    assert hang_row[0][0] is None
    assert parse_iso(hang_row[0][1]) <= utc_now()


def test_sighup_reloads_feeds_yaml(server: LocalServer, tmp_path: Path) -> None:
    for name in ("old", "new"):
        server.add(f"/{name}.xml", one_item_feed(server, name))
    config = tmp_path / "feeds.yaml"
    first = config_text([("old", server.url("/old.xml"))])
    second = config_text([("old", server.url("/old.xml")), ("new", server.url("/new.xml"))])
    # Same size and the same mtime: only the signal can tell the daemon to look again.
    config.write_text(first + "#" * (len(second) - len(first) - 1) + "\n")
    mtime = config.stat().st_mtime_ns
    db, log = tmp_path / "news.db", tmp_path / "daemon.log"
    daemon = spawn(config, db, "--log-format", "json", log=log)
    try:
        wait_for(lambda: fetches(db, "old"), what="the first feed")
        config.write_text(second)
        os.utime(config, ns=(mtime, mtime))
        time.sleep(0)  # nothing to wait for: the mtime check must not fire
        daemon.send_signal(1)  # SIGHUP
        wait_for(lambda: fetches(db, "new"), what="the feed added before SIGHUP")
        assert terminate(daemon) == 0
    finally:
        terminate(daemon)
    events = [json.loads(line) for line in log.read_text().splitlines()]
    reload = next(e for e in events if e["message"].startswith("reloaded feeds.yaml"))
    assert reload["message"] == "reloaded feeds.yaml (SIGHUP)"
    assert reload["added"] == ["new"]
    assert {"time", "level", "logger"} <= reload.keys()
    outcomes = [e for e in events if e.get("feed") == "new"]
    assert outcomes[0]["outcome"] == "ok"


def test_a_refresh_that_cannot_be_recorded_is_postponed_not_repeated_every_tick(
    server: LocalServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aggregator.engine.refresh import Pipeline

    calls: list[str] = []

    async def store_failing(self: Pipeline, feed: object) -> None:
        calls.append(getattr(feed, "name", ""))
        raise RuntimeError("disk I/O error")

    monkeypatch.setattr(Pipeline, "refresh_feed", store_failing)
    server.add("/wire.xml", one_item_feed(server, "wire"))
    config = tmp_path / "feeds.yaml"
    config.write_text(config_text([("wire", server.url("/wire.xml"))], tick="100ms"))
    db = tmp_path / "news.db"
    with ThreadDaemon(config, db) as running:
        wait_for(lambda: calls, what="the failing refresh")
        first = running.daemon._last_tick or 0.0
        # Five more 100 ms ticks: a feed left due would have been refreshed again by now.
        wait_for(lambda: (running.daemon._last_tick or 0.0) > first + 0.5, what="more ticks")
        due = scalar(db, "SELECT next_fetch_at FROM feeds WHERE name = 'wire'")
    assert (parse_iso(due) - utc_now()).total_seconds() > 250
    assert calls == ["wire"]
