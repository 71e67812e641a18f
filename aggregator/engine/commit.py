"""Commit a batch: what a feed's refresh or a page's extraction produced goes into the store
in one transaction, each new item placed in its story in that same transaction.

The one writer calls these; in the distributed mode the commit queue's consumer does.
"""

from __future__ import annotations

from collections.abc import Sequence

from aggregator.models import (
    Article,
    Fate,
    FeedUpdate,
    FetchRecord,
    Fingerprint,
    ItemDraft,
    KnownEntries,
    SaveCounts,
)
from aggregator.store import Store
from aggregator.stories.dedup import DedupPolicy
from aggregator.stories.identity import fate_of
from aggregator.stories.placement import DEFAULT_POLICY, place_item


def commit_refresh(
    store: Store,
    feed: str,
    drafts: Sequence[ItemDraft],
    fetch: FetchRecord,
    update: FeedUpdate,
    *,
    dedup: DedupPolicy = DEFAULT_POLICY,
) -> SaveCounts:
    """A feed's items (as their fates say), sightings, stories, fetch record and new state, in
    one transaction: validators never advance past items that were not stored."""
    new = updated = 0
    with store.transaction() as tx:
        for draft in drafts:
            done, item_id = tx.apply_entry(feed, draft, now=fetch.started_at)
            if done is Fate.NEW:
                place_item(tx, item_id, draft.fingerprint, dedup, now=fetch.started_at)
                new += 1
            elif done is Fate.EDITED:
                updated += 1
        counts = SaveCounts(new_items=new, updated_items=updated)
        tx.record_fetch(fetch, counts)
        tx.update_feed(feed, update)
    return counts


def commit_extraction(
    store: Store,
    item_id: int,
    article: Article | None,
    error: str | None,
    *,
    fingerprint: Fingerprint | None,
    dedup: DedupPolicy = DEFAULT_POLICY,
    now: str,
) -> None:
    """A page extracted on a later run; with the text's fingerprint, the item is matched again
    (by its text now) unless it already shares its story."""
    with store.transaction() as tx:
        tx.save_extraction(item_id, article, error)
        if article is not None and fingerprint is not None:
            place_item(tx, item_id, fingerprint, dedup, now=now)


def with_fates(drafts: Sequence[ItemDraft], known: KnownEntries) -> list[ItemDraft]:
    """The drafts with their fates decided, the unchanged ones left out."""
    decided = [d.with_fate(fate_of(d, known)) for d in drafts]
    return [d for d in decided if d.fate is not Fate.UNCHANGED]
