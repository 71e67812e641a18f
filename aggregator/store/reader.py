"""The store as readers see it: one read-only connection and a typed method per question
the CLI, the daemon's gauges, exports and the web view ask. Listing rows come back as plain
dicts keyed by column name (the CLI's JSON output is those keys)."""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlite_utils import Database

from aggregator.errors import StoreError, UnknownName
from aggregator.models import FeedHistory, StoryEntry, StoryFilter
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

    def items(
        self, *, since: str | None, feed: str | None, limit: int, tag: str | None = None
    ) -> list[Row]:
        return queries.items(self.db, since=since, feed=feed, limit=limit, tag=tag)

    def search(
        self,
        query: str,
        *,
        since: str | None,
        feed: str | None,
        limit: int,
        tag: str | None = None,
    ) -> list[Row]:
        return queries.search(self.db, query, since=since, feed=feed, limit=limit, tag=tag)

    def feeds(self) -> list[Row]:
        return queries.feeds(self.db)

    def feed_histories(self, *, since: str) -> dict[str, FeedHistory]:
        return schedule_rows.feed_histories(self.db, since=since)

    # -- stories ----------------------------------------------------------------------------

    def stories(
        self,
        *,
        since: str | None,
        min_sources: int,
        feed: str | None,
        limit: int,
        tag: str | None = None,
    ) -> list[Row]:
        return story_queries.stories(
            self.db, since=since, min_sources=min_sources, feed=feed, limit=limit, tag=tag
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

    def created_on(self) -> str:
        """The day this store was made (YYYY-MM-DD): part of every story's stable id."""
        row = self.db.execute("SELECT min(applied_at) FROM _sqlite_migrations").fetchone()
        return str(row[0])[:10] if row and row[0] else "2026-01-01"

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
