"""What `aggregator feeds` tells the user about a feed, in words they can act on (pure).

Besides its stored state (`feeds.state`: ok, failing, gone, disabled), an ok feed is shown
as `degraded` when its article pages mostly fail (page_health.py), else as `stale` when it
answers but brings nothing new for far longer than usual. Both are worked out when shown,
never stored.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import Any

from aggregator.cli.page_health import DEGRADED, PageHealth
from aggregator.cli.page_health import advice as page_advice
from aggregator.models import FeedHistory, FeedStatus, Outcome
from aggregator.schedule.due import SchedulePolicy, is_stale
from aggregator.times import iso_utc, parse_iso

# What to do after each failure outcome, beyond the error's own words: the error already
# says what happened (and often a first hint: "(404); check the URL"), so these add the rest
# and never say it again.
NEXT_STEP = {
    Outcome.GONE: "It is no longer fetched; if it moved rather than ended, give its new URL"
    " in feeds.yaml instead.",
    Outcome.NOT_FOUND: "The site may have moved its feed: find the new address on the site and"
    " put it in feeds.yaml.",
    Outcome.FORBIDDEN: "Look for a public address of the feed, or ask its publisher to let"
    " settings.user_agent in.",
    Outcome.SERVER_ERROR: "Nothing to do unless it lasts for days; then tell the site.",
    Outcome.RATE_LIMITED: "If it keeps happening, raise this feed's interval in feeds.yaml.",
    Outcome.TIMEOUT: "It is retried automatically; if the site is only slow, raise"
    " settings.timeout.",
    Outcome.NETWORK_ERROR: "Check the host name and this machine's network; it is retried"
    " automatically.",
    Outcome.FRAGMENTED: "Tell the feed's publisher; it fails the same way until their server"
    " is fixed.",
    Outcome.TOO_LARGE: "If the feed is legitimately this large, raise settings.max_feed_size.",
    Outcome.ADDRESS_REFUSED: "Only if this is an intranet feed: list its network in"
    " allow_networks (or set allow_private_networks: true).",
    Outcome.REDIRECT_ERROR: "Put the address the redirects should end at in feeds.yaml.",
    Outcome.NOT_A_FEED: "Find the feed's own address on the site (often linked as RSS) and put"
    " it in feeds.yaml.",
    Outcome.PARSE_ERROR: "Tell the feed's publisher, or check that the URL is the feed's.",
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
    if len(parts) == 1 and parts[0] in _STATUS_WORDS:
        return parts[0]
    return " ".join(_sentence(part) for part in parts)


_STATUS_WORDS = ("ok", "ok (not modified)", "not fetched yet", "disabled")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")


def _sentence(text: str) -> str:
    """One part of the advice as a sentence of its own: a capital first letter (a stored
    error starts lower-case, to read well after a feed's name) and a full stop."""
    text = text.strip().rstrip(";,:")
    if text == "ok" or text.startswith("ok "):
        text = "OK" + text[2:]
    elif text[:1].islower() and not _SCHEME.match(text):
        text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else f"{text}."


# Feeds needing attention first: gone, failing, degraded or stale, then the healthy and the
# disabled.
STALE = "stale"
_ATTENTION = {
    FeedStatus.GONE: 0,
    FeedStatus.FAILING: 1,
    DEGRADED: 2,
    STALE: 2,
    FeedStatus.OK: 3,
    FeedStatus.DISABLED: 4,
}


def _removed(row: dict[str, Any]) -> None:
    if row["state"] == FeedStatus.DISABLED:
        return
    row["state"] = FeedStatus.DISABLED
    row["next_fetch_at"] = None
    row["last_error"] = (
        "not in feeds.yaml any more: it is not polled, and its items stay in the store"
    )


def shown_state(row: Mapping[str, Any]) -> str:
    """The state a person sees: the stored one, except that an ok feed whose pages mostly
    fail is `degraded`, and one with nothing new for far too long `stale`."""
    if row["state"] != FeedStatus.OK:
        return str(row["state"])
    if row.get("degraded"):
        return DEGRADED
    return STALE if row.get("stale") else str(row["state"])


def with_health(
    rows: list[dict[str, Any]],
    histories: Mapping[str, FeedHistory],
    *,
    now: datetime,
    policy: SchedulePolicy,
    pages: Mapping[str, PageHealth] | None = None,
    configured: Collection[str] | None = None,
) -> list[dict[str, Any]]:
    """`aggregator feeds`: mark stale and degraded feeds, add their recent article pages and
    the advice line, most urgent first. A feed the store knows but feeds.yaml (`configured`,
    when it loads) no longer lists is shown disabled at once, not due: the store records it
    so at the next fetch or run. Each row: the store's columns, then `stale`,
    `last_new_at`, `pages_recent`, `pages_failed_recent` (article pages of the last 24 h,
    tried and failed), `page_error` (the commonest error among those), `degraded`, `health`
    (the state shown) and `advice`."""
    for row in rows:
        if configured is not None and row["name"] not in configured:
            _removed(row)
        history = histories.get(row["name"], FeedHistory())
        recent = (pages or {}).get(row["name"], PageHealth())
        row["stale"] = is_stale(history, now=now, policy=policy)
        row["last_new_at"] = iso_utc(history.last_new_at) if history.last_new_at else None
        row["pages_recent"] = recent.pages
        row["pages_failed_recent"] = recent.failed
        row["page_error"] = recent.error
        row["degraded"] = recent.degraded
        row["health"] = shown_state(row)
        row["advice"] = advise(row)
        if recent.degraded and row["state"] != FeedStatus.DISABLED:
            pages_said = page_advice(str(row["name"]), recent)
            healthy = row["advice"] in ("ok", "ok (not modified)")
            row["advice"] = pages_said if healthy else f"{row['advice']} {pages_said}"

    def urgency(row: dict[str, Any]) -> tuple[int, str]:
        return _ATTENTION.get(row["health"], 3), str(row["name"])

    return sorted(rows, key=urgency)


ADVICE = "what happened / what to do"
PAGES = "failed 24h"


def table_rows(rows: Iterable[Mapping[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """`with_health`'s rows as the `aggregator feeds` table shows them (wrap ADVICE)."""
    return [
        {
            "feed": r["name"],
            "state": r["health"],
            "items": r["items"],
            # Article pages of the last 24 h: how many of those tried failed.
            PAGES: f"{r['pages_failed_recent']} of {r['pages_recent']}"
            if r["pages_recent"]
            else "",
            "last fetch": relative(r["last_fetched_at"], now),
            "last success": relative(r["last_success_at"], now),
            "next due": relative(r["next_fetch_at"], now),
            "errors": r["error_count"],
            ADVICE: r["advice"],
        }
        for r in rows
    ]


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
