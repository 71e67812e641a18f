"""Housekeeping for a store that runs for months: retention, optimisation, WAL checkpoints.

Retention deletes whole items, a batch per transaction so the writer is never held for long:
the items' sightings and any other rows pointing at them go in the same transaction, their
stories are re-led or dropped when left empty, and the full-text index follows through its
triggers.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlite_utils import Database

from aggregator.store.item_rows import chunked_lookup
from aggregator.store.story_rows import refresh_story, week_of


def _referrers(db: Database, table: str) -> list[tuple[str, str]]:
    """(table, column) pairs whose foreign key points at `table`: asked of SQLite, so tables
    added by later migrations (stories' members, fingerprints) are cleaned up too."""
    found = []
    for (name,) in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND sql NOT LIKE '%VIRTUAL%'"
    ).fetchall():
        for row in db.execute(f"PRAGMA foreign_key_list([{name}])").fetchall():
            if row[2] == table:
                found.append((str(name), str(row[3])))
    return found


def _delete(db: Database, table: str, ids: Sequence[int]) -> None:
    """Delete rows of `table` by id, after the rows in other tables that point at them."""
    marks = ", ".join("?" for _ in ids)
    for child, column in _referrers(db, table):
        db.execute(f"DELETE FROM [{child}] WHERE [{column}] IN ({marks})", list(ids))
    db.execute(f"DELETE FROM [{table}] WHERE id IN ({marks})", list(ids))


def expire_items(db: Database, *, before: str, limit: int) -> int:
    """One batch of retention: items first seen before `before`, oldest first."""
    ids = [
        int(i)
        for (i,) in db.execute(
            "SELECT id FROM items WHERE first_seen_at < ? ORDER BY first_seen_at, id LIMIT ?",
            [before, limit],
        ).fetchall()
    ]
    if not ids:
        return 0
    stories = [
        int(s)
        for s, _ in chunked_lookup(
            db, "SELECT DISTINCT story_id, 1 FROM items WHERE id IN ({})", [], ids
        )
        if s is not None
    ]
    _delete(db, "items", ids)
    for story_id in stories:  # re-lead and re-count, or drop the ones left empty
        refresh_story(db, story_id)
    _expire_bands(db)
    return len(ids)


def _expire_bands(db: Database) -> None:
    """Drop the LSH index's weeks older than the oldest item left. The index has no foreign
    key (a per-item delete would scan it); its week-first key makes this a range delete."""
    oldest = db.execute("SELECT min(first_seen_at) FROM items").fetchone()[0]
    if oldest is None:
        db.execute("DELETE FROM lsh_bands")
    else:
        db.execute("DELETE FROM lsh_bands WHERE week < ?", [week_of(str(oldest))])


def expire_fetches(db: Database, *, before: str, limit: int) -> int:
    """The fetch log ages out with the items it describes."""
    cursor = db.execute(
        "DELETE FROM fetches WHERE id IN"
        " (SELECT id FROM fetches WHERE started_at < ? ORDER BY id LIMIT ?)",
        [before, limit],
    )
    return int(cursor.rowcount)


def optimize(db: Database) -> None:
    """Refresh the query planner's statistics and merge the full-text index's segments."""
    db.execute("PRAGMA optimize")
    with db.atomic():
        db.execute("INSERT INTO items_fts(items_fts) VALUES ('optimize')")


def checkpoint(db: Database) -> tuple[int, int, int]:
    """Copy the WAL into the database and truncate it: (busy, wal pages, pages copied)."""
    busy, log, copied = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    return int(busy), int(log), int(copied)
