"""The SQL of stories: items as copies to compare, the LSH band index, and a story's rows.

Which story an item belongs to is decided in `aggregator.stories`; these functions read what
it compares and write what it decided, inside a transaction their caller opened. Lookups are
index probes (the canonical URL and headline indexes, one probe per LSH band), so their cost
does not grow with the store.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlite_utils import Database

from aggregator.errors import StoreError
from aggregator.models import Copy, Fingerprint, Match, Signal
from aggregator.times import parse_iso

# Copies a canonical URL or headline lookup returns at most: placing a copy costs the same
# whatever the store holds, and only a template repeated all day comes near it.
MAX_CANDIDATES = 32
# Rows read from one LSH bucket (band key and week) at most, its newest first: a bucket a
# teaser shared by thousands of items has filled is read no further (story_rows.by_bands).
BUCKET_READ = 32

# The feeds column: those of the item's whole story (its own while it has none), so a feed's
# boilerplate cannot reach its own items through another feed's copy (dedup.comparable).
_COPY_COLUMNS = (
    "i.id, i.first_seen_at, i.url, f.canonical_url, f.title_key, f.source, f.signature,"
    " f.shingles, f.version, i.story_id,"
    " CASE WHEN i.story_id IS NULL"
    " THEN (SELECT group_concat(DISTINCT s.feed) FROM sightings s WHERE s.item_id = i.id)"
    " ELSE (SELECT group_concat(DISTINCT s.feed) FROM items m"
    " JOIN sightings s ON s.item_id = m.id WHERE m.story_id = i.story_id) END AS feeds"
)
_COPY_SOURCE = "items i LEFT JOIN item_fingerprints f ON f.item_id = i.id"


def stored_fingerprint(
    source: str | None, signature: bytes | None, shingles: int | None, version: int | None
) -> Fingerprint | None:
    """A fingerprint as item_fingerprints holds it (band keys are not stored with it)."""
    if source is None or signature is None or version is None:
        return None
    return Fingerprint(source, bytes(signature), (), int(shingles or 0), int(version))


def _copy(row: Sequence[Any]) -> Copy:
    """A row of _COPY_COLUMNS, by position (a lookup reads dozens per new item)."""
    item_id, seen, url, declared, title_key, source, sig, shingles, version, story, feeds = row
    return Copy(
        item_id=int(item_id),
        first_seen_at=str(seen),
        url=url,
        declared=declared,
        title_key=title_key,
        fingerprint=stored_fingerprint(source, sig, shingles, version),
        story_id=story,
        feeds=frozenset(feeds.split(",")) if feeds else frozenset(),
    )


def _copies(db: Database, where: str, params: Sequence[Any]) -> list[Copy]:
    cursor = db.execute(f"SELECT {_COPY_COLUMNS} FROM {_COPY_SOURCE} {where}", params)
    return [_copy(row) for row in cursor.fetchall()]


def load_copy(db: Database, item_id: int) -> Copy:
    """The item as stored, with its stored fingerprint (if any)."""
    found = _copies(db, "WHERE i.id = ?", [item_id])
    if not found:
        raise StoreError(f"there is no item {item_id}")
    return found[0]


def headline(db: Database, item_id: int) -> tuple[str | None, str | None]:
    """The item's title and the canonical URL its page declares."""
    row = db.execute("SELECT title, page_canonical_url FROM items WHERE id = ?", [item_id])
    title, declared = row.fetchone()
    return title, declared


# -- fingerprints and the LSH index -------------------------------------------------------------


def week_of(moment: str) -> int:
    """The LSH index's time bucket (see the 0004 migration)."""
    return parse_iso(moment).date().toordinal() // 7


def stored_signature(db: Database, item_id: int) -> bytes | None:
    row = db.execute(
        "SELECT signature FROM item_fingerprints WHERE item_id = ?", [item_id]
    ).fetchone()
    return None if row is None or row[0] is None else bytes(row[0])


