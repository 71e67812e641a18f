"""Read-only queries behind the CLI's listing commands. Each returns plain dict rows."""

from __future__ import annotations

import math
import re
import sqlite3
from collections.abc import Iterable, Sequence
from sqlite3 import SQLITE_CORRUPT, SQLITE_NOTADB
from typing import Any

from aggregator.enums import FeedStatus, Order
from aggregator.errors import StoreError, UsageError
from aggregator.store import fts_query
from aggregator.store.connection import Sql, damaged_message, file_of

Row = dict[str, Any]


class Rows(list[Row]):
    """Rows that know their columns, as SQL does even when there is no row: a CSV of no
    rows still has its header."""

    def __init__(self, columns: Sequence[str], rows: Iterable[Row] = ()) -> None:
        super().__init__(rows)
        self.columns = tuple(columns)


_ITEM_COLUMNS = (
    "i.id, i.published_at, i.first_seen_at,"
    # Per listed item, through sightings_item: a join with every item's feeds grouped would
    # read all of sightings for a listing of 20 (1.3 s at 200k items; this: 1 ms).
    " (SELECT group_concat(DISTINCT sg.feed) FROM sightings sg WHERE sg.item_id = i.id)"
    " AS feeds, i.title, i.url, i.author, i.language,"
    " i.extract_status, i.extract_error, i.story_id,"
    # How many items share its story (1: no duplicate known); `aggregator stories show`.
    " (SELECT item_count FROM stories s WHERE s.id = i.story_id) AS story_items"
)


def dict_rows(db: Sql, sql: str, params: list[Any]) -> list[Row]:
    try:
        cursor = db.execute(sql, params)
    except sqlite3.Error as exc:
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB):
            raise StoreError(damaged_message("cannot read", file_of(db), exc)) from exc
        raise StoreError(str(exc)) from exc
    names = [d[0] for d in cursor.description or ()]
    return Rows(names, (dict(zip(names, row, strict=True)) for row in cursor.fetchall()))


# What `--sort` orders items by, newest first; `--since` and `--until` bound the same time,
# so the listing walks that time's index from the newest end and stops at the limit.
_ITEM_TIMES = {Order.FIRST_SEEN: "i.first_seen_at", Order.PUBLISHED: "i.published_at"}


def item_time(sort: Order) -> str:
    """The column an item listing sorted by `sort` orders by and bounds (relevance: the
    first-seen time, which `--since` has always bounded)."""
    return _ITEM_TIMES.get(sort, _ITEM_TIMES[Order.FIRST_SEEN])


# Making a listing entry of an item or a story a feed carried (its columns, its feeds) costs
# about as much as testing 40 on a walk through the index (benchmarks/store_scale.py).
SET_COST = 40


def carried_few(db: Sql, feed: str | None, tag: str | None, *, limit: int) -> bool:
    """Whether the feed (or the desk's feeds) carried so few entries that making a listing
    from all of them costs less than walking the listing's index, testing each row, until
    `limit` of theirs are found: fewer than sqrt(limit x all sightings / SET_COST), about
    1,200 for 50 at a million items (stories --feed: the walk takes 45 ms for a feed of
    1,300 sightings, 1 s for one of 100; the set 75 ms and 6 ms). Reading a busy feed's
    every sighting took 1.2 s for `items --feed`. The counts are feed_counts'."""
    if feed is not None:
        sql, name = "SELECT sightings FROM feed_counts WHERE feed = ?", feed
    elif tag is not None:
        sql = "SELECT sum(c.sightings) FROM feed_tags t JOIN feed_counts c ON c.feed = t.feed"
        sql, name = sql + " WHERE t.tag = ?", tag
    else:
        return False
    carried = db.execute(f"SELECT coalesce(({sql}), 0)", [name]).fetchone()[0]
    total = db.execute("SELECT coalesce(sum(sightings), 0) FROM feed_counts").fetchone()[0]
    return int(carried) ** 2 * SET_COST < limit * int(total)


