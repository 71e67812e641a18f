"""The store as readers see it: one read-only connection and a typed method per question
the CLI, the daemon's gauges, exports and the web view ask. Listing rows come back as plain
dicts keyed by column name (the CLI's JSON output is those keys)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from aggregator.enums import Order
from aggregator.errors import QueryInterrupted, QueryRefused, StoreError, UnknownName
from aggregator.store import page_queries, queries, story_queries
from aggregator.store.connection import (
    DENIED_FUNCTIONS,
    ReadConnection,
    connect,
    existing,
    file_of,
    store_error,
    write_refusal,
)
from aggregator.store.queries import Row, Rows

if TYPE_CHECKING:
    from aggregator.models import FeedHistory, StoryEntry, StoryFilter

# What one `Reader.query` (`aggregator query`, the web view's SQL) may use.
QUERY_TIMEOUT_S = 30.0
# The largest string or blob a query may make or read (SQLITE_LIMIT_LENGTH, this connection,
# during the query only): randomblob(999999999) fails at once instead of taking 1 GB. Above
# any stored value at the default caps (a 10 MB page, a 20 MB feed).
QUERY_MAX_VALUE_BYTES = 100_000_000
# SQLite's heap in this process (PRAGMA hard_heap_limit: process-wide, and only ever lowered
# once set), and the soft limit above which it gives back page cache.
QUERY_HEAP_BYTES = 500_000_000
QUERY_SOFT_HEAP_BYTES = 100_000_000
# The rows a query hands back, counted as the sizes of their values: Python holds them all.
QUERY_MAX_RESULT_BYTES = 200_000_000
# How many SQLite VM steps run between two looks at the clock and the cancel flag.
_PROGRESS_STEPS = 1000


def open_reader(path: str) -> Reader:
    """A read-only connection for queries: never blocks the writer, sees whole commits only,
    and never touches another file."""
    try:
        return Reader(ReadConnection(connect(existing(path), read_only=True)))
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path}: {exc}") from exc


class Reader:
    def __init__(self, db: ReadConnection) -> None:
        self.db = db

    def close(self) -> None:
        self.db.close()

    # -- items and feeds --------------------------------------------------------------------

    def items(
        self,
        *,
        since: str | None,
        feed: str | None,
        limit: int,
        tag: str | None = None,
        until: str | None = None,
        sort: Order = Order.FIRST_SEEN,
        status: str | None = None,
    ) -> list[Row]:
        return queries.items(
            self.db,
            since=since,
            feed=feed,
            limit=limit,
            tag=tag,
            until=until,
            sort=sort,
            status=status,
        )

    def search(
        self,
        query: str,
        *,
        since: str | None,
        feed: str | None,
        limit: int,
        tag: str | None = None,
        until: str | None = None,
        sort: Order = Order.RELEVANCE,
    ) -> list[Row]:
        return queries.search(
            self.db, query, since=since, feed=feed, limit=limit, tag=tag, until=until, sort=sort
        )

    def search_problem(self, query: str) -> str | None:
        """Why FTS5 cannot read `query` as written (`search` then looks for its words), in
        words with queries that work; None when it can."""
        return queries.search_problem(self.db, query)

    def feeds(self) -> list[Row]:
        return queries.feeds(self.db)

    def feed_histories(self, *, since: str) -> dict[str, FeedHistory]:
        # Here, not above: its rows are dataclasses (models), which the listings never need.
        from aggregator.store import schedule_rows

        return schedule_rows.feed_histories(self.db, since=since)

    # -- article pages (SQL in store/page_queries.py) -------------------------------------------

    def recent_pages(self, *, since: str) -> list[Row]:
        """How the article pages of each feed's entries since `since` fared: rows of feed,
        status (ok or failed), error and pages."""
        return page_queries.recent_pages(self.db, since=since)

    def item_by_id(self, item_id: int) -> Row | None:
        return page_queries.item_by_id(self.db, item_id)

    def item_by_url(self, urls: Sequence[str]) -> Row | None:
        """The item whose canonical URL or feed link is one of `urls`."""
        return page_queries.item_by_url(self.db, urls)

    def urls_like(self, prefix: str, *, limit: int = 2000) -> list[str]:
        return page_queries.urls_like(self.db, prefix, limit=limit)

    def item_id_range(self) -> tuple[int, int] | None:
        return page_queries.id_range(self.db)

    def unextracted_items(self, feed: str) -> list[Row]:
        """A feed's items whose page failed or is pending, whatever their attempts."""
        return page_queries.unextracted(self.db, feed)

    def feeds_of(self, item_ids: Sequence[int]) -> dict[int, list[str]]:
        return page_queries.feeds_of(self.db, item_ids)

    # -- stories ----------------------------------------------------------------------------

    def stories(
        self,
        *,
        since: str | None,
        min_sources: int,
        feed: str | None,
        limit: int,
        tag: str | None = None,
        until: str | None = None,
        sort: Order = Order.LAST_SEEN,
    ) -> list[Row]:
        return story_queries.stories(
            self.db,
            since=since,
            min_sources=min_sources,
            feed=feed,
            limit=limit,
            tag=tag,
            until=until,
            sort=sort,
        )

    def story(self, story_id: int) -> Row | None:
        return story_queries.story(self.db, story_id)

    def story_items(self, story_id: int) -> list[Row]:
        return story_queries.story_items(self.db, story_id)

    def export_entries(self, wanted: StoryFilter) -> list[StoryEntry]:
        """What an export or a served feed publishes (check the names in `wanted` first)."""
        return story_queries.export_entries(self.db, wanted)

    # -- names ----------------------------------------------------------------------------------

    def feed_names(self) -> list[str]:
        return [str(r[0]) for r in self.db.execute("SELECT name FROM feeds ORDER BY name")]

    def tag_names(self) -> list[str]:
        rows = self.db.execute("SELECT DISTINCT tag FROM feed_tags ORDER BY tag")
        return [str(r[0]) for r in rows]

    def check_names(self, *, feed: str | None = None, tag: str | None = None) -> None:
        """An unknown feed or tag is an error naming the known ones, never an empty result."""
        if feed is not None and feed not in (feeds := self.feed_names()):
            raise UnknownName("feed", feed, feeds)
        if tag is not None and tag not in (tags := self.tag_names()):
            raise UnknownName("tag", tag, tags)

    def latest_change(self) -> str | None:
        """When a story was last carried, any story (ISO 8601 UTC); None in an empty store."""
        row = self.db.execute("SELECT max(last_seen_at) FROM stories").fetchone()
        return str(row[0]) if row and row[0] else None

    def created_on(self) -> str:
        """The day this store was made (YYYY-MM-DD): part of every story's stable id."""
        row = self.db.execute("SELECT min(applied_at) FROM _sqlite_migrations").fetchone()
        return str(row[0])[:10] if row and row[0] else "2026-01-01"

    # -- any SQL ------------------------------------------------------------------------------

    def query(
        self,
        sql: str,
        params: list[Any] | None = None,
        *,
        timeout_s: float | None = QUERY_TIMEOUT_S,
        cancelled: Callable[[], bool] | None = None,
    ) -> list[Row]:
        """`aggregator query` (and the web view): one statement of any SQL a reader connection
        allows, within limits. It stops when `timeout_s` passes or `cancelled()` turns true
        (checked every 1,000 SQLite steps, so a runaway query stops too); a value
        over QUERY_MAX_VALUE_BYTES, SQLite's heap over QUERY_HEAP_BYTES or a result over
        QUERY_MAX_RESULT_BYTES stop it as well. Every refusal is a one-line QueryRefused
        (a StoreError) that says why and what to do; a cancel is QueryInterrupted."""
        conn = self.db.conn
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        stopped: list[str] = []

        def progress() -> int:
            if cancelled is not None and cancelled():
                stopped.append("interrupted")
                return 1
            if deadline is not None and time.monotonic() > deadline:
                stopped.append("timeout")
                return 1
            return 0

        if cancelled is not None and cancelled():
            raise QueryInterrupted("interrupted: the query was stopped before it started")
        _limit_heap(conn)
        length = conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, QUERY_MAX_VALUE_BYTES)
        conn.set_progress_handler(progress, _PROGRESS_STEPS)
        cursor = None
        try:
            cursor = conn.execute(sql, params or [])
            rows = _bounded_rows(cursor)
        except (sqlite3.Error, sqlite3.Warning, MemoryError) as exc:
            raise self._refusal(exc, stopped[-1] if stopped else None, timeout_s) from exc
        finally:
            if cursor is not None:
                cursor.close()
            conn.set_progress_handler(None, 0)
            conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, length)
        if cancelled is not None and cancelled():  # Ctrl-C while the last rows were read
            raise QueryInterrupted("interrupted: the query was stopped")
        return rows

    def _refusal(
        self, exc: BaseException, stopped: str | None, timeout_s: float | None
    ) -> StoreError:
        if stopped == "interrupted":
            return QueryInterrupted("interrupted: the query was stopped")
        if stopped == "timeout":
            return QueryRefused(
                f"the query ran past its time limit of {_duration(timeout_s or 0)} and was"
                " stopped; give it longer with `aggregator query --timeout 2m ...`, or make"
                " it do less (a LIMIT, a WHERE on an indexed column)"
            )
        if isinstance(exc, sqlite3.Warning | sqlite3.ProgrammingError) and "one statement" in str(
            exc
        ):
            return QueryRefused(
                "one statement at a time: a query runs a single SQL statement; run the others"
                " separately, or combine them with UNION ALL or subqueries"
            )
        if isinstance(exc, MemoryError):
            heap = _size(_heap_limit(self.db.conn))
            return QueryRefused(
                f"the query needed more memory than SQLite may use here ({heap});"
                " make it do less: a LIMIT, fewer or smaller columns, no ORDER BY over everything"
            )
        code = getattr(exc, "sqlite_errorcode", 0)
        message = str(exc)
        if code == sqlite3.SQLITE_TOOBIG:
            return QueryRefused(
                f"the query made or read a value over {_size(QUERY_MAX_VALUE_BYTES)}, the most"
                f" one value may be ({message}); make it smaller (substr(), length())"
            )
        if message.startswith("not authorized to use function:"):
            name = message.rsplit(":", 1)[1].strip().lower()
            why = DENIED_FUNCTIONS.get(name, "it reaches past the data")
            return QueryRefused(f"{name}() is refused: {why}; queries only read the store")
        if (refused := write_refusal(exc)) is not None:
            return QueryRefused(refused)
        if code == sqlite3.SQLITE_AUTH:
            return QueryRefused(
                f"{message}: queries only read this database; ATTACH and VACUUM INTO, which"
                " open or create other files, are refused"
            )
        if isinstance(exc, sqlite3.Error) and code & 0xFF in (
            sqlite3.SQLITE_CORRUPT,
            sqlite3.SQLITE_NOTADB,
        ):
            return store_error("cannot read", file_of(self.db), exc)
        return QueryRefused(message)


