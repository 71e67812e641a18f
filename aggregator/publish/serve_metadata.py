"""What `aggregator serve` tells Datasette about the store: the site's title and description,
a description per table, and the canned queries an editor uses every day.

The canned queries are plain SELECTs that Datasette runs on its own read-only connections;
each optional parameter is an empty string when not given (Datasette's rule), so every
filter reads `:name = '' OR ...`.
"""

from __future__ import annotations

from typing import Any

from aggregator.models import FeedStatus

# The store's name in Datasette's URLs (/aggregator/latest_stories), whatever the file is called.
DATABASE = "aggregator"
FEED_FORMATS = ("atom", "rss", "json")

# A story's distinct feeds, alphabetical; `s` is the story.
_FEEDS_OF_STORY = (
    "(SELECT group_concat(feed, ', ') FROM (SELECT DISTINCT sg.feed AS feed FROM items m"
    " JOIN sightings sg ON sg.item_id = m.id WHERE m.story_id = s.id ORDER BY sg.feed))"
)
_SOURCES_OF_STORY = (
    "(SELECT count(DISTINCT sg.feed) FROM items m JOIN sightings sg ON sg.item_id = m.id"
    " WHERE m.story_id = s.id)"
)

LATEST_STORIES = f"""
SELECT story, title, last_seen_at, sources, feeds, items, lead_url FROM (
  SELECT
    s.id AS story,
    s.title,
    s.last_seen_at,
    {_SOURCES_OF_STORY} AS sources,
    {_FEEDS_OF_STORY} AS feeds,
    s.item_count AS items,
    lead.url AS lead_url
  FROM stories s
  LEFT JOIN items lead ON lead.id = s.lead_item_id
  WHERE (:since = '' OR s.last_seen_at >= :since)
    AND (:tag = '' OR EXISTS (
      SELECT 1 FROM items m JOIN sightings sg ON sg.item_id = m.id
      JOIN feed_tags t ON t.feed = sg.feed WHERE m.story_id = s.id AND t.tag = :tag))
  ORDER BY s.last_seen_at DESC, s.id DESC
)
WHERE sources >= coalesce(CAST(nullif(:min_sources, '') AS INTEGER), 1)
LIMIT 100
""".strip()

STORY = """
SELECT
  i.id AS item,
  CASE WHEN i.id = s.lead_item_id THEN 'lead' ELSE '' END AS lead,
  (SELECT group_concat(DISTINCT sg.feed) FROM sightings sg WHERE sg.item_id = i.id) AS feeds,
  i.first_seen_at,
  coalesce(l.signal, CASE WHEN l.item_id IS NULL THEN 'first copy' END) AS joined_by,
  round(l.score, 3) AS score,
  l.matched_item_id AS matched_item,
  i.title,
  i.url
FROM items i
JOIN stories s ON s.id = i.story_id
LEFT JOIN story_links l ON l.item_id = i.id
WHERE i.story_id = CAST(:story AS INTEGER)
ORDER BY i.id = s.lead_item_id DESC, i.first_seen_at, i.id
""".strip()

FEED_HEALTH = f"""
SELECT
  name, state, error_count, last_outcome, last_error, last_warning,
  last_fetched_at, last_success_at, next_fetch_at,
  coalesce((SELECT c.sightings FROM feed_counts c WHERE c.feed = feeds.name), 0) AS items,
  url, permanent_url
FROM feeds
ORDER BY CASE state WHEN '{FeedStatus.GONE}' THEN 0 WHEN '{FeedStatus.FAILING}' THEN 1
  WHEN '{FeedStatus.OK}' THEN 2 ELSE 3 END,
  error_count DESC, last_warning IS NULL, name
""".strip()

# Best match first among the newest 10,000 matches, as `aggregator search` ranks them
# (store/queries.py, SEARCH_RANKED): ranking every match of a common word takes seconds in
# a store of a million items, past Datasette's time limit.
SEARCH = """
WITH hits AS (
  SELECT rowid AS id, rank FROM items_fts
  WHERE :q != '' AND items_fts MATCH :q
  ORDER BY rowid DESC LIMIT 10000
),
best AS (SELECT id, rank FROM hits ORDER BY rank, id DESC LIMIT 100)
SELECT
  i.id AS item,
  i.title,
  snippet(items_fts, -1, '[', ']', '…', 12) AS snippet,
  i.first_seen_at,
  i.story_id AS story,
  (SELECT group_concat(DISTINCT sg.feed) FROM sightings sg WHERE sg.item_id = i.id) AS feeds,
  i.url
FROM best
CROSS JOIN items_fts ON items_fts.rowid = best.id
JOIN items i ON i.id = best.id
WHERE items_fts MATCH :q
ORDER BY best.rank, best.id DESC
""".strip()

