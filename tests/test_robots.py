"""robots.txt for article pages, against a real HTTP server on 127.0.0.1 (see localserver.py)."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import pytest
from feeds_builder import rss
from fetch_helpers import CLOCK_TICK_S, TimedSlots
from localserver import LocalServer, RecordedRequest, ResponseWriter

from aggregator.config.loader import parse_config
from aggregator.engine.pool import Workers
from aggregator.engine.run import fetch_feeds
from aggregator.errors import FetchError, HTTPStatusError, RobotsDisallowed
from aggregator.fetch.client import Fetcher, HostSlots
from aggregator.fetch.robots import RULES_TTL_S, UNAVAILABLE_TTL_S, RobotsCache, product_token
from aggregator.models import FetchResult, Settings
from aggregator.store import Store

KB = 1024
LOCAL = Settings(allow_private_networks=True, host_gap_s=0)  # the test server is on loopback
PAGE = "<html><body><p>The story.</p></body></html>"
NO_PRIVATE = "User-agent: *\nDisallow: /private/\n"


def get_pages(
    urls: list[str], settings: Settings = LOCAL, *, host_slots: HostSlots | None = None
) -> list[FetchResult | FetchError]:
    """`get_page` each URL, all at once; each result or the FetchError it raised."""

    async def one(fetcher: Fetcher, url: str) -> FetchResult | FetchError:
        try:
            return await fetcher.get_page(url, max_bytes=64 * KB, accept="text/html")
        except FetchError as exc:
            return exc

    async def run() -> list[FetchResult | FetchError]:
        async with Fetcher(settings, host_slots=host_slots) as fetcher:
            return list(await asyncio.gather(*(one(fetcher, url) for url in urls)))

    return asyncio.run(run())


def get_page(url: str, settings: Settings = LOCAL) -> FetchResult:
    (result,) = get_pages([url], settings)
    if isinstance(result, FetchError):
        raise result
    return result


def serve_pages(server: LocalServer, *paths: str) -> None:
    for path in paths:
        server.add(path, PAGE, content_type="text/html")


def test_disallowed_page_is_refused_without_a_request(server: LocalServer) -> None:
    server.add("/robots.txt", NO_PRIVATE, content_type="text/plain")
    serve_pages(server, "/private/story")
    with pytest.raises(RobotsDisallowed) as caught:
        get_page(server.url("/private/story"))
    assert str(caught.value) == (
        "the site's robots.txt disallows fetching this page for aggregator; "
        "the item keeps the feed's summary"
    )
    assert caught.value.outcome == "robots_disallowed"
    assert caught.value.url == server.url("/private/story")
    assert server.hits("/private/story") == 0


def test_allowed_page_is_fetched(server: LocalServer) -> None:
    server.add("/robots.txt", NO_PRIVATE, content_type="text/plain")
    serve_pages(server, "/news/story")
    assert get_page(server.url("/news/story")).body == PAGE.encode()
    assert [r.path for r in server.requests] == ["/robots.txt", "/news/story"]
    assert server.requests[0].headers["accept"].startswith("text/plain")


@pytest.mark.parametrize(
    ("robots", "user_agent", "allowed"),
    [
        ("User-agent: aggregator\nDisallow: /", "aggregator/0.1", False),
        ("User-agent: otherbot\nDisallow: /", "aggregator/0.1", True),
        ("User-agent: *\nDisallow: /\n\nUser-agent: aggregator\nAllow: /", "aggregator/0.1", True),
        (
            "User-agent: Newsroom-Bot\nDisallow: /news/",
            "newsroom-bot/2 (+https://x.example)",
            False,
        ),
        ("\ufeffUser-agent: *\nDisallow: /news/", "aggregator/0.1", False),  # a BOM first
    ],
)
def test_rules_are_matched_by_the_product_token(
    server: LocalServer, robots: str, user_agent: str, allowed: bool
) -> None:
    server.add("/robots.txt", robots, content_type="text/plain")
    serve_pages(server, "/news/story")
    (result,) = get_pages([server.url("/news/story")], replace(LOCAL, user_agent=user_agent))
    assert isinstance(result, FetchResult) == allowed
    if not allowed:
        assert f"for {product_token(user_agent)};" in str(result)


@pytest.mark.parametrize(
    ("user_agent", "token"),
    [
        ("aggregator/0.1 (+https://example.org/contact)", "aggregator"),
        ("Newsroom_Bot/2", "newsroom_bot"),
        ("wirebot (+https://news.example/bot)", "wirebot"),
        ("(compatible)", "aggregator"),
    ],
)
def test_product_token(user_agent: str, token: str) -> None:
    assert product_token(user_agent) == token


def test_feeds_are_not_robots_gated(server: LocalServer) -> None:
    server.add("/robots.txt", "User-agent: *\nDisallow: /", content_type="text/plain")
    server.add("/feed.xml", rss([]))

    async def run() -> FetchResult:
        async with Fetcher(LOCAL) as fetcher:
            return await fetcher.get(server.url("/feed.xml"), max_bytes=64 * KB)

    assert asyncio.run(run()).status == 200
    assert server.hits("/robots.txt") == 0


def test_robots_is_fetched_once_for_many_pages(server: LocalServer) -> None:
    server.add("/robots.txt", NO_PRIVATE, content_type="text/plain")
    paths = [f"/news/{n}" for n in range(10)]
    serve_pages(server, *paths, "/private/1")
    results = get_pages([server.url(p) for p in [*paths, "/private/1"]])
    assert [isinstance(r, FetchResult) for r in results] == [True] * 10 + [False]
    assert server.hits("/robots.txt") == 1


@pytest.mark.parametrize("status", [404, 410, 401, 403, 429, 500, 503])
def test_robots_that_cannot_be_had_allows_everything(server: LocalServer, status: int) -> None:
    server.add(
        "/robots.txt", "User-agent: *\nDisallow: /", status=status, content_type="text/plain"
    )
    serve_pages(server, "/news/1", "/news/2")
    results = get_pages([server.url("/news/1"), server.url("/news/2")])
    assert all(isinstance(r, FetchResult) for r in results)
    assert server.hits("/robots.txt") == 1  # the answer is kept, whatever it was


def test_unknown_robots_path_is_404_and_allows(server: LocalServer) -> None:
    serve_pages(server, "/news/1")
    assert get_page(server.url("/news/1")).status == 200
    assert server.hits("/robots.txt") == 1


def test_robots_that_times_out_allows(server: LocalServer) -> None:
    hang_up = threading.Event()
    server.add_handler("/robots.txt", lambda request, writer: hang_up.wait(5))
    serve_pages(server, "/news/1")
    try:
        result = get_page(server.url("/news/1"), replace(LOCAL, timeout_s=0.5))
    finally:
        hang_up.set()
    assert result.status == 200


def test_oversized_robots_allows(server: LocalServer) -> None:
    server.add("/robots.txt", "User-agent: *\nDisallow: /\n" + "#" * 600 * KB)
    serve_pages(server, "/news/1")
    assert get_page(server.url("/news/1")).status == 200


def test_every_redirect_hop_is_checked(server: LocalServer) -> None:
    """The feed's link redirects to another site, whose robots.txt says no."""

    def robots_by_host(request: RecordedRequest, writer: ResponseWriter) -> None:
        rules = "Disallow: /" if request.headers["host"].startswith("localhost") else "Allow: /"
        writer.send_status(200)
        writer.send_header("Content-Type", "text/plain")
        writer.end_headers()
        writer.write(f"User-agent: *\n{rules}\n".encode())

    server.add_handler("/robots.txt", robots_by_host)
    target = server.url("/news/1").replace("127.0.0.1", "localhost")
    server.redirect("/go/1", target, 302)
    serve_pages(server, "/news/1")
    with pytest.raises(RobotsDisallowed) as caught:
        get_page(server.url("/go/1"))
    assert caught.value.url == target
    assert server.hits("/robots.txt") == 2  # one for each site
    assert server.hits("/news/1") == 0


