"""The only place that talks SQL. One writer connection; readers open their own.

`Store` is the writer: the pipeline hands it a feed's whole refresh and it commits items,
sightings, the fetch record and the feed's new validators in one transaction, so a crash can
never leave validators that point past items that were not stored.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from aggregator.errors import StoreError
from aggregator.models import (
    Article,
    FeedConfig,
    FeedState,
    FeedUpdate,
    FetchRecord,
    ItemDraft,
    SaveCounts,
)
from aggregator.store import writes
from aggregator.store.schema import migrations

__all__ = ["Store", "open_reader"]


def _connect(path: str, *, read_only: bool = False) -> sqlite3.Connection:
    if read_only:
        uri = f"{Path(path).resolve().as_uri()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        conn.execute("PRAGMA query_only = ON")
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL is durable across application crashes in WAL mode; only power loss can
        # drop the last transactions, never corrupt the file.
        conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def open_reader(path: str) -> Database:
    """A read-only connection for queries: never blocks the writer, sees whole commits only."""
    if not Path(path).exists():
        raise StoreError(f"no database at {path}; run `aggregator fetch` first")
    try:
        return Database(_connect(path, read_only=True))
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path}: {exc}") from exc


class Store:
    """The writer. Create one per process with `Store.open(path)`."""

    def __init__(self, db: Database, path: str) -> None:
        self.db = db
        self.path = path

    @classmethod
    def open(cls, path: str) -> Store:
        try:
            db = Database(_connect(path))
            migrations.apply(db)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the database {path}: {exc}") from exc
        return cls(db, path)

    def close(self) -> None:
        self.db.close()

    # -- feeds ------------------------------------------------------------------------------

    def sync_feeds(self, feeds: Sequence[FeedConfig], *, now: str) -> None:
        """Make the feeds table match feeds.yaml: add new feeds, follow URL edits,
        and disable feeds that were removed (their history stays)."""
        with self.db.atomic():
            writes.sync_feeds(self.db, feeds, now=now)

    def feed_state(self, name: str) -> FeedState:
        row = self.db.execute(
            "SELECT name, url, state, etag, last_modified, error_count, permanent_url,"
            " last_success_at, next_fetch_at FROM feeds WHERE name = ?",
            [name],
        ).fetchone()
        if row is None:
            raise StoreError(f"feed {name!r} is not in the database; is it in feeds.yaml?")
        return FeedState(*row)

    # -- a feed's refresh ---------------------------------------------------------------------

    def known_entries(
        self, feed: str, drafts: Iterable[ItemDraft]
    ) -> tuple[dict[str, str], set[str]]:
        """Which of these entries the store already has: {key: entry_hash} of this feed's
        sightings, and the set of canonical URLs already stored as items."""
        drafts = list(drafts)
        keys = writes.chunked_lookup(
            self.db,
            "SELECT guid, entry_hash FROM sightings WHERE feed = ? AND guid IN ({})",
            [feed],
            [d.key for d in drafts],
        )
        urls = writes.chunked_lookup(
            self.db,
            "SELECT url, 1 FROM items WHERE url IN ({})",
            [],
            [d.url for d in drafts if d.url],
        )
        return {k: str(v) for k, v in keys}, {str(u) for u, _ in urls}

    def save_refresh(
        self, feed: str, drafts: Sequence[ItemDraft], fetch: FetchRecord, update: FeedUpdate
    ) -> SaveCounts:
        """Commit a feed's items, sightings, fetch record and new state in one transaction."""
        with self.db.atomic():
            counts = writes.save_drafts(self.db, feed, drafts, now=fetch.started_at)
            writes.insert_fetch(self.db, fetch, counts)
            writes.update_feed(self.db, feed, update)
        return counts

    # -- article pages that still need extracting ----------------------------------------------

    def pending_pages(self, feed: str, *, max_attempts: int, limit: int) -> list[tuple[int, str]]:
        """Items seen in this feed whose page was never extracted or failed before."""
        rows = self.db.execute(
            "SELECT DISTINCT i.id, i.link FROM items i JOIN sightings s ON s.item_id = i.id"
            " WHERE s.feed = ? AND i.extract_status IN ('pending', 'failed')"
            " AND i.extract_attempts < ? AND i.link IS NOT NULL ORDER BY i.id LIMIT ?",
            [feed, max_attempts, limit],
        ).fetchall()
        return [(int(i), str(link)) for i, link in rows]

    def save_extraction(self, item_id: int, article: Article | None, error: str | None) -> None:
        with self.db.atomic():
            writes.save_extraction(self.db, item_id, article, error)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """For maintenance and tests: run one statement on the writer connection."""
        return list(self.db.execute(sql, list(params)).fetchall())
