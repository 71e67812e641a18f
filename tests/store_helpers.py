"""What tests hand the store for a successful refresh, without fetching anything."""

from __future__ import annotations

from collections.abc import Sequence

from aggregator.engine.commit import commit_refresh, with_fates
from aggregator.models import FeedUpdate, FetchRecord, ItemDraft, SaveCounts
from aggregator.store import Store
from aggregator.stories.dedup import DedupPolicy
from aggregator.stories.placement import DEFAULT_POLICY


def ok_update(when: str, *, etag: str | None = None) -> FeedUpdate:
    """A healthy feed's row after a 200 at `when`."""
    return FeedUpdate(
        state="ok",
        etag=etag,
        last_modified=None,
        last_fetched_at=when,
        next_fetch_at=when,
        error_count=0,
        last_error=None,
        last_outcome="ok",
    )


def ok_record(feed: str, when: str) -> FetchRecord:
    return FetchRecord(feed=feed, started_at=when, url="https://x", outcome="ok", http_status=200)


def save_refresh(
    store: Store,
    feed: str,
    drafts: Sequence[ItemDraft],
    fetch: FetchRecord,
    update: FeedUpdate,
    *,
    dedup: DedupPolicy = DEFAULT_POLICY,
) -> SaveCounts:
    """What the engine does with a refresh's drafts: decide each entry's fate against the
    store, then commit the batch."""
    decided = with_fates(drafts, store.known_entries(feed, drafts))
    return commit_refresh(store, feed, decided, fetch, update, dedup=dedup)