def _filters(
    since: str | None,
    feed: str | None,
    tag: str | None,
    *,
    until: str | None = None,
    time: str = "i.first_seen_at",
    few: bool = False,
) -> tuple[str, list[Any]]:
    """WHERE on items `i`. A feed or desk is tested per item as the listing walks its index
    (EXISTS, from the item's own sightings); one that carried `few` (carried_few) gives the
    set of its items instead (IN), which the listing then sorts."""
    clauses, params = [], []
    if since is not None:
        clauses.append(f"{time} >= ?")
        params.append(since)
    if until is not None:
        clauses.append(f"{time} < ?")
        params.append(until)
    if feed is not None:
        clauses.append(
            "i.id IN (SELECT item_id FROM sightings WHERE feed = ?)"
            if few
            else "EXISTS (SELECT 1 FROM sightings sg WHERE sg.item_id = i.id AND sg.feed = ?)"
        )
        params.append(feed)
    if tag is not None:
        clauses.append(
            "i.id IN (SELECT s.item_id FROM sightings s JOIN feed_tags t ON t.feed = s.feed"
            " WHERE t.tag = ?)"
            if few
            else "EXISTS (SELECT 1 FROM sightings sg CROSS JOIN feed_tags t ON t.feed = sg.feed"
            " WHERE sg.item_id = i.id AND t.tag = ?)"
        )
        params.append(tag)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def items(
    db: Sql,
    *,
    since: str | None,
    feed: str | None,
    limit: int,
    tag: str | None = None,
    until: str | None = None,
    sort: Order = Order.FIRST_SEEN,
    status: str | None = None,
) -> list[Row]:
    """Newest first, by when we first saw them (feeds' own dates are often wrong), or by the
    feed's publication date (undated items last). `status`: only items whose extraction
    stands there (an ExtractStatus)."""
    time = item_time(sort)
    few = carried_few(db, feed, tag, limit=limit)
    where, params = _filters(since, feed, tag, until=until, time=time, few=few)
    if status is not None:
        # +: tested as the listing walks, never its index read whole and sorted (a quarter
        # of a million items per status at a million; a planner without statistics did).
        where += (" AND " if where else " WHERE ") + "+i.extract_status = ?"
        params.append(status)
    # From a feed's few items, sorted; else down the time's index (+: out of its reach).
    order = f"{'+' if few else ''}{time} DESC, i.id DESC"
    return dict_rows(
        db,
        f"SELECT {_ITEM_COLUMNS} FROM items i{where} ORDER BY {order} LIMIT ?",
        [*params, limit],
    )


# -1: the snippet comes from the column that matched best (title, text or summary).
_SNIPPET = "snippet(items_fts, -1, '[', ']', '…', 12) AS snippet"
# Best match first means best among the newest SEARCH_RANKED matches (those the filters
# let through): FTS5 scores every match it ranks (bm25, ~3 µs each), and a common word
# matches one item in ten of a million (0.35 s to rank them all, 3.4 s for "the"); the
# newest ten thousand are ranked in 30 ms, and a newsroom looks for the latest first.
# --since, --until, --feed or more words reach further back.
SEARCH_RANKED = 10_000


def _ranked_search(where: str) -> str:
    """The search by relevance: the newest matches walked from the index's end (rowids
    grow with time) and scored, the best `limit` kept, and only those read and given a
    snippet. Parameters: the query, the filters', the limit, the query again."""
    join = " JOIN items i ON i.id = items_fts.rowid" if where else ""
    return (
        "WITH hits AS (SELECT items_fts.rowid AS id, items_fts.rank AS rank"
        f" FROM items_fts{join} WHERE items_fts MATCH ?{where}"
        f" ORDER BY items_fts.rowid DESC LIMIT {SEARCH_RANKED}),"
        " best AS (SELECT id, rank FROM hits ORDER BY rank, id DESC LIMIT ?)"
        f" SELECT {_ITEM_COLUMNS}, {_SNIPPET}"
        " FROM best CROSS JOIN items_fts ON items_fts.rowid = best.id"
        " JOIN items i ON i.id = best.id WHERE items_fts MATCH ? ORDER BY best.rank, best.id DESC"
    )


def search(
    db: Sql,
    query: str,
    *,
    since: str | None,
    feed: str | None,
    limit: int,
    tag: str | None = None,
    until: str | None = None,
    sort: Order = Order.RELEVANCE,
) -> list[Row]:
    """Full-text search over titles, summaries and article text, best match first (among
    the newest SEARCH_RANKED matches), or newest first by `sort`.

    The query may use FTS5 syntax (AND, OR, NOT, "phrases", prefix*); if it is not valid
    FTS5 ("U.S.", "covid-19", a stray quote) it is searched as plain words instead of
    failing (`search_problem` says why, for the user). A query with no words, or one even
    its words cannot be searched by, is a UsageError saying what is wrong (fts_query.py).
    """
    if not fts_query.has_words(query):
        raise UsageError(fts_query.EMPTY)
    time = item_time(sort)
    few = carried_few(db, feed, tag, limit=SEARCH_RANKED)
    where, params = _filters(since, feed, tag, until=until, time=time, few=few)
    where = where.replace(" WHERE ", " AND ", 1)

    def run(words: str) -> list[Row]:
        if sort == Order.RELEVANCE:
            sql = _ranked_search(where)
        else:
            sql = _sorted_search(where, time, walk=_matches_many(db, words, limit=limit))
        return dict_rows(db, sql, [words, *params, limit, words])

    try:
        return run(query)
    except StoreError as exc:
        if fts_query.problem(exc) is None:
            raise
    try:
        return run(quote_words(query))
    except StoreError as exc:
        said = fts_query.problem(exc)
        if said is None:
            raise
        raise UsageError(f"cannot search: {fts_query.explain(query, said)}") from None


