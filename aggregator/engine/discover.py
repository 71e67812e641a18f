"""`aggregator feeds discover URL`: the feeds a site offers, each one checked.

The page is fetched through the project's Fetcher, so the address guard (every redirect hop
too), the size caps and the deadlines hold as for any feed. The candidates are the page itself
(it may be a feed), the feeds its head advertises (`rel="alternate"`) and the usual feed paths
of the site (/feed, /rss.xml, ...); each is fetched and parsed, and only what parses as a feed
is offered.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urljoin, urlsplit

from aggregator.engine.stages import FEED_ACCEPT, HTML_TYPES, PAGE_ACCEPT
from aggregator.errors import AddressRefused, FetchError, ParseError, UsageError
from aggregator.extract.charset import decode_html
from aggregator.fetch.client import Fetcher
from aggregator.models import FetchResult, Settings
from aggregator.parse.alternates import feed_links
from aggregator.parse.feed import parse_feed
from aggregator.urls import canonical_url

# Where sites (WordPress, Blogger, Hugo, Ghost, Jekyll...) usually keep their feed.
USUAL_PATHS = ("/feed", "/rss", "/rss.xml", "/atom.xml", "/feed.xml", "/index.xml")
BLOGGER_PATH = "/feeds/posts/default"
FORMATS = {
    "rss090": "RSS 0.90",
    "rss091n": "RSS 0.91",
    "rss091u": "RSS 0.91",
    "rss092": "RSS 0.92",
    "rss093": "RSS 0.93",
    "rss094": "RSS 0.94",
    "rss10": "RSS 1.0",
    "rss20": "RSS 2.0",
    "atom03": "Atom 0.3",
    "atom10": "Atom 1.0",
    "json10": "JSON Feed 1.0",
    "json11": "JSON Feed 1.1",
}

# Feeds a page advertises that are checked at most.
MAX_ADVERTISED = 20


class Found(StrEnum):
    """How a candidate came to be tried, as the listing says it."""

    PAGE = "the address itself"
    LINK = "advertised by the page"
    GUESS = "a usual feed address"


@dataclass(frozen=True, slots=True)
class Candidate:
    url: str
    found: Found
    title: str | None = None  # the link's title attribute


@dataclass(frozen=True, slots=True)
class DiscoveredFeed:
    url: str  # the address to subscribe to: a permanent redirect's target if there was one
    title: str | None
    format: str  # "RSS 2.0", "Atom 1.0", "JSON Feed 1.1"
    entries: int
    found: Found


@dataclass(frozen=True, slots=True)
class Discovery:
    page_url: str
    feeds: tuple[DiscoveredFeed, ...]
    not_feeds: tuple[tuple[Candidate, str], ...]  # advertised (or the page) but no feed: why
    page_error: str | None  # the page itself could not be fetched
    tried: int  # candidates fetched


def site_url(text: str) -> str:
    """What the person typed, as an http(s) URL: `example.org` is https://example.org/."""
    text = text.strip()
    if "://" not in text:
        text = f"https://{text}"
    if canonical_url(text) is None:
        raise UsageError(
            f"{text!r} is not an http(s) address; give a site or page, e.g. https://tass.com/"
        )
    return text


async def discover_feeds(url: str, settings: Settings) -> Discovery:
    """The feeds `url` leads to. AddressRefused when the address guard refuses the page
    (an intranet address not allowed in feeds.yaml): nothing else is tried then."""
    async with Fetcher(settings) as fetcher:
        found: list[DiscoveredFeed] = []
        not_feeds: list[tuple[Candidate, str]] = []
        candidates: list[Candidate] = []
        page_error: str | None = None
        try:
            page = await fetcher.get(url, max_bytes=settings.max_page_bytes, accept=PAGE_ACCEPT)
        except AddressRefused:
            raise
        except FetchError as exc:
            page_error = str(exc)
        else:
            itself, _ = _as_feed(Candidate(url, Found.PAGE), page, settings)
            if itself is not None:
                found.append(itself)
            else:
                text = decode_html(page.body, page.charset)
                links = feed_links(text, base_url=page.final_url)
                # A page may advertise thousands: each is a request, so only the first few.
                candidates += [
                    Candidate(link.url, Found.LINK, link.title) for link in links[:MAX_ADVERTISED]
                ]
        candidates += [Candidate(guess, Found.GUESS) for guess in _usual_addresses(url)]
        candidates = _each_once([Candidate(url, Found.PAGE), *candidates])[1:]
        checks = await asyncio.gather(*(_check(fetcher, c, settings) for c in candidates))
    seen = {canonical_url(feed.url) for feed in found}
    for candidate, (feed, why) in zip(candidates, checks, strict=True):
        if feed is not None and canonical_url(feed.url) not in seen:
            seen.add(canonical_url(feed.url))
            found.append(feed)
        elif feed is None and candidate.found == Found.LINK:
            not_feeds.append((candidate, why))
    return Discovery(url, tuple(found), tuple(not_feeds), page_error, len(candidates) + 1)


def _usual_addresses(url: str) -> list[str]:
    """The usual feed paths at the site's root."""
    parts = urlsplit(url)
    root = f"{parts.scheme}://{parts.netloc}/"
    return [urljoin(root, path) for path in (*USUAL_PATHS, BLOGGER_PATH)]


def _each_once(candidates: list[Candidate]) -> list[Candidate]:
    """The first candidate of each canonical URL: a link beats the same address guessed."""
    kept: dict[str | None, Candidate] = {}
    for candidate in candidates:
        kept.setdefault(canonical_url(candidate.url), candidate)
    return list(kept.values())


async def _check(
    fetcher: Fetcher, candidate: Candidate, settings: Settings
) -> tuple[DiscoveredFeed | None, str]:
    """The candidate as a feed, or None and why it is not one."""
    try:
        response = await fetcher.get(
            candidate.url, max_bytes=settings.max_feed_bytes, accept=FEED_ACCEPT
        )
    except FetchError as exc:
        return None, str(exc)
    return _as_feed(candidate, response, settings)


def _as_feed(
    candidate: Candidate, response: FetchResult, settings: Settings
) -> tuple[DiscoveredFeed | None, str]:
    if response.content_type in HTML_TYPES:
        return None, f"the address serves a web page ({response.content_type}), not a feed"
    try:
        parsed = parse_feed(
            response.body,
            url=response.final_url,
            content_type=response.content_type,
            charset=response.charset,
            max_entries=settings.max_entries,
        )
    except ParseError as exc:
        return None, str(exc)
    feed = DiscoveredFeed(
        # A feed that moved for good is subscribed to where it is now.
        url=response.permanent_redirect or candidate.url,
        title=parsed.title or candidate.title,
        format=FORMATS.get(parsed.version, parsed.version or "feed"),
        entries=parsed.total_entries or len(parsed.entries),
        found=candidate.found,
    )
    return feed, ""
