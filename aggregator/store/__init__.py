"""The only place that talks SQL. One writer connection; readers open their own.

`Store` is the writer: the pipeline hands it a feed's whole refresh and it commits items,
sightings, the fetch record and the feed's new validators in one transaction, so a crash can
never leave validators that point past items that were not stored.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from aggregator.dedup import DedupPolicy
from aggregator.errors import StoreError
from aggregator.models import (
    Article,
    FeedConfig,
    FeedHistory,
    FeedState,
    FeedUpdate,
    FetchRecord,
    Fingerprint,
    ItemDraft,
    SaveCounts,
)
from aggregator.store import maintenance, reads, schedule, stories, story_edits, writes
from aggregator.store.schema import migrations
from aggregator.times import iso_utc, utc_now

__all__ = ["Store", "open_reader", "read_query"]

# How long a write waits for another process's write lock before it gives up (ms). Writers
# hold it for one feed's refresh; only `stories rebuild` holds it for long.
BUSY_TIMEOUT_MS = 10_000


def _connect(path: str, *, read_only: bool = False) -> sqlite3.Connection:
    if read_only:
        uri = f"{Path(path).resolve().as_uri()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        conn.execute("PRAGMA query_only = ON")
        # mode=ro covers this file only: ATTACH (and VACUUM INTO, which attaches) would
        # create or write any other file the user names.
        conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        conn.set_authorizer(_refuse_attach)
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL is durable across application crashes in WAL mode; only power loss can
        # drop the last transactions, never corrupt the file.
        conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_MS)}")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _refuse_attach(action: int, *_: str | None) -> int:
    return sqlite3.SQLITE_DENY if action == sqlite3.SQLITE_ATTACH else sqlite3.SQLITE_OK


@contextmanager
def _writing(db: Database) -> Iterator[None]:
    """A write transaction that takes the write lock first (BEGIN IMMEDIATE).

    The daemon and `aggregator fetch` may write at once: a deferred transaction that reads
    and then writes would fail at once with "database is locked" when the other committed
    in between, where BEGIN IMMEDIATE waits its turn (busy_timeout). Waiting longer than
    that, or a full disk, is a StoreError that says so."""
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
            db.execute("COMMIT")
        except BaseException:
            db.rollback()
            raise
    except sqlite3.OperationalError as exc:  # not IntegrityError and the like: those are bugs
        raise _store_error("cannot write to", _file_of(db), exc) from exc


def _file_of(db: Database) -> str:
    """The file of the connection's main database, for messages."""
    try:
        return next(str(r[2]) for r in db.execute("PRAGMA database_list") if r[1] == "main")
    except (sqlite3.Error, StopIteration):
        return "the database"


def _store_error(doing: str, path: str, exc: sqlite3.Error) -> StoreError:
    if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StoreError(
            f"{doing} {path}: another process has held its write lock for over"
            f" {BUSY_TIMEOUT_MS / 1000:g} s; try again (is a long `aggregator stories rebuild`"
            " or another tool writing to it?)"
        )
    return StoreError(f"{doing} {path}: {exc}")


def _existing(path: str) -> str:
    if not Path(path).exists():
        raise StoreError(f"no database at {path}; run `aggregator fetch` first")
    return path


def open_reader(path: str) -> Database:
    """A read-only connection for queries: never blocks the writer, sees whole commits only,
    and never touches another file."""
    try:
        return Database(_connect(_existing(path), read_only=True))
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path}: {exc}") from exc


