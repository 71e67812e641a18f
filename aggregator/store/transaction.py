"""One write transaction, typed: every write the stages ask of the store, and the reads the
story decisions need while it is open.

`Store.transaction()` opens one (BEGIN IMMEDIATE) and commits it when the block ends, or rolls
it back on any exception, so a feed's items, sightings, stories, fetch record and validators
land together or not at all. The methods apply decisions made elsewhere; `aggregator.stories`
calls the story methods through its own protocol, so the store never imports it.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlite_utils import Database

from aggregator.models import (
    Article,
    Copy,
    Fate,
    FeedConfig,
    FeedUpdate,
    FetchRecord,
    Fingerprint,
    ItemDraft,
    Match,
    SaveCounts,
)
from aggregator.store import item_rows, schedule_rows, story_rows


class Transaction:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- feeds, entries and fetches -----------------------------------------------------------

    def sync_feeds(self, feeds: Sequence[FeedConfig], *, now: str) -> None:
        item_rows.sync_feeds(self.db, feeds, now=now)

    def apply_entry(self, feed: str, draft: ItemDraft, *, now: str) -> tuple[Fate, int]:
        """Store the entry as its fate says; returns what was done and its item's id."""
        return item_rows.apply_entry(self.db, feed, draft, now=now)

    def record_fetch(self, fetch: FetchRecord, counts: SaveCounts) -> None:
        item_rows.insert_fetch(self.db, fetch, counts)

    def update_feed(self, feed: str, update: FeedUpdate) -> None:
        item_rows.update_feed(self.db, feed, update)

    def save_extraction(self, item_id: int, article: Article | None, error: str | None) -> None:
        item_rows.save_extraction(self.db, item_id, article, error)

    def postpone(self, feed: str, *, until: str) -> None:
        schedule_rows.postpone(self.db, feed, until=until)

    # -- stories (the reads and writes of aggregator.stories.StoryBook) -------------------------

    def load_copy(self, item_id: int) -> Copy:
        return story_rows.load_copy(self.db, item_id)

    def headline(self, item_id: int) -> tuple[str | None, str | None]:
        return story_rows.headline(self.db, item_id)

    def stored_signature(self, item_id: int) -> bytes | None:
        return story_rows.stored_signature(self.db, item_id)

    def save_fingerprint(self, copy: Copy, *, old_bands: Sequence[int] = ()) -> None:
        story_rows.save_fingerprint(self.db, copy, old_bands=old_bands)

    def by_canonical_url(self, new: Copy) -> list[Copy]:
        return story_rows.by_canonical_url(self.db, new)

    def by_title_key(self, new: Copy, *, start: str, end: str) -> list[Copy]:
        return story_rows.by_title_key(self.db, new, start=start, end=end)

    def by_bands(
        self, new: Copy, bands: Sequence[int], *, start: str, end: str, crowd: int, limit: int
    ) -> tuple[list[Copy], list[Copy]]:
        return story_rows.by_bands(
            self.db, new, bands, start=start, end=end, crowd=crowd, limit=limit
        )

    def split_from(self, item_id: int) -> frozenset[int]:
        return story_rows.split_from(self.db, item_id)

    def story_of(self, item_id: int) -> int | None:
        return story_rows.story_of(self.db, item_id)

    def story_size(self, story_id: int) -> int:
        return story_rows.story_size(self.db, story_id)

    def story_members(self, story_id: int) -> list[int]:
        return story_rows.story_members(self.db, story_id)

    def new_story(self, item_id: int, prefer_id: int | None = None) -> int:
        return story_rows.new_story(self.db, item_id, prefer_id)

    def refresh_story(self, story_id: int) -> None:
        story_rows.refresh_story(self.db, story_id)

    def move_item(self, item_id: int, story_id: int) -> None:
        story_rows.move_item(self.db, item_id, story_id)

    def link_item(
        self, item_id: int, story_id: int, matched_item_id: int, match: Match, *, now: str
    ) -> None:
        story_rows.link_item(self.db, item_id, story_id, matched_item_id, match, now=now)

    def split_off(self, item_id: int, others: Sequence[int], *, now: str) -> None:
        story_rows.split_off(self.db, item_id, others, now=now)

    def remember_merge(self, item_ids: Sequence[int], *, now: str) -> None:
        story_rows.remember_merge(self.db, item_ids, now=now)

    def merge_partners(self, item_id: int) -> list[tuple[int, int]]:
        return story_rows.merge_partners(self.db, item_id)

    def merge_into(self, story_id: int, others: Sequence[int], *, now: str) -> None:
        story_rows.merge_into(self.db, story_id, others, now=now)

    def clear_stories(self) -> list[tuple[int, int | None]]:
        return story_rows.clear_stories(self.db)

    def fingerprint_inputs(
        self, item_id: int
    ) -> tuple[Fingerprint | None, str | None, str | None, str | None]:
        return story_rows.fingerprint_inputs(self.db, item_id)

    def story_count(self) -> int:
        return story_rows.story_count(self.db)
