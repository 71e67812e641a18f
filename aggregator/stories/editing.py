"""An editor's corrections to stories: split an item out, merge stories into one (each
remembered, the later word winning), and rebuild every story under new thresholds, honouring
both. Each runs inside a transaction its caller opened."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aggregator.errors import StoreError
from aggregator.models import Match, Signal
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
class Merged:
    story_id: int  # the story they all are now
    merged: tuple[int, ...]  # the stories that joined it, gone now
    items: int


def merge_stories(book: StoryBook, story_ids: Sequence[int], *, now: str) -> Merged:
    """Join the stories into one, the undo of a split: it keeps the lowest number, its lead
    is chosen as always (highest feed priority, then the earliest). Remembered: no rebuild
    takes them apart, and the splits between their items are forgotten."""
    repeated = sorted({s for s in story_ids if list(story_ids).count(s) > 1})
    if repeated:
        named = ", ".join(map(str, repeated))
        raise StoreError(
            f"story {named} is named more than once: a story cannot be merged with itself;"
            " name two or more different stories"
        )
    if len(story_ids) < 2:
        raise StoreError("merging needs two or more stories")
    members = {story_id: book.story_members(story_id) for story_id in story_ids}
    unknown = [str(s) for s, items in members.items() if not items]
    if unknown:
        raise StoreError(f"there is no story {', '.join(unknown)}; `aggregator stories` lists them")
    target, *others = sorted(members)
    book.remember_merge([i for items in members.values() for i in items], now=now)
    book.merge_into(target, others, now=now)
    return Merged(target, tuple(others), sum(len(items) for items in members.values()))


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
    and merges hold: an item an editor merged joins the story of the earliest item it was
    merged with, unless it was split from that story since. A story keeps its number when its
    first item does.
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
        match = _keep_merged(book, item_id, assignment.story_id, now=now) or assignment.match
        if match is not None:
            joined[match.signal] = joined.get(match.signal, 0) + 1
    return Rebuilt(len(order), book.story_count(), joined, fingerprinted)


def _keep_merged(book: StoryBook, item_id: int, placed_in: int, *, now: str) -> Match | None:
    """Move a merged item to the story of the earliest item it was merged with, when it is
    not there already and no split keeps it from it; the match that moved it, else None."""
    partners = book.merge_partners(item_id)
    if not partners or any(story == placed_in for _, story in partners):
        return None
    apart = book.split_from(item_id)
    for partner, story in partners:
        if story not in apart:
            match = Match(Signal.EDITOR, 1.0)
            book.move_item(item_id, story)
            book.link_item(item_id, story, partner, match, now=now)
            return match
    return None