def save_fingerprint(db: Database, copy: Copy, *, old_bands: Sequence[int] = ()) -> None:
    """Store the copy's title key, declared canonical URL and fingerprint; re-index its bands
    (`old_bands`: those of the fingerprint it replaces)."""
    week = week_of(copy.first_seen_at)
    if old_bands:
        db.conn.executemany(
            "DELETE FROM lsh_bands WHERE week = ? AND band = ? AND key = ? AND item_id = ?",
            [(week, b, k, copy.item_id) for b, k in enumerate(old_bands)],
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
        db.conn.executemany(
            "INSERT OR IGNORE INTO lsh_bands (week, band, key, item_id) VALUES (?, ?, ?, ?)",
            [(week, b, k, copy.item_id) for b, k in enumerate(fp.bands)],
        )


# -- candidates -------------------------------------------------------------------------------

_IN_A_STORY = "WHERE i.story_id IS NOT NULL AND i.id != ? AND "


def by_canonical_url(db: Database, new: Copy) -> list[Copy]:
    """Copies whose URL or declared canonical URL is the new one's, at any age (the first
    MAX_CANDIDATES that declare it)."""
    return _copies(
        db,
        _IN_A_STORY + "i.id IN (SELECT id FROM items WHERE url = ? UNION SELECT * FROM"
        " (SELECT item_id FROM item_fingerprints WHERE canonical_url IN (?, ?) LIMIT ?))",
        [new.item_id, new.declared, new.url, new.declared, MAX_CANDIDATES],
    )


def by_title_key(db: Database, new: Copy, *, start: str, end: str) -> list[Copy]:
    """Copies with the same headline key first seen between `start` and `end`, newest first."""
    return _copies(
        db,
        _IN_A_STORY + "i.id IN (SELECT item_id FROM item_fingerprints WHERE title_key = ?"
        " AND first_seen_at BETWEEN ? AND ? ORDER BY first_seen_at DESC LIMIT ?)",
        [new.item_id, new.title_key, start, end, MAX_CANDIDATES],
    )


def by_bands(
    db: Database,
    new: Copy,
    bands: Sequence[int],
    *,
    start: str,
    end: str,
    crowd: int,
    limit: int,
) -> tuple[list[Copy], list[Copy]]:
    """Copies first seen between `start` and `end` sharing LSH bands with the new one, the
    most bands first (at most `limit`), leaving out the boilerplate bands: those whose buckets
    hold copies of more than `crowd` different stories. And the background: copies found in
    those bands, one per story, the newest first (at most `limit`), with their fingerprints
    only (what the boilerplate looks like).

    One query reads the buckets; Python sorts the few hundred rows it returns (in SQL the
    grouping cost twice the reading). Each bucket is read from its newest row, BUCKET_READ
    rows at most, so a bucket that a teaser repeated under every headline has filled costs no
    more than any other: the rows read are at most bands x weeks of the window x BUCKET_READ,
    whatever the store holds.
    """
    weeks = range(week_of(start), week_of(end) + 1)
    probes = [(week, band, key) for week in weeks for band, key in enumerate(bands)]
    params: list[Any] = [value for probe in probes for value in probe]
    hits: list[tuple[int, int, int, str]] = db.execute(
        f"WITH probe(week, band, key) AS (VALUES {', '.join('(?, ?, ?)' for _ in probes)})"
        " SELECT probe.band, l.item_id, i.story_id, i.first_seen_at"
        " FROM probe JOIN lsh_bands l ON l.week = probe.week AND l.band = probe.band"
        # One bucket's rows from its (BUCKET_READ + 1)th newest on: the new copy's own row is
        # among them, and left out.
        " AND l.key = probe.key AND l.item_id >= coalesce((SELECT x.item_id FROM lsh_bands x"
        " WHERE x.week = probe.week AND x.band = probe.band AND x.key = probe.key"
        " ORDER BY x.item_id DESC LIMIT 1 OFFSET ?), 0)"
        " JOIN items i ON i.id = l.item_id WHERE l.item_id != ? AND i.story_id IS NOT NULL",
        [*params, BUCKET_READ, new.item_id],
    ).fetchall()
    stories_in: dict[int, set[int]] = {}
    for band, _, story, _ in hits:
        stories_in.setdefault(band, set()).add(story)
    crowded = {band for band, stories in stories_in.items() if len(stories) > crowd}
    shared: dict[int, set[int]] = {}  # item: the uncrowded bands it shares, when in the window
    newest: dict[int, int] = {}  # story: its newest item in a crowded band
    seen_at: dict[int, tuple[int, str]] = {}
    for band, item, story, seen in hits:
        if band in crowded:
            newest[story] = max(item, newest.get(story, 0))
            seen_at[item] = (story, seen)
        elif start <= seen <= end:
            shared.setdefault(item, set()).add(band)
    background = _background(db, sorted(newest.values(), reverse=True)[:limit], seen_at)
    ranked = sorted(shared, key=lambda item: (-len(shared[item]), -item))[:limit]
    if not ranked:
        return [], background
    marks = ", ".join("?" for _ in ranked)
    found = {c.item_id: c for c in _copies(db, f"WHERE i.id IN ({marks})", ranked)}
    return [found[i] for i in ranked if i in found], background


def _background(
    db: Database, item_ids: Sequence[int], seen_at: dict[int, tuple[int, str]]
) -> list[Copy]:
    """The copies `item_ids`, in that order, with their fingerprints only."""
    if not item_ids:
        return []
    marks = ", ".join("?" for _ in item_ids)
    rows = db.execute(
        "SELECT item_id, source, signature, shingles, version FROM item_fingerprints"
        f" WHERE item_id IN ({marks})",
        list(item_ids),
    ).fetchall()
    stored = {int(item): fields for item, *fields in rows}
    return [
        Copy(
            item,
            seen_at[item][1],
            story_id=seen_at[item][0],
            fingerprint=stored_fingerprint(*stored[item]),
        )
        for item in item_ids
        if item in stored
    ]


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


# -- a story's rows -------------------------------------------------------------------------------


def story_size(db: Database, story_id: int) -> int:
    row = db.execute("SELECT count(*) FROM items WHERE story_id = ?", [story_id]).fetchone()
    return int(row[0])


def story_of(db: Database, item_id: int) -> int | None:
    row = db.execute("SELECT story_id FROM items WHERE id = ?", [item_id]).fetchone()
    if row is None:
        raise StoreError(f"there is no item {item_id}; `aggregator items` lists them")
    return None if row[0] is None else int(row[0])


def story_members(db: Database, story_id: int) -> list[int]:
    rows = db.execute("SELECT id FROM items WHERE story_id = ? ORDER BY id", [story_id])
    return [int(r[0]) for r in rows.fetchall()]


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


def move_item(db: Database, item_id: int, new: int) -> None:
    """The item joins story `new`; the story it leaves is re-led, or dropped when empty."""
    old = story_of(db, item_id)
    db.execute("UPDATE items SET story_id = ? WHERE id = ?", [new, item_id])
    if old is not None and old != new:
        refresh_story(db, old)
    refresh_story(db, new)


def link_item(
    db: Database, item_id: int, story_id: int, matched_item_id: int, match: Match, *, now: str
) -> None:
    """Record why the item joined the story (`aggregator stories show`)."""
    db.execute(
        "INSERT OR REPLACE INTO story_links (item_id, story_id, matched_item_id, signal, score,"
        " created_at) VALUES (?, ?, ?, ?, ?, ?)",
        [item_id, story_id, matched_item_id, match.signal, round(match.score, 4), now],
    )


def split_off(db: Database, item_id: int, others: Sequence[int], *, now: str) -> None:
    """Remember that the item stays apart from `others`, and take it out of its story."""
    db.conn.executemany(
        "INSERT OR IGNORE INTO story_splits (item_id, other_item_id, created_at) VALUES (?, ?, ?)",
        [(item_id, other, now) for other in others],
    )
    db.execute("DELETE FROM story_links WHERE item_id = ?", [item_id])
    _leave_merge(db, item_id)  # the later word wins
    db.execute("UPDATE items SET story_id = NULL WHERE id = ?", [item_id])


def _leave_merge(db: Database, item_id: int) -> None:
    """The item is no longer part of the merge it was in; a group left with one item is no
    group."""
    row = db.execute("SELECT merge_id FROM story_merges WHERE item_id = ?", [item_id]).fetchone()
    if row is None:
        return
    db.execute("DELETE FROM story_merges WHERE item_id = ?", [item_id])
    db.execute(
        "DELETE FROM story_merges WHERE merge_id = ?"
        " AND (SELECT count(*) FROM story_merges WHERE merge_id = ?) = 1",
        [row[0], row[0]],
    )


def remember_merge(db: Database, item_ids: Sequence[int], *, now: str) -> None:
    """Remember that the items are one story (one merge group), and forget the splits between
    any two of them: the later word wins."""
    ids = sorted(set(item_ids))
    if not ids:
        return
    listed = json.dumps(ids)
    db.execute(
        "DELETE FROM story_splits WHERE item_id IN (SELECT value FROM json_each(?))"
        " AND other_item_id IN (SELECT value FROM json_each(?))",
        [listed, listed],
    )
    db.conn.executemany(
        "INSERT OR REPLACE INTO story_merges (item_id, merge_id, created_at) VALUES (?, ?, ?)",
        [(item_id, ids[0], now) for item_id in ids],
    )


def merge_partners(db: Database, item_id: int) -> list[tuple[int, int]]:
    """(item, its story) for each item an editor merged this one with that is in a story,
    the earliest first."""
    rows = db.execute(
        "SELECT m.item_id, i.story_id FROM story_merges g"
        " JOIN story_merges m ON m.merge_id = g.merge_id AND m.item_id != g.item_id"
        " JOIN items i ON i.id = m.item_id"
        " WHERE g.item_id = ? AND i.story_id IS NOT NULL ORDER BY i.first_seen_at, i.id",
        [item_id],
    ).fetchall()
    return [(int(item), int(story)) for item, story in rows]


def merge_into(db: Database, story_id: int, others: Sequence[int], *, now: str) -> None:
    """Every item of the `others` stories joins `story_id`, and those stories are gone. Their
    first items (which joined nothing) are recorded as joined by an editor, matched with the
    story's lead; the other items keep the match that joined them."""
    if not others:
        return
    marks = ", ".join("?" for _ in others)
    lead = db.execute("SELECT lead_item_id FROM stories WHERE id = ?", [story_id]).fetchone()
    if lead is None or lead[0] is None:
        raise StoreError(f"there is no story {story_id}")
    db.execute(
        "INSERT INTO story_links (item_id, story_id, matched_item_id, signal, score, created_at)"
        f" SELECT i.id, ?, ?, ?, 1.0, ? FROM items i WHERE i.story_id IN ({marks})"
        " AND NOT EXISTS (SELECT 1 FROM story_links l WHERE l.item_id = i.id)",
        [story_id, lead[0], Signal.EDITOR, now, *others],
    )
    db.execute(
        f"UPDATE story_links SET story_id = ? WHERE story_id IN ({marks})", [story_id, *others]
    )
    db.execute(f"UPDATE items SET story_id = ? WHERE story_id IN ({marks})", [story_id, *others])
    db.execute(f"DELETE FROM stories WHERE id IN ({marks})", list(others))
    refresh_story(db, story_id)


def clear_stories(db: Database) -> list[tuple[int, int | None]]:
    """Every item's story forgotten, for a rebuild: (item id, its old story id), oldest first."""
    order = db.execute("SELECT id, story_id FROM items ORDER BY first_seen_at, id").fetchall()
    for sql in (
        "DELETE FROM story_links",
        "DELETE FROM lsh_bands",
        "UPDATE items SET story_id = NULL",
        "DELETE FROM stories",
    ):
        db.execute(sql)
    return [(int(i), None if s is None else int(s)) for i, s in order]


def fingerprint_inputs(
    db: Database, item_id: int
) -> tuple[Fingerprint | None, str | None, str | None, str | None]:
    """The item's stored fingerprint, and its title, text and summary to make a new one."""
    row = db.execute(
        "SELECT f.source, f.signature, f.shingles, f.version, i.title, i.text, i.summary"
        " FROM items i LEFT JOIN item_fingerprints f ON f.item_id = i.id WHERE i.id = ?",
        [item_id],
    ).fetchone()
    if row is None:
        raise StoreError(f"there is no item {item_id}")
    return stored_fingerprint(*row[:4]), row[4], row[5], row[6]


def story_count(db: Database) -> int:
    return int(db.execute("SELECT count(*) FROM stories").fetchone()[0])


def choose_lead(members: Iterable[tuple[int, int | None, str]]) -> int:
    """The story's lead item among (item_id, feed priority, first_seen_at): the highest
    priority feed's copy (wire first), then the earliest, then the lowest id."""
    return min(members, key=lambda m: (m[1] is None, -(m[1] or 0), m[2], m[0]))[0]


def refresh_story(db: Database, story_id: int) -> None:
    """Recompute a story's lead, title, count and times from its items; drop it when empty.
    These columns only summarise the story's items, so the store keeps them current."""
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
    lead = choose_lead((m[0], m[1], m[2]) for m in members)
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
    story_id = story_of(db, item_id)
    if story_id is not None:
        refresh_story(db, story_id)


def refresh_leads(db: Database) -> None:
    """After feeds' priorities change: re-pick the lead of every story with several items."""
    for (story_id,) in db.execute("SELECT id FROM stories WHERE item_count > 1").fetchall():
        refresh_story(db, int(story_id))
