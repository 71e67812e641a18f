import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from store_helpers import ok_record, ok_update, save_refresh

from aggregator.errors import StoreError
from aggregator.models import Entry, FeedConfig, FeedUpdate, FetchRecord, ItemDraft
from aggregator.store import Store, open_reader
from aggregator.store.migrations import migrations
from aggregator.stories.identity import drafts_for

NOW = "2026-11-27T10:00:00Z"
FEEDS = [
    FeedConfig("wire", "https://wire.example/rss"),
    FeedConfig("partner", "https://p.example/f"),
]


def entry(n: int, *, guid: str | None = None, link: str | None = None, title: str = "") -> Entry:
    return Entry(
        guid=guid if guid is not None else f"g{n}",
        link=link or f"https://news.example/story-{n}?utm_source=rss",
        title=title or f"Story {n}",
        summary=f"Summary of story {n}",
        content_html=None,
        author=None,
        published_at=NOW,
        updated_at=None,
    )


def record(feed: str) -> FetchRecord:
    return ok_record(feed, NOW)


def update(etag: str) -> FeedUpdate:
    return ok_update(NOW, etag=etag)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store.open(str(tmp_path / "data" / "test.db"))
    store.sync_feeds(FEEDS, now=NOW)
    return store


def count(store: Store, table: str) -> int:
    return int(store.execute(f"SELECT count(*) FROM {table}")[0][0])


def test_schema_is_migrated_in_wal_mode(store: Store) -> None:
    assert store.execute("PRAGMA journal_mode")[0][0] == "wal"
    tables = {r[0] for r in store.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"feeds", "fetches", "items", "sightings", "stories", "items_fts"} <= tables
    applied = count(store, "_sqlite_migrations")
    reopened = Store.open(store.path)  # migrations are applied once
    assert count(reopened, "_sqlite_migrations") == applied
    assert migrations.pending(reopened.db) == []


def test_same_link_from_two_feeds_is_one_item_with_two_sightings(store: Store) -> None:
    save_refresh(store, "wire", drafts_for([entry(1)]), record("wire"), update("a"))
    other = entry(1, guid="partner-guid", link="https://NEWS.example/story-1#top")
    counts = save_refresh(store, "partner", drafts_for([other]), record("partner"), update("b"))
    assert counts.new_items == 0
    assert count(store, "items") == 1
    assert sorted(r[0] for r in store.execute("SELECT feed FROM sightings")) == ["partner", "wire"]
    assert store.execute("SELECT url, story_id IS NOT NULL FROM items")[0] == (
        "https://news.example/story-1",
        1,
    )


def test_entry_repeated_in_one_feed_under_other_guids_is_one_item(store: Store) -> None:
    drafts = drafts_for([entry(1, guid="a"), entry(1, guid="b"), entry(1, guid="a")])
    counts = save_refresh(store, "wire", drafts, record("wire"), update("a"))
    assert counts.new_items == 1
    assert count(store, "items") == 1
    assert count(store, "sightings") == 2


def test_same_guid_with_changed_content_updates_the_item(store: Store) -> None:
    save_refresh(store, "wire", drafts_for([entry(1)]), record("wire"), update("a"))
    edited = drafts_for([entry(1, title="Story 1 (updated)")])
    counts = save_refresh(store, "wire", edited, record("wire"), update("b"))
    assert (counts.new_items, counts.updated_items) == (0, 1)
    assert store.execute("SELECT title FROM items") == [("Story 1 (updated)",)]
    assert store.execute("SELECT title FROM stories") == [("Story 1 (updated)",)]


def test_a_failed_write_commits_nothing_and_keeps_old_validators(store: Store) -> None:
    save_refresh(store, "wire", drafts_for([entry(1)]), record("wire"), update("old"))
    broken = ItemDraft(entry=entry(3), key="k", url="https://news.example/3", entry_hash="h")
    drafts = [*drafts_for([entry(2)]), replace(broken, extract_status=None)]  # type: ignore[arg-type]
    with pytest.raises(sqlite3.IntegrityError):
        save_refresh(store, "wire", drafts, record("wire"), update("new"))
    assert store.feed_state("wire").etag == "old"
    assert count(store, "items") == 1
    assert count(store, "fetches") == 1


