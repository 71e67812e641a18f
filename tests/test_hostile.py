"""Every way a source can misbehave ends in a clear, recorded outcome, within bounds, while a
good feed in the same run is stored intact."""

from __future__ import annotations

import asyncio
import ipaddress
import time
import tracemalloc
from pathlib import Path

import pytest
from hostile import CASES, GOOD_ITEMS, RETRY_AT, RUSSIAN, config_text, install_all
from localserver import LocalServer

from aggregator.config.loader import parse_config
from aggregator.engine.pool import Workers
from aggregator.engine.run import fetch_feeds
from aggregator.fetch import address_guard
from aggregator.store import Store
from aggregator.times import parse_iso

pytestmark = pytest.mark.slow

# Shorter than the benchmark's 8 s: the silent pages would hold their feed for 15 s, and
# any deadline well under that shows it ending the wait.
FEED_DEADLINE_S = 4


@pytest.fixture
def server_is_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """Treat the test server (127.0.0.1 only) as a public host, so the guard stays on and
    every other private target, 127.0.0.2 included, is still refused."""
    real = address_guard.is_public_address
    server_ip = ipaddress.ip_address("127.0.0.1")
    monkeypatch.setattr(address_guard, "is_public_address", lambda ip: ip == server_ip or real(ip))


@pytest.mark.usefixtures("server_is_public")
def test_every_hostile_case_is_recorded_and_the_good_feed_survives(
    server: LocalServer, tmp_path: Path
) -> None:
    paths = install_all(server)
    config = parse_config(config_text(server, paths, feed_deadline=f"{FEED_DEADLINE_S}s"))
    store = Store.open(str(tmp_path / "hostile.db"))
    tracemalloc.start()
    started = time.monotonic()
    # Extraction in a worker process, as in production: its memory is not the main process's.
    workers = Workers(1)
    try:
        run = fetch_feeds(config, store, config.feeds, workers=workers)
        outcomes = {o.feed: o for o in asyncio.run(run)}
    finally:
        workers.close()
    elapsed = time.monotonic() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    # Bounded: the slowest case is the feed_deadline; everything runs concurrently.
    assert elapsed < FEED_DEADLINE_S + 12
    # Flat memory: a 64 MB bomb and an endless body never get past the 1 MB cap.
    assert peak < 40 * 1024 * 1024

    for case in CASES:
        outcome = outcomes[case.name]
        assert outcome.outcome == case.outcome, (case.name, outcome)
        assert case.words in (outcome.error or ""), (case.name, outcome.error)
        recorded = store.execute(
            "SELECT outcome, error FROM fetches WHERE feed = ? ORDER BY id DESC LIMIT 1",
            [case.name],
        )
        assert recorded == [(case.outcome, outcome.error)], case.name

    good = outcomes["good"]
    assert (good.outcome, good.new_items) == ("ok", GOOD_ITEMS)
    assert store.execute("SELECT count(*) FROM sightings WHERE feed = 'good'") == [(GOOD_ITEMS,)]

    # Encodings: Cyrillic survives windows-1251 and KOI8-R.
    titles = {t for (t,) in store.execute("SELECT title FROM items")}
    assert RUSSIAN in titles
    assert len([t for t in titles if t == RUSSIAN]) == 1  # two feeds, two links, one title
    # A truncated feed yields what it can and says so.
    assert outcomes["truncated"].new_items >= 1
    assert outcomes["truncated"].warning

    states = dict(store.execute("SELECT name, state FROM feeds"))
    assert states["gone-410"] == "gone"
    assert states["unavailable-503"] == "failing"
    # 301 chains are remembered (and used next time); Retry-After pushes the next fetch back.
    moved = store.execute("SELECT permanent_url FROM feeds WHERE name = 'moved-301'")[0][0]
    assert moved == server.url("/hostile/moved-301/2")
    retry = dict(store.execute("SELECT name, retry_after_until FROM feeds"))
    # The HTTP date, whenever the test ran: not "an hour from now" by our clock.
    late = (parse_iso(retry["rate-limited-429"]) - RETRY_AT).total_seconds()
    assert 0 <= late <= 1  # rounded up to the next whole second
    assert retry["unavailable-503"] is not None
    assert retry["good"] is None


@pytest.mark.usefixtures("server_is_public")
def test_a_gone_feed_is_not_fetched_again_and_a_moved_feed_is_fetched_at_its_new_home(
    server: LocalServer, tmp_path: Path
) -> None:
    paths = install_all(server)
    chosen = {k: paths[k] for k in ("gone-410", "moved-301", "good")}
    config = parse_config(config_text(server, chosen))
    store = Store.open(str(tmp_path / "again.db"))
    asyncio.run(fetch_feeds(config, store, config.feeds, workers=Workers(0)))
    server.clear_log()
    again = {
        o.feed: o for o in asyncio.run(fetch_feeds(config, store, config.feeds, workers=Workers(0)))
    }
    assert server.hits("/hostile/gone-410") == 0
    assert again["gone-410"].outcome == "gone"
    assert server.hits("/hostile/moved-301") == 0
    assert server.hits("/hostile/moved-301/2") == 1
    # Fetching from the new home redirects no more; the move is still remembered.
    moved = store.execute("SELECT permanent_url FROM feeds WHERE name = 'moved-301'")
    assert moved == [(server.url("/hostile/moved-301/2"),)]
