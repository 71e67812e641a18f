"""Stories: which stored items are the same story, and why. The SQL side of dedup.py.

Every function runs inside a transaction its caller opened (the feed's refresh, an extraction,
a split, a rebuild). Lookups are index probes: the canonical URL and headline indexes, and one
probe per LSH band, so their cost does not grow with the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from sqlite_utils import Database

from aggregator import dedup
from aggregator.dedup import Copy, DedupPolicy, Match
from aggregator.errors import StoreError
from aggregator.models import Fingerprint
from aggregator.times import iso_utc, parse_iso

MAX_CANDIDATES = 200  # per signal; only a template repeated all day comes near it
DEFAULT_POLICY = DedupPolicy()

# The feeds column: those of the item's whole story (its own while it has none), so a feed's
# boilerplate cannot reach its own items through another feed's copy (dedup.comparable).
_COPY_COLUMNS = (
    "i.id, i.first_seen_at, i.url, f.canonical_url, f.title_key, f.source, f.signature,"
    " f.shingles, f.version, i.story_id,"
    " CASE WHEN i.story_id IS NULL"
    " THEN (SELECT group_concat(DISTINCT s.feed) FROM sightings s WHERE s.item_id = i.id)"
    " ELSE (SELECT group_concat(DISTINCT s.feed) FROM items m"
    " JOIN sightings s ON s.item_id = m.id WHERE m.story_id = i.story_id) END"
)


@dataclass(frozen=True, slots=True)
class Assignment:
    """Where an item went: its story, and the match that put it there (None: a story of its
    own, or it stayed where it was)."""

    story_id: int
    match: Match | None = None
    matched_item_id: int | None = None


def stored_fingerprint(row: Sequence[Any]) -> Fingerprint | None:
    """A fingerprint from item_fingerprints' (source, signature, shingles, version)."""
    source, signature, shingles, version = row
    if source is None or signature is None or version != dedup.FINGERPRINT_VERSION:
        return None  # made with other parameters: not comparable until `stories rebuild`
    return Fingerprint(source, bytes(signature), (), int(shingles), int(version))


def _copy(row: Sequence[Any]) -> Copy:
    feeds = frozenset(row[10].split(",")) if row[10] else frozenset()
    return Copy(
        item_id=int(row[0]),
        first_seen_at=str(row[1]),
        url=row[2],
        declared=row[3],
        title_key=row[4],
        fingerprint=stored_fingerprint(row[5:9]),
        story_id=row[9],
        feeds=feeds,
    )


def load_copy(db: Database, item_id: int) -> Copy:
    """The item as stored, with its stored fingerprint (if any)."""
    row = db.execute(
        f"SELECT {_COPY_COLUMNS} FROM items i LEFT JOIN item_fingerprints f ON f.item_id = i.id"
        " WHERE i.id = ?",
        [item_id],
    ).fetchone()
    if row is None:
        raise StoreError(f"there is no item {item_id}")
    return _copy(row)


# -- fingerprints and the LSH index -------------------------------------------------------------


def week_of(moment: str) -> int:
    """The LSH index's time bucket (see the 0004 migration)."""
    return parse_iso(moment).date().toordinal() // 7


def save_fingerprint(db: Database, copy: Copy) -> None:
    """Store the copy's title key, declared canonical URL and fingerprint; re-index its bands."""
    week = week_of(copy.first_seen_at)
    old = db.execute(
        "SELECT signature FROM item_fingerprints WHERE item_id = ?", [copy.item_id]
    ).fetchone()
    if old is not None and old[0] is not None:
        db.conn.executemany(
            "DELETE FROM lsh_bands WHERE week = ? AND band = ? AND key = ? AND item_id = ?",
            [(week, b, k, copy.item_id) for b, k in enumerate(dedup.band_keys(bytes(old[0])))],
        )
    fp = copy.fingerprint
    db.execute(
        "INSERT OR REPLACE INTO item_fingerprints (item_id, title_key, canonical_url, source,"
        " shingles, signature, version, first_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            copy.item_id,
            copy.title_key,
            copy.declared,
            fp.source if fp else None,
            fp.shingles if fp else None,
            fp.signature if fp else None,
            fp.version if fp else None,
            copy.first_seen_at,
        ],
    )
    if fp is not None:
        bands = fp.bands or dedup.band_keys(fp.signature)
        db.conn.executemany(
            "INSERT OR IGNORE INTO lsh_bands (week, band, key, item_id) VALUES (?, ?, ?, ?)",
            [(week, b, k, copy.item_id) for b, k in enumerate(bands)],
        )


