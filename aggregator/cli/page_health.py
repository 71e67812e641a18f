"""How a feed's recent article pages fared, and when that makes the feed `degraded` (pure).

Degraded: of the article pages of the entries a feed brought in the last PAGE_WINDOW (24 h),
at least DEGRADED_MIN_PAGES (5) were tried (extracted or failed) and more than half of them
failed. Fewer pages say too little: one dead link among three is not a broken site. It is
worked out from the store each time, never stored: it moves with the clock, and tools that
read `feeds.state` keep the four values they know (ok, failing, gone, disabled).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aggregator.models import ExtractStatus
from aggregator.times import iso_utc

PAGE_WINDOW = timedelta(hours=24)
DEGRADED_MIN_PAGES = 5
DEGRADED = "degraded"


@dataclass(frozen=True, slots=True)
class PageHealth:
    """A feed's article pages in the window."""

    pages: int = 0  # tried: extracted or failed
    failed: int = 0
    error: str | None = None  # the commonest error among the failed, as one of them said it
    error_pages: int = 0  # how many failed that way

    @property
    def degraded(self) -> bool:
        return self.pages >= DEGRADED_MIN_PAGES and 2 * self.failed > self.pages


def pages_since(now: datetime) -> str:
    """Where the window opens, for `Reader.recent_pages`."""
    return iso_utc(now - PAGE_WINDOW)


# An address inside an error: errors that differ only by the page they name are one kind.
_ADDRESS = re.compile(r"\S+://\S+")


def page_health(rows: Iterable[Mapping[str, Any]]) -> dict[str, PageHealth]:
    """Per feed, from `Reader.recent_pages` rows (feed, status, error, pages)."""
    pages: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    kinds: dict[str, Counter[str]] = {}
    said: dict[tuple[str, str], str] = {}  # (feed, kind) -> one error of that kind, verbatim
    for row in rows:
        feed, count = str(row["feed"]), int(row["pages"])
        pages[feed] += count
        if row["status"] != ExtractStatus.FAILED:
            continue
        failed[feed] += count
        error = str(row["error"] or "no reason was recorded")
        kind = _ADDRESS.sub("<address>", error)
        kinds.setdefault(feed, Counter())[kind] += count
        said.setdefault((feed, kind), error)
    health = {}
    for feed, tried in pages.items():
        commonest = kinds[feed].most_common(1)[0] if feed in kinds else None
        health[feed] = PageHealth(
            pages=tried,
            failed=failed[feed],
            error=said[feed, commonest[0]] if commonest else None,
            error_pages=commonest[1] if commonest else 0,
        )
    return health


# What to do when a feed's pages fail, by words of its commonest error (as fetch/client.py,
# fetch/robots.py, fetch/address_guard.py, engine/stages.py and extract/article.py put
# them); the first match wins.
_NEXT_STEP: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("could not resolve host",),
        "Its links name a host that does not resolve (DNS): check the links in the feed (the"
        " site may have moved, or the feed links to a wrong host) and this machine's DNS.",
    ),
    (
        ("connection refused", "could not connect", "connection to host"),
        "The site its links point at refuses or drops connections: check that it is up and"
        " that the links name the right host and port.",
    ),
    (
        ("(404)", "(410"),
        "Its links lead to pages that do not exist: tell the feed's publisher; if its"
        " summaries are enough, set `extract: false` on the feed.",
    ),
    (
        ("access denied",),
        "The site refuses us its pages: it may block settings.user_agent or need a login;"
        " if the summaries are enough, set `extract: false` on the feed.",
    ),
    (
        ("robots.txt",),
        "The site's robots.txt asks crawlers to keep away from its pages: set"
        " `extract: false` on the feed.",
    ),
    (("rate limited",), "The site asks us to slow down: raise the feed's interval."),
    (
        ("the server failed",),
        "The site is having trouble; its pages are tried again with the next fetches.",
    ),
    (
        ("in time", "stopped answering", "no complete response"),
        "The site is too slow or unreachable; its pages are tried again with the next"
        " fetches (or raise settings.timeout).",
    ),
    (
        ("not a public address", "refused to fetch", "only http and https"),
        "Its links point at addresses that are refused: only if those pages really live on"
        " your intranet, list their network in settings.allow_networks.",
    ),
    (
        ("not an html article page", "not html"),
        "Its links lead to files, not article pages: set `extract: false` on the feed.",
    ),
    (
        ("no article text found", "could not be read"),
        "Extraction finds no article text on its pages (a paywall, or pages built by"
        " scripts): if the summaries are enough, set `extract: false` on the feed.",
    ),
    (("max_page_size",), "Raise settings.max_page_size if pages that large are legitimate."),
)


def reason(health: PageHealth) -> str:
    """Why a feed is degraded, in words: how many pages failed, and the commonest error."""
    hours = int(PAGE_WINDOW.total_seconds() // 3600)
    return (
        f"{health.failed} of its {health.pages} article pages of the last {hours} h failed,"
        f" {health.error_pages} with: {health.error or 'no reason was recorded'}"
    )


def next_step(feed: str, health: PageHealth) -> str:
    """What to do about it, then how to have the pages extracted again."""
    lowered = (health.error or "").lower()
    step = next(
        (words for needles, words in _NEXT_STEP if any(n in lowered for n in needles)),
        f"See what failed with `aggregator items --feed {feed} --status failed`.",
    )
    return f"{step} Once fixed, `aggregator retry --feed {feed}` extracts them again now."


def advice(feed: str, health: PageHealth) -> str:
    return f"Degraded: {reason(health)}. {next_step(feed, health)}"
