"""Numbered migrations. Add new ones at the end; never edit one that has shipped."""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("aggregator")


@migrations(name="0001_initial")
def m0001_initial(db: Database) -> None:
    db.execute(
        """
        CREATE TABLE feeds (
            name TEXT PRIMARY KEY,
            url TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'ok',       -- ok / failing / gone / disabled
            title TEXT,
            site_url TEXT,
            etag TEXT,
            last_modified TEXT,
            permanent_url TEXT,                     -- where a 301/308 says the feed now lives
            last_fetched_at TEXT,
            last_success_at TEXT,
            next_fetch_at TEXT,
            error_count INTEGER NOT NULL DEFAULT 0, -- consecutive failures
            last_error TEXT,
            last_outcome TEXT,
            last_warning TEXT,
            ttl_minutes INTEGER,
            added_at TEXT NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE fetches (
            id INTEGER PRIMARY KEY,
            feed TEXT NOT NULL REFERENCES feeds(name),
            started_at TEXT NOT NULL,
            url TEXT,
            http_status INTEGER,
            outcome TEXT NOT NULL,
            duration_ms INTEGER,
            bytes INTEGER,
            entries INTEGER,
            new_items INTEGER,
            updated_items INTEGER,
            error TEXT,
            warning TEXT
        )
        """
    )
    db.execute(
        """
        CREATE TABLE stories (
            id INTEGER PRIMARY KEY,
            title TEXT,
            lead_item_id INTEGER,
            first_seen_at TEXT NOT NULL,
            last_seen_at TEXT NOT NULL,
            item_count INTEGER NOT NULL DEFAULT 1
        )
        """
    )
    db.execute(
        """
        CREATE TABLE items (
            id INTEGER PRIMARY KEY,
            url TEXT UNIQUE,             -- canonical URL; NULL for entries without a link
            link TEXT,                   -- the link as the feed gave it
            title TEXT,
            summary TEXT,
            author TEXT,
            published_at TEXT,
            updated_at TEXT,
            first_seen_at TEXT NOT NULL,
            text TEXT,
            html TEXT,                   -- sanitised, safe to republish
            language TEXT,
            site_name TEXT,
            image TEXT,
            page_canonical_url TEXT,     -- what the page itself declares
            extract_status TEXT NOT NULL DEFAULT 'pending', -- ok/feed/failed/pending/skipped
            extract_error TEXT,
            extract_attempts INTEGER NOT NULL DEFAULT 0,
            story_id INTEGER REFERENCES stories(id)
        )
        """
    )
    db.execute(
        """
        CREATE TABLE sightings (
            id INTEGER PRIMARY KEY,
            item_id INTEGER NOT NULL REFERENCES items(id),
            feed TEXT NOT NULL REFERENCES feeds(name),
            guid TEXT NOT NULL,          -- the entry's key in its feed: GUID, else link, else hash
            link TEXT,
            entry_hash TEXT NOT NULL,    -- changes when the feed edits the entry
            seen_at TEXT NOT NULL,
            UNIQUE (feed, guid)
        )
        """
    )
    for sql in (
        "CREATE INDEX items_first_seen ON items(first_seen_at)",
        "CREATE INDEX items_published ON items(published_at)",
        "CREATE INDEX items_story ON items(story_id)",
        "CREATE INDEX items_extract_status ON items(extract_status)",
        "CREATE INDEX sightings_item ON sightings(item_id)",
        "CREATE INDEX fetches_feed_started ON fetches(feed, started_at)",
        "CREATE INDEX stories_last_seen ON stories(last_seen_at)",
        "CREATE INDEX feeds_next_fetch ON feeds(next_fetch_at)",
    ):
        db.execute(sql)
    db.table("items").enable_fts(["title", "text"], create_triggers=True, tokenize="unicode61")


@migrations(name="0002_feed_hints")
def m0002_feed_hints(db: Database) -> None:
    # Freshness hints (JSON: max_age_s, ttl_minutes, update_period_s, skip_hours, skip_days)
    # and the earliest time a 429/503 Retry-After allows, for the scheduler.
    db.execute("ALTER TABLE feeds ADD COLUMN hints TEXT")
    db.execute("ALTER TABLE feeds ADD COLUMN retry_after_until TEXT")
