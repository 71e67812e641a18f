from datetime import UTC, datetime

import pytest

from aggregator.models import FeedHistory, FeedState, FetchResult, ParsedFeed
from aggregator.schedule.after_refresh import after_failure, after_success
from aggregator.schedule.due import SchedulePolicy
from aggregator.schedule.freshness import hints_from, max_age_s

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
# A per-feed interval of 10 minutes and no jitter: the schedule is exact.
EVERY_10_MIN = FeedHistory(interval_s=600)
POLICY = SchedulePolicy()


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ([], None),
        ([("cache-control", "public, max-age=600")], 600),
        ([("cache-control", 'max-age="300"')], 300),
        ([("cache-control", "no-cache")], 0),
        ([("cache-control", "private, no-store")], 0),
        ([("cache-control", "max-age=99999999")], 7 * 86400),
        ([("expires", "Fri, 27 Nov 2026 12:30:00 GMT")], 1800),
        ([("expires", "Fri, 27 Nov 2026 11:00:00 GMT")], 0),
        ([("expires", "0")], 0),
        ([("cache-control", "max-age=60"), ("expires", "Fri, 27 Nov 2026 12:30:00 GMT")], 60),
        ([("cache-control", "s-maxage=60")], None),
    ],
)
def test_max_age_from_headers(headers: list[tuple[str, str]], seconds: int | None) -> None:
    assert max_age_s(headers, now=NOW) == seconds


def result(status: int = 200, etag: str | None = None, lm: str | None = None) -> FetchResult:
    return FetchResult(
        final_url="https://a/f",
        status=status,
        body=b"",
        content_type=None,
        charset=None,
        etag=etag,
        last_modified=lm,
        headers=(("cache-control", "max-age=900"),),
    )


def test_feed_hints_are_recorded_on_success() -> None:
    parsed = ParsedFeed(
        title="T",
        site_url=None,
        entries=(),
        ttl_minutes=30,
        update_period_s=3600,
        skip_hours=(0, 1),
        skip_days=("Sunday",),
    )
    hints = hints_from(result(), parsed, now=NOW)
    assert (hints.max_age_s, hints.ttl_minutes, hints.update_period_s) == (900, 30, 3600)
    assert (hints.skip_hours, hints.skip_days) == ((0, 1), ("Sunday",))


@pytest.mark.parametrize(
    ("old", "response", "expected"),
    [
        # 200 replaces both validators, whatever it carries.
        (("e1", "lm1"), result(200, "e2", None), ("e2", None)),
        # 304 updates whichever validator it carries and keeps the other.
        (("e1", "lm1"), result(304, "e2", None), ("e2", "lm1")),
        (("e1", "lm1"), result(304, None, "lm2"), ("e1", "lm2")),
        (("e1", None), result(304, None, None), ("e1", None)),
    ],
)
def test_validators_after_success(
    old: tuple[str | None, str | None],
    response: FetchResult,
    expected: tuple[str | None, str | None],
) -> None:
    state = FeedState("f", "https://a/f", etag=old[0], last_modified=old[1])
    parsed = None if response.not_modified else ParsedFeed(title=None, site_url=None, entries=())
    update = after_success(state, response, parsed, now=NOW, history=EVERY_10_MIN, policy=POLICY)
    assert (update.etag, update.last_modified) == expected
    assert update.next_fetch_at == "2026-11-27T12:10:00Z"


@pytest.mark.parametrize(
    ("outcome", "retry_after", "state", "next_at", "until"),
    [
        # The third failure in a row waits 4 intervals; a Retry-After is a floor.
        ("server_error", None, "failing", "2026-11-27T12:40:00Z", None),
        ("server_error", 60, "failing", "2026-11-27T12:40:00Z", "2026-11-27T12:01:00Z"),
        ("rate_limited", 3600, "failing", "2026-11-27T13:00:00Z", "2026-11-27T13:00:00Z"),
        ("gone", None, "gone", None, None),
    ],
)
def test_failure_keeps_validators_and_honours_retry_after(
    outcome: str, retry_after: int | None, state: str, next_at: str | None, until: str | None
) -> None:
    before = FeedState("f", "https://a/f", etag="e", last_modified="lm", error_count=2)
    update = after_failure(
        before,
        outcome=outcome,
        error="x",
        now=NOW,
        retry_after_s=retry_after,
        history=EVERY_10_MIN,
        policy=POLICY,
    )
    assert (update.etag, update.last_modified) == ("e", "lm")
    assert (update.state, update.error_count) == (state, 3)
    assert (update.next_fetch_at, update.retry_after_until) == (next_at, until)


SYNDICATED = b"""<?xml version="1.0"?>
<rss version="2.0" xmlns:sy="http://purl.org/rss/1.0/modules/syndication/"><channel>
<title>t</title><ttl>30</ttl>
<sy:updatePeriod>hourly</sy:updatePeriod><sy:updateFrequency>4</sy:updateFrequency>
<skipHours><hour>0</hour><hour>1</hour><hour>23</hour><hour>99</hour></skipHours>
<skipDays><day>Sunday</day><day>saturday</day></skipDays>
<item><title>a</title><link>https://example.org/a</link></item></channel></rss>"""


def test_feed_level_hints_are_parsed() -> None:
    from aggregator.parse.feed import parse_feed

    parsed = parse_feed(SYNDICATED, url="https://example.org/feed")
    assert parsed.ttl_minutes == 30
    assert parsed.update_period_s == 900
    assert parsed.skip_hours == (0, 1, 23)
    assert parsed.skip_days == ("Saturday", "Sunday")
