"""Read-only queries behind `aggregator stories`: stories with their sources, and why each
item joined its story."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aggregator.enums import Order
from aggregator.store.connection import Sql
from aggregator.store.queries import Row, carried_few, dict_rows

if TYPE_CHECKING:
    from aggregator.models import Source, StoryEntry, StoryFilter

_SOURCES = "(SELECT {} FROM items m JOIN sightings sg ON sg.item_id = m.id WHERE m.story_id = s.id)"


def _story_order(sort: Order, *, join: str = "LEFT JOIN") -> tuple[str, str, str]:
    """(FROM clause, time column, ORDER BY) of a story listing sorted by `sort`, latest
    first; `--since` and `--until` bound the same time. By publication date (the lead's) the
    walk starts from the items' published_at index, newest first, and finds the story each
    item leads (stories_lead): CROSS JOIN keeps SQLite from reading every story and sorting
    them instead. The others walk stories_last_seen or stories_first_seen."""
    if sort == Order.PUBLISHED:
        return (
            "items lead CROSS JOIN stories s ON s.lead_item_id = lead.id",
            "lead.published_at",
            "lead.published_at DESC, lead.id DESC",
        )
    time = "s.first_seen_at" if sort == Order.FIRST_SEEN else "s.last_seen_at"
    return (
        f"stories s {join} items lead ON lead.id = s.lead_item_id",
        time,
        f"{time} DESC, s.id DESC",
    )


def _story_filters(
    since: str | None,
    feed: str | None,
    tag: str | None = None,
    *,
    until: str | None = None,
    time: str = "s.last_seen_at",
    few: bool = False,
) -> tuple[list[str], list[Any]]:
    """WHERE clauses on stories `s`: carried (or first seen, or published, by `time`) since
    and before a time, by a feed, by a feed with a tag.

    A feed or desk is tested per story (EXISTS) as the listing walks stories latest first,
    stopping at the limit: 1 ms for a desk that carries a story in ten at a million items,
    40 ms for a feed that carries one in 400. CROSS JOIN keeps the test on the story's items:
    SQLite read the feed's every sighting for each story instead (37 s). With `few`
    (`queries.carried_few`: the feed carried so little that the walk would go back months) the
    listing is made from the stories it carried, `s.id IN (...)`, and sorted."""
    clauses: list[str] = ["1"]
    params: list[Any] = []
    if since is not None:
        clauses.append(f"{time} >= ?")
        params.append(since)
    if until is not None:
        clauses.append(f"{time} < ?")
        params.append(until)
    if feed is not None:
        clauses.append(
            "s.id IN (SELECT m.story_id FROM sightings sg JOIN items m ON m.id = sg.item_id"
            " WHERE sg.feed = ?)"
            if few
            else "EXISTS (SELECT 1 FROM items m CROSS JOIN sightings sg ON sg.item_id = m.id"
            " WHERE m.story_id = s.id AND sg.feed = ?)"
        )
        params.append(feed)
    if tag is not None:
        clauses.append(
            "s.id IN (SELECT m.story_id FROM feed_tags t JOIN sightings sg ON sg.feed = t.feed"
            " JOIN items m ON m.id = sg.item_id WHERE t.tag = ?)"
            if few
            else "EXISTS (SELECT 1 FROM items m CROSS JOIN sightings sg ON sg.item_id = m.id"
            " CROSS JOIN feed_tags t ON t.feed = sg.feed WHERE m.story_id = s.id AND t.tag = ?)"
        )
        params.append(tag)
    return clauses, params


def _unindexed(order: str) -> str:
    """The ORDER BY with its first term out of any index's reach (unary +): SQLite then
    reads the stories a feed carried and sorts them, rather than walking every story."""
    return "+" + order


def stories(
    db: Sql,
    *,
    since: str | None,
    min_sources: int,
    feed: str | None,
    limit: int,
    tag: str | None = None,
    until: str | None = None,
    sort: Order = Order.LAST_SEEN,
) -> list[Row]:
    """Latest first (by the last time any feed carried them, or by `sort`), with their
    feeds."""
    source, time, order = _story_order(sort)
    few = sort != Order.PUBLISHED and carried_few(db, feed, tag, limit=limit)
    clauses, params = _story_filters(since, feed, tag, until=until, time=time, few=few)
    order = _unindexed(order) if few else order
    sql = (
        "SELECT * FROM (SELECT s.id AS story, s.last_seen_at, s.first_seen_at,"
        " lead.published_at,"
        f" s.item_count AS items, {_SOURCES.format('count(DISTINCT sg.feed)')} AS sources,"
        f" {_SOURCES.format('group_concat(DISTINCT sg.feed)')} AS feeds,"
        f" s.title, lead.url AS lead_url FROM {source}"
        f" WHERE {' AND '.join(clauses)} ORDER BY {order})"
        " WHERE sources >= ? LIMIT ?"
    )
    rows = dict_rows(db, sql, [*params, min_sources, limit])
    for row in rows:  # group_concat's order is SQLite's whim
        row["feeds"] = ",".join(sorted((row["feeds"] or "").split(",")))
    return rows


def story_items(db: Sql, story_id: int) -> list[Row]:
    """The story's items, lead first, each with the signal and score that joined it."""
    return dict_rows(
        db,
        "SELECT i.id AS item, i.id = s.lead_item_id AS lead,"
        " (SELECT group_concat(DISTINCT sg.feed) FROM sightings sg WHERE sg.item_id = i.id)"
        " AS feeds,"
        " (SELECT max(fd.priority) FROM sightings sg JOIN feeds fd ON fd.name = sg.feed"
        " WHERE sg.item_id = i.id) AS priority,"
        " i.first_seen_at, l.signal, l.score, l.matched_item_id AS matched_item, i.title, i.url"
        " FROM items i JOIN stories s ON s.id = i.story_id"
        " LEFT JOIN story_links l ON l.item_id = i.id"
        " WHERE i.story_id = ? ORDER BY lead DESC, i.first_seen_at, i.id",
        [story_id],
    )


def story(db: Sql, story_id: int) -> Row | None:
    rows = dict_rows(
        db,
        "SELECT id AS story, title, lead_item_id, item_count AS items, first_seen_at,"
        " last_seen_at FROM stories WHERE id = ?",
        [story_id],
    )
    return rows[0] if rows else None


def export_entries(db: Sql, wanted: StoryFilter) -> list[StoryEntry]:
    """Stories with their lead item's content, latest first, each with its sources (earliest
    first) and the tags of the feeds that carried it: what exports and served feeds publish."""
    # Here, not above: the listings need no dataclass (models builds 25 of them on import).
    from aggregator.models import StoryEntry

    source, time, order = _story_order(wanted.sort, join="JOIN")
    few = wanted.sort != Order.PUBLISHED and carried_few(
        db, wanted.feed, wanted.tag, limit=wanted.limit
    )
    clauses, params = _story_filters(
        wanted.since, wanted.feed, wanted.tag, until=wanted.until, time=time, few=few
    )
    order = _unindexed(order) if few else order
    sql = (
        "SELECT * FROM (SELECT s.id AS story_id, coalesce(s.title, lead.title, '') AS title,"
        " lead.url, lead.summary, lead.summary_html, lead.text, lead.html, lead.author,"
        " lead.published_at, lead.image, s.first_seen_at, s.last_seen_at,"
        f" {_SOURCES.format('count(DISTINCT sg.feed)')} AS feed_count"
        f" FROM {source}"
        f" WHERE {' AND '.join(clauses)} ORDER BY {order})"
        " WHERE feed_count >= ? LIMIT ?"
    )
    rows = dict_rows(db, sql, [*params, wanted.min_sources, wanted.limit])
    ids = [int(row["story_id"]) for row in rows]
    sources = _sources(db, ids)
    tags = _tags(db, ids)
    entries = []
    for row in rows:
        row.pop("feed_count")
        story_id = int(row["story_id"])
        entries.append(
            StoryEntry(
                **row,
                sources=tuple(sources.get(story_id, ())),
                tags=tuple(sorted(tags.get(story_id, ()))),
            )
        )
    return entries


def _in(ids: list[int]) -> str:
    return ", ".join("?" for _ in ids)


def _sources(db: Sql, ids: list[int]) -> dict[int, list[Source]]:
    """Each story's (feed, link) pairs, the earliest seen first."""
    from aggregator.models import Source

    found: dict[int, list[Source]] = {}
    if not ids:
        return found
    rows = db.execute(
        "SELECT m.story_id, sg.feed, sg.link, min(sg.seen_at) AS seen FROM items m"
        f" JOIN sightings sg ON sg.item_id = m.id WHERE m.story_id IN ({_in(ids)})"
        " GROUP BY m.story_id, sg.feed, sg.link ORDER BY seen, sg.feed",
        ids,
    ).fetchall()
    for story_id, feed, link, seen in rows:
        found.setdefault(int(story_id), []).append(Source(str(feed), link, str(seen)))
    return found


def _tags(db: Sql, ids: list[int]) -> dict[int, set[str]]:
    found: dict[int, set[str]] = {}
    if not ids:
        return found
    rows = db.execute(
        "SELECT DISTINCT m.story_id, t.tag FROM items m JOIN sightings sg ON sg.item_id = m.id"
        f" JOIN feed_tags t ON t.feed = sg.feed WHERE m.story_id IN ({_in(ids)})",
        ids,
    ).fetchall()
    for story_id, tag in rows:
        found.setdefault(int(story_id), set()).add(str(tag))
    return found
