"""robots.txt for article pages: asked once per site a day, honoured before every page request.

Feeds are not robots-gated: the user subscribed to them. The pages their entries link to are
crawled, so each site's robots.txt is fetched (through the Fetcher, so it passes the address
guard, the limits and the politeness gap) once per scheme, host and port, however many pages
ask at once, and kept for a day (RFC 9309 section 2.4: no longer than 24 hours). The daemon's
Fetcher lives for weeks, so the answers of at most 10,000 sites are kept; the site asked about
least recently is forgotten first. Rules are matched by the product token of the user agent
("aggregator" in "aggregator/0.1 (+https://example.org/contact)"); a Crawl-delay (at most
10 s) spaces the site's page requests.

When robots.txt cannot be had, everything is allowed:
- 4xx other than 429 (404, 410, 401, 403 ...): the site has no rules for us; RFC 9309 section
  2.3.1.3. That answer is kept for a day, as rules are.
- 429, 5xx, timeouts, refused connections, a body over 512 KB: RFC 9309 would have a crawler
  stay away, but these pages are the ones a publisher's own feed points readers at, one page
  per entry, and a flaky robots.txt must not leave a whole run of wire copy summary-only. The
  page request that follows meets the same server and fails on its own if the server is really
  down, and robots.txt is asked again an hour later.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from protego import Protego

from aggregator.errors import FetchError, HTTPStatusError, RobotsDisallowed
from aggregator.models import FetchResult

MAX_ROBOTS_BYTES = 512 * 1024
MAX_CRAWL_DELAY_S = 10.0  # a site asking for more still gets a page every 10 s
RULES_TTL_S = 24 * 60 * 60.0  # rules (or a 4xx: no rules) are asked for again after a day
UNAVAILABLE_TTL_S = 60 * 60.0  # a robots.txt that could not be had, after an hour
MAX_SITES = 10_000
ROBOTS_ACCEPT = "text/plain, */*;q=0.1"
_PRODUCT = re.compile(r"\s*([A-Za-z0-9_-]+)")


class _Get(Protocol):
    def __call__(self, url: str, *, max_bytes: int, accept: str) -> Awaitable[FetchResult]: ...


def product_token(user_agent: str) -> str:
    """'aggregator' from 'aggregator/0.1 (+https://example.org/contact)': the name robots.txt
    files use for a crawler."""
    match = _PRODUCT.match(user_agent)
    return match.group(1).lower() if match else "aggregator"


@dataclass(frozen=True)
class _Answer:
    """What a site's robots.txt says, until `expires` (a `clock` reading)."""

    rules: Protego | None  # None: everything allowed
    crawl_delay_s: float
    expires: float


class RobotsCache:
    """Each site's robots.txt rules, fetched with `get`, kept a day (an hour when it could not
    be had) for at most `max_sites` sites. `clock` counts seconds (time.monotonic)."""

    def __init__(
        self,
        get: _Get,
        *,
        user_agent: str,
        clock: Callable[[], float] = time.monotonic,
        max_sites: int = MAX_SITES,
    ) -> None:
        self._get = get
        self.token = product_token(user_agent)
        self._clock = clock
        self._max_sites = max_sites
        self._answers: OrderedDict[str, _Answer] = OrderedDict()  # least recently asked first
        self._loading: dict[str, asyncio.Lock] = {}  # sites whose robots.txt is on its way

    async def check(self, url: str) -> float:
        """Raise RobotsDisallowed when the site's robots.txt keeps us away from `url`; else
        the seconds it asks us to leave between requests (Crawl-delay; 0 when it asks none)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return 0.0  # the request itself is refused, with a better message
        site = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"  # never send credentials
        answer = await self._answer_for(site)
        if answer.rules is not None and not answer.rules.can_fetch(url, self.token):
            raise RobotsDisallowed(
                f"the site's robots.txt disallows fetching this page for {self.token}; "
                "the item keeps the feed's summary",
                url=url,
            )
        return answer.crawl_delay_s

    async def _answer_for(self, site: str) -> _Answer:
        answer = self._fresh(site)
        if answer is None:
            # The first page to ask fetches; the others wait for its answer, not their own.
            lock = self._loading.setdefault(site, asyncio.Lock())
            async with lock:
                answer = self._fresh(site)
                if answer is None:
                    try:
                        answer = await self._load(f"{site}/robots.txt")
                    finally:
                        self._loading.pop(site, None)
                    self._keep(site, answer)
        return answer

    def _fresh(self, site: str) -> _Answer | None:
        answer = self._answers.get(site)
        if answer is None or answer.expires <= self._clock():
            return None
        self._answers.move_to_end(site)
        return answer

    def _keep(self, site: str, answer: _Answer) -> None:
        self._answers[site] = answer
        self._answers.move_to_end(site)
        while len(self._answers) > self._max_sites:
            self._answers.popitem(last=False)

    async def _load(self, robots_url: str) -> _Answer:
        try:
            result = await self._get(robots_url, max_bytes=MAX_ROBOTS_BYTES, accept=ROBOTS_ACCEPT)
        except HTTPStatusError as exc:  # see the module's notes
            no_rules = 400 <= exc.status < 500 and exc.status != 429
            return self._allow_all(RULES_TTL_S if no_rules else UNAVAILABLE_TTL_S)
        except FetchError:  # timeouts, refused connections, too large: see the module's notes
            return self._allow_all(UNAVAILABLE_TTL_S)
        rules = Protego.parse(result.body.decode("utf-8-sig", errors="replace"))
        delay = min(max(rules.crawl_delay(self.token) or 0.0, 0.0), MAX_CRAWL_DELAY_S)
        return _Answer(rules, delay, self._clock() + RULES_TTL_S)

    def _allow_all(self, ttl_s: float) -> _Answer:
        return _Answer(None, 0.0, self._clock() + ttl_s)
