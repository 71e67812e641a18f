"""What `aggregator feeds` tells the user about a feed, in words they can act on (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aggregator.models import FeedHistory, FeedStatus, Outcome
from aggregator.schedule.due import SchedulePolicy, is_stale
from aggregator.times import iso_utc, parse_iso

# What to do after each failure outcome, beyond the error's own words.
NEXT_STEP = {
    Outcome.GONE: "Remove the feed from feeds.yaml or give it a new URL; it is no longer fetched.",
    Outcome.NOT_FOUND: "Check the URL in feeds.yaml; the site may have moved its feed.",
    Outcome.FORBIDDEN: (
        "The server refuses us; check whether the feed needs a login or another URL."
    ),
    Outcome.SERVER_ERROR: "The site is having trouble; it is retried automatically.",
    Outcome.RATE_LIMITED: "The site asked us to slow down; raise this feed's interval.",
    Outcome.TIMEOUT: "The site is slow or unreachable; it is retried automatically.",
    Outcome.NETWORK_ERROR: "Check the host name and your network; it is retried automatically.",
    Outcome.FRAGMENTED: "The server sends its body a few bytes at a time; tell its publisher.",
    Outcome.TOO_LARGE: (
        "The response exceeds the size cap; raise max_feed_size if it is legitimate."
    ),
    Outcome.ADDRESS_REFUSED: "Only if this is an intranet feed: list its network in "
    "allow_networks (or set allow_private_networks: true).",
    Outcome.REDIRECT_ERROR: "The URL redirects in a loop or too often; fix the URL in feeds.yaml.",
    Outcome.NOT_A_FEED: "The URL serves no feed; find the feed's address on the site.",
    Outcome.PARSE_ERROR: "The feed cannot be read; tell its publisher, or check the URL.",
    Outcome.INTERNAL_ERROR: "This is a bug in aggregator; please report it with this message.",
}


def advise(feed: dict[str, Any]) -> str:
    """One line: what happened last, and what to do if anything."""
    parts: list[str] = []
    outcome = feed.get("last_outcome")
    if feed.get("state") == FeedStatus.DISABLED:
        parts.append(feed.get("last_error") or "disabled")
    elif feed.get("last_error"):
        parts.append(str(feed["last_error"]))
        if outcome in NEXT_STEP:
            parts.append(NEXT_STEP[outcome])
    elif outcome is None:
        parts.append("not fetched yet")
    elif feed.get("stale"):
        since = feed.get("last_new_at") or "it was added"
        parts.append(
            f"Stale: it answers, but no new entry since {since}, far longer than its usual "
            "rhythm; check that the feed still updates, or whether it moved."
        )
    else:
        parts.append("ok" if outcome == Outcome.OK else "ok (not modified)")
    if feed.get("permanent_url") and feed.get("permanent_url") != feed.get("url"):
        parts.append(f"Moved permanently to {feed['permanent_url']}: update its url in feeds.yaml.")
    if feed.get("last_warning"):
        parts.append(f"Warning: {feed['last_warning']}")
    return " ".join(parts)


# Feeds needing attention first: gone, failing, stale, then the healthy and the disabled.
_ATTENTION = {FeedStatus.GONE: 0, FeedStatus.FAILING: 1, FeedStatus.OK: 3, FeedStatus.DISABLED: 4}


def with_health(
    rows: list[dict[str, Any]],
    histories: Mapping[str, FeedHistory],
    *,
    now: datetime,
    policy: SchedulePolicy,
) -> list[dict[str, Any]]:
    """`aggregator feeds`: mark stale feeds, add the advice line, most urgent first."""
    for row in rows:
        history = histories.get(row["name"], FeedHistory())
        row["stale"] = is_stale(history, now=now, policy=policy)
        row["last_new_at"] = iso_utc(history.last_new_at) if history.last_new_at else None
        row["advice"] = advise(row)

    def urgency(row: dict[str, Any]) -> tuple[int, str]:
        rank = (
            2 if row["stale"] and row["state"] == FeedStatus.OK else _ATTENTION.get(row["state"], 3)
        )
        return rank, str(row["name"])

    return sorted(rows, key=urgency)


_UNITS = ((86400, "d"), (3600, "h"), (60, "m"))


def relative(stamp: str | None, now: datetime) -> str:
    """A stored time as a person reads it in a table: "3m ago", "in 2h", "now"."""
    if not stamp:
        return ""
    seconds = (parse_iso(stamp) - now).total_seconds()
    amount = abs(seconds)
    if amount < 60:
        return "now"
    size, unit = next((size, unit) for size, unit in _UNITS if amount >= size)
    text = f"{int(amount // size)}{unit}"
    return f"in {text}" if seconds > 0 else f"{text} ago"
