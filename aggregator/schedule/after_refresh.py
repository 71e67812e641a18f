"""Pure decisions about a feed's row after a refresh: state, validators, next due time.

The next due time comes from `schedule.next_due`, so `aggregator fetch` and the daemon agree;
the caller passes the feed's history (measured by the store), the policy and a jitter draw.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from aggregator.models import (
    FeedHistory,
    FeedState,
    FeedStatus,
    FeedUpdate,
    FetchResult,
    Outcome,
    ParsedFeed,
)
from aggregator.schedule.due import SchedulePolicy, ceil_second, next_due
from aggregator.schedule.freshness import hints_from
from aggregator.times import iso_utc

# Outcomes after which the feed is not fetched again until the user acts.
FINAL_OUTCOMES = frozenset({Outcome.GONE})


def after_success(
    state: FeedState,
    result: FetchResult,
    parsed: ParsedFeed | None,
    *,
    now: datetime,
    history: FeedHistory,
    policy: SchedulePolicy,
    jitter: float = 0.0,
) -> FeedUpdate:
    """A 200 that parsed (parsed set) or a 304 (parsed None)."""
    if result.not_modified:
        # A 304 may carry fresh validators; keep the old ones it does not repeat.
        etag = result.etag or state.etag
        last_modified = result.last_modified or state.last_modified
        outcome = Outcome.NOT_MODIFIED
    else:
        # A 200 replaces both: validators of the old body mean nothing for the new one.
        etag, last_modified = result.etag, result.last_modified
        outcome = Outcome.OK
    stamp = iso_utc(now)
    # A 304 repeats what the last 200 said; keep the hints recorded then.
    hints = hints_from(result, parsed, now=now) if parsed else None
    due = next_due(
        replace(history, state=FeedStatus.OK, error_count=0, retry_after_until=None),
        hints or state.hints,
        now=now,
        policy=policy,
        jitter=jitter,
    )
    return FeedUpdate(
        state=FeedStatus.OK,
        etag=etag,
        last_modified=last_modified,
        last_fetched_at=stamp,
        next_fetch_at=_stamp(due),
        error_count=0,
        last_error=None,
        last_outcome=outcome,
        last_warning=parsed.warning if parsed else None,
        last_success_at=stamp,
        # Kept until feeds.yaml changes the URL: fetching from the new home redirects no more.
        permanent_url=result.permanent_redirect or state.permanent_url,
        title=parsed.title if parsed else None,
        site_url=parsed.site_url if parsed else None,
        hints=hints,
    )


def after_failure(
    state: FeedState,
    *,
    outcome: str,
    error: str,
    now: datetime,
    history: FeedHistory,
    policy: SchedulePolicy,
    jitter: float = 0.0,
    permanent_url: str | None = None,
    retry_after_s: int | None = None,
) -> FeedUpdate:
    """Any failure: validators stay as they were, so nothing is skipped when it recovers.
    The wait backs off with each failure in a row; a Retry-After (429/503) is a floor."""
    new_state = FeedStatus.GONE if outcome in FINAL_OUTCOMES else FeedStatus.FAILING
    retry_until = (
        ceil_second(now + timedelta(seconds=retry_after_s)) if retry_after_s is not None else None
    )
    due = next_due(
        replace(
            history,
            state=new_state,
            error_count=state.error_count + 1,
            retry_after_until=retry_until,
        ),
        state.hints,
        now=now,
        policy=policy,
        jitter=jitter,
    )
    return FeedUpdate(
        state=new_state,
        etag=state.etag,
        last_modified=state.last_modified,
        last_fetched_at=iso_utc(now),
        next_fetch_at=_stamp(due),
        error_count=state.error_count + 1,
        last_error=error,
        last_outcome=outcome,
        permanent_url=permanent_url or state.permanent_url,
        retry_after_until=_stamp(retry_until),
    )


def _stamp(moment: datetime | None) -> str | None:
    """Rounded up to the second: a due time is never early, a Retry-After never cut short."""
    return None if moment is None else iso_utc(ceil_second(moment))