def test_crawl_delay_spaces_the_site_s_pages(server: LocalServer) -> None:
    server.add("/robots.txt", "User-agent: *\nCrawl-delay: 0.3\n", content_type="text/plain")
    serve_pages(server, "/news")
    settings = replace(LOCAL, host_gap_s=0)
    slots = TimedSlots(settings)
    results = get_pages([server.url(f"/news?n={n}") for n in range(3)], settings, host_slots=slots)
    assert all(isinstance(r, FetchResult) for r in results)
    assert server.hits("/news") == 3
    assert server.hits("/robots.txt") == 1
    # robots.txt is asked for first, then the pages, each a Crawl-delay after the last.
    pages = [t for t, _ in slots.starts[1:]]
    assert len(pages) == 3
    assert min(b - a for a, b in pairwise(pages)) >= 0.3 - CLOCK_TICK_S


@pytest.mark.parametrize(("crawl_delay", "gap"), [("3600", 10.0), ("2.5", 2.5), ("0", 0.0)])
def test_crawl_delay_is_capped_at_ten_seconds(crawl_delay: str, gap: float) -> None:
    async def get(url: str, *, max_bytes: int, accept: str) -> FetchResult:
        body = f"User-agent: *\nCrawl-delay: {crawl_delay}\n".encode()
        return FetchResult(url, 200, body, "text/plain", None, None, None)

    cache = RobotsCache(get, user_agent="aggregator/0.1")
    assert asyncio.run(cache.check("https://news.example/story")) == gap


