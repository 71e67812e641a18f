"""What `aggregator feeds` tells the user about a feed, in words they can act on (pure)."""

from __future__ import annotations

from typing import Any

# What to do after each failure outcome, beyond the error's own words.
NEXT_STEP = {
    "gone": "Remove the feed from feeds.yaml or give it a new URL; it is no longer fetched.",
    "not_found": "Check the URL in feeds.yaml; the site may have moved its feed.",
    "forbidden": "The server refuses us; check whether the feed needs a login or another URL.",
    "server_error": "The site is having trouble; it is retried automatically.",
    "rate_limited": "The site asked us to slow down; raise this feed's interval.",
    "timeout": "The site is slow or unreachable; it is retried automatically.",
    "network_error": "Check the host name and your network; it is retried automatically.",
    "too_large": "The response exceeds the size cap; raise max_feed_size if it is legitimate.",
    "address_refused": "Set allow_private_networks: true only if this is an intranet feed.",
    "redirect_error": "The URL redirects in a loop or too often; fix the URL in feeds.yaml.",
    "not_a_feed": "The URL serves no feed; find the feed's address on the site.",
    "parse_error": "The feed cannot be read; tell its publisher, or check the URL.",
    "internal_error": "This is a bug in aggregator; please report it with this message.",
}


def advise(feed: dict[str, Any]) -> str:
    """One line: what happened last, and what to do if anything."""
    parts: list[str] = []
    outcome = feed.get("last_outcome")
    if feed.get("state") == "disabled":
        parts.append(feed.get("last_error") or "disabled")
    elif feed.get("last_error"):
        parts.append(str(feed["last_error"]))
        if outcome in NEXT_STEP:
            parts.append(NEXT_STEP[outcome])
    elif outcome is None:
        parts.append("not fetched yet")
    else:
        parts.append("ok" if outcome == "ok" else "ok (not modified)")
    if feed.get("permanent_url") and feed.get("permanent_url") != feed.get("url"):
        parts.append(f"Moved permanently to {feed['permanent_url']}: update its url in feeds.yaml.")
    if feed.get("last_warning"):
        parts.append(f"Warning: {feed['last_warning']}")
    return " ".join(parts)
