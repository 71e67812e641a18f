"""Article pages as readers ask about them: how each feed's recent pages fared (`aggregator
feeds` and `fetch` tell a degraded feed by it), and which items `aggregator retry` means."""

from __future__ import annotations

from collections.abc import Sequence

from aggregator.enums import ExtractStatus
from aggregator.store.connection import Sql
from aggregator.store.queries import Row, dict_rows

# The pages tried of the entries each feed brought since :since, by outcome and error. The
# (feed, seen_at) index makes it one range scan per feed; an item carried twice by one feed
# (two GUIDs) counts once.
_RECENT_PAGES = f"""
SELECT s.feed AS feed, i.extract_status AS status, i.extract_error AS error,
       count(DISTINCT i.id) AS pages
FROM sightings s JOIN items i ON i.id = s.item_id
WHERE s.feed IN (SELECT name FROM feeds) AND s.seen_at >= :since
  AND i.extract_status IN ('{ExtractStatus.OK}', '{ExtractStatus.FAILED}')
GROUP BY s.feed, i.extract_status, i.extract_error
"""
_ITEM = (
    "SELECT i.id, i.url, i.link, i.title, i.extract_status, i.extract_error FROM items i WHERE {}"
)


def recent_pages(db: Sql, *, since: str) -> list[Row]:
    """(feed, status ok|failed, error, pages) for the article pages of entries each feed
    brought since `since`; pages not tried yet (pending) or never to be (skipped, the feed's
    own text) are left out."""
    return dict_rows(db, _RECENT_PAGES, [since])


def item_by_id(db: Sql, item_id: int) -> Row | None:
    rows = dict_rows(db, _ITEM.format("i.id = ?"), [item_id])
    return rows[0] if rows else None


def item_by_url(db: Sql, urls: Sequence[str]) -> Row | None:
    """The item whose canonical URL, or whose link as a feed gave it, is one of `urls`."""
    marks = ", ".join("?" for _ in urls)
    rows = dict_rows(
        db,
        _ITEM.format(f"i.url IN ({marks}) OR i.link IN ({marks})") + " ORDER BY i.id LIMIT 1",
        [*urls, *urls],
    )
    return rows[0] if rows else None


def urls_like(db: Sql, prefix: str, *, limit: int) -> list[str]:
    """Item URLs that start with `prefix` (a site), latest first: what an unknown URL is
    compared with."""
    pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = db.execute(
        "SELECT url FROM items WHERE url LIKE ? ESCAPE '\\' ORDER BY id DESC LIMIT ?",
        [pattern, limit],
    )
    return [str(url) for (url,) in rows]


def id_range(db: Sql) -> tuple[int, int] | None:
    row = db.execute("SELECT min(id), max(id) FROM items").fetchone()
    return None if row is None or row[0] is None else (int(row[0]), int(row[1]))


def unextracted(db: Sql, feed: str) -> list[Row]:
    """A feed's items whose page failed or was never fetched, however often it was tried,
    oldest first; only those with a link (the others have no page)."""
    return dict_rows(
        db,
        "SELECT DISTINCT i.id, i.url, i.link, i.title, i.extract_status, i.extract_error"
        " FROM items i JOIN sightings s ON s.item_id = i.id"
        " WHERE s.feed = ? AND i.extract_status IN (?, ?)"
        " AND i.link IS NOT NULL AND i.url IS NOT NULL ORDER BY i.id",
        [feed, ExtractStatus.FAILED, ExtractStatus.PENDING],
    )


# Ids bound at once: under SQLite's bound-parameter limit.
_CHUNK = 500


def feeds_of(db: Sql, item_ids: Sequence[int]) -> dict[int, list[str]]:
    """item id -> the feeds that carried it, by name."""
    found: dict[int, list[str]] = {}
    unique = list(dict.fromkeys(item_ids))
    for start in range(0, len(unique), _CHUNK):
        chunk = unique[start : start + _CHUNK]
        marks = ", ".join("?" for _ in chunk)
        rows = db.execute(
            f"SELECT DISTINCT item_id, feed FROM sightings WHERE item_id IN ({marks})"
            " ORDER BY feed",
            chunk,
        )
        for item_id, feed in rows:
            found.setdefault(int(item_id), []).append(str(feed))
    return found
