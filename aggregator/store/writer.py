"""The writer: one connection per process, every change in a `Transaction`.

The engine commits a feed's whole refresh (items, sightings, stories, the fetch record and
the feed's new validators) in one transaction, so a crash can never leave validators that
point past items that were not stored. The schedule's and maintenance's small writes each
open their own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlite_utils import Database

from aggregator.errors import StoreError
from aggregator.models import (
    ExtractStatus,
    FeedConfig,
    FeedHistory,
    FeedState,
    ItemDraft,
    KnownEntries,
)
from aggregator.store import item_rows, maintenance, schedule_rows
from aggregator.store.connection import (
    cannot_create,
    connect,
    existing,
    store_error,
    writing,
)
from aggregator.store.migrations import migrations
from aggregator.store.transaction import Transaction


class Store:
    """The writer. Create one per process with `Store.open(path)`."""

    def __init__(self, db: Database, path: str) -> None:
        self.db = db
        self.path = path

    @classmethod
    def open(cls, path: str, *, create: bool = True) -> Store:
        """The writer on `path`, migrated; the file (and its folder) is made unless `create`
        is False, when a missing database is a StoreError saying what to do."""
        if not create:
            existing(path)
        try:
            conn = connect(path)
        except OSError as exc:  # its folder cannot be made: a file is in the way, no rights
            raise cannot_create(path, exc) from exc
        except sqlite3.Error as exc:
            raise store_error("cannot open the database", path, exc) from exc
        try:
            db = Database(conn)
            migrations.apply(db)
        except sqlite3.Error as exc:
            conn.close()
            raise store_error("cannot open the database", path, exc) from exc
        return cls(db, path)

    def close(self) -> None:
        self.db.close()

    # -- feeds ------------------------------------------------------------------------------

    def sync_feeds(self, feeds: Sequence[FeedConfig], *, now: str) -> None:
        """Make the feeds table match feeds.yaml: add new feeds, follow URL edits,
        and disable feeds that were removed (their history stays)."""
        with writing(self.db):
            item_rows.sync_feeds(self.db, feeds, now=now)

    def feed_state(self, name: str) -> FeedState:
        cursor = self.db.execute(
            "SELECT name, url, state, etag, last_modified, error_count, permanent_url, hints"
            " FROM feeds WHERE name = ?",
            [name],
        )
        row = cursor.fetchone()
        if row is None:
            raise StoreError(f"feed {name!r} is not in the database; is it in feeds.yaml?")
        names = [d[0] for d in cursor.description]
        return schedule_rows.feed_state(dict(zip(names, row, strict=True)))

    # -- writes -----------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One write transaction: everything done through it commits together when the block
        ends, or not at all when it raises."""
        with writing(self.db):
            yield Transaction(self.db)

    def known_entries(self, feed: str, drafts: Sequence[ItemDraft]) -> KnownEntries:
        """Which of these entries the store already has (the inputs of an entry's fate)."""
        return item_rows.known_entries(self.db, feed, drafts)

    # -- article pages that still need extracting ----------------------------------------------

    def pending_pages(
        self, feed: str, *, max_attempts: int, limit: int
    ) -> list[tuple[int, str, str]]:
        """(item id, canonical URL, link) of items seen in this feed whose page was never
        extracted or failed before."""
        rows = self.db.execute(
            "SELECT DISTINCT i.id, i.url, i.link FROM items i JOIN sightings s ON s.item_id = i.id"
            " WHERE s.feed = ? AND i.extract_status IN (?, ?)"
            " AND i.extract_attempts < ? AND i.link IS NOT NULL AND i.url IS NOT NULL"
            " ORDER BY i.id LIMIT ?",
            [feed, ExtractStatus.PENDING, ExtractStatus.FAILED, max_attempts, limit],
        ).fetchall()
        return [(int(i), str(url), str(link)) for i, url, link in rows]

    def page_state(self, url: str) -> tuple[int, str, int] | None:
        """(item id, extract_status, extract_attempts) of the item with this canonical URL: the
        distributed mode's writer checks an extraction message against it (a message delivered
        twice finds the attempts it counted on already moved on)."""
        row = self.db.execute(
            "SELECT id, extract_status, extract_attempts FROM items WHERE url = ?", [url]
        ).fetchone()
        return None if row is None else (int(row[0]), str(row[1]), int(row[2] or 0))

    def has_fetch(self, feed: str, *, started_at: str, url: str) -> bool:
        """Whether this fetch attempt is already recorded (a poll's answer delivered twice)."""
        row = self.db.execute(
            "SELECT 1 FROM fetches WHERE feed = ? AND started_at = ? AND url = ? LIMIT 1",
            [feed, started_at, url],
        ).fetchone()
        return row is not None

    # -- the schedule and leases (SQL in store/schedule_rows.py) ----------------------------

    def feed_history(self, name: str, *, since: str) -> FeedHistory:
        """What `schedule.due.next_due` needs to know; `since` opens the rate window."""
        return schedule_rows.feed_history(self.db, name, since=since)

    def due_feeds(self, *, now: str, limit: int) -> list[str]:
        return schedule_rows.due_feeds(self.db, now=now, limit=limit)

    def schedule_overview(self, *, now: str) -> tuple[dict[str, int], str | None]:
        """Feeds by state, and when the most overdue waiting feed fell due (for gauges)."""
        return schedule_rows.states(self.db), schedule_rows.oldest_due(self.db, now=now)

    def feed_histories(self, *, since: str) -> dict[str, FeedHistory]:
        return schedule_rows.feed_histories(self.db, since=since)

    def take_lease(
        self, feed: str, *, holder: str, now: str, until: str, due_by: str | None = None
    ) -> bool:
        with writing(self.db):
            return schedule_rows.take_lease(
                self.db, feed, holder=holder, now=now, until=until, due_by=due_by
            )

    def release_lease(self, feed: str, *, holder: str) -> None:
        with writing(self.db):
            schedule_rows.release_lease(self.db, feed, holder=holder)

    def renew_leases(self, *, holder: str, until: str) -> None:
        with writing(self.db):
            schedule_rows.renew_leases(self.db, holder=holder, until=until)

    def lease_holders(self) -> list[str]:
        return schedule_rows.lease_holders(self.db)

    def lease_holder(self, feed: str, *, now: str) -> str | None:
        return schedule_rows.lease_holder(self.db, feed, now=now)

    def release_leases(self, holders: Sequence[str]) -> None:
        """Every lease of these holders (ourselves on the way out, or dead processes)."""
        with writing(self.db):
            schedule_rows.break_leases(self.db, holders)

    def due_now(self, names: Sequence[str], *, now: str) -> None:
        with writing(self.db):
            schedule_rows.due_now(self.db, names, now=now)

    def postpone(self, feed: str, *, until: str) -> None:
        with writing(self.db):
            schedule_rows.postpone(self.db, feed, until=until)

    # -- maintenance (SQL in store/maintenance.py) -----------------------------------------------

    def expire_items(self, *, before: str, limit: int) -> int:
        """Delete up to `limit` items first seen before `before`; returns how many went."""
        with writing(self.db):
            return maintenance.expire_items(self.db, before=before, limit=limit)

    def expire_fetches(self, *, before: str, limit: int) -> int:
        with writing(self.db):
            return maintenance.expire_fetches(self.db, before=before, limit=limit)

    def optimize(self) -> None:
        """PRAGMA optimize and the full-text index's own merge."""
        maintenance.optimize(self.db)

    def checkpoint(self) -> tuple[int, int, int]:
        return maintenance.checkpoint(self.db)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """For maintenance and tests: run one statement on the writer connection."""
        return list(self.db.execute(sql, list(params)).fetchall())