# -- candidates -------------------------------------------------------------------------------


def _rows(db: Database, sql: str, params: Sequence[Any]) -> list[Copy]:
    return [_copy(row) for row in db.execute(sql, list(params)).fetchall()]


def _window(copy: Copy, policy: DedupPolicy) -> tuple[str, str]:
    seen = parse_iso(copy.first_seen_at)
    span = timedelta(seconds=policy.window_s)
    return iso_utc(seen - span), iso_utc(seen + span)


def candidates(db: Database, new: Copy, policy: DedupPolicy) -> list[Copy]:
    """Stored copies that may be the same story, by any signal; dedup decides which is."""
    found: dict[int, Copy] = {}
    start, end = _window(new, policy)
    base = (
        f"SELECT {_COPY_COLUMNS} FROM items i LEFT JOIN item_fingerprints f ON f.item_id = i.id"
        " WHERE i.story_id IS NOT NULL AND i.id != ? AND "
    )
    if new.url or new.declared:  # canonical URL: any age
        subquery = (
            "i.id IN (SELECT id FROM items WHERE url = ?"
            " UNION SELECT item_id FROM item_fingerprints WHERE canonical_url IN (?, ?))"
        )
        for copy in _rows(db, base + subquery, [new.item_id, new.declared, new.url, new.declared]):
            found[copy.item_id] = copy
    if new.title_key:
        rows = _rows(
            db,
            base + "i.id IN (SELECT item_id FROM item_fingerprints WHERE title_key = ?"
            " AND first_seen_at BETWEEN ? AND ? ORDER BY first_seen_at DESC LIMIT ?)",
            [new.item_id, new.title_key, start, end, MAX_CANDIDATES],
        )
        found.update((c.item_id, c) for c in rows)
    if new.fingerprint is not None:
        found.update((c.item_id, c) for c in _band_neighbours(db, new, start, end))
    return list(found.values())


def _band_neighbours(db: Database, new: Copy, start: str, end: str) -> list[Copy]:
    """Copies first seen within the window sharing at least one LSH band with the new one,
    most bands first."""
    assert new.fingerprint is not None
    bands = new.fingerprint.bands or dedup.band_keys(new.fingerprint.signature)
    probe = ", ".join("(?, ?)" for _ in bands)
    params: list[Any] = [value for pair in enumerate(bands) for value in pair]
    weeks = list(range(week_of(start), week_of(end) + 1))
    return _rows(
        db,
        f"WITH probe(band, key) AS (VALUES {probe}),"
        " shared AS (SELECT l.item_id, count(*) AS bands FROM probe JOIN lsh_bands l"
        f" ON l.week IN ({', '.join('?' for _ in weeks)})"
        " AND l.band = probe.band AND l.key = probe.key"
        " WHERE l.item_id != ? GROUP BY l.item_id ORDER BY bands DESC LIMIT ?)"
        f" SELECT {_COPY_COLUMNS} FROM shared JOIN items i ON i.id = shared.item_id"
        " JOIN item_fingerprints f ON f.item_id = i.id"
        " WHERE i.story_id IS NOT NULL AND f.first_seen_at BETWEEN ? AND ?",
        [*params, *weeks, new.item_id, MAX_CANDIDATES, start, end],
    )


def split_from(db: Database, item_id: int) -> frozenset[int]:
    """Stories holding an item an editor split this one from."""
    rows = db.execute(
        "SELECT i.story_id FROM story_splits sp JOIN items i ON i.id = sp.other_item_id"
        " WHERE sp.item_id = ? UNION"
        " SELECT i.story_id FROM story_splits sp JOIN items i ON i.id = sp.item_id"
        " WHERE sp.other_item_id = ?",
        [item_id, item_id],
    ).fetchall()
    return frozenset(int(r[0]) for r in rows if r[0] is not None)


def find_match(db: Database, new: Copy, policy: DedupPolicy) -> tuple[Copy, Match] | None:
    """The lookup: the stored copy whose story `new` belongs to, and why (no writes)."""
    found = candidates(db, new, policy)
    if not found:
        return None
    return dedup.best_match(new, found, policy, apart_from=split_from(db, new.item_id))


# -- assigning items to stories -------------------------------------------------------------------


