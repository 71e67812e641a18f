"""The schedule's decisions, table-driven: pure functions of (history, hints, now, policy)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from aggregator.config.loader import parse_config
from aggregator.errors import InvalidConfig
from aggregator.models import FeedHints, FeedHistory
from aggregator.schedule.due import (
    SchedulePolicy,
    backoff_s,
    is_stale,
    next_due,
    policy_from,
    skip_forward,
)

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)  # a Friday
POLICY = SchedulePolicy()  # default 15m, bounds 5m..1d, backoff cap 1d, jitter ±10%
MIN, HOUR, DAY = 60, 3600, 86400


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def seen(first_ago: float, recent: int, *, total: int | None = None) -> FeedHistory:
    """A feed first fetched `first_ago` seconds ago with `recent` new entries since."""
    return FeedHistory(
        first_seen_at=ago(first_ago),
        last_new_at=ago(0) if recent else ago(first_ago),
        new_entries=recent if total is None else total,
        recent_entries=recent,
    )


def delay(history: FeedHistory, hints: FeedHints | None = None, jitter: float = 0.0) -> float:
    due = next_due(history, hints, now=NOW, policy=POLICY, jitter=jitter)
    assert due is not None
    return (due - NOW).total_seconds()


@pytest.mark.parametrize(
    ("case", "history", "hints", "expected_s"),
    [
        ("new feed: the settings' interval", FeedHistory(), None, 15 * MIN),
        ("just added, nothing new yet: too early to tell", seen(5 * MIN, 0), None, 15 * MIN),
        ("wire feed posting every ~2 min: the lower bound", seen(3 * DAY, 2000), None, 5 * MIN),
        ("hourly feed over the 7-day window", seen(30 * DAY, 167), None, HOUR),
        ("silent for 2 h since its first fetch: every 2 h", seen(2 * HOUR, 0), None, 2 * HOUR),
        ("weekly partner feed: the upper bound", seen(30 * DAY, 1), None, DAY),
        ("RSS ttl is a floor", seen(3 * DAY, 2000), FeedHints(ttl_minutes=30), 30 * MIN),
        ("Cache-Control max-age is a floor", seen(3 * DAY, 2000), FeedHints(max_age_s=1200), 1200),
        ("sy:updatePeriod is a floor", seen(3 * DAY, 2000), FeedHints(update_period_s=7200), 7200),
        ("no-cache asks for nothing", seen(3 * DAY, 2000), FeedHints(max_age_s=0), 5 * MIN),
        ("hints stay within the upper bound", FeedHistory(), FeedHints(ttl_minutes=9000), DAY),
        (
            "the user's interval is exact: no bounds, no hints",
            FeedHistory(interval_s=60),
            FeedHints(ttl_minutes=60, skip_hours=(12, 13)),
            60,
        ),
        (
            "override with a weekly rhythm is still exact",
            replace(seen(30 * DAY, 1), interval_s=600),
            None,
            600,
        ),
    ],
)
def test_regular_interval(
    case: str, history: FeedHistory, hints: FeedHints | None, expected_s: float
) -> None:
    assert delay(history, hints) == pytest.approx(expected_s), case


@pytest.mark.parametrize(
    ("hints", "expected"),
    [
        (FeedHints(skip_hours=(12,)), datetime(2026, 11, 27, 13, 0, tzinfo=UTC)),
        (FeedHints(skip_hours=(12, 13, 14)), datetime(2026, 11, 27, 15, 0, tzinfo=UTC)),
        (FeedHints(skip_hours=(22, 23, 0)), datetime(2026, 11, 27, 12, 15, tzinfo=UTC)),
        (FeedHints(skip_days=("Friday",)), datetime(2026, 11, 28, 0, 0, tzinfo=UTC)),
        (FeedHints(skip_days=("Friday", "Saturday")), datetime(2026, 11, 29, 0, 0, tzinfo=UTC)),
        (
            FeedHints(skip_days=("Friday",), skip_hours=(0, 1)),
            datetime(2026, 11, 28, 2, 0, tzinfo=UTC),
        ),
        # Skipping every hour or every day is a misconfigured feed: ignored.
        (FeedHints(skip_hours=tuple(range(24))), datetime(2026, 11, 27, 12, 15, tzinfo=UTC)),
    ],
)
def test_skip_hours_and_days_push_the_due_time(hints: FeedHints, expected: datetime) -> None:
    assert next_due(FeedHistory(), hints, now=NOW, policy=POLICY, jitter=0) == expected


def test_skip_forward_leaves_an_allowed_time_alone() -> None:
    assert skip_forward(NOW, FeedHints(skip_hours=(3,))) == NOW


@pytest.mark.parametrize(
    ("errors", "expected_s"),
    [
        (0, 10 * MIN),
        (1, 10 * MIN),
        (2, 20 * MIN),
        (3, 40 * MIN),
        (6, 320 * MIN),
        (8, 1280 * MIN),
        (9, DAY),  # 2560 min: capped
        (50, DAY),
    ],
)
def test_backoff_doubles_then_caps(errors: int, expected_s: float) -> None:
    assert backoff_s(10 * MIN, errors, POLICY) == expected_s


def test_a_failing_feed_waits_longer_each_time_but_is_never_dropped() -> None:
    history = FeedHistory(interval_s=10 * MIN, state="failing")
    delays = [delay(replace(history, error_count=n)) for n in range(1, 15)]
    assert delays == sorted(delays)
    assert delays[0] == 10 * MIN
    # At the cap jitter only shortens the wait: between 90% and 100% of the cap.
    assert 0.9 * DAY <= delays[-1] <= DAY
    assert delay(replace(history, error_count=40), jitter=1.0) == DAY
    assert delay(replace(history, error_count=40), jitter=-1.0) == pytest.approx(0.9 * DAY)


def test_an_interval_longer_than_the_cap_is_not_shortened_by_backoff() -> None:
    history = FeedHistory(interval_s=2 * DAY, state="failing", error_count=3)
    assert delay(history) == 2 * DAY


@pytest.mark.parametrize(
    ("errors", "retry_after", "expected_s"),
    [
        (1, 3 * HOUR, 3 * HOUR),  # the server's Retry-After is a floor...
        (3, 5 * MIN, 40 * MIN),  # ...not a ceiling: the backoff is longer
        (0, 2 * HOUR, 2 * HOUR),
    ],
)
def test_retry_after_is_a_floor(errors: int, retry_after: float, expected_s: float) -> None:
    history = FeedHistory(
        interval_s=10 * MIN,
        error_count=errors,
        retry_after_until=NOW + timedelta(seconds=retry_after),
    )
    assert delay(history) == expected_s


def test_retry_after_holds_even_in_a_skipped_hour_and_then_skips_on() -> None:
    history = FeedHistory(error_count=1, retry_after_until=NOW + timedelta(minutes=30))
    due = next_due(history, FeedHints(skip_hours=(12,)), now=NOW, policy=POLICY, jitter=0)
    assert due == datetime(2026, 11, 27, 13, 0, tzinfo=UTC)


@pytest.mark.parametrize("jitter", [-5.0, -1.0, -0.5, 0.0, 0.3, 1.0, 5.0])
def test_jitter_spreads_within_ten_percent(jitter: float) -> None:
    assert 0.9 * HOUR <= delay(FeedHistory(interval_s=HOUR), jitter=jitter) <= 1.1 * HOUR


def test_jitter_spreads_feeds_that_were_added_together() -> None:
    draws = [-1 + 2 * i / 99 for i in range(100)]
    delays = {round(delay(FeedHistory(), jitter=j)) for j in draws}
    assert len(delays) > 50
    assert min(delays) == pytest.approx(0.9 * 15 * MIN)
    assert max(delays) == pytest.approx(1.1 * 15 * MIN)


@pytest.mark.parametrize("state", ["gone", "disabled"])
def test_gone_and_disabled_feeds_are_never_due(state: str) -> None:
    history = FeedHistory(state=state, error_count=3, interval_s=60)
    assert next_due(history, None, now=NOW, policy=POLICY, jitter=0) is None
    assert not is_stale(replace(history, added_at=ago(365 * DAY)), now=NOW, policy=POLICY)


@pytest.mark.parametrize(
    ("case", "history", "stale"),
    [
        # A wire feed with a new entry every ~3 minutes: an hour of silence is the floor.
        (
            "wire feed, quiet 30 min",
            replace(seen(10 * DAY, 0, total=5000), last_new_at=ago(30 * MIN)),
            False,
        ),
        (
            "wire feed, quiet 5 h",
            replace(seen(10 * DAY, 0, total=5000), last_new_at=ago(5 * HOUR)),
            True,
        ),
        # One entry a day over 30 days: ten quiet days make it stale, three do not.
        (
            "daily feed, quiet 3 days",
            replace(seen(30 * DAY, 0, total=27), last_new_at=ago(3 * DAY)),
            False,
        ),
        (
            "daily feed, quiet 11 days",
            replace(seen(30 * DAY, 0, total=19), last_new_at=ago(11 * DAY)),
            True,
        ),
        # Without a rhythm only a long silence (10 x max_interval) counts.
        ("added 2 days ago, nothing yet", FeedHistory(added_at=ago(2 * DAY)), False),
        ("added 11 days ago, never an entry", FeedHistory(added_at=ago(11 * DAY)), True),
        ("backlog only, 11 days ago", seen(11 * DAY, 0), True),
        ("never fetched, never added", FeedHistory(), False),
    ],
)
def test_is_stale(case: str, history: FeedHistory, stale: bool) -> None:
    assert is_stale(history, now=NOW, policy=POLICY) is stale, case


def test_policy_comes_from_the_settings() -> None:
    config = parse_config(
        "settings:\n  interval: 10m\n  min_interval: 1s\n  max_interval: 2h\n"
        "  max_backoff: 6h\n  tick: 200ms\n  retention: 90d\n  batch: 8\n  stop_timeout: 2s\n"
        "feeds: []\n"
    )
    settings = config.settings
    assert (settings.tick_s, settings.retention_s, settings.batch) == (0.2, 90 * DAY, 8)
    assert settings.stop_timeout_s == 2.0
    policy = policy_from(settings)
    assert (policy.default_interval_s, policy.min_interval_s) == (600, 1)
    assert (policy.max_interval_s, policy.max_backoff_s) == (2 * HOUR, 6 * HOUR)


@pytest.mark.parametrize(
    ("settings", "words"),
    [
        ("tick: 0", "settings.tick"),
        ("tick: soon", "settings.tick"),
        ("retention: forever", "settings.retention"),
        ("min_interval: 2h\n  max_interval: 1h", "min_interval is longer"),
    ],
)
def test_bad_schedule_settings_are_reported(settings: str, words: str) -> None:
    with pytest.raises(InvalidConfig, match=words):
        parse_config(f"settings:\n  {settings}\nfeeds: []\n")


def test_default_settings_keep_items_forever() -> None:
    settings = parse_config("feeds: []\n").settings
    assert settings.retention_s is None
    assert (settings.min_interval_s, settings.max_interval_s) == (5 * MIN, DAY)
