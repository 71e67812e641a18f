"""How often a feed says it changes: RSS <ttl>, the syndication module's sy:updatePeriod /
sy:updateFrequency, and RSS <skipHours> / <skipDays> (pure)."""

from __future__ import annotations

import re
from typing import Any

from aggregator.times import DAYS

# feedparser keeps only the last <hour>/<day> of these blocks, so they are read from the text.
_SKIP_HOURS = re.compile(rb"<skipHours\b[^>]*>(.*?)</skipHours>", re.IGNORECASE | re.DOTALL)
_SKIP_DAYS = re.compile(rb"<skipDays\b[^>]*>(.*?)</skipDays>", re.IGNORECASE | re.DOTALL)
_HOUR = re.compile(rb"<hour\b[^>]*>\s*(\d{1,2})\s*</hour>", re.IGNORECASE)
_DAY = re.compile(rb"<day\b[^>]*>\s*([A-Za-z]+)\s*</day>", re.IGNORECASE)
_PERIOD_S = {
    "hourly": 3600,
    "daily": 86400,
    "weekly": 7 * 86400,
    "monthly": 30 * 86400,
    "yearly": 365 * 86400,
}
_SCAN_LIMIT = 64 * 1024  # the channel's own elements come before the items


def update_period_s(feed: dict[str, Any]) -> int | None:
    """sy:updatePeriod divided by sy:updateFrequency, in seconds."""
    period = _PERIOD_S.get(str(feed.get("sy_updateperiod") or "").strip().lower())
    if period is None:
        return None
    frequency = str(feed.get("sy_updatefrequency") or "1").strip()
    count = int(frequency) if frequency.isdecimal() and len(frequency) < 6 else 1
    return period // max(count, 1)


def skip_hours(document: bytes) -> tuple[int, ...]:
    block = _SKIP_HOURS.search(document, 0, _SCAN_LIMIT)
    if block is None:
        return ()
    hours = {int(h) for h in _HOUR.findall(block.group(1))}
    return tuple(sorted(h for h in hours if 0 <= h <= 23))


def skip_days(document: bytes) -> tuple[str, ...]:
    block = _SKIP_DAYS.search(document, 0, _SCAN_LIMIT)
    if block is None:
        return ()
    named = {d.decode().capitalize() for d in _DAY.findall(block.group(1))}
    return tuple(day for day in DAYS if day in named)