def _bounded_rows(cursor: sqlite3.Cursor) -> list[Row]:
    names = [d[0] for d in cursor.description or ()]
    rows = Rows(names)
    size = 0
    while batch := cursor.fetchmany(1000):
        for row in batch:
            size += sum(len(v) if isinstance(v, str | bytes) else 8 for v in row)
            if size > QUERY_MAX_RESULT_BYTES:
                raise QueryRefused(
                    f"the result is over {_size(QUERY_MAX_RESULT_BYTES)} (after {len(rows):,}"
                    " rows); ask for fewer rows (a LIMIT, a WHERE) or fewer columns"
                )
            rows.append(dict(zip(names, row, strict=True)))
    return rows


def _limit_heap(conn: sqlite3.Connection) -> None:
    conn.execute(f"PRAGMA hard_heap_limit = {int(QUERY_HEAP_BYTES)}")  # only ever lowers it
    soft = int(conn.execute("PRAGMA soft_heap_limit").fetchone()[0])
    if soft == 0 or soft > QUERY_SOFT_HEAP_BYTES:
        conn.execute(f"PRAGMA soft_heap_limit = {int(QUERY_SOFT_HEAP_BYTES)}")


def _heap_limit(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA hard_heap_limit").fetchone()[0])


def _size(n: int) -> str:
    return f"{n / 1_000_000:g} MB"


def _duration(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"