# Sorting a match costs about as much as testing 20 entries of a walk down the time's
# index (2 us against 0.1 us, measured on benchmarks/store_scale.py's million-item store).
MATCH_COST = 20


def _matches_many(db: Sql, words: str, *, limit: int) -> bool:
    """Whether the query matches so many items that walking the time's index newest first,
    testing each, finds `limit` of them sooner than sorting them all: more than
    sqrt(limit x items / MATCH_COST), 1,000 for 20 at a million. A word in 55,000 items of
    a million took 109 ms sorted and 9 ms walked; a word in none, 0 ms sorted and 74 ms
    walked (the whole index)."""
    newest = dict_rows(db, "SELECT coalesce(max(id), 0) AS id FROM items", [])[0]["id"]
    enough = math.isqrt(limit * int(newest) // MATCH_COST) + 1
    found = dict_rows(
        db,
        "SELECT count(*) AS n FROM (SELECT rowid FROM items_fts WHERE items_fts MATCH ? LIMIT ?)",
        [words, enough],
    )
    return int(found[0]["n"]) >= enough


def _sorted_search(where: str, time: str, *, walk: bool) -> str:
    """The search newest first by `time`: the newest `limit` matches found first, by
    walking the time's index (`walk`: +i.id keeps the matches from driving the plan) or by
    sorting the matches; then only those read whole and given a snippet. Listing and
    snippeting every match before sorting took 5 s for a word in 55,000 items of a million.
    Parameters as _ranked_search's."""
    newest = (
        f"SELECT i.id AS id, {time} AS at FROM items i WHERE +i.id IN"
        f" (SELECT rowid FROM items_fts WHERE items_fts MATCH ?){where}"
        if walk
        else f"SELECT i.id AS id, {time} AS at FROM items_fts"
        f" JOIN items i ON i.id = items_fts.rowid WHERE items_fts MATCH ?{where}"
    )
    return (
        f"WITH best AS ({newest} ORDER BY {time} DESC, i.id DESC LIMIT ?)"
        f" SELECT {_ITEM_COLUMNS}, {_SNIPPET}"
        " FROM best CROSS JOIN items_fts ON items_fts.rowid = best.id JOIN items i"
        " ON i.id = best.id WHERE items_fts MATCH ? ORDER BY best.at DESC, best.id DESC"
    )


# A double-quoted phrase, or the space between words (how sqlite-utils' quote_fts splits).
_PHRASE_OR_SPACE = re.compile(r'\s+|(".*?")')


def quote_words(query: str) -> str:
    """The query as FTS5 reads it literally: each word and "phrase" in double quotes, so
    that no operator, column filter or stray character means anything (a quote left open
    is closed), as sqlite-utils' quote_fts has it."""
    if query.count('"') % 2:
        query += '"'
    bits = [bit for bit in _PHRASE_OR_SPACE.split(query) if bit and bit != '""']
    return " ".join(bit if bit.startswith('"') else f'"{bit}"' for bit in bits)


def search_problem(db: Sql, query: str) -> str | None:
    """Why FTS5 cannot read `query` as it is written, in words with queries that work; None
    when it can."""
    if not fts_query.has_words(query):
        return fts_query.EMPTY
    try:
        dict_rows(db, "SELECT rowid FROM items_fts WHERE items_fts MATCH ? LIMIT 1", [query])
    except StoreError as exc:
        said = fts_query.problem(exc)
        if said is None:
            raise
        return fts_query.explain(query, said)
    return None


def feeds(db: Sql) -> list[Row]:
    """Each feed's health, the ones needing attention first."""
    return dict_rows(
        db,
        "SELECT name, state, url, permanent_url, last_fetched_at, last_success_at,"
        " next_fetch_at, error_count, last_outcome, last_error, last_warning,"
        # Kept by triggers (migration 0009): counting sightings read all of them.
        " coalesce((SELECT c.sightings FROM feed_counts c WHERE c.feed = feeds.name), 0)"
        " AS items"
        f" FROM feeds ORDER BY CASE state WHEN '{FeedStatus.GONE}' THEN 0"
        f" WHEN '{FeedStatus.FAILING}' THEN 1 WHEN '{FeedStatus.OK}' THEN 2 ELSE 3 END, name",
        [],
    )
