"""HTTP for the whole project: conditional GET with limits, deadlines and the address guard.

With public_transport.py (its connection layer), the only module that imports httpx and
httpcore; their errors become the project's own here.
Redirects are followed by hand so that every hop passes the guard (and, for article pages,
robots.txt), and connections go only to the addresses the guard passed.
Requests to one host start at least `settings.host_gap_s` apart, article pages at least the
site's robots.txt Crawl-delay. Bodies are decompressed by `decoding`, not by httpx, so the
size cap holds after decompression.
"""

from __future__ import annotations

import asyncio
import math
import socket
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

import httpx

from aggregator.errors import FetchError, FetchTimeout, HTTPStatusError, TooManyRedirects
from aggregator.fetch import address_guard
from aggregator.fetch.body import ACCEPT_ENCODING, read_body
from aggregator.fetch.robots import RobotsCache
from aggregator.fetch.transport import public_only_transport
from aggregator.models import FetchResult, Settings, Validators

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_PERMANENT = frozenset({301, 308})
_MAX_RETRY_AFTER_S = 24 * 60 * 60
_KEEP_STARTS = 1024  # hosts whose last request start is remembered before pruning


def parse_retry_after(value: str | None, *, now: datetime) -> int | None:
    """Seconds to wait from a Retry-After header (a delay or an HTTP date), at most a day."""
    value = (value or "").strip()
    if value.isascii() and value.isdigit():
        seconds = int(value) if len(value) < 10 else _MAX_RETRY_AFTER_S
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # "-0000": UTC by RFC 5322
            when = when.replace(tzinfo=UTC)
        seconds = max(0, math.ceil((when - now).total_seconds()))
    return min(seconds, _MAX_RETRY_AFTER_S)


def _status_message(status: int, retry_after_s: int | None, what: str = "feed") -> str:
    """`what` is "feed" or "page": the advice differs for an article page."""
    if status == 404:
        fix = "check the URL" if what == "feed" else "the article may have been taken down"
        return f"the server says the {what} does not exist (404); {fix}"
    if status == 410:
        fix = "remove it from feeds.yaml" if what == "feed" else "the article was withdrawn"
        return f"the {what} was removed for good (410 Gone); {fix}"
    if status in (401, 403):
        return f"access denied ({status}); the {what} needs a login or blocks this user agent"
    if status == 429:
        when = "later" if retry_after_s is None else f"after {retry_after_s} s"
        return f"rate limited by the server (429); it will be retried {when}"
    if status >= 500:
        return f"the server failed ({status}); it will be retried"
    return f"the server answered {status}, which carries no feed or page"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and everything that led to it, groups included (anyio groups connect errors)."""
    stack, seen = [exc], set()
    while stack:
        current = stack.pop()
        if id(current) not in seen:
            seen.add(id(current))
            yield current
            if isinstance(current, BaseExceptionGroup):
                stack.extend(current.exceptions)
            stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)


# What to say about a failed request: the first kind found anywhere in its chain of causes.
_PLAIN_WORDS: tuple[tuple[type[BaseException], str], ...] = (
    (ssl.SSLCertVerificationError, "TLS certificate error for host {host}: {e.verify_message}"),
    (ssl.SSLError, "TLS error with host {host}: {e}"),
    (ConnectionRefusedError, "connection refused by host {host}"),
    (socket.gaierror, "could not resolve host {host}"),
    (httpx.RemoteProtocolError, "host {host} broke the HTTP protocol: {e}"),
    (httpx.ConnectError, "could not connect to host {host}: {e}"),
)


def _describe(exc: Exception, host: str) -> str:
    causes = list(_causes(exc))
    # h11 gives up on a response whose headers pass httpcore's 100 KB cap ("Receive buffer too
    # long"), marking it with 431, the status for oversized headers; duck-typed, not imported.
    if any(getattr(c, "error_status_hint", None) == 431 for c in causes):
        return f"host {host} sent oversized or malformed headers (over 100 KB); nothing was read"
    for kind, words in _PLAIN_WORDS:
        cause = next((c for c in causes if isinstance(c, kind)), None)
        if cause is not None:
            return words.format(host=host, e=cause)
    return f"the connection to host {host} failed: {str(exc) or type(exc).__name__}"


@contextmanager
def _translated(url: httpx.URL, policy: address_guard.NetworkPolicy) -> Iterator[None]:
    """httpx, ssl and socket errors become FetchError with a plain message."""
    try:
        yield
    except address_guard.NotPublic as exc:  # refused by the connection layer: nothing was sent
        address_guard.check_address(str(url), exc.host, exc.address, policy)  # AddressRefused
        raise
    except httpx.ConnectTimeout as exc:
        raise FetchTimeout(f"could not connect to host {url.host} in time", url=str(url)) from exc
    except httpx.TimeoutException as exc:
        raise FetchTimeout(f"host {url.host} stopped answering", url=str(url)) from exc
    except (httpx.HTTPError, httpx.InvalidURL, ssl.SSLError, OSError) as exc:
        raise FetchError(_describe(exc, url.host), url=str(url)) from exc


class _Deadline:
    """One time budget for a whole fetch, spent only while a request is actually running."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.used = 0.0

    @asynccontextmanager
    async def running(self, url: httpx.URL) -> AsyncIterator[None]:
        start = time.monotonic()
        try:
            async with asyncio.timeout(max(self.seconds - self.used, 0.0)):
                yield
        except TimeoutError:
            raise FetchTimeout(
                f"no complete response within {self.seconds:g} s from host {url.host}; "
                "the server is too slow or not answering",
                url=str(url),
            ) from None
        finally:
            self.used += time.monotonic() - start