class Clock:
    """Seconds that pass only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def may_fetch(cache: RobotsCache, url: str) -> bool:
    try:
        await cache.check(url)
    except RobotsDisallowed:
        return False
    return True


@pytest.mark.parametrize(
    ("status", "kept_s"),
    [
        (200, RULES_TTL_S),
        (404, RULES_TTL_S),
        (403, RULES_TTL_S),
        (429, UNAVAILABLE_TTL_S),
        (500, UNAVAILABLE_TTL_S),
        (503, UNAVAILABLE_TTL_S),
    ],
)
def test_robots_is_asked_again_once_its_answer_expires(
    server: LocalServer, status: int, kept_s: float
) -> None:
    """A day for rules or a 4xx (no rules for us), an hour for a robots.txt that could not be
    had: the daemon's Fetcher lives for weeks and must see a site's new rules."""
    server.add("/robots.txt", "User-agent: *\nDisallow:\n", status=status)
    clock = Clock()
    page = server.url("/private/story")

    async def run() -> list[bool]:
        async with Fetcher(LOCAL) as fetcher:
            cache = RobotsCache(fetcher.get, user_agent=LOCAL.user_agent, clock=clock)
            allowed = [await may_fetch(cache, page)]
            server.add("/robots.txt", NO_PRIVATE)  # the site's rules change
            clock.now += kept_s - 1
            allowed.append(await may_fetch(cache, page))
            clock.now += 1
            allowed.append(await may_fetch(cache, page))
            return allowed

    assert asyncio.run(run()) == [True, True, False]
    assert server.hits("/robots.txt") == 2


def test_the_sites_asked_about_least_recently_are_forgotten_first() -> None:
    asked: list[str] = []

    async def get(url: str, *, max_bytes: int, accept: str) -> FetchResult:
        asked.append(url.removesuffix("/robots.txt"))
        return FetchResult(url, 200, NO_PRIVATE.encode(), "text/plain", None, None, None)

    cache = RobotsCache(get, user_agent="aggregator/0.1", max_sites=2)

    async def run() -> None:
        for site in ("a", "b", "a", "c", "a", "b"):  # c pushes b out, then b pushes c out
            assert not await may_fetch(cache, f"https://{site}.example/private/1")

    asyncio.run(run())
    assert asked == [f"https://{site}.example" for site in ("a", "b", "c", "b")]


def test_the_pipeline_keeps_the_feed_summary_for_a_disallowed_page(
    server: LocalServer, tmp_path: Path
) -> None:
    server.add("/robots.txt", NO_PRIVATE, content_type="text/plain")
    serve_pages(server, "/private/story")
    entry = {"title": "Members only", "link": server.url("/private/story"), "guid": "m1"}
    server.add("/feed.xml", rss([{**entry, "description": "The summary."}]))
    config = parse_config(
        "settings:\n  allow_private_networks: true\n  host_gap: 0\nfeeds:\n"
        f"  - name: wire\n    url: {server.url('/feed.xml')}\n"
    )
    store = Store.open(str(tmp_path / "aggregator.db"))
    (outcome,) = asyncio.run(fetch_feeds(config, store, config.feeds, workers=Workers(0)))
    assert (outcome.outcome, outcome.new_items) == ("ok", 1)
    ((summary, status, error),) = store.execute(
        "SELECT summary, extract_status, extract_error FROM items", ()
    )
    assert (summary, status) == ("The summary.", "failed")
    assert "robots.txt disallows" in str(error)
    assert server.hits("/private/story") == 0
    assert server.hits("/feed.xml") == 1


def test_status_errors_are_not_robots_errors(server: LocalServer) -> None:
    """A page that is simply missing still says so; robots.txt is not blamed."""
    with pytest.raises(HTTPStatusError) as caught:
        get_page(server.url("/news/gone"))
    assert caught.value.status == 404


def test_a_missing_page_is_reported_as_a_page_not_a_feed(server: LocalServer) -> None:
    server.add("/robots.txt", "", status=404)
    with pytest.raises(HTTPStatusError, match="the page does not exist") as caught:
        get_page(server.url("/gone-story"))
    assert "feeds.yaml" not in str(caught.value)
