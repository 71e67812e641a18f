"""An editor's corrections to stories: split an item out (and remember it), and rebuild every
story under new thresholds. Each runs inside a transaction its caller opened."""

from __future__ import annotations

from dataclasses import dataclass

from aggregator.errors import StoreError
from aggregator.stories import dedup
from aggregator.stories.book import StoryBook
from aggregator.stories.dedup import DedupPolicy
from aggregator.stories.placement import place_item


@dataclass(frozen=True, slots=True)
class Split:
    item_id: int
    old_story_id: int
    new_story_id: int
    remaining: int  # items left in the old story


def split_item(book: StoryBook, item_id: int, *, now: str) -> Split:
    """Take an item out of its story into one of its own, and remember that it is apart from
    every item it shared the story with (later matching and rebuilds honour that)."""
    story_id = book.story_of(item_id)
    others = [] if story_id is None else [i for i in book.story_members(story_id) if i != item_id]
    if story_id is None or not others:
        raise StoreError(f"item {item_id} is alone in story {story_id}; there is nothing to split")
    book.split_off(item_id, others, now=now)
    alone = book.new_story(item_id)
    book.refresh_story(alone)
    book.refresh_story(story_id)
    return Split(item_id, story_id, alone, len(others))


@dataclass(frozen=True, slots=True)
class Rebuilt:
    items: int
    stories: int
    joined: dict[str, int]  # items that joined a story, by signal
    fingerprinted: int  # items whose fingerprint was (re)made from their stored text


def rebuild(book: StoryBook, policy: DedupPolicy, *, now: str) -> Rebuilt:
    """Re-cluster every item, oldest first, exactly as if each arrived now under `policy`.

    Stored fingerprints are reused; items without one (stored before dedup existed, or made
    with other parameters) are fingerprinted from their stored text here. Remembered splits
    hold. A story keeps its number when its first item does.
    """
    order = book.clear_stories()
    joined: dict[str, int] = {}
    fingerprinted = 0
    for item_id, old_story in order:
        stored, title, text, summary = book.fingerprint_inputs(item_id)
        fingerprint = dedup.current(stored)
        if fingerprint is None:
            fingerprint = dedup.fingerprint(title, text, summary)
            fingerprinted += 1
        assignment = place_item(
            book, item_id, fingerprint, policy, now=now, prefer_story_id=old_story
        )
        if assignment.match is not None:
            joined[assignment.match.signal] = joined.get(assignment.match.signal, 0) + 1
    return Rebuilt(len(order), book.story_count(), joined, fingerprinted)
