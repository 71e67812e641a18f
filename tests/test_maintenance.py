"""The daemon's housekeeping on a real SQLite file: retention, optimisation, checkpoints,
and the cron wiring that runs them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from store_helpers import ok_record, ok_update, save_refresh

from aggregator.config.loader import parse_config
from aggregator.daemon.service import Daemon
from aggregator.daemon.triggers import build_scheduler, next_runs
from aggregator.models import Entry, FeedConfig
from aggregator.store import Store, open_reader
from aggregator.store.story_rows import week_of
from aggregator.stories.identity import drafts_for

OLD, NEW = "2026-01-05T08:00:00Z", "2026-11-27T08:00:00Z"
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TITLES = {
    1: "Parliament passes the budget after a night session",
    2: "Storm closes the harbour for a second day",
    3: "Central bank holds rates steady",
    4: "Football club names a new coach",
    5: "Museum reopens after two years of works",
}


def entry(n: int) -> Entry:
    return Entry(
        guid=f"g{n}",
        link=f"https://news.example/{n}",
        title=TITLES[n],
        summary=f"{TITLES[n]}. More words about story number {n} for the summary.",
        content_html=None,
        author=None,
        published_at=None,
        updated_at=None,
    )


def save(store: Store, numbers: list[int], when: str) -> None:
    drafts = drafts_for([entry(n) for n in numbers])
    save_refresh(store, "wire", drafts, ok_record("wire", when), ok_update(when))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store.open(str(tmp_path / "news.db"))
    store.sync_feeds([FeedConfig("wire", "https://wire.example/rss")], now=OLD)
    save(store, [1, 2, 3], OLD)
    save(store, [4, 5], NEW)
    return store


def ids(store: Store, sql: str) -> list[object]:
    return [row[0] for row in store.execute(sql)]


def test_retention_deletes_old_items_with_everything_that_points_at_them(store: Store) -> None:
    old_ids = ids(store, f"SELECT id FROM items WHERE first_seen_at = '{OLD}' ORDER BY id")
    keeper = ids(store, "SELECT id FROM items WHERE title LIKE 'Football%'")[0]
    # Make an old item the lead of a story that a recent item also belongs to.
    story = ids(store, f"SELECT story_id FROM items WHERE id = {old_ids[0]}")[0]
    own = ids(store, f"SELECT story_id FROM items WHERE id = {keeper}")[0]
    store.execute(f"UPDATE items SET story_id = {story} WHERE id = {keeper}")
    store.execute(f"DELETE FROM stories WHERE id = {own}")
    store.execute(f"UPDATE stories SET item_count = 2 WHERE id = {story}")

    # LSH rows of both weeks (no foreign key: retention drops whole weeks).
    for item_id, when in ((old_ids[0], OLD), (keeper, NEW)):
        store.execute(
            "INSERT INTO lsh_bands (week, band, key, item_id) VALUES (?, 0, 42, ?)",
            [week_of(when), item_id],
        )

    deleted = [store.expire_items(before="2026-06-01T00:00:00Z", limit=2) for _ in range(3)]

    assert deleted == [2, 1, 0]  # in batches, oldest first, until nothing is left
    assert ids(store, "SELECT title FROM items ORDER BY id") == [TITLES[4], TITLES[5]]
    assert ids(store, "SELECT count(*) FROM sightings")[0] == 2
    assert set(ids(store, "SELECT item_id FROM item_fingerprints")) <= {keeper, keeper + 1}
    # The shared story lost its lead and kept its recent item; the others went.
    assert store.execute(f"SELECT lead_item_id, item_count FROM stories WHERE id = {story}") == [
        (keeper, 1)
    ]
    assert ids(store, "SELECT count(*) FROM stories")[0] == 2
    # The full-text index followed.
    store.execute("INSERT INTO items_fts(items_fts) VALUES ('integrity-check')")
    reader = open_reader(store.path)
    assert reader.search("Parliament", since=None, feed=None, limit=5) == []
    assert len(reader.search("coach", since=None, feed=None, limit=5)) == 1
    assert store.execute("PRAGMA foreign_key_check") == []
    assert store.execute("SELECT week, item_id FROM lsh_bands") == [(week_of(NEW), keeper)]


def test_optimize_and_checkpoint_leave_a_small_wal(store: Store) -> None:
    store.optimize()
    busy, _, _ = store.checkpoint()
    assert busy == 0
    assert Path(store.path + "-wal").stat().st_size == 0
    assert store.execute("PRAGMA integrity_check") == [("ok",)]


def test_the_daemon_retention_job_keeps_recent_items_and_forever_means_forever(
    store: Store,
) -> None:
    def run_retention(settings: str) -> None:
        config = parse_config(f"settings:\n  extract: true\n{settings}feeds: []\n")
        daemon = Daemon(config, store.path, clock=lambda: NOW)
        daemon.store = store
        asyncio.run(daemon.retention())

    run_retention("")  # no retention setting: keep everything
    assert ids(store, "SELECT count(*) FROM items")[0] == 5
    run_retention("  retention: 30d\n")
    assert ids(store, "SELECT count(*) FROM items")[0] == 2
    assert ids(store, f"SELECT count(*) FROM fetches WHERE started_at = '{OLD}'")[0] == 0


def test_maintenance_runs_on_cron_triggers_and_the_tick_on_an_interval() -> None:
    async def job() -> None:
        pass

    async def build() -> dict[str, datetime | None]:
        scheduler = build_scheduler(
            tick=job,
            tick_s=5,
            maintenance={"retention": job, "optimize": job, "checkpoint": job},
            now=NOW,
        )
        scheduler.start(paused=True)
        try:
            return next_runs(scheduler)
        finally:
            scheduler.shutdown(wait=False)

    runs = asyncio.run(build())
    assert runs["tick"] == NOW
    assert runs["optimize"] is not None
    assert (runs["optimize"].hour, runs["optimize"].minute) == (4, 7)
    assert runs["retention"] is not None
    assert runs["retention"].minute == 17
    assert runs["checkpoint"] is not None
    assert runs["checkpoint"].minute % 15 == 0
