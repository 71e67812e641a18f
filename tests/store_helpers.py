"""What tests hand the store for a successful refresh, without fetching anything."""

from __future__ import annotations

from aggregator.models import FeedUpdate, FetchRecord


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
