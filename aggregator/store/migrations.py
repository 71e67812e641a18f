"""Numbered migrations. Add new ones at the end; never edit one that has shipped."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlite_utils import Database
    from sqlite_utils.migrations import Migrations

    migrations: Migrations  # made by __getattr__ below

Migration = Callable[["Database"], None]
SET_NAME = "aggregator"  # `_sqlite_migrations.migration_set`
KNOWN: list[str] = []  # every migration this version has, in order (sqlite-utils keeps its own
# list private)
_FUNCTIONS: list[Migration] = []


def migration(name: str) -> Callable[[Migration], Migration]:
    """Register the function as migration `name`, and remember that this version knows it."""
    if name in KNOWN:
        raise ValueError(f"migration {name!r} is registered twice")

    def register(func: Migration) -> Migration:
        KNOWN.append(name)
        _FUNCTIONS.append(func)
        return func

    return register


def __getattr__(name: str) -> Migrations:
    """`migrations`: sqlite-utils' set of them, made when the writer first asks for it.
    Readers check a store's migrations against KNOWN alone, without importing sqlite-utils
    (50 to 80 ms of every listing's start-up)."""
    if name != "migrations":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from aggregator.store.lean_imports import load_sqlite_utils

    load_sqlite_utils()  # first: without numpy
    from sqlite_utils.migrations import Migrations

    made = Migrations(SET_NAME)
    for known, func in zip(KNOWN, _FUNCTIONS, strict=True):
        made(name=known)(func)
    globals()["migrations"] = made
    return made


@migration("0001_initial")
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


@migration("0002_feed_hints")
def m0002_feed_hints(db: Database) -> None:
    # Freshness hints (JSON: max_age_s, ttl_minutes, update_period_s, skip_hours, skip_days)
    # and the earliest time a 429/503 Retry-After allows, for the scheduler.
    db.execute("ALTER TABLE feeds ADD COLUMN hints TEXT")
    db.execute("ALTER TABLE feeds ADD COLUMN retry_after_until TEXT")


@migration("0003_daemon")
def m0003_daemon(db: Database) -> None:
    # Leases: who is refreshing a feed right now (daemon or `aggregator fetch`) and until when,
    # so two processes never fetch the same feed at once; expiry covers a crashed holder.
    db.execute("ALTER TABLE feeds ADD COLUMN lease_holder TEXT")
    db.execute("ALTER TABLE feeds ADD COLUMN lease_until TEXT")
    # The scheduler reads each feed's first, latest and recent sightings on every refresh.
    db.execute("CREATE INDEX sightings_feed_seen ON sightings(feed, seen_at)")


@migration("0004_stories")
def m0004_stories(db: Database) -> None:
    # Near-duplicate detection (dedup.py, store/stories.py). A story's lead item comes from
    # the highest-priority feed, so the feed's priority is kept beside it.
    db.execute("ALTER TABLE feeds ADD COLUMN priority INTEGER NOT NULL DEFAULT 0")
    db.execute(
        """
        CREATE TABLE item_fingerprints (
            item_id INTEGER PRIMARY KEY REFERENCES items(id),
            title_key TEXT,              -- normalised headline (dedup.title_key)
            canonical_url TEXT,          -- canonical URL the page declares, when it names another
            source TEXT,                 -- text / summary (title + summary); NULL: too little
            shingles INTEGER,            -- distinct word shingles the signature summarises
            signature BLOB,              -- MinHash: dedup.NUM_PERM little-endian uint32
            version INTEGER,             -- dedup.FINGERPRINT_VERSION that made it
            first_seen_at TEXT NOT NULL  -- the item's, so the time window needs no join
        )
        """
    )
    # LSH: one row per (band, key) an item's signature falls in, filed under the week it was
    # first seen. A lookup is one index probe per band and week of the time window (2 x 42
    # for 3 days), all in the newest corner of the index: the pages it touches are as many
    # for a store of a million items as for ten thousand, and boilerplate shared by years of
    # items is never read. WITHOUT ROWID keeps the rows in the index itself. No foreign key:
    # retention would scan the whole table for each batch. Rows of expired items drop out of
    # lookups at the join with item_fingerprints; a rebuild clears them.
    db.execute(
        """
        CREATE TABLE lsh_bands (
            week INTEGER NOT NULL,       -- first_seen_at's proleptic day ordinal // 7
            band INTEGER NOT NULL,
            key INTEGER NOT NULL,
            item_id INTEGER NOT NULL,
            PRIMARY KEY (week, band, key, item_id)
        ) WITHOUT ROWID
        """
    )
    # Why each item joined its story (the first item of a story has no row).
    db.execute(
        """
        CREATE TABLE story_links (
            item_id INTEGER PRIMARY KEY REFERENCES items(id),
            story_id INTEGER NOT NULL,
            matched_item_id INTEGER NOT NULL REFERENCES items(id),
            signal TEXT NOT NULL,        -- canonical_url / title / minhash
            score REAL NOT NULL,
            created_at TEXT NOT NULL
        )
        """
    )
    # Pairs an editor split apart (`aggregator stories split`): never joined again, rebuilds
    # included.
    db.execute(
        """
        CREATE TABLE story_splits (
            item_id INTEGER NOT NULL REFERENCES items(id),
            other_item_id INTEGER NOT NULL REFERENCES items(id),
            created_at TEXT NOT NULL,
            PRIMARY KEY (item_id, other_item_id)
        )
        """
    )
    for sql in (
        "CREATE INDEX item_fingerprints_title ON item_fingerprints(title_key, first_seen_at)",
        "CREATE INDEX item_fingerprints_canonical ON item_fingerprints(canonical_url)",
        "CREATE INDEX story_links_story ON story_links(story_id)",
        "CREATE INDEX story_splits_other ON story_splits(other_item_id)",
    ):
        db.execute(sql)
    # Moving an item between stories must not re-index its text: the full-text trigger fires
    # only when the title or the text changes.
    db.execute("DROP TRIGGER items_au")
    db.execute(
        """
        CREATE TRIGGER items_au AFTER UPDATE OF title, text ON items BEGIN
          INSERT INTO items_fts (items_fts, rowid, title, text)
            VALUES ('delete', old.rowid, old.title, old.text);
          INSERT INTO items_fts (rowid, title, text) VALUES (new.rowid, new.title, new.text);
        END
        """
    )


@migration("0005_publishing")
def m0005_publishing(db: Database) -> None:
    # Desks: feeds.yaml's tags, kept in step with it by sync_feeds, so exports, served feeds and
    # listings can filter by tag. Feeds removed from feeds.yaml keep theirs (their items stay).
    db.execute(
        """
        CREATE TABLE feed_tags (
            feed TEXT NOT NULL REFERENCES feeds(name),
            tag TEXT NOT NULL,
            PRIMARY KEY (feed, tag)
        )
        """
    )
    db.execute("CREATE INDEX feed_tags_tag ON feed_tags(tag, feed)")
    # The entry's summary as the feed gave it, made safe (sanitize.safe_html): `summary` stays
    # the plain-text form that search, listings and dedup read.
    db.execute("ALTER TABLE items ADD COLUMN summary_html TEXT")


@migration("0006_search_summaries")
def m0006_search_summaries(db: Database) -> None:
    # Search covers the feed's summary too, so an item whose page failed or was never fetched
    # is found by the words its entry carried. `title` and `text` keep their places (0 and 1:
    # snippet() calls name them by number); `summary` comes third.
    # The index is made again from the items in SQL: FTS5's 'rebuild' reads the table row by
    # row and writes its index in segments as it goes, so memory stays flat however big the
    # store; the writes go to the WAL and the old index's pages are reused afterwards. All of
    # it runs in this migration's one transaction: a start killed half-way leaves the old
    # index and triggers as they were, and the next start does it all again (IF EXISTS: also
    # right when the index or a trigger was dropped by hand).
    for trigger in ("items_ai", "items_ad", "items_au"):
        db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    db.execute("DROP TABLE IF EXISTS items_fts")
    db.execute(
        'CREATE VIRTUAL TABLE "items_fts" USING FTS5'
        ' ("title", "text", "summary", tokenize=\'unicode61\', content="items")'
    )
    db.execute(
        """
        CREATE TRIGGER items_ai AFTER INSERT ON items BEGIN
          INSERT INTO items_fts (rowid, title, text, summary)
            VALUES (new.rowid, new.title, new.text, new.summary);
        END
        """
    )
    db.execute(
        """
        CREATE TRIGGER items_ad AFTER DELETE ON items BEGIN
          INSERT INTO items_fts (items_fts, rowid, title, text, summary)
            VALUES ('delete', old.rowid, old.title, old.text, old.summary);
        END
        """
    )
    # As in 0004: moving an item between stories, or counting an extraction attempt, must
    # not re-index it; only a change of an indexed column does.
    db.execute(
        """
        CREATE TRIGGER items_au AFTER UPDATE OF title, text, summary ON items BEGIN
          INSERT INTO items_fts (items_fts, rowid, title, text, summary)
            VALUES ('delete', old.rowid, old.title, old.text, old.summary);
          INSERT INTO items_fts (rowid, title, text, summary)
            VALUES (new.rowid, new.title, new.text, new.summary);
        END
        """
    )
    db.execute("INSERT INTO items_fts (items_fts) VALUES ('rebuild')")


@migration("0007_story_merges")
def m0007_story_merges(db: Database) -> None:
    # Items an editor merged into one story (`aggregator stories merge`), so a rebuild keeps
    # them together. One row per item naming its group, not one per pair: merging a story of
    # n items costs n rows. A later split takes the item out of its group, and a later merge
    # forgets the splits between its items: the latest correction wins.
    db.execute(
        """
        CREATE TABLE story_merges (
            item_id INTEGER PRIMARY KEY REFERENCES items(id),
            merge_id INTEGER NOT NULL,   -- the group: its lowest item id when merged
            created_at TEXT NOT NULL
        )
        """
    )
    for sql in (
        "CREATE INDEX story_merges_group ON story_merges(merge_id)",
        # `stories --sort first_seen` walks this latest first and stops at the limit;
        # `--sort published` walks items by items_published and finds the story each leads.
        "CREATE INDEX stories_first_seen ON stories(first_seen_at)",
        "CREATE INDEX stories_lead ON stories(lead_item_id)",
    ):
        db.execute(sql)


@migration("0009_store_at_scale")
def m0009_store_at_scale(db: Database) -> None:
    # What keeps listings as fast in a store of a million items as in a new one
    # (benchmarks/store_scale.py, tests/test_query_plans.py).
    #
    # A story's or an item's feeds are looked up by item: with the feed in the index, "did
    # this feed carry this item" and "which feeds carried it" are answered from the index
    # alone, and SQLite has no reason to walk a feed's every sighting for each story
    # instead (what it did for `--feed` before: 37 s for a feed's served stories at a
    # million items). Same name, one more column.
    db.execute("DROP INDEX IF EXISTS sightings_item")
    db.execute("CREATE INDEX sightings_item ON sightings(item_id, feed)")
    # Datasette's pages of sightings and fetches are sorted by these times, latest first.
    db.execute("CREATE INDEX sightings_seen ON sightings(seen_at)")
    db.execute("CREATE INDEX fetches_started ON fetches(started_at)")
    # How many sightings each feed has, kept by triggers: `aggregator feeds`, Datasette's
    # feed health and the scheduler's history ask it of every feed at once, which counted
    # all of sightings each time (0.1 s at 1.2 million, 1.4 s with the history's grouping).
    db.execute(
        """
        CREATE TABLE feed_counts (
            feed TEXT PRIMARY KEY REFERENCES feeds(name),
            sightings INTEGER NOT NULL
        ) WITHOUT ROWID
        """
    )
    db.execute(
        "INSERT INTO feed_counts (feed, sightings) SELECT feed, count(*) FROM sightings"
        " GROUP BY feed"
    )
    db.execute(
        """
        CREATE TRIGGER sightings_counted AFTER INSERT ON sightings BEGIN
          INSERT INTO feed_counts (feed, sightings) VALUES (new.feed, 1)
            ON CONFLICT (feed) DO UPDATE SET sightings = sightings + 1;
        END
        """
    )
    db.execute(
        """
        CREATE TRIGGER sightings_uncounted AFTER DELETE ON sightings BEGIN
          UPDATE feed_counts SET sightings = sightings - 1 WHERE feed = old.feed;
        END
        """
    )
    db.execute(
        """
        CREATE TRIGGER sightings_recounted AFTER UPDATE OF feed ON sightings BEGIN
          UPDATE feed_counts SET sightings = sightings - 1 WHERE feed = old.feed;
          INSERT INTO feed_counts (feed, sightings) VALUES (new.feed, 1)
            ON CONFLICT (feed) DO UPDATE SET sightings = sightings + 1;
        END
        """
    )
