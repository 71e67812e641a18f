"""robots.txt for article pages: asked once per site, honoured before every page request.

Feeds are not robots-gated: the user subscribed to them. The pages their entries link to are
crawled, so each site's robots.txt is fetched (through the Fetcher, so it passes the address
guard, the limits and the politeness gap) once per scheme, host and port for the life of the
Fetcher, however many pages ask at once. Rules are matched by the product token of the user
agent ("aggregator" in "aggregator/0.1 (+https://example.org/contact)").

When robots.txt cannot be had, everything is allowed:
- 4xx (404, 410, 401, 403 ...): the site has no rules for us; RFC 9309 section 2.3.1.3.
- 5xx, timeouts, refused connections, a body over 512 KB: RFC 9309 would have a crawler stay
  away, but these pages are the ones a publisher's own feed points readers at, one page per
  entry, and a flaky robots.txt must not leave a whole run of wire copy summary-only. The page
  request that follows meets the same server and fails on its own if the server is really down,
  and the next run (a new Fetcher) asks robots.txt again.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Protocol
from urllib.parse import urlsplit

from protego import Protego

from aggregator.errors import FetchError, RobotsDisallowed
from aggregator.models import FetchResult

MAX_ROBOTS_BYTES = 512 * 1024
MAX_CRAWL_DELAY_S = 10.0  # a site asking for more still gets a page every 10 s
ROBOTS_ACCEPT = "text/plain, */*;q=0.1"
_PRODUCT = re.compile(r"\s*([A-Za-z0-9_-]+)")


class _Get(Protocol):
    def __call__(self, url: str, *, max_bytes: int, accept: str) -> Awaitable[FetchResult]: ...


def product_token(user_agent: str) -> str:
    """'aggregator' from 'aggregator/0.1 (+https://example.org/contact)': the name robots.txt
    files use for a crawler."""
    match = _PRODUCT.match(user_agent)
    return match.group(1).lower() if match else "aggregator"


class RobotsCache:
    """Each site's robots.txt rules, fetched with `get` once per site and kept."""

    def __init__(
        self, get: _Get, *, user_agent: str, on_crawl_delay: Callable[[str, float], None]
    ) -> None:
        self._get = get
        self.token = product_token(user_agent)
        self._on_crawl_delay = on_crawl_delay  # (robots.txt URL, seconds between requests)
        self._rules: dict[str, Protego | None] = {}  # site -> rules; None: everything allowed
        self._loading: dict[str, asyncio.Lock] = {}  # sites whose robots.txt is on its way

    async def check(self, url: str) -> None:
        """Raise RobotsDisallowed when the site's robots.txt keeps us away from `url`."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return  # the request itself is refused, with a better message
        site = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"  # never send credentials
        rules = await self._rules_for(site)
        if rules is not None and not rules.can_fetch(url, self.token):
            raise RobotsDisallowed(
                f"the site's robots.txt disallows fetching this page for {self.token}; "
                "the item keeps the feed's summary",
                url=url,
            )

    async def _rules_for(self, site: str) -> Protego | None:
        if site not in self._rules:
            # The first page to ask fetches; the others wait for its answer, not their own.
            lock = self._loading.setdefault(site, asyncio.Lock())
            async with lock:
                if site not in self._rules:
                    self._rules[site] = await self._load(f"{site}/robots.txt")
                    del self._loading[site]
        return self._rules[site]

    async def _load(self, robots_url: str) -> Protego | None:
        try:
            result = await self._get(robots_url, max_bytes=MAX_ROBOTS_BYTES, accept=ROBOTS_ACCEPT)
        except FetchError:  # any status but 2xx, timeouts, too large: see the module's notes
            return None
        rules = Protego.parse(result.body.decode("utf-8-sig", errors="replace"))
        delay = rules.crawl_delay(self.token)
        if delay:
            self._on_crawl_delay(robots_url, min(delay, MAX_CRAWL_DELAY_S))
        return rules