def assign_story(
    db: Database,
    item_id: int,
    fingerprint: Fingerprint | None,
    policy: DedupPolicy,
    *,
    now: str,
    prefer_story_id: int | None = None,
) -> Assignment:
    """Fingerprint a stored item and put it in the story it belongs to: a matching copy's, else
    its own. An item already sharing its story keeps it (only its fingerprint is renewed)."""
    stored = load_copy(db, item_id)
    row = db.execute("SELECT title, page_canonical_url FROM items WHERE id = ?", [item_id])
    title, page_canonical = row.fetchone()
    new = replace(
        stored,
        title_key=dedup.title_key(title),
        declared=dedup.declared_canonical(page_canonical, stored.url),
        fingerprint=fingerprint,
    )
    save_fingerprint(db, new)
    if new.story_id is not None and _size(db, new.story_id) > 1:
        return Assignment(new.story_id)
    found = find_match(db, new, policy)
    if found is None:
        story_id = new.story_id or new_story(db, item_id, prefer_story_id)
        refresh_story(db, story_id)
        return Assignment(story_id)
    matched, match = found
    assert matched.story_id is not None  # candidates() only returns items in a story
    _move(db, item_id, new.story_id, matched.story_id)
    db.execute(
        "INSERT OR REPLACE INTO story_links (item_id, story_id, matched_item_id, signal, score,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?)",
        [item_id, matched.story_id, matched.item_id, match.signal, round(match.score, 4), now],
    )
    return Assignment(matched.story_id, match, matched.item_id)


def _size(db: Database, story_id: int) -> int:
    row = db.execute("SELECT count(*) FROM items WHERE story_id = ?", [story_id]).fetchone()
    return int(row[0])


def new_story(db: Database, item_id: int, prefer_id: int | None = None) -> int:
    """A story for the item alone; `prefer_id` keeps its old number through a rebuild."""
    taken = (
        prefer_id is None
        or db.execute("SELECT 1 FROM stories WHERE id = ?", [prefer_id]).fetchone()
    )
    first_seen = db.execute("SELECT first_seen_at FROM items WHERE id = ?", [item_id]).fetchone()[0]
    cursor = db.execute(
        "INSERT INTO stories (id, lead_item_id, first_seen_at, last_seen_at, item_count)"
        " VALUES (?, ?, ?, ?, 1)",
        [None if taken else prefer_id, item_id, first_seen, first_seen],
    )
    story_id = int(cursor.lastrowid or 0)
    db.execute("UPDATE items SET story_id = ? WHERE id = ?", [story_id, item_id])
    return story_id


def _move(db: Database, item_id: int, old: int | None, new: int) -> None:
    db.execute("UPDATE items SET story_id = ? WHERE id = ?", [new, item_id])
    if old is not None and old != new:
        refresh_story(db, old)
    refresh_story(db, new)


def refresh_story(db: Database, story_id: int) -> None:
    """Recompute a story's lead, title, count and times from its items; drop it when empty."""
    members = db.execute(
        "SELECT i.id, (SELECT max(fd.priority) FROM sightings s JOIN feeds fd ON fd.name = s.feed"
        " WHERE s.item_id = i.id), i.first_seen_at, i.title,"
        " (SELECT max(s.seen_at) FROM sightings s WHERE s.item_id = i.id)"
        " FROM items i WHERE i.story_id = ?",
        [story_id],
    ).fetchall()
    if not members:
        db.execute("DELETE FROM stories WHERE id = ?", [story_id])
        return
    lead = dedup.choose_lead((m[0], m[1], m[2]) for m in members)
    title = next(m[3] for m in members if m[0] == lead)
    db.execute(
        "UPDATE stories SET lead_item_id = ?, title = ?, item_count = ?, first_seen_at = ?,"
        " last_seen_at = ? WHERE id = ?",
        [
            lead,
            title,
            len(members),
            min(m[2] for m in members),
            max(m[4] or m[2] for m in members),
            story_id,
        ],
    )


def refresh_story_of(db: Database, item_id: int) -> None:
    row = db.execute("SELECT story_id FROM items WHERE id = ?", [item_id]).fetchone()
    if row is not None and row[0] is not None:
        refresh_story(db, int(row[0]))


def refresh_leads(db: Database) -> None:
    """After feeds' priorities change: re-pick the lead of every story with several items."""
    for (story_id,) in db.execute("SELECT id FROM stories WHERE item_count > 1").fetchall():
        refresh_story(db, int(story_id))
