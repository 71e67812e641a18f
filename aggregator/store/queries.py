"""Read-only queries behind the CLI's listing commands. Each returns plain dict rows."""

from __future__ import annotations

import sqlite3
from sqlite3 import SQLITE_CORRUPT, SQLITE_NOTADB
from typing import Any

from sqlite_utils import Database

from aggregator.errors import StoreError
from aggregator.models import FeedStatus
from aggregator.store.connection import damaged_message, file_of

Row = dict[str, Any]

_ITEM_COLUMNS = (
    "i.id, i.published_at, i.first_seen_at, f.feeds, i.title, i.url, i.author, i.language,"
    " i.extract_status, i.story_id,"
    # How many items share its story (1: no duplicate known); `aggregator stories show`.
    " (SELECT item_count FROM stories s WHERE s.id = i.story_id) AS story_items"
)
_ITEM_FEEDS = (
    "LEFT JOIN (SELECT item_id, group_concat(DISTINCT feed) AS feeds FROM sightings"
    " GROUP BY item_id) f ON f.item_id = i.id"
)


def dict_rows(db: Database, sql: str, params: list[Any]) -> list[Row]:
    try:
        cursor = db.execute(sql, params)
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB):
            raise StoreError(damaged_message("cannot read", file_of(db), exc)) from exc
        raise StoreError(str(exc)) from exc
    names = [d[0] for d in cursor.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _filters(since: str | None, feed: str | None, tag: str | None) -> tuple[str, list[Any]]:
    clauses, params = [], []
    if since is not None:
        clauses.append("i.first_seen_at >= ?")
        params.append(since)
    if feed is not None:
        clauses.append("i.id IN (SELECT item_id FROM sightings WHERE feed = ?)")
        params.append(feed)
    if tag is not None:
        clauses.append(
            "i.id IN (SELECT s.item_id FROM sightings s JOIN feed_tags t ON t.feed = s.feed"
            " WHERE t.tag = ?)"
        )
        params.append(tag)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def items(
    db: Database, *, since: str | None, feed: str | None, limit: int, tag: str | None = None
) -> list[Row]:
    """Newest first, by when we first saw them (feeds' own dates are often wrong)."""
    where, params = _filters(since, feed, tag)
    return dict_rows(
        db,
        f"SELECT {_ITEM_COLUMNS} FROM items i {_ITEM_FEEDS}{where}"
        " ORDER BY i.first_seen_at DESC, i.id DESC LIMIT ?",
        [*params, limit],
    )


def search(
    db: Database,
    query: str,
    *,
    since: str | None,
    feed: str | None,
    limit: int,
    tag: str | None = None,
) -> list[Row]:
    """Full-text search over titles and article text, best match first.

    The query may use FTS5 syntax (AND, OR, NOT, "phrases", prefix*); if it is not valid
    FTS5 it is searched as plain words instead of failing.
    """
    where, params = _filters(since, feed, tag)
    where = where.replace(" WHERE ", " AND ", 1)
    sql = (
        f"SELECT {_ITEM_COLUMNS}, snippet(items_fts, 1, '[', ']', '…', 12) AS snippet"
        f" FROM items_fts JOIN items i ON i.id = items_fts.rowid {_ITEM_FEEDS}"
        f" WHERE items_fts MATCH ?{where} ORDER BY items_fts.rank LIMIT ?"
    )
    try:
        return dict_rows(db, sql, [query, *params, limit])
    except StoreError:
        return dict_rows(db, sql, [db.quote_fts(query), *params, limit])


def feeds(db: Database) -> list[Row]:
    """Each feed's health, the ones needing attention first."""
    return dict_rows(
        db,
        "SELECT name, state, url, permanent_url, last_fetched_at, last_success_at,"
        " next_fetch_at, error_count, last_outcome, last_error, last_warning,"
        " (SELECT count(*) FROM sightings s WHERE s.feed = feeds.name) AS items"
        f" FROM feeds ORDER BY CASE state WHEN '{FeedStatus.GONE}' THEN 0"
        f" WHEN '{FeedStatus.FAILING}' THEN 1 WHEN '{FeedStatus.OK}' THEN 2 ELSE 3 END, name",
        [],
    )