@dataclass
class _Slot:
    semaphore: asyncio.Semaphore
    turn: asyncio.Lock = field(default_factory=asyncio.Lock)  # one at a time waits its turn
    users: int = 0


class _HostSlots:
    """Per host: at most `per_host` requests in flight, their starts at least a gap apart.

    A host's semaphore is forgotten once nobody holds or awaits it; when the host's last
    request started is kept while it may still delay the next one (for the longest gap any
    request has asked for), so the table stays the size of the hosts asked lately.
    """

    def __init__(self, per_host: int, gap_s: float) -> None:
        self._per_host, self._gap_s = per_host, gap_s
        self._slots: dict[str, _Slot] = {}
        self._started: dict[str, float] = {}  # host -> loop time its last request started
        self._longest_gap = gap_s
        self._prune_at = _KEEP_STARTS

    @asynccontextmanager
    async def hold(
        self, host: str, in_flight: asyncio.Semaphore, *, gap_s: float = 0.0
    ) -> AsyncIterator[None]:
        """The host's slot, then its turn, then one of `in_flight`; all held for the block.

        The request starts `gap_s` (a robots.txt Crawl-delay) after the host's last one, or
        the usual gap if that is longer. The host slot comes before the global one and the
        wait for the host's turn happens in between, so a host that must be waited for never
        keeps other hosts waiting.
        """
        gap_s = max(gap_s, self._gap_s)
        self._longest_gap = max(self._longest_gap, gap_s)
        slot = self._slots.setdefault(host, _Slot(asyncio.Semaphore(self._per_host)))
        slot.users += 1
        try:
            async with slot.semaphore:
                async with slot.turn:
                    loop = asyncio.get_running_loop()
                    delay = self._started.get(host, -math.inf) + gap_s - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    await in_flight.acquire()
                    self._remember_start(host, loop.time())
                try:
                    yield
                finally:
                    in_flight.release()
        finally:
            slot.users -= 1
            if slot.users == 0:
                del self._slots[host]

    def _remember_start(self, host: str, now: float) -> None:
        self._started[host] = now
        if len(self._started) > self._prune_at:  # forget the hosts no longer held back
            kept = now - self._longest_gap
            self._started = {h: t for h, t in self._started.items() if t > kept}
            self._prune_at = max(_KEEP_STARTS, 2 * len(self._started))


class HostSlots(Protocol):
    """When a request to a host may start: `_HostSlots` within this process by default; the
    distributed mode's workers pass one that shares the hosts' turns through Redis."""

    def hold(
        self, host: str, in_flight: asyncio.Semaphore, *, gap_s: float = 0.0
    ) -> AbstractAsyncContextManager[None]: ...


