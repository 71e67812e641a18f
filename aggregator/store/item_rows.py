"""The SQL of feeds, items and sightings. Every function here runs inside a transaction its
caller opened."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from sqlite_utils import Database

from aggregator.models import (
    Article,
    ExtractStatus,
    Fate,
    FeedConfig,
    FeedStatus,
    FeedUpdate,
    FetchRecord,
    ItemDraft,
    KnownEntries,
    SaveCounts,
)
from aggregator.store import story_rows

_CHUNK = 500  # stays under SQLite's bound-parameter limit


def chunked_lookup(
    db: Database, sql: str, params: list[Any], values: Sequence[Any]
) -> list[tuple[Any, ...]]:
    """Run `sql` with an IN (...) list filled from `values`, a chunk at a time."""
    rows: list[tuple[Any, ...]] = []
    unique = list(dict.fromkeys(values))
    for start in range(0, len(unique), _CHUNK):
        chunk = unique[start : start + _CHUNK]
        marks = ", ".join("?" for _ in chunk)
        rows.extend(db.execute(sql.format(marks), [*params, *chunk]).fetchall())
    return rows


def sync_feeds(db: Database, feeds: Sequence[FeedConfig], *, now: str) -> None:
    stored = {
        name: (url, state)
        for name, url, state in db.execute("SELECT name, url, state FROM feeds").fetchall()
    }
    for feed in feeds:
        if feed.name not in stored:
            db.execute(
                "INSERT INTO feeds (name, url, state, added_at, next_fetch_at)"
                " VALUES (?, ?, ?, ?, ?)",
                [feed.name, feed.url, FeedStatus.OK, now, now],
            )
            continue
        url, state = stored[feed.name]
        if url != feed.url:
            # A new address is a new conversation with a (maybe) new server: forget validators,
            # the redirect note and any 'gone' verdict about the old address.
            db.execute(
                "UPDATE feeds SET url = ?, etag = NULL, last_modified = NULL,"
                " permanent_url = NULL, state = ?, error_count = 0, last_error = NULL,"
                " next_fetch_at = ? WHERE name = ?",
                [feed.url, FeedStatus.OK, now, feed.name],
            )
        elif state in (FeedStatus.DISABLED, FeedStatus.PAUSED) and not feed.paused:
            db.execute(
                "UPDATE feeds SET state = ?, last_error = NULL WHERE name = ?",
                [FeedStatus.OK, feed.name],
            )
    configured = {f.name for f in feeds}
    for name, (_, state) in stored.items():
        if name not in configured and state != FeedStatus.DISABLED:
            db.execute(
                "UPDATE feeds SET state = ?, last_error = ? WHERE name = ?",
                [FeedStatus.DISABLED, "no longer in feeds.yaml; its items are kept", name],
            )
    _sync_paused(db, feeds)
    _sync_priorities(db, feeds)
    _sync_tags(db, feeds)


def _sync_paused(db: Database, feeds: Sequence[FeedConfig]) -> None:
    """`paused: true` in feeds.yaml: the feed and its history stay, its schedule stops."""
    for feed in feeds:
        if feed.paused:
            db.execute(
                "UPDATE feeds SET state = ?, last_error = ? WHERE name = ? AND state != ?",
                [
                    FeedStatus.PAUSED,
                    f"paused in feeds.yaml; `aggregator feeds resume {feed.name}` polls it again",
                    feed.name,
                    FeedStatus.PAUSED,
                ],
            )


def _sync_tags(db: Database, feeds: Sequence[FeedConfig]) -> None:
    for feed in feeds:
        db.execute("DELETE FROM feed_tags WHERE feed = ?", [feed.name])
        db.conn.executemany(
            "INSERT OR IGNORE INTO feed_tags (feed, tag) VALUES (?, ?)",
            [(feed.name, tag) for tag in feed.tags],
        )


def _sync_priorities(db: Database, feeds: Sequence[FeedConfig]) -> None:
    """A story's lead comes from its highest-priority feed: when priorities change in
    feeds.yaml, stories with several items re-pick their lead."""
    changed = sum(
        db.execute(
            "UPDATE feeds SET priority = ? WHERE name = ? AND priority != ?",
            [feed.priority, feed.name, feed.priority],
        ).rowcount
        for feed in feeds
    )
    if changed:
        story_rows.refresh_leads(db)


def _item_values(draft: ItemDraft) -> dict[str, Any]:
    entry, article = draft.entry, draft.article
    values: dict[str, Any] = {
        "link": entry.link,
        "title": entry.title or (article.title if article else None),
        "summary": entry.summary,
        "summary_html": entry.summary_html,
        "author": entry.author or (article.author if article else None),
        "published_at": entry.published_at or (article.published_at if article else None),
        "updated_at": entry.updated_at,
        "image": entry.image,
        "extract_status": draft.extract_status,
        "extract_error": draft.extract_error,
    }
    if article is not None:
        values.update(
            text=article.text,
            html=article.html,
            language=article.language,
            site_name=article.site_name,
            image=entry.image or article.image,
            page_canonical_url=article.canonical_url,
        )
    return values


def _insert_item(db: Database, draft: ItemDraft, now: str) -> int:
    values = _item_values(draft)
    values.update(url=draft.url, first_seen_at=now)
    if draft.extract_status in (ExtractStatus.OK, ExtractStatus.FAILED):
        values["extract_attempts"] = 1
    columns = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    cursor = db.execute(f"INSERT INTO items ({columns}) VALUES ({marks})", list(values.values()))
    # Its story is found (or made) once its sighting says which feed carried it.
    return int(cursor.lastrowid or 0)


def _update_item(db: Database, item_id: int, draft: ItemDraft) -> None:
    values = _item_values(draft)
    if draft.article is None:
        # The feed edited its entry; keep the text extracted from the page before.
        for column in ("extract_status", "extract_error", "image"):
            values.pop(column)
    assignments = ", ".join(f"{column} = ?" for column in values)
    db.execute(f"UPDATE items SET {assignments} WHERE id = ?", [*values.values(), item_id])
    db.execute(
        "UPDATE stories SET title = ? WHERE lead_item_id = ? AND ? IS NOT NULL",
        [values["title"], item_id, values["title"]],
    )


def _add_sighting(db: Database, feed: str, draft: ItemDraft, item_id: int, now: str) -> None:
    db.execute(
        "INSERT INTO sightings (item_id, feed, guid, link, entry_hash, seen_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [item_id, feed, draft.key, draft.entry.link, draft.entry_hash, now],
    )
    db.execute(
        "UPDATE stories SET last_seen_at = ? WHERE id = (SELECT story_id FROM items WHERE id = ?)",
        [now, item_id],
    )


def known_entries(db: Database, feed: str, drafts: Sequence[ItemDraft]) -> KnownEntries:
    """Which of these entries the store already has: this feed's sightings by key (with the
    entry's hash), and the canonical URLs already stored as items."""
    keys = chunked_lookup(
        db,
        "SELECT guid, entry_hash FROM sightings WHERE feed = ? AND guid IN ({})",
        [feed],
        [d.key for d in drafts],
    )
    urls = chunked_lookup(
        db, "SELECT url, 1 FROM items WHERE url IN ({})", [], [d.url for d in drafts if d.url]
    )
    return KnownEntries({str(k): str(v) for k, v in keys}, frozenset(str(u) for u, _ in urls))