def read_query(db: Database, sql: str) -> list[dict[str, Any]]:
    """`aggregator query`: any SQL a reader connection allows; a refusal says why."""
    try:
        return reads.query(db, sql)
    except StoreError as exc:
        cause = exc.__cause__
        if isinstance(cause, sqlite3.Error) and cause.sqlite_errorcode == sqlite3.SQLITE_AUTH:
            raise StoreError(
                f"{exc}: queries only read this database; ATTACH and VACUUM INTO, which"
                " open or create other files, are refused"
            ) from exc
        raise


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
            _existing(path)
        try:
            conn = _connect(path)
        except OSError as exc:  # its folder cannot be made: a file is in the way, no rights
            raise StoreError(f"cannot create the database at {path}: {exc}") from exc
        except sqlite3.Error as exc:
            raise _store_error("cannot open the database", path, exc) from exc
        try:
            db = Database(conn)
            migrations.apply(db)
        except sqlite3.Error as exc:
            conn.close()
            raise _store_error("cannot open the database", path, exc) from exc
        return cls(db, path)

    def close(self) -> None:
        self.db.close()

    # -- feeds ------------------------------------------------------------------------------

    def sync_feeds(self, feeds: Sequence[FeedConfig], *, now: str) -> None:
        """Make the feeds table match feeds.yaml: add new feeds, follow URL edits,
        and disable feeds that were removed (their history stays)."""
        with _writing(self.db):
            writes.sync_feeds(self.db, feeds, now=now)

    def feed_state(self, name: str) -> FeedState:
        row = self.db.execute(
            "SELECT name, url, state, etag, last_modified, error_count, permanent_url,"
            " last_success_at, next_fetch_at, hints, added_at FROM feeds WHERE name = ?",
            [name],
        ).fetchone()
        if row is None:
            raise StoreError(f"feed {name!r} is not in the database; is it in feeds.yaml?")
        name, url, state, etag, last_modified, errors, moved_to, success, due, hints, added = row
        return FeedState(
            name,
            url,
            state,
            etag,
            last_modified,
            errors,
            moved_to,
            success,
            due,
            hints=schedule.hints_from_json(hints),
            added_at=added,
        )

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
        self,
        feed: str,
        drafts: Sequence[ItemDraft],
        fetch: FetchRecord,
        update: FeedUpdate,
        *,
        dedup: DedupPolicy = stories.DEFAULT_POLICY,
    ) -> SaveCounts:
        """Commit a feed's items, sightings, fetch record and new state in one transaction.
        Each new item joins its story (near-duplicates by `dedup`) in the same transaction."""
        with _writing(self.db):
            counts = writes.save_drafts(self.db, feed, drafts, now=fetch.started_at, dedup=dedup)
            writes.insert_fetch(self.db, fetch, counts)
            writes.update_feed(self.db, feed, update)
        return counts

    # -- article pages that still need extracting ----------------------------------------------

    def pending_pages(
        self, feed: str, *, max_attempts: int, limit: int
    ) -> list[tuple[int, str, str]]:
        """(item id, canonical URL, link) of items seen in this feed whose page was never
        extracted or failed before."""
        rows = self.db.execute(
            "SELECT DISTINCT i.id, i.url, i.link FROM items i JOIN sightings s ON s.item_id = i.id"
            " WHERE s.feed = ? AND i.extract_status IN ('pending', 'failed')"
            " AND i.extract_attempts < ? AND i.link IS NOT NULL AND i.url IS NOT NULL"
            " ORDER BY i.id LIMIT ?",
            [feed, max_attempts, limit],
        ).fetchall()
        return [(int(i), str(url), str(link)) for i, url, link in rows]

    def save_extraction(
        self,
        item_id: int,
        article: Article | None,
        error: str | None,
        *,
        fingerprint: Fingerprint | None = None,
        dedup: DedupPolicy = stories.DEFAULT_POLICY,
        now: str | None = None,
    ) -> None:
        """Store a page extracted on a later run; with the text's fingerprint, the item is
        matched again (by its text now) unless it already shares its story."""
        with _writing(self.db):
            writes.save_extraction(self.db, item_id, article, error)
            if article is not None and fingerprint is not None:
                at = now or iso_utc(utc_now())
                stories.assign_story(self.db, item_id, fingerprint, dedup, now=at)

    # -- stories (SQL in store/stories.py and store/story_edits.py) ----------------------------

    def split_item(self, item_id: int, *, now: str) -> story_edits.Split:
        """`aggregator stories split`: the item leaves its story, and stays apart."""
        with _writing(self.db):
            return story_edits.split_item(self.db, item_id, now=now)

    def rebuild_stories(self, policy: DedupPolicy, *, now: str) -> story_edits.Rebuilt:
        """`aggregator stories rebuild`: re-cluster everything under `policy`, in one
        transaction (feeds' refreshes wait for it)."""
        with _writing(self.db):
            return story_edits.rebuild(self.db, policy, now=now)

    # -- the schedule and leases (SQL in store/schedule.py) -------------------------------------

    def feed_history(self, name: str, *, since: str) -> FeedHistory:
        """What `schedule.next_due` needs to know; `since` opens the rate window."""
        return schedule.feed_history(self.db, name, since=since)

    def due_feeds(self, *, now: str, limit: int) -> list[str]:
        return schedule.due_feeds(self.db, now=now, limit=limit)

    def schedule_overview(self, *, now: str) -> tuple[dict[str, int], str | None]:
        """Feeds by state, and when the most overdue waiting feed fell due (for gauges)."""
        return schedule.states(self.db), schedule.oldest_due(self.db, now=now)

    def feed_histories(self, *, since: str) -> dict[str, FeedHistory]:
        return schedule.feed_histories(self.db, since=since)

    def take_lease(
        self, feed: str, *, holder: str, now: str, until: str, due_by: str | None = None
    ) -> bool:
        with _writing(self.db):
            return schedule.take_lease(
                self.db, feed, holder=holder, now=now, until=until, due_by=due_by
            )

    def release_lease(self, feed: str, *, holder: str) -> None:
        with _writing(self.db):
            schedule.release_lease(self.db, feed, holder=holder)

    def renew_leases(self, *, holder: str, until: str) -> None:
        with _writing(self.db):
            schedule.renew_leases(self.db, holder=holder, until=until)

    def lease_holders(self) -> list[str]:
        return schedule.lease_holders(self.db)

    def release_leases(self, holders: Sequence[str]) -> None:
        """Every lease of these holders (ourselves on the way out, or dead processes)."""
        with _writing(self.db):
            schedule.break_leases(self.db, holders)

    def due_now(self, names: Sequence[str], *, now: str) -> None:
        with _writing(self.db):
            schedule.due_now(self.db, names, now=now)

    def postpone(self, feed: str, *, until: str) -> None:
        with _writing(self.db):
            schedule.postpone(self.db, feed, until=until)

    # -- maintenance (SQL in store/maintenance.py) -----------------------------------------------

    def expire_items(self, *, before: str, limit: int) -> int:
        """Delete up to `limit` items first seen before `before`; returns how many went."""
        with _writing(self.db):
            return maintenance.expire_items(self.db, before=before, limit=limit)

    def expire_fetches(self, *, before: str, limit: int) -> int:
        with _writing(self.db):
            return maintenance.expire_fetches(self.db, before=before, limit=limit)

    def optimize(self) -> None:
        """PRAGMA optimize and the full-text index's own merge."""
        maintenance.optimize(self.db)

    def checkpoint(self) -> tuple[int, int, int]:
        return maintenance.checkpoint(self.db)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """For maintenance and tests: run one statement on the writer connection."""
        return list(self.db.execute(sql, list(params)).fetchall())
