"""When is a feed next due, and has it gone quiet? Pure decisions (house style 2).

Nothing here reads the clock, the database or the settings: the store measures a feed's
history, the caller passes `now`, the policy and a jitter in [-1, 1], so every decision is
tested with a table of cases. Both `aggregator fetch` and the daemon schedule through here.

How a healthy feed's interval is chosen:
1. the user's per-feed `interval` in feeds.yaml, if any, exactly (no hints, no bounds);
2. else the observed rhythm: the mean gap between new entries over a recent window (a wire
   feed posting every few minutes is polled often, a weekly partner feed rarely), and the
   settings' `interval` until a rhythm can be seen;
3. never sooner than the server and the feed ask (max-age, RSS <ttl>, sy:updatePeriod);
4. within [min_interval, max_interval].
Then failures back it off exponentially up to `max_backoff`, jitter spreads feeds apart,
a Retry-After is a floor and RSS <skipHours>/<skipDays> push the time past skipped hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aggregator.models import FeedHints, FeedHistory, FeedStatus, Settings
from aggregator.times import DAYS

# States that are never due on their own: 410 Gone waits for the user, disabled feeds were
# removed from feeds.yaml, paused ones wait for `aggregator feeds resume`.
NEVER_DUE = frozenset({FeedStatus.GONE, FeedStatus.DISABLED, FeedStatus.PAUSED})


@dataclass(frozen=True, slots=True)
class SchedulePolicy:
    default_interval_s: float = 15 * 60  # until a feed's rhythm is known
    min_interval_s: float = 5 * 60
    max_interval_s: float = 24 * 3600
    max_backoff_s: float = 24 * 3600  # a failing feed is still tried at least this often
    jitter_fraction: float = 0.1  # ±10%: feeds added together drift apart
    rate_window_s: float = 7 * 86400  # how far back the rate of new entries is measured
    stale_factor: float = 10.0  # silent for this many usual gaps: stale
    stale_floor_s: float = 3600.0  # never stale sooner than this


def policy_from(settings: Settings) -> SchedulePolicy:
    return SchedulePolicy(
        default_interval_s=settings.interval_s,
        min_interval_s=settings.min_interval_s,
        max_interval_s=settings.max_interval_s,
        max_backoff_s=settings.max_backoff_s,
    )


def rate_window_start(now: datetime, policy: SchedulePolicy) -> datetime:
    """Where the store starts counting `FeedHistory.recent_entries`."""
    return now - timedelta(seconds=policy.rate_window_s)


def observed_gap_s(history: FeedHistory, *, now: datetime, policy: SchedulePolicy) -> float | None:
    """Mean time between new entries lately; None while there is too little to go on."""
    if history.first_seen_at is None:
        return None
    window = min((now - history.first_seen_at).total_seconds(), policy.rate_window_s)
    if window <= 0 or (history.recent_entries == 0 and window < policy.default_interval_s):
        return None
    # +1: a feed silent for the whole window is polled about once per window, and a few
    # entries do not make the estimate jump.
    return window / (history.recent_entries + 1)


def hinted_s(hints: FeedHints | None) -> float:
    """The longest interval the server or the feed asks for (0 when they say nothing)."""
    if hints is None:
        return 0.0
    asked = [
        hints.max_age_s or 0,
        (hints.ttl_minutes or 0) * 60,
        hints.update_period_s or 0,
    ]
    return float(max(asked))


def regular_interval_s(
    history: FeedHistory, hints: FeedHints | None, *, now: datetime, policy: SchedulePolicy
) -> float:
    """How often to poll the feed while it is healthy, before jitter."""
    if history.interval_s is not None:
        return float(history.interval_s)
    gap = observed_gap_s(history, now=now, policy=policy)
    wanted = max(policy.default_interval_s if gap is None else gap, hinted_s(hints))
    return min(max(wanted, policy.min_interval_s), policy.max_interval_s)


def backoff_s(interval_s: float, errors: int, policy: SchedulePolicy) -> float:
    """After `errors` failures in a row: the interval, doubled for each failure after the
    first, capped at max_backoff (but never shorter than the interval itself)."""
    if errors <= 0:
        return interval_s
    grown = interval_s * 2.0 ** min(errors - 1, 40)
    return max(interval_s, min(grown, policy.max_backoff_s))


def skip_forward(due: datetime, hints: FeedHints) -> datetime:
    """The first moment at or after `due` outside the feed's skipHours/skipDays (UTC)."""
    hours, days = set(hints.skip_hours), set(hints.skip_days)
    if len(hours) >= 24 or len(days) >= 7:
        return due  # a feed that skips every hour or every day is misconfigured: ignore it
    due = due.astimezone(UTC)
    for _ in range(24 * 8):
        if due.hour not in hours and DAYS[due.weekday()] not in days:
            return due
        due = due.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    return due


def next_due(
    history: FeedHistory,
    hints: FeedHints | None,
    *,
    now: datetime,
    policy: SchedulePolicy,
    jitter: float,
) -> datetime | None:
    """When the feed should next be refreshed; None when never again on its own.

    `history` describes the feed after the refresh being scheduled (its state and failures
    in a row); `jitter` is a random draw in [-1, 1] (0 for none).
    """
    if history.state in NEVER_DUE:
        return None
    interval = regular_interval_s(history, hints, now=now, policy=policy)
    delay = backoff_s(interval, history.error_count, policy)
    jitter = min(1.0, max(-1.0, jitter))
    if history.error_count > 0 and delay >= policy.max_backoff_s > interval:
        # At the cap, jitter only shortens the wait: the cap is a promise.
        delay *= 1 - policy.jitter_fraction * (1 - jitter) / 2
    else:
        delay *= 1 + policy.jitter_fraction * jitter
    due = now + timedelta(seconds=delay)
    if history.retry_after_until is not None:
        due = max(due, history.retry_after_until)
    if hints is not None and history.interval_s is None:
        due = skip_forward(due, hints)
    return due


def usual_gap_s(history: FeedHistory) -> float | None:
    """The feed's rhythm over its whole life: mean time between new entries."""
    if history.new_entries == 0 or history.first_seen_at is None or history.last_new_at is None:
        return None
    span = (history.last_new_at - history.first_seen_at).total_seconds()
    return span / history.new_entries if span > 0 else None


def is_stale(history: FeedHistory, *, now: datetime, policy: SchedulePolicy) -> bool:
    """No new entry for far longer than the feed's usual rhythm (a feed that stopped
    updating while still answering 200 or 304)."""
    if history.state in NEVER_DUE:
        return False
    since = history.last_new_at or history.added_at
    if since is None:
        return False
    rhythm = usual_gap_s(history)
    if rhythm is None:  # no rhythm yet: only a long silence counts
        rhythm = max(policy.max_interval_s, float(history.interval_s or 0))
    threshold = max(policy.stale_factor * rhythm, policy.stale_floor_s)
    return (now - since).total_seconds() > threshold


def ceil_second(moment: datetime) -> datetime:
    """Stored times have whole seconds: round a due time up so it is never early."""
    if moment.microsecond == 0:
        return moment
    return moment.replace(microsecond=0) + timedelta(seconds=1)