CANNED_QUERIES: dict[str, dict[str, Any]] = {
    "latest_stories": {
        "title": "Latest stories",
        "description": (
            "Stories latest first, duplicates clustered, with the feeds that carried each."
            " Optional: since (2026-11-27T08:00), a tag (desk), min_sources."
        ),
        "sql": LATEST_STORIES,
        "params": ["since", "tag", "min_sources"],
        "hide_sql": True,
    },
    "story": {
        "title": "One story",
        "description": (
            "A story's items, lead first, and why each joined: the signal (canonical_url,"
            " title, minhash), its score and the item it matched."
        ),
        "sql": STORY,
        "params": ["story"],
        "hide_sql": True,
    },
    "feed_health": {
        "title": "Feed health",
        "description": (
            "Every feed, the ones needing attention first: gone, then failing (most errors"
            " first), then healthy; `aggregator feeds` says what to do about each."
        ),
        "sql": FEED_HEALTH,
        "hide_sql": True,
    },
    "search": {
        "title": "Search",
        "description": (
            "Full-text search over titles and article text, best match first among the"
            ' newest 10,000 matches. FTS5 syntax: words, "a phrase", prefix*, AND / OR / NOT.'
        ),
        "sql": SEARCH,
        "params": ["q"],
        "hide_sql": True,
    },
}

TABLES: dict[str, dict[str, Any]] = {
    "feeds": {
        "description": "One row per configured feed: its state (ok, failing, gone, disabled),"
        " validators, last fetch and next due time, and its last error.",
    },
    "fetches": {
        "description": "One row per fetch attempt: HTTP status, outcome, duration, bytes,"
        " entries and new items.",
        "sort_desc": "started_at",
    },
    "items": {
        "description": "One row per distinct article (one canonical URL): its title, summary,"
        " extracted text and sanitised HTML, and the story it belongs to.",
        "sort_desc": "first_seen_at",
        "label_column": "title",
    },
    "sightings": {
        "description": "One row per (feed, entry) that pointed at an item: who carried it,"
        " under which GUID and link, and when.",
        "sort_desc": "seen_at",
    },
    "stories": {
        "description": "One row per story, a cluster of duplicate items: the lead item's"
        " title, when any feed first and last carried it, and how many items it has.",
        "sort_desc": "last_seen_at",
        "label_column": "title",
    },
    "story_links": {
        "description": "Why each item joined its story: the item it matched, the signal"
        " (canonical_url, title, minhash; editor: merged by an editor) and the score."
        " A story's first item has no row.",
    },
    "story_splits": {
        "description": "Pairs of items an editor split apart; never joined again.",
    },
    "story_merges": {
        "description": "Items an editor merged into one story (one group per merge_id);"
        " kept together by rebuilds until one is split.",
    },
    "feed_tags": {
        "description": "Each feed's tags (desks) from feeds.yaml.",
    },
    "items_fts": {
        "description": "The full-text index over items' titles and text (FTS5); use the"
        " search query.",
    },
    # Dedup machinery, not for reading: hidden from the table list, still reachable.
    "item_fingerprints": {"hidden": True},
    "lsh_bands": {"hidden": True},
    # Each feed's number of sightings, kept by triggers (feed health reads it).
    "feed_counts": {"hidden": True},
    "_sqlite_migrations": {"hidden": True},
}


def metadata() -> dict[str, Any]:
    """Datasette's metadata for the served store."""
    feeds = " · ".join(
        f'<a href="/feeds/stories.{fmt}">/feeds/stories.{fmt}</a>' for fmt in FEED_FORMATS
    )
    queries = " · ".join(
        f'<a href="/{DATABASE}/{name}">{query["title"]}</a>'
        for name, query in CANNED_QUERIES.items()
    )
    return {
        "title": "aggregator: the newsroom's store",
        "description_html": (
            "<p>Every feed, item and story the aggregator keeps, read-only.</p>"
            f"<p>Every day: {queries}.</p>"
            f"<p>Live feeds for republishing: {feeds}"
            " (filters: <code>?tag=</code>, <code>?feed=</code>, <code>?since=</code>,"
            " <code>?until=</code>, <code>?sort=</code>, <code>?min_sources=</code>,"
            " <code>?limit=</code>).</p>"
        ),
        "databases": {
            DATABASE: {
                "description": "The aggregator's SQLite store (read-only here).",
                "tables": TABLES,
                "queries": CANNED_QUERIES,
            }
        },
    }
