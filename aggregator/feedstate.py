"""Pure decisions about a feed's row after a refresh: state, validators, next due time."""

from __future__ import annotations

from datetime import datetime, timedelta

from aggregator.hints import hints_from
from aggregator.models import FeedState, FeedUpdate, FetchResult, ParsedFeed
from aggregator.times import iso_utc

# Outcomes after which the feed is not fetched again until the user acts.
FINAL_OUTCOMES = frozenset({"gone"})


def after_success(
    state: FeedState,
    result: FetchResult,
    parsed: ParsedFeed | None,
    *,
    now: datetime,
    interval_s: int,
) -> FeedUpdate:
    """A 200 that parsed (parsed set) or a 304 (parsed None)."""
    if result.not_modified:
        # A 304 may carry fresh validators; keep the old ones it does not repeat.
        etag = result.etag or state.etag
        last_modified = result.last_modified or state.last_modified
        outcome = "not_modified"
    else:
        # A 200 replaces both: validators of the old body mean nothing for the new one.
        etag, last_modified = result.etag, result.last_modified
        outcome = "ok"
    stamp = iso_utc(now)
    return FeedUpdate(
        state="ok",
        etag=etag,
        last_modified=last_modified,
        last_fetched_at=stamp,
        next_fetch_at=iso_utc(now + timedelta(seconds=interval_s)),
        error_count=0,
        last_error=None,
        last_outcome=outcome,
        last_warning=parsed.warning if parsed else None,
        last_success_at=stamp,
        permanent_url=result.permanent_redirect,
        title=parsed.title if parsed else None,
        site_url=parsed.site_url if parsed else None,
        # A 304 repeats what the last 200 said; keep the hints recorded then.
        hints=hints_from(result, parsed, now=now) if parsed else None,
    )


def after_failure(
    state: FeedState,
    *,
    outcome: str,
    error: str,
    now: datetime,
    interval_s: int,
    permanent_url: str | None = None,
    retry_after_s: int | None = None,
) -> FeedUpdate:
    """Any failure: validators stay as they were, so nothing is skipped when it recovers.
    A Retry-After (429/503) pushes the next fetch back at least that far."""
    wait_s = max(interval_s, retry_after_s or 0)
    return FeedUpdate(
        state="gone" if outcome in FINAL_OUTCOMES else "failing",
        etag=state.etag,
        last_modified=state.last_modified,
        last_fetched_at=iso_utc(now),
        next_fetch_at=iso_utc(now + timedelta(seconds=wait_s)),
        error_count=state.error_count + 1,
        last_error=error,
        last_outcome=outcome,
        permanent_url=permanent_url or state.permanent_url,
        retry_after_until=(
            iso_utc(now + timedelta(seconds=retry_after_s)) if retry_after_s is not None else None
        ),
    )
