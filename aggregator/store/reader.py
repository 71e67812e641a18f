"""The store as readers see it: one read-only connection and a typed method per question
the CLI, the daemon's gauges and the web view ask. Rows come back as plain dicts keyed by
column name (the CLI's JSON output is those keys)."""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlite_utils import Database

from aggregator.errors import StoreError
from aggregator.models import FeedHistory
from aggregator.store import queries, schedule_rows, story_queries
from aggregator.store.connection import connect, existing
from aggregator.store.queries import Row


def open_reader(path: str) -> Reader:
    """A read-only connection for queries: never blocks the writer, sees whole commits only,
    and never touches another file."""
    try:
        return Reader(Database(connect(existing(path), read_only=True)))
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path}: {exc}") from exc


class Reader:
    def __init__(self, db: Database) -> None:
        self.db = db

    def close(self) -> None:
        self.db.close()

    # -- items and feeds --------------------------------------------------------------------

    def items(self, *, since: str | None, feed: str | None, limit: int) -> list[Row]:
        return queries.items(self.db, since=since, feed=feed, limit=limit)

    def search(self, query: str, *, since: str | None, feed: str | None, limit: int) -> list[Row]:
        return queries.search(self.db, query, since=since, feed=feed, limit=limit)

    def feeds(self) -> list[Row]:
        return queries.feeds(self.db)

    def feed_histories(self, *, since: str) -> dict[str, FeedHistory]:
        return schedule_rows.feed_histories(self.db, since=since)

    # -- stories ----------------------------------------------------------------------------

    def stories(
        self, *, since: str | None, min_sources: int, feed: str | None, limit: int
    ) -> list[Row]:
        return story_queries.stories(
            self.db, since=since, min_sources=min_sources, feed=feed, limit=limit
        )

    def story(self, story_id: int) -> Row | None:
        return story_queries.story(self.db, story_id)

    def story_items(self, story_id: int) -> list[Row]:
        return story_queries.story_items(self.db, story_id)

    def export_entries(self, *, since: str | None, feed: str | None, limit: int) -> list[Row]:
        return story_queries.export_entries(self.db, since=since, feed=feed, limit=limit)

    # -- any SQL ------------------------------------------------------------------------------

    def query(self, sql: str, params: list[Any] | None = None) -> list[Row]:
        """`aggregator query`: any SQL a reader connection allows; a refusal says why."""
        try:
            return queries.query(self.db, sql, params)
        except StoreError as exc:
            cause = exc.__cause__
            if isinstance(cause, sqlite3.Error) and cause.sqlite_errorcode == sqlite3.SQLITE_AUTH:
                raise StoreError(
                    f"{exc}: queries only read this database; ATTACH and VACUUM INTO, which"
                    " open or create other files, are refused"
                ) from exc
            raise