def _item_by_url(db: Database, url: str | None) -> int | None:
    if url is None:
        return None
    row = db.execute("SELECT id FROM items WHERE url = ?", [url]).fetchone()
    return None if row is None else int(row[0])


def _sighted_item(db: Database, feed: str, key: str) -> int | None:
    row = db.execute(
        "SELECT item_id FROM sightings WHERE feed = ? AND guid = ?", [feed, key]
    ).fetchone()
    return None if row is None else int(row[0])


def apply_entry(db: Database, feed: str, draft: ItemDraft, *, now: str) -> tuple[Fate, int]:
    """Apply the entry's fate; returns what was done and the item's id.

    The fate was decided before the transaction; applying it is idempotent (a message
    delivered twice, another process that stored the same URL in between): an entry already
    sighted is an edit, a URL already stored is a sighting."""
    if draft.fate is Fate.EDITED or draft.fate is Fate.UNCHANGED:
        item_id = _sighted_item(db, feed, draft.key)
        if item_id is not None:
            if draft.fate is Fate.EDITED:
                _update_item(db, item_id, draft)
                db.execute(
                    "UPDATE sightings SET entry_hash = ?, link = ? WHERE feed = ? AND guid = ?",
                    [draft.entry_hash, draft.entry.link, feed, draft.key],
                )
            return draft.fate, item_id
    elif (item_id := _sighted_item(db, feed, draft.key)) is not None:
        return Fate.UNCHANGED, item_id  # delivered twice
    existing = _item_by_url(db, draft.url)
    if existing is not None:
        _add_sighting(db, feed, draft, existing, now)
        # A feed of higher priority may now carry it: its story's lead may change.
        story_rows.refresh_story_of(db, existing)
        return Fate.SEEN_ELSEWHERE, existing
    item_id = _insert_item(db, draft, now)
    _add_sighting(db, feed, draft, item_id, now)
    return Fate.NEW, item_id


def insert_fetch(db: Database, fetch: FetchRecord, counts: SaveCounts) -> None:
    values = asdict(fetch)
    values.update(new_items=counts.new_items, updated_items=counts.updated_items)
    columns = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    db.execute(f"INSERT INTO fetches ({columns}) VALUES ({marks})", list(values.values()))


def update_feed(db: Database, feed: str, update: FeedUpdate) -> None:
    values = asdict(update)
    # Keep what we learnt before when this refresh did not learn it again.
    for sticky in ("last_success_at", "title", "site_url", "hints"):
        if values[sticky] is None:
            values.pop(sticky)
    if update.hints is not None:
        values["hints"] = json.dumps(
            {k: v for k, v in asdict(update.hints).items() if v not in (None, [], ())}
        )
        values["ttl_minutes"] = update.hints.ttl_minutes
    assignments = ", ".join(f"{column} = ?" for column in values)
    db.execute(f"UPDATE feeds SET {assignments} WHERE name = ?", [*values.values(), feed])


def save_extraction(db: Database, item_id: int, article: Article | None, error: str | None) -> None:
    if article is None:
        db.execute(
            "UPDATE items SET extract_status = ?, extract_error = ?,"
            " extract_attempts = extract_attempts + 1 WHERE id = ?",
            [ExtractStatus.FAILED, error, item_id],
        )
        return
    db.execute(
        "UPDATE items SET text = ?, html = ?, language = ?, site_name = ?,"
        " page_canonical_url = ?, image = COALESCE(image, ?), author = COALESCE(author, ?),"
        " published_at = COALESCE(published_at, ?), title = COALESCE(NULLIF(title, ''), ?),"
        " extract_status = ?, extract_error = NULL, extract_attempts = extract_attempts + 1"
        " WHERE id = ?",
        [
            article.text,
            article.html,
            article.language,
            article.site_name,
            article.canonical_url,
            article.image,
            article.author,
            article.published_at,
            article.title,
            ExtractStatus.OK,
            item_id,
        ],
    )