def test_feeds_follow_the_config(store: Store) -> None:
    store.sync_feeds([FeedConfig("wire", "https://wire.example/rss2")], now=NOW)
    wire = store.feed_state("wire")
    assert wire.url == "https://wire.example/rss2"
    assert wire.etag is None
    assert store.feed_state("partner").state == "disabled"
    store.sync_feeds(FEEDS, now=NOW)
    assert store.feed_state("partner").state == "ok"


def test_reader_is_read_only_and_searches_text(store: Store) -> None:
    save_refresh(
        store,
        "wire",
        drafts_for([entry(1, title="Libya accord"), entry(2)]),
        record("wire"),
        update("a"),
    )
    reader = open_reader(store.path)
    assert [r["title"] for r in reader.search("libya", since=None, feed=None, limit=5)] == [
        "Libya accord"
    ]
    # Invalid FTS5 syntax falls back to plain words instead of failing.
    assert reader.search('libya "', since=None, feed=None, limit=5)[0]["title"] == "Libya accord"
    assert len(reader.items(since=None, feed="wire", limit=10)) == 2
    with pytest.raises(StoreError, match="readonly"):
        reader.query("DELETE FROM items")


def test_reader_on_missing_database_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="run `aggregator fetch` first"):
        open_reader(str(tmp_path / "none.db"))


@pytest.mark.parametrize("sql", ["ATTACH '{dir}/other.db' AS other", "VACUUM INTO '{dir}/copy.db'"])
def test_reader_opens_or_creates_no_other_file(store: Store, tmp_path: Path, sql: str) -> None:
    before = sorted(tmp_path.rglob("*"))
    with pytest.raises(StoreError, match="ATTACH and VACUUM INTO, which open or create other"):
        open_reader(store.path).query(sql.format(dir=tmp_path))
    assert sorted(tmp_path.rglob("*")) == before
    assert open_reader(store.path).query("SELECT count(*) AS n FROM feeds") == [{"n": 2}]


def test_writer_or_its_folder_that_cannot_be_made_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "notdb.db").write_text("a file, not a folder")
    with pytest.raises(StoreError, match=r"cannot create the database at .*notdb\.db/x\.db"):
        Store.open(str(tmp_path / "notdb.db" / "x.db"))
    with pytest.raises(StoreError, match="cannot open the database"):
        Store.open(str(tmp_path))  # a folder


def test_writer_that_must_exist_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="run `aggregator fetch` first"):
        Store.open(str(tmp_path / "none.db"), create=False)
    assert not (tmp_path / "none.db").exists()


def test_a_write_lock_held_too_long_is_a_store_error_that_says_so(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aggregator.store.connection

    monkeypatch.setattr(aggregator.store.connection, "BUSY_TIMEOUT_MS", 50)
    impatient = Store.open(store.path)
    other = sqlite3.connect(store.path)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreError, match="another process has held its write lock") as caught:
            impatient.sync_feeds(FEEDS, now=NOW)
        assert store.path in str(caught.value)
        assert "0.05 s" in str(caught.value)
    finally:
        other.rollback()
        other.close()
    impatient.sync_feeds(FEEDS, now=NOW)  # once the lock is free, writes go through
    impatient.close()


def test_instance_lock_that_cannot_be_made_is_a_store_error(tmp_path: Path) -> None:
    from aggregator.daemon.instance_lock import instance_lock

    (tmp_path / "notdb.db").write_text("a file, not a folder")
    with (
        pytest.raises(StoreError, match="cannot create the database at"),
        instance_lock(str(tmp_path / "notdb.db" / "x.db")),
    ):
        pass
