"""Freshness hints from the response and the feed, recorded for the scheduler (pure)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import datetime
from email.utils import parsedate_to_datetime

from aggregator.models import FeedHints, FetchResult, ParsedFeed

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-cache|no-store)\s*(?:,|$)", re.IGNORECASE)
MAX_HINT_S = 7 * 86400  # a week: longer hints are more likely misconfiguration than intent


def _header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    return next((value for key, value in headers if key.lower() == name), None)


def max_age_s(headers: Iterable[tuple[str, str]], *, now: datetime) -> int | None:
    """Cache-Control max-age wins over Expires (RFC 9111 §5.3); no-cache/no-store mean 0."""
    headers = list(headers)
    cache_control = _header(headers, "cache-control") or ""
    if _NO_CACHE.search(cache_control):
        return 0
    if match := _MAX_AGE.search(cache_control):
        return min(int(match.group(1)), MAX_HINT_S)
    expires = _header(headers, "expires")
    if expires is None:
        return None
    try:
        when = parsedate_to_datetime(expires)
    except (TypeError, ValueError):
        return 0  # an invalid Expires means "already expired" (RFC 9111 §5.3)
    if when.tzinfo is None:
        return None
    return min(max(0, math.floor((when - now).total_seconds())), MAX_HINT_S)


def hints_from(result: FetchResult, parsed: ParsedFeed | None, *, now: datetime) -> FeedHints:
    age = max_age_s(result.headers, now=now)
    if parsed is None:
        return FeedHints(max_age_s=age)
    return FeedHints(
        max_age_s=age,
        ttl_minutes=parsed.ttl_minutes,
        update_period_s=parsed.update_period_s,
        skip_hours=parsed.skip_hours,
        skip_days=parsed.skip_days,
    )
