"""Stories in a real SQLite file: assigning, merging, leads, splits, rebuilds, index use."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from store_helpers import save_refresh
from test_dedup import article, reworded

from aggregator.engine.commit import commit_extraction
from aggregator.engine.corrections import rebuild_stories, split_item
from aggregator.errors import StoreError
from aggregator.models import Article, Entry, FeedConfig, FeedUpdate, FetchRecord, ItemDraft
from aggregator.store import Store, open_reader
from aggregator.store.transaction import Transaction
from aggregator.stories import dedup
from aggregator.stories.dedup import DedupPolicy
from aggregator.stories.identity import draft_for
from aggregator.stories.placement import find_match

NOW = "2026-11-27T10:00:00Z"
LATE = "2026-11-27T12:00:00Z"
FEEDS = [
    FeedConfig("wire", "https://wire.example/rss", priority=10),
    FeedConfig("partner", "https://partner.example/rss", priority=1),
    FeedConfig("other", "https://other.example/rss", priority=1),
]


def draft(
    url: str,
    *,
    text: str | None = None,
    title: str = "Libya government reaches accord with armed group",
    summary: str = "",
    canonical: str | None = None,
) -> ItemDraft:
    entry = Entry(url, url, title, summary, None, None, None, None)
    found = Article(text=text, html="", canonical_url=canonical) if text else None
    return replace(
        draft_for(entry),
        article=found,
        extract_status="ok" if found else "failed",
        fingerprint=dedup.fingerprint(title, text, summary),
    )


def save(store: Store, feed: str, *drafts: ItemDraft, at: str = NOW, **policy: float) -> None:
    record = FetchRecord(feed=feed, started_at=at, url="x", outcome="ok")
    update = FeedUpdate("ok", None, None, at, at, 0, None, "ok")
    save_refresh(store, feed, drafts, record, update, dedup=DedupPolicy(**policy))  # type: ignore[arg-type]


def story_of(store: Store, url: str) -> int:
    return int(store.execute("SELECT story_id FROM items WHERE url = ?", [url])[0][0])


def one(store: Store, sql: str, *params: object) -> object:
    return store.execute(sql, params)[0][0]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store.open(str(tmp_path / "stories.db"))
    store.sync_feeds(FEEDS, now=NOW)
    return store


WIRE, PARTNER = "https://wire.example/libya", "https://partner.example/news/77"


def test_a_partner_copy_joins_the_wire_story_and_says_why(store: Store) -> None:
    save(store, "wire", draft(WIRE, text=article(1)))
    partner_text = "By Jane Doe\n" + reworded(article(1), 0.05)
    save(store, "partner", draft(PARTNER, text=partner_text, title="A new headline"), at=LATE)
    assert story_of(store, WIRE) == story_of(store, PARTNER)
    story = story_of(store, WIRE)
    assert store.execute(
        "SELECT title, item_count, first_seen_at, last_seen_at FROM stories WHERE id = ?", [story]
    ) == [("Libya government reaches accord with armed group", 2, NOW, LATE)]
    ((signal, score, matched),) = store.execute(
        "SELECT signal, score, matched_item_id FROM story_links"
    )
    assert signal == "minhash"
    assert isinstance(score, float)
    assert score >= DedupPolicy().threshold
    assert matched == one(store, "SELECT id FROM items WHERE url = ?", WIRE)
    assert one(store, "SELECT count(*) FROM stories") == 1


def test_different_stories_stay_apart(store: Store) -> None:
    save(store, "wire", draft(WIRE, text=article(1)), draft(WIRE + "2", text=article(2)))
    assert story_of(store, WIRE) != story_of(store, WIRE + "2")
    assert one(store, "SELECT count(*) FROM story_links") == 0


def test_the_lead_is_the_highest_priority_feed_then_the_earliest(store: Store) -> None:
    save(store, "partner", draft(PARTNER, text=article(1), title="Partner's headline"))
    save(store, "other", draft("https://other.example/1", text=article(1)), at=LATE)
    story = story_of(store, PARTNER)
    partner_id = one(store, "SELECT id FROM items WHERE url = ?", PARTNER)
    assert one(store, "SELECT lead_item_id FROM stories WHERE id = ?", story) == partner_id
    save(store, "wire", draft(WIRE, text=article(1), title="Wire headline"), at="2026-11-27T13:00Z")
    wire_id = one(store, "SELECT id FROM items WHERE url = ?", WIRE)
    assert story_of(store, WIRE) == story
    assert store.execute("SELECT lead_item_id, title, item_count FROM stories") == [
        (wire_id, "Wire headline", 3)
    ]
    # feeds.yaml changes the priorities: the lead follows.
    store.sync_feeds([replace(f, priority=20) if f.name == "other" else f for f in FEEDS], now=NOW)
    other_id = one(store, "SELECT id FROM items WHERE url = 'https://other.example/1'")
    assert one(store, "SELECT lead_item_id FROM stories") == other_id


def test_canonical_url_joins_at_any_age(store: Store) -> None:
    save(store, "wire", draft(WIRE, text=article(1)), at="2026-10-01T00:00:00Z")
    partner = draft(PARTNER, text=reworded(article(1), 0.4), canonical=WIRE, title="Elsewhere")
    save(store, "partner", partner)
    assert story_of(store, WIRE) == story_of(store, PARTNER)
    assert store.execute("SELECT signal, score FROM story_links") == [("canonical_url", 1.0)]


def test_an_item_whose_text_arrives_later_is_matched_by_it(store: Store) -> None:
    save(store, "wire", draft(WIRE, text=article(1)))
    save(store, "partner", draft(PARTNER, title="Partner headline", summary="Short teaser."))
    alone = story_of(store, PARTNER)
    assert alone != story_of(store, WIRE)
    partner_id = int(one(store, "SELECT id FROM items WHERE url = ?", PARTNER))  # type: ignore[call-overload]
    text = reworded(article(1), 0.05)
    commit_extraction(
        store,
        partner_id,
        Article(text=text, html=""),
        None,
        fingerprint=dedup.fingerprint(None, text, None),
        now=LATE,
    )
    assert story_of(store, PARTNER) == story_of(store, WIRE)
    assert one(store, "SELECT count(*) FROM stories WHERE id = ?", alone) == 0
    assert one(store, "SELECT source FROM item_fingerprints WHERE item_id = ?", partner_id) == (
        "text"
    )


def test_a_split_is_remembered_across_rebuilds(store: Store) -> None:
    save(store, "wire", draft(WIRE, text=article(1)))
    save(store, "partner", draft(PARTNER, text=article(1), title="Partner"), at=LATE)
    partner_id = int(one(store, "SELECT id FROM items WHERE url = ?", PARTNER))  # type: ignore[call-overload]
    split = split_item(store, partner_id, now=LATE)
    assert (split.old_story_id, split.remaining) == (story_of(store, WIRE), 1)
    assert story_of(store, PARTNER) == split.new_story_id != story_of(store, WIRE)
    assert one(store, "SELECT count(*) FROM story_links") == 0
    rebuilt = rebuild_stories(store, DedupPolicy(), now=LATE)
    assert (rebuilt.items, rebuilt.stories) == (2, 2)
    assert story_of(store, PARTNER) != story_of(store, WIRE)
    # Story numbers survive the rebuild.
    assert story_of(store, WIRE) == split.old_story_id
    assert story_of(store, PARTNER) == split.new_story_id
    # A third copy still joins one of them, never both.
    save(store, "other", draft("https://other.example/3", text=article(1)), at=LATE)
    assert one(store, "SELECT count(*) FROM stories") == 2
    with pytest.raises(StoreError, match="alone in story"):
        split_item(store, partner_id, now=LATE)
    with pytest.raises(StoreError, match="no item"):
        split_item(store, 999, now=LATE)


def test_rebuild_applies_new_thresholds_and_fingerprints_old_items(store: Store) -> None:
    save(store, "wire", draft(WIRE, text=article(1)))
    edited = reworded(article(1), 0.15)
    save(store, "partner", draft(PARTNER, text=edited, title="Other"), at=LATE, threshold=0.9)
    assert story_of(store, WIRE) != story_of(store, PARTNER)
    store.execute("DELETE FROM item_fingerprints")  # as if stored before dedup existed
    rebuilt = rebuild_stories(store, DedupPolicy(threshold=0.3), now=LATE)
    assert rebuilt.fingerprinted == 2
    assert rebuilt.joined == {"minhash": 1}
    assert story_of(store, WIRE) == story_of(store, PARTNER)
    bands = one(store, "SELECT count(*) FROM lsh_bands")
    assert bands == 2 * dedup.BANDS


def test_lookups_use_the_indexes(store: Store) -> None:
    save(store, "wire", draft(WIRE, text=article(1)))
    new = replace(
        Transaction(store.db).load_copy(1),
        item_id=0,
        declared="https://x.example/a",
        title_key="t",
        fingerprint=dedup.fingerprint("t", article(1), None),
    )
    plans: list[str] = []
    original = store.db.execute

    def explain(sql: str, params: object = None) -> object:
        if sql.lstrip().startswith(("SELECT", "WITH")) and (
            "lsh_bands" in sql or "title_key =" in sql
        ):
            plans.extend(
                str(row[3]) for row in original("EXPLAIN QUERY PLAN " + sql, params).fetchall()
            )
        return original(sql, params)

    store.db.execute = explain  # type: ignore[method-assign]
    try:
        find_match(Transaction(store.db), new, DedupPolicy())
    finally:
        del store.db.execute
    # Each bucket read from its newest row, a bounded number of rows.
    assert "SEARCH l USING PRIMARY KEY (week=? AND band=? AND key=? AND item_id>?)" in plans
    assert any("item_fingerprints_title (title_key=? AND first_seen_at>? AND" in p for p in plans)
    assert not any(p.startswith("SCAN") and "lsh_bands" in p for p in plans)


def test_listing_stories_with_their_sources(store: Store) -> None:
    save(store, "wire", draft(WIRE, text=article(1)), draft(WIRE + "2", text=article(2)))
    save(store, "partner", draft(PARTNER, text=article(1), title="Partner"), at=LATE)
    rows = open_reader(store.path).stories(since=None, min_sources=2, feed=None, limit=10)
    assert [(r["items"], r["sources"], r["feeds"], r["lead_url"]) for r in rows] == [
        (2, 2, "partner,wire", WIRE)
    ]
    assert len(open_reader(store.path).stories(since=None, min_sources=1, feed=None, limit=10)) == 2
    only = open_reader(store.path).stories(since=None, min_sources=1, feed="partner", limit=10)
    assert [r["story"] for r in only] == [story_of(store, PARTNER)]
    items = open_reader(store.path).story_items(story_of(store, WIRE))
    assert [(i["lead"], i["feeds"], i["signal"]) for i in items] == [
        (1, "wire", None),
        (0, "partner", "minhash"),
    ]
