"""An editor's corrections to stories: split an item out (remembered), and rebuild every
story under new thresholds. Each runs inside a transaction its caller opened."""

from __future__ import annotations

from dataclasses import dataclass

from sqlite_utils import Database

from aggregator import dedup
from aggregator.dedup import DedupPolicy
from aggregator.errors import StoreError
from aggregator.models import Fingerprint
from aggregator.store.stories import assign_story, new_story, refresh_story, stored_fingerprint


@dataclass(frozen=True, slots=True)
class Split:
    item_id: int
    old_story_id: int
    new_story_id: int
    remaining: int  # items left in the old story


def split_item(db: Database, item_id: int, *, now: str) -> Split:
    """Take an item out of its story into one of its own, and remember that it is apart from
    every item it shared the story with (later matching and rebuilds honour that)."""
    row = db.execute("SELECT story_id FROM items WHERE id = ?", [item_id]).fetchone()
    if row is None:
        raise StoreError(f"there is no item {item_id}; `aggregator items` lists them")
    story_id = int(row[0])
    others = [
        int(r[0])
        for r in db.execute(
            "SELECT id FROM items WHERE story_id = ? AND id != ?", [story_id, item_id]
        ).fetchall()
    ]
    if not others:
        raise StoreError(f"item {item_id} is alone in story {story_id}; there is nothing to split")
    db.conn.executemany(
        "INSERT OR IGNORE INTO story_splits (item_id, other_item_id, created_at) VALUES (?, ?, ?)",
        [(item_id, other, now) for other in others],
    )
    db.execute("DELETE FROM story_links WHERE item_id = ?", [item_id])
    db.execute("UPDATE items SET story_id = NULL WHERE id = ?", [item_id])
    alone = new_story(db, item_id)
    refresh_story(db, alone)
    refresh_story(db, story_id)
    return Split(item_id, story_id, alone, len(others))


@dataclass(frozen=True, slots=True)
class Rebuilt:
    items: int
    stories: int
    joined: dict[str, int]  # items that joined a story, by signal
    fingerprinted: int  # items whose fingerprint was (re)made from their stored text


def _stored_or_new_fingerprint(db: Database, item_id: int) -> tuple[Fingerprint | None, bool]:
    row = db.execute(
        "SELECT f.item_id, f.source, f.signature, f.shingles, f.version, i.title, i.text,"
        " i.summary FROM items i LEFT JOIN item_fingerprints f ON f.item_id = i.id"
        " WHERE i.id = ?",
        [item_id],
    ).fetchone()
    if row[0] is not None and row[4] == dedup.FINGERPRINT_VERSION:
        return stored_fingerprint(row[1:5]), False
    return dedup.fingerprint(row[5], row[6], row[7]), True


def rebuild(db: Database, policy: DedupPolicy, *, now: str) -> Rebuilt:
    """Re-cluster every item, oldest first, exactly as if each arrived now under `policy`.

    Stored fingerprints are reused; items without one (stored before dedup existed, or made
    with other parameters) are fingerprinted from their stored text here. Remembered splits
    hold. A story keeps its number when its first item does.
    """
    order = db.execute("SELECT id, story_id FROM items ORDER BY first_seen_at, id").fetchall()
    for sql in (
        "DELETE FROM story_links",
        "DELETE FROM lsh_bands",
        "UPDATE items SET story_id = NULL",
        "DELETE FROM stories",
    ):
        db.execute(sql)
    joined: dict[str, int] = {}
    fingerprinted = 0
    for item_id, old_story in order:
        fingerprint, made = _stored_or_new_fingerprint(db, int(item_id))
        fingerprinted += made
        assignment = assign_story(
            db, int(item_id), fingerprint, policy, now=now, prefer_story_id=old_story
        )
        if assignment.match is not None:
            joined[assignment.match.signal] = joined.get(assignment.match.signal, 0) + 1
    stories = int(db.execute("SELECT count(*) FROM stories").fetchone()[0])
    return Rebuilt(len(order), stories, joined, fingerprinted)