@dataclass(frozen=True)
class _Hop:
    """One request's answer; the body is read only for 2xx and 304."""

    url: httpx.URL
    status: int
    headers: httpx.Headers
    body: bytes = b""


class Fetcher:
    """Every HTTP request of a run, over one connection pool: `async with Fetcher(s) as f:`."""

    def __init__(self, settings: Settings, *, host_slots: HostSlots | None = None) -> None:
        self._settings = settings
        self._policy = address_guard.NetworkPolicy.of(
            settings.allow_networks, allow_private_networks=settings.allow_private_networks
        )
        slots = settings.concurrency
        limits = httpx.Limits(max_connections=slots, max_keepalive_connections=slots)
        self._client = httpx.AsyncClient(
            follow_redirects=False,  # followed in `_follow`, so every hop passes the guard
            # read, write and pool; the total deadline in `get` is what really bounds a fetch
            timeout=httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
            headers={"User-Agent": settings.user_agent, "Accept-Encoding": ACCEPT_ENCODING},
            limits=limits,
            http2=False,
            trust_env=False,  # a proxy from the environment would hide the peer from the guard
            # Always the guarded connection layer: metadata addresses stay refused even
            # where private networks are allowed.
            transport=public_only_transport(limits, self._policy),
        )
        self._in_flight = asyncio.Semaphore(settings.concurrency)
        self._hosts = host_slots or _HostSlots(settings.per_host, settings.host_gap_s)
        self._robots = RobotsCache(self.get, user_agent=settings.user_agent)

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get(
        self, url: str, *, validators: Validators | None = None, max_bytes: int, accept: str = "*/*"
    ) -> FetchResult:
        """GET `url` following redirects: 2xx and 304 are returned, anything else raises.

        Validators go with every hop, so a redirect target that knows them can answer 304.
        `settings.timeout_s` bounds the time spent in requests (not queueing for a slot).
        Feeds come here: the user subscribed to them, so robots.txt is not asked.
        """
        return await self._follow(url, validators, max_bytes, accept, robots=False)

    async def get_page(self, url: str, *, max_bytes: int, accept: str = "*/*") -> FetchResult:
        """GET an article page as `get` does, if the site's robots.txt lets us.

        Every hop is asked (a feed's link often redirects to another site). Raises
        RobotsDisallowed when a robots.txt says no; its Crawl-delay spaces the page requests.
        """
        return await self._follow(url, None, max_bytes, accept, robots=True)

    async def _follow(
        self, url: str, validators: Validators | None, max_bytes: int, accept: str, *, robots: bool
    ) -> FetchResult:
        headers = _request_headers(validators, accept)
        current = _parse_url(url)
        chain = [str(current)]
        permanent: str | None = None
        all_permanent = True
        deadline = _Deadline(self._settings.timeout_s)
        for _ in range(self._settings.max_redirects + 1):
            # Before any slot is taken: robots.txt needs one of its own.
            crawl_delay_s = await self._robots.check(str(current)) if robots else 0.0
            hop = await self._request(current, headers, max_bytes, deadline, crawl_delay_s)
            if hop.status not in _REDIRECTS:
                return _result(
                    hop,
                    validators,
                    permanent,
                    round(deadline.used * 1000),
                    what="page" if robots else "feed",
                )
            current = _redirect_target(hop)
            all_permanent = all_permanent and hop.status in _PERMANENT
            if all_permanent:
                permanent = str(current)
            chain.append(str(current))
        raise TooManyRedirects(_redirect_message(chain, self._settings.max_redirects), url=url)

    async def _request(
        self,
        url: httpx.URL,
        headers: dict[str, str],
        max_bytes: int,
        deadline: _Deadline,
        gap_s: float = 0.0,
    ) -> _Hop:
        address_guard.check_scheme(str(url))
        if not url.host:
            raise FetchError(f"the address {url} names no host", url=str(url))
        # Host slot before the global one, and neither kept across hops: no request ever
        # holds one while waiting for another that its waiters hold.
        hold = self._hosts.hold(url.host, self._in_flight, gap_s=gap_s)
        async with hold, deadline.running(url):
            with _translated(url, self._policy):
                async with self._client.stream("GET", url, headers=headers) as response:
                    self._check_peer(url, response)
                    status = response.status_code
                    body = b""
                    if 200 <= status < 300 or status == 304:
                        body = await read_body(
                            response.aiter_raw(),
                            content_encoding=response.headers.get("content-encoding", ""),
                            content_length=response.headers.get("content-length", ""),
                            max_bytes=max_bytes,
                            url=str(url),
                        )
                    # Other bodies stay unread: that costs the connection, nothing else.
                    return _Hop(url, status, response.headers, body)

    def _check_peer(self, url: httpx.URL, response: httpx.Response) -> None:
        """Check the address the answer came from. `public_transport.PublicOnly` connects
        only to addresses it checked; this is belt and braces, after the request went out."""
        stream = response.extensions.get("network_stream")
        address = stream.get_extra_info("server_addr") if stream is not None else None
        if address:  # (host, port) or, for IPv6, (host, port, flowinfo, scope_id)
            address_guard.check_address(str(url), url.host, str(address[0]), self._policy)


