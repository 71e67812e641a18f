"""Which story a stored item belongs to: identity, then candidates, then the best match, then
join that story or found one (the flow; the signals themselves are in dedup.py).

Runs inside the transaction that stored the item, through the `StoryBook` it is handed, so an
item and its story land together.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import cache

from aggregator.models import Copy, Fingerprint, Match
from aggregator.stories import boilerplate, dedup
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


@dataclass(frozen=True, slots=True)
class Candidates:
    """Stored copies that may be the same story as a new one, and the background: copies of
    other stories sharing its boilerplate bands, one per story (see boilerplate.py)."""

    copies: list[Copy]
    background: list[Copy] = field(default_factory=list)


def candidates(book: StoryBook, new: Copy, policy: DedupPolicy) -> Candidates:
    """Stored copies that may be the same story, by any signal; `dedup` decides which is.
    Each lookup returns a bounded number, so placing a copy costs the same whatever the store
    holds. Their fingerprints are usable ones (made with today's parameters) or none."""
    found: dict[int, Copy] = {}
    background: list[Copy] = []
    start, end = _window(new, policy)
    if new.url or new.declared:  # canonical URL: any age
        found.update((c.item_id, c) for c in book.by_canonical_url(new))
    if new.title_key and new.fingerprint is not None:  # a headline joins only when confirmed
        found.update((c.item_id, c) for c in book.by_title_key(new, start=start, end=end))
    if new.fingerprint is not None:
        bands = new.fingerprint.bands or dedup.band_keys(new.fingerprint.signature)
        by_bands, background = book.by_bands(
            new,
            bands,
            start=start,
            end=end,
            crowd=boilerplate.BOILERPLATE_STORIES,
            limit=dedup.BAND_CANDIDATES,
        )
        found.update((c.item_id, c) for c in by_bands)
    return Candidates(_usable(found.values()), _usable(background))


def _usable(copies: Iterable[Copy]) -> list[Copy]:
    # Nearly every stored fingerprint is usable: a copy is rebuilt only when it is not.
    return [
        c if (fp := dedup.usable(c.fingerprint)) is c.fingerprint else replace(c, fingerprint=fp)
        for c in copies
    ]


def find_match(
    book: StoryBook, new: Copy, policy: DedupPolicy, *, tally: dedup.Tally | None = None
) -> tuple[Copy, Match] | None:
    """The stored copy whose story `new` belongs to, and why (no writes). `tally` counts the
    candidates read and scored."""
    found = candidates(book, new, policy)
    if not found.copies:
        if tally is not None:
            tally.add(0, 0)
        return None
    background = [c.fingerprint for c in found.background if c.fingerprint is not None]
    confirm = None
    if boilerplate.boilerplate_rows(new.fingerprint, background):
        confirm = _texts_confirm(book, new, found.background, tally)
    return dedup.best_match(
        new,
        found.copies,
        policy,
        apart_from=book.split_from(new.item_id),
        confirm=confirm,
        tally=tally,
    )


def _texts_confirm(
    book: StoryBook, new: Copy, background: Sequence[Copy], tally: dedup.Tally | None
) -> Callable[[Copy], bool]:
    """Whether a copy's own words, the background's boilerplate taken out, are alike the new
    copy's. Texts are read from the store only when a match needs confirming, each once."""
    assert new.fingerprint is not None  # no background otherwise
    source = new.fingerprint.source

    @cache
    def words(item_id: int) -> str:
        _, title, text, summary = book.fingerprint_inputs(item_id)
        return dedup.basis(source, title, text, summary)

    @cache
    def shared() -> boilerplate.Boilerplate:
        alike = [c for c in background if c.fingerprint and c.fingerprint.source == source]
        return boilerplate.Boilerplate.of(
            words(c.item_id) for c in alike[: boilerplate.BACKGROUND_TEXTS]
        )

    def confirm(other: Copy) -> bool:
        if tally is not None:
            tally.confirmed += 1
        return shared().confirms(words(new.item_id), words(other.item_id))

    return confirm


def place_item(
    book: StoryBook,
    item_id: int,
    fingerprint: Fingerprint | None,
    policy: DedupPolicy = DEFAULT_POLICY,
    *,
    now: str,
    prefer_story_id: int | None = None,
    tally: dedup.Tally | None = None,
) -> Assignment:
    """Fingerprint a stored item and put it in the story it belongs to: a matching copy's, else
    its own. An item already sharing its story keeps it (only its fingerprint is renewed).
    `tally` counts what the lookup read and scored."""
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
    found = find_match(book, new, policy, tally=tally)
    if found is None:
        story_id = new.story_id or book.new_story(item_id, prefer_story_id)
        book.refresh_story(story_id)
        return Assignment(story_id)
    matched, match = found
    assert matched.story_id is not None  # candidates are items in a story
    book.move_item(item_id, matched.story_id)
    book.link_item(item_id, matched.story_id, matched.item_id, match, now=now)
    return Assignment(matched.story_id, match, matched.item_id)
