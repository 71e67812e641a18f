"""Which story a stored item belongs to: identity, then candidates, then the best match, then
join that story or found one (the flow; the signals themselves are in dedup.py).

Runs inside the transaction that stored the item, through the `StoryBook` it is handed, so an
item and its story land together.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

from aggregator.models import Copy, Fingerprint, Match
from aggregator.stories import dedup
from aggregator.stories.book import StoryBook
from aggregator.stories.dedup import DedupPolicy
from aggregator.times import iso_utc, parse_iso

DEFAULT_POLICY = DedupPolicy()


@dataclass(frozen=True, slots=True)
class Assignment:
    """Where an item went: its story, and the match that put it there (None: a story of its
    own, or it stayed where it was)."""

    story_id: int
    match: Match | None = None
    matched_item_id: int | None = None


def _window(copy: Copy, policy: DedupPolicy) -> tuple[str, str]:
    seen = parse_iso(copy.first_seen_at)
    span = timedelta(seconds=policy.window_s)
    return iso_utc(seen - span), iso_utc(seen + span)


def candidates(book: StoryBook, new: Copy, policy: DedupPolicy) -> list[Copy]:
    """Stored copies that may be the same story, by any signal; `dedup` decides which is.
    Their fingerprints are usable ones (made with today's parameters) or none."""
    found: dict[int, Copy] = {}
    start, end = _window(new, policy)
    if new.url or new.declared:  # canonical URL: any age
        found.update((c.item_id, c) for c in book.by_canonical_url(new))
    if new.title_key:
        found.update((c.item_id, c) for c in book.by_title_key(new, start=start, end=end))
    if new.fingerprint is not None:
        bands = new.fingerprint.bands or dedup.band_keys(new.fingerprint.signature)
        found.update((c.item_id, c) for c in book.by_bands(new, bands, start=start, end=end))
    return [replace(c, fingerprint=dedup.current(c.fingerprint)) for c in found.values()]


def find_match(book: StoryBook, new: Copy, policy: DedupPolicy) -> tuple[Copy, Match] | None:
    """The stored copy whose story `new` belongs to, and why (no writes)."""
    found = candidates(book, new, policy)
    if not found:
        return None
    return dedup.best_match(new, found, policy, apart_from=book.split_from(new.item_id))


def place_item(
    book: StoryBook,
    item_id: int,
    fingerprint: Fingerprint | None,
    policy: DedupPolicy = DEFAULT_POLICY,
    *,
    now: str,
    prefer_story_id: int | None = None,
) -> Assignment:
    """Fingerprint a stored item and put it in the story it belongs to: a matching copy's, else
    its own. An item already sharing its story keeps it (only its fingerprint is renewed)."""
    stored = book.load_copy(item_id)
    title, page_canonical = book.headline(item_id)
    fingerprint = dedup.current(fingerprint)
    new = replace(
        stored,
        title_key=dedup.title_key(title),
        declared=dedup.declared_canonical(page_canonical, stored.url),
        fingerprint=fingerprint,
    )
    old_signature = book.stored_signature(item_id)
    old_bands = dedup.band_keys(old_signature) if old_signature is not None else ()
    book.save_fingerprint(new, old_bands=old_bands)
    if new.story_id is not None and book.story_size(new.story_id) > 1:
        return Assignment(new.story_id)
    found = find_match(book, new, policy)
    if found is None:
        story_id = new.story_id or book.new_story(item_id, prefer_story_id)
        book.refresh_story(story_id)
        return Assignment(story_id)
    matched, match = found
    assert matched.story_id is not None  # candidates are items in a story
    book.move_item(item_id, matched.story_id)
    book.link_item(item_id, matched.story_id, matched.item_id, match, now=now)
    return Assignment(matched.story_id, match, matched.item_id)