def _parse_url(text: str) -> httpx.URL:
    try:
        return httpx.URL(text)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise FetchError(f"{text!r} is not a valid address: {exc}", url=text) from None


def _request_headers(validators: Validators | None, accept: str) -> dict[str, str]:
    headers = {"Accept": accept}
    if validators is not None:
        for name, value in (
            ("If-None-Match", validators.etag),
            ("If-Modified-Since", validators.last_modified),
        ):
            # A validator that cannot go in a header is dropped: a full GET is the cost.
            if value and value.isascii() and value.isprintable():
                headers[name] = value
    return headers


def _redirect_target(hop: _Hop) -> httpx.URL:
    location = hop.headers.get("location", "").strip()
    if not location:
        raise HTTPStatusError(
            f"the server answered {hop.status} without saying where to (no Location header)",
            url=str(hop.url),
            status=hop.status,
        )
    try:
        return hop.url.join(location)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise FetchError(
            f"the server redirected to an invalid address {location!r}: {exc}", url=str(hop.url)
        ) from None


def _redirect_message(chain: list[str], limit: int) -> str:
    hops, last = len(chain) - 1, chain[-1]
    if last in chain[:-1]:
        cycle = list(dict.fromkeys(chain[chain.index(last) :]))
        where = f"at {cycle[0]}" if len(cycle) == 1 else "between " + " and ".join(cycle)
        return f"the server redirected {hops} times (loop {where}?)"
    return f"the server redirected {hops} times, more than the limit of {limit}; last to {last}"


def _content_type(value: str | None) -> tuple[str | None, str | None]:
    """("text/xml", "utf-8") from 'text/xml; charset="UTF-8"'."""
    media, *params = (value or "").split(";")
    charset = None
    for param in params:
        name, _, given = param.partition("=")
        if name.strip().lower() == "charset":
            charset = given.strip().strip("\"'").lower() or None
    return media.strip().lower() or None, charset


def _result(
    hop: _Hop,
    validators: Validators | None,
    permanent: str | None,
    elapsed_ms: int,
    *,
    what: str = "feed",
) -> FetchResult:
    if not (200 <= hop.status < 300 or hop.status == 304):
        retry = parse_retry_after(hop.headers.get("retry-after"), now=datetime.now(UTC))
        raise HTTPStatusError(
            _status_message(hop.status, retry, what),
            url=str(hop.url),
            status=hop.status,
            retry_after_s=retry,
        )
    etag, last_modified = hop.headers.get("etag"), hop.headers.get("last-modified")
    if hop.status == 304 and validators is not None:
        # Servers often leave validators out of a 304; the ones sent still hold.
        etag = etag or validators.etag
        last_modified = last_modified or validators.last_modified
    content_type, charset = _content_type(hop.headers.get("content-type"))
    return FetchResult(
        final_url=str(hop.url),
        status=hop.status,
        body=hop.body,
        content_type=content_type,
        charset=charset,
        etag=etag,
        last_modified=last_modified,
        permanent_redirect=permanent,
        headers=tuple(hop.headers.multi_items()),
        elapsed_ms=elapsed_ms,
    )
