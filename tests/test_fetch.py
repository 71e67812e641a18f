"""Fetch behaviour against a real HTTP server on 127.0.0.1 (see localserver.py)."""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import socket
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from itertools import pairwise
from typing import Any

import brotli  # type: ignore[import-untyped]  # ships no type information
import pytest
import zstandard
from localserver import LocalServer, RecordedRequest, ResponseWriter

from aggregator import guard
from aggregator.config import parse_config
from aggregator.errors import (
    AddressRefused,
    BodyTooLarge,
    FetchError,
    FetchTimeout,
    HTTPStatusError,
    InvalidConfig,
    TooManyRedirects,
)
from aggregator.fetch import Fetcher, parse_retry_after
from aggregator.models import FetchResult, Settings, Validators

MB = 2**20
# The test server is on loopback; most tests make many requests to it at once.
LOCAL = Settings(allow_private_networks=True, host_gap_s=0)
RSS = "<rss version='2.0'><channel><title>Wire</title></channel></rss>"
ETAG = '"v1"'
LAST_MODIFIED = "Mon, 03 Mar 2025 10:00:00 GMT"


def fetch(url: str, settings: Settings = LOCAL, **kwargs: Any) -> FetchResult:
    kwargs.setdefault("max_bytes", MB)

    async def run() -> FetchResult:
        async with Fetcher(settings) as fetcher:
            return await fetcher.get(url, **kwargs)

    return asyncio.run(run())


def fetch_twice(url: str, **kwargs: Any) -> tuple[FetchResult, FetchResult]:
    """Fetch, then fetch again with the validators the first answer gave."""

    async def run() -> tuple[FetchResult, FetchResult]:
        async with Fetcher(LOCAL) as fetcher:
            first = await fetcher.get(url, max_bytes=MB, **kwargs)
            validators = Validators(etag=first.etag, last_modified=first.last_modified)
            return first, await fetcher.get(url, validators=validators, max_bytes=MB)

    return asyncio.run(run())


def test_ok_response_carries_body_validators_and_metadata(server: LocalServer) -> None:
    server.add("/feed", RSS, etag=ETAG, last_modified=LAST_MODIFIED)
    result = fetch(server.url("/feed"))
    assert result.status == 200
    assert result.body == RSS.encode()
    assert (result.etag, result.last_modified) == (ETAG, LAST_MODIFIED)
    assert (result.content_type, result.charset) == ("application/rss+xml", "utf-8")
    assert result.url == result.final_url == server.url("/feed")
    assert result.permanent_redirect is None
    assert ("etag", ETAG) in result.headers
    assert result.elapsed_ms >= 0
    assert not result.not_modified


def test_request_headers(server: LocalServer) -> None:
    server.add("/feed", RSS)
    settings = replace(LOCAL, user_agent="newsroom-bot/2 (+https://news.example/bot)")
    fetch(server.url("/feed"), settings, accept="application/rss+xml, */*;q=0.1")
    (request,) = server.requests
    assert request.headers["user-agent"] == "newsroom-bot/2 (+https://news.example/bot)"
    assert request.headers["accept"] == "application/rss+xml, */*;q=0.1"
    assert request.headers["accept-encoding"] == "gzip, deflate, br, zstd"
    assert "if-none-match" not in request.headers
    assert "if-modified-since" not in request.headers


def test_second_fetch_is_conditional_and_gets_304(server: LocalServer) -> None:
    server.add("/feed", RSS, etag=ETAG, last_modified=LAST_MODIFIED)
    first, second = fetch_twice(server.url("/feed"))
    assert first.status == 200
    assert second.not_modified
    assert second.body == b""
    assert (second.etag, second.last_modified) == (ETAG, LAST_MODIFIED)
    sent = server.requests[1].headers
    assert sent["if-none-match"] == ETAG
    assert sent["if-modified-since"] == LAST_MODIFIED


def test_changed_feed_answers_200_to_old_validators(server: LocalServer) -> None:
    server.add("/feed", RSS, etag=ETAG)
    first = fetch(server.url("/feed"))
    server.add("/feed", RSS.replace("Wire", "Wire 2"), etag='"v2"')
    second = fetch(server.url("/feed"), validators=Validators(etag=first.etag))
    assert second.status == 200
    assert b"Wire 2" in second.body
    assert second.etag == '"v2"'


def test_etag_only_server(server: LocalServer) -> None:
    server.add("/feed", RSS, etag=ETAG)
    first, second = fetch_twice(server.url("/feed"))
    assert (first.etag, first.last_modified) == (ETAG, None)
    assert second.not_modified
    assert "if-modified-since" not in server.requests[1].headers


def test_last_modified_only_server(server: LocalServer) -> None:
    server.add("/feed", RSS, last_modified=LAST_MODIFIED)
    first, second = fetch_twice(server.url("/feed"))
    assert (first.etag, first.last_modified) == (None, LAST_MODIFIED)
    assert second.not_modified
    assert "if-none-match" not in server.requests[1].headers


def test_304_without_validators_keeps_the_ones_sent(server: LocalServer) -> None:
    server.add("/feed", status=304, content_type="")
    result = fetch(server.url("/feed"), validators=Validators(ETAG, LAST_MODIFIED))
    assert result.not_modified
    assert (result.etag, result.last_modified) == (ETAG, LAST_MODIFIED)


def test_validator_that_cannot_be_a_header_is_dropped(server: LocalServer) -> None:
    server.add("/feed", RSS)
    fetch(server.url("/feed"), validators=Validators(etag='"a"\r\nX-Evil: 1', last_modified="x"))
    assert "if-none-match" not in server.requests[0].headers
    assert server.requests[0].headers["if-modified-since"] == "x"


def _raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": zstandard.ZstdCompressor().compress,
}


@pytest.mark.parametrize(
    ("content_encoding", "encode"),
    [
        *ENCODERS.items(),
        ("deflate", _raw_deflate),  # what some servers send as "deflate"
        ("gzip, br", lambda data: brotli.compress(gzip.compress(data))),
        ("identity", lambda data: data),
    ],
)
def test_compressed_bodies_are_decoded(
    server: LocalServer, content_encoding: str, encode: Callable[[bytes], bytes]
) -> None:
    body = (RSS * 2000).encode()
    server.add("/feed", encode(body), headers={"Content-Encoding": content_encoding})
    assert fetch(server.url("/feed")).body == body


def test_gzip_route_helper(server: LocalServer) -> None:
    server.add("/feed", RSS, gzip=True)
    assert fetch(server.url("/feed")).body == RSS.encode()


def test_corrupt_compressed_body_is_a_fetch_error(server: LocalServer) -> None:
    server.add("/feed", b"this is not gzip at all", headers={"Content-Encoding": "gzip"})
    with pytest.raises(FetchError, match=r"could not be decompressed \(gzip\)"):
        fetch(server.url("/feed"))


def test_content_type_parameters(server: LocalServer) -> None:
    server.add("/feed", RSS, content_type='Application/Atom+XML; Charset="ISO-8859-1"; x=y')
    result = fetch(server.url("/feed"))
    assert (result.content_type, result.charset) == ("application/atom+xml", "iso-8859-1")


@pytest.mark.parametrize(
    ("statuses", "permanent"),
    [
        ((301,), "/hop1"),
        ((308,), "/hop1"),
        ((302,), None),
        ((307,), None),
        ((303,), None),
        ((301, 301), "/hop2"),
        ((301, 302), "/hop1"),  # permanent up to the temporary hop
        ((302, 301), None),  # a temporary hop first: the feed's own URL stays
    ],
)
def test_redirects_are_followed_and_permanent_ones_recorded(
    server: LocalServer, statuses: tuple[int, ...], permanent: str | None
) -> None:
    for hop, status in enumerate(statuses):
        server.redirect(f"/hop{hop}", server.url(f"/hop{hop + 1}"), status)
    final = f"/hop{len(statuses)}"
    server.add(final, RSS)
    result = fetch(server.url("/hop0"))
    assert result.body == RSS.encode()
    assert result.url == server.url("/hop0")
    assert result.final_url == server.url(final)
    assert result.permanent_redirect == (permanent and server.url(permanent))


def test_relative_location_is_resolved(server: LocalServer) -> None:
    server.redirect("/news/old.xml", "../feeds/new.xml", 302)
    server.add("/feeds/new.xml", RSS)
    assert fetch(server.url("/news/old.xml")).final_url == server.url("/feeds/new.xml")


def test_redirect_loop(server: LocalServer) -> None:
    server.redirect("/a", server.url("/b"))
    server.redirect("/b", "/a")
    with pytest.raises(TooManyRedirects, match=r"redirected 6 times \(loop between") as caught:
        fetch(server.url("/a"), replace(LOCAL, max_redirects=5))
    assert caught.value.outcome == "redirect_error"
    assert server.hits("/a") + server.hits("/b") == 6


def test_too_many_redirects(server: LocalServer) -> None:
    for hop in range(10):
        server.redirect(f"/r{hop}", f"/r{hop + 1}", 302)
    with pytest.raises(TooManyRedirects, match="redirected 3 times, more than the limit of 2"):
        fetch(server.url("/r0"), replace(LOCAL, max_redirects=2))


def test_redirect_without_location(server: LocalServer) -> None:
    server.add("/feed", status=302)
    with pytest.raises(HTTPStatusError, match="no Location header"):
        fetch(server.url("/feed"))


def test_redirect_to_file_url_is_refused(server: LocalServer) -> None:
    server.redirect("/feed", "file:///etc/passwd")
    with pytest.raises(AddressRefused, match="'file:' is refused"):
        fetch(server.url("/feed"))


@pytest.fixture
def loopback_is_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the guard pass the test server itself, so redirects from it can be checked."""
    real = guard.is_public_address
    server_ip = ipaddress.ip_address("127.0.0.1")
    monkeypatch.setattr(guard, "is_public_address", lambda ip: ip == server_ip or real(ip))


@pytest.mark.usefixtures("loopback_is_public")
@pytest.mark.parametrize(
    "target",
    ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/admin", "http://[::1]/"],
)
def test_redirect_to_private_address_is_refused(server: LocalServer, target: str) -> None:
    server.redirect("/feed", target, 302)
    server.add("/ok", RSS)
    settings = Settings(allow_private_networks=False)
    assert fetch(server.url("/ok"), settings).status == 200  # the server itself passes
    with pytest.raises(AddressRefused, match="allow_private_networks: true") as caught:
        fetch(server.url("/feed"), settings)
    assert caught.value.url == target


def test_private_address_is_refused_before_any_request(server: LocalServer) -> None:
    server.add("/feed", RSS)
    with pytest.raises(AddressRefused, match=r"127\.0\.0\.1"):
        fetch(server.url("/feed"), Settings(allow_private_networks=False))
    assert server.requests == []


def test_connected_peer_is_checked_too(
    server: LocalServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name looked public when checked, the connection went elsewhere."""

    async def fooled(url: str, *, allow_private: bool) -> None:
        return None

    monkeypatch.setattr(guard, "check_host", fooled)
    server.add("/feed", RSS)
    with pytest.raises(AddressRefused, match=r"127\.0\.0\.1"):
        fetch(server.url("/feed"), Settings(allow_private_networks=False))


@pytest.mark.parametrize(
    ("status", "outcome", "words"),
    [
        (404, "not_found", "does not exist"),
        (410, "gone", "removed for good"),
        (401, "forbidden", "access denied"),
        (403, "forbidden", "access denied"),
        (500, "server_error", "the server failed"),
        (503, "server_error", "it will be retried"),
        (418, "http_error", "418"),
    ],
)
def test_error_statuses(server: LocalServer, status: int, outcome: str, words: str) -> None:
    server.add("/feed", "nope", status=status, content_type="text/plain")
    with pytest.raises(HTTPStatusError, match=words) as caught:
        fetch(server.url("/feed"))
    assert (caught.value.status, caught.value.outcome) == (status, outcome)
    assert caught.value.retry_after_s is None


def test_429_with_retry_after_seconds(server: LocalServer) -> None:
    server.add("/feed", status=429, headers={"Retry-After": "120"})
    with pytest.raises(HTTPStatusError, match="rate limited") as caught:
        fetch(server.url("/feed"))
    assert (caught.value.outcome, caught.value.retry_after_s) == ("rate_limited", 120)


def test_503_with_retry_after_date(server: LocalServer) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    server.add("/feed", status=503, headers={"Retry-After": when})
    with pytest.raises(HTTPStatusError) as caught:
        fetch(server.url("/feed"))
    assert caught.value.retry_after_s is not None
    assert 80 <= caught.value.retry_after_s <= 91


NOW = datetime(2025, 3, 3, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120),
        (" 0 ", 0),
        ("86401", 86400),  # capped at a day
        ("99999999999999999999", 86400),
        ("Mon, 03 Mar 2025 10:01:30 GMT", 90),
        ("Mon, 03 Mar 2025 09:00:00 GMT", 0),  # already past
        ("Mon, 10 Mar 2025 10:00:00 GMT", 86400),
        ("Mon, 03 Mar 2025 10:00:10 -0000", 10),
        ("-5", None),
        ("1.5", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: int | None) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


def test_body_over_the_limit(server: LocalServer) -> None:
    server.add("/feed", b"x" * (MB + 1))
    with pytest.raises(BodyTooLarge, match="larger than the 1 MB limit") as caught:
        fetch(server.url("/feed"), max_bytes=MB)
    assert caught.value.outcome == "too_large"


def test_body_at_the_limit(server: LocalServer) -> None:
    server.add("/feed", b"x" * MB)
    assert len(fetch(server.url("/feed"), max_bytes=MB).body) == MB


@pytest.mark.parametrize("content_encoding", ["gzip", "br", "zstd"])
def test_compression_bomb_is_refused_in_flat_memory(
    server: LocalServer, content_encoding: str
) -> None:
    bomb = ENCODERS[content_encoding](bytes(10 * MB))  # 10 MB of zeros in a few KB
    server.add("/feed", bomb, headers={"Content-Encoding": content_encoding})
    server.add("/small", RSS, headers={"Content-Encoding": "identity"})
    fetch(server.url("/small"))  # lazy imports and first-use caches are not the body's
    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLarge):
            fetch(server.url("/feed"), max_bytes=MB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * MB  # the 1 MB allowed, plus a few 64 KB pieces in flight


def _send_headers(writer: ResponseWriter) -> None:
    writer.send_status(200)
    writer.send_header("Content-Type", "application/rss+xml")
    writer.end_headers()
    writer.flush()


def test_endless_body(server: LocalServer) -> None:
    def endless(request: RecordedRequest, writer: ResponseWriter) -> None:
        _send_headers(writer)
        while True:
            writer.write(b"<item>more</item>" * 4096)

    server.add_handler("/feed", endless)
    with pytest.raises(BodyTooLarge):
        fetch(server.url("/feed"), max_bytes=MB)


def test_slow_drip_hits_the_total_deadline(server: LocalServer) -> None:
    def drip(request: RecordedRequest, writer: ResponseWriter) -> None:
        _send_headers(writer)
        while True:  # each byte resets a read timeout; only a total deadline stops this
            writer.write(b" ")
            writer.flush()
            time.sleep(0.2)

    server.add_handler("/feed", drip)
    started = time.monotonic()
    with pytest.raises(FetchTimeout, match="no complete response within 1 s") as caught:
        fetch(server.url("/feed"), replace(LOCAL, timeout_s=1))
    assert time.monotonic() - started < 3
    assert caught.value.outcome == "timeout"


def test_server_that_never_answers(server: LocalServer) -> None:
    hang_up = threading.Event()
    server.add_handler("/feed", lambda request, writer: hang_up.wait(5))
    started = time.monotonic()
    try:
        with pytest.raises(FetchTimeout):
            fetch(server.url("/feed"), replace(LOCAL, timeout_s=0.5))
    finally:
        hang_up.set()
    assert time.monotonic() - started < 3


@pytest.mark.parametrize(("concurrency", "per_host"), [(16, 2), (2, 16)])
def test_requests_in_flight_are_capped(
    server: LocalServer, concurrency: int, per_host: int
) -> None:
    lock = threading.Lock()
    active, peak = 0, 0
    over_cap = threading.Event()

    def gate(request: RecordedRequest, writer: ResponseWriter) -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
            if active > 2:
                over_cap.set()
        over_cap.wait(0.3)  # a third request in flight would open this at once
        with lock:
            active -= 1
        _send_headers(writer)
        writer.write(b"ok")

    server.add_handler("/feed", gate)
    settings = replace(LOCAL, concurrency=concurrency, per_host=per_host)

    async def run() -> list[FetchResult]:
        async with Fetcher(settings) as fetcher:
            gets = (fetcher.get(server.url(f"/feed?n={n}"), max_bytes=MB) for n in range(4))
            return await asyncio.gather(*gets)

    results = asyncio.run(run())
    assert [r.body for r in results] == [b"ok"] * 4
    assert peak == 2
    assert server.hits("/feed") == 4


def test_connection_refused() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(FetchError, match=r"connection refused by host 127\.0\.0\.1") as caught:
        fetch(f"http://127.0.0.1:{port}/feed")
    assert caught.value.outcome == "network_error"


@pytest.mark.parametrize("url", ["http://[::1/feed", "http://:80/feed", "feed.xml"])
def test_invalid_addresses(url: str) -> None:
    with pytest.raises(FetchError):
        fetch(url)


def test_unknown_paths_are_404(server: LocalServer) -> None:
    with pytest.raises(HTTPStatusError) as caught:
        fetch(server.url("/nowhere?x=1"))
    assert caught.value.status == 404
    assert server.hits("/nowhere") == 1
    server.clear_log()
    assert server.requests == []


def test_oversized_headers_are_a_clean_fetch_error(server: LocalServer) -> None:
    """h11 under httpcore stops reading headers past 100 KB; that is said in plain words."""

    def huge_header(request: RecordedRequest, writer: ResponseWriter) -> None:
        writer.send_status(200)
        writer.send_header("X-Padding", "x" * MB)
        writer.end_headers()
        writer.write(b"ok")

    server.add_handler("/feed", huge_header)
    with pytest.raises(FetchError, match="sent oversized or malformed headers") as caught:
        fetch(server.url("/feed"))
    assert caught.value.outcome == "network_error"
    assert "Receive buffer" not in str(caught.value)


def record_arrivals(server: LocalServer, path: str) -> list[tuple[float, str]]:
    """(monotonic time, Host header) of each request to `path`, as the server saw it arrive."""
    arrivals: list[tuple[float, str]] = []

    def arrive(request: RecordedRequest, writer: ResponseWriter) -> None:
        arrivals.append((time.monotonic(), request.headers["host"]))
        _send_headers(writer)
        writer.write(b"ok")

    server.add_handler(path, arrive)
    return arrivals


def get_all(settings: Settings, urls: list[str], *, concurrent: bool) -> None:
    async def run() -> None:
        async with Fetcher(settings) as fetcher:
            if concurrent:
                await asyncio.gather(*(fetcher.get(url, max_bytes=MB) for url in urls))
            else:
                for url in urls:
                    await fetcher.get(url, max_bytes=MB)

    asyncio.run(run())


# A request reaches the server a millisecond or two after it starts, now and then ~20 ms
# later (thread scheduling): gaps are checked with 50 ms to spare.
JITTER_S = 0.05


@pytest.mark.parametrize("concurrent", [False, True])
def test_requests_to_one_host_start_a_gap_apart(server: LocalServer, concurrent: bool) -> None:
    arrivals = record_arrivals(server, "/feed")
    urls = [server.url(f"/feed?n={n}") for n in range(3)]
    get_all(replace(LOCAL, host_gap_s=0.3, per_host=3), urls, concurrent=concurrent)
    times = sorted(t for t, _ in arrivals)
    assert len(times) == 3
    assert min(b - a for a, b in pairwise(times)) >= 0.3 - JITTER_S


@pytest.mark.parametrize("concurrent", [False, True])
def test_no_gap_means_no_delay(server: LocalServer, concurrent: bool) -> None:
    arrivals = record_arrivals(server, "/feed")
    urls = [server.url(f"/feed?n={n}") for n in range(3)]
    get_all(replace(LOCAL, host_gap_s=0), urls, concurrent=concurrent)
    times = sorted(t for t, _ in arrivals)
    assert times[-1] - times[0] < 0.2


def test_waiting_for_a_host_holds_no_global_slot(server: LocalServer) -> None:
    """With one request in flight overall, another host goes while the first host waits."""
    arrivals = record_arrivals(server, "/feed")
    other_host = server.url("/feed?n=3").replace("127.0.0.1", "localhost")
    urls = [server.url("/feed?n=1"), server.url("/feed?n=2"), other_host]
    get_all(replace(LOCAL, host_gap_s=0.3, concurrency=1), urls, concurrent=True)
    (first, _), (second, second_host), (third, third_host) = sorted(arrivals)
    assert second_host.startswith("localhost")
    assert second - first < 0.3 - JITTER_S
    assert third_host.startswith("127.0.0.1")
    assert third - first >= 0.3 - JITTER_S


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("500ms", 0.5), ("2s", 2.0), ("0.25", 0.25), ("1", 1.0), ("0", 0.0), ("0s", 0.0)],
)
def test_host_gap_in_feeds_yaml(value: str, seconds: float) -> None:
    config = parse_config(f"settings:\n  host_gap: {value}\nfeeds: []\n")
    assert config.settings.host_gap_s == seconds


def test_host_gap_defaults_to_half_a_second() -> None:
    assert parse_config("feeds: []\n").settings.host_gap_s == 0.5


@pytest.mark.parametrize("value", ["-1", "1m", "soon", "true", ".nan"])
def test_host_gap_refuses_what_is_no_time(value: str) -> None:
    with pytest.raises(InvalidConfig, match=r"settings\.host_gap: .* is not a time"):
        parse_config(f"settings:\n  host_gap: {value}\nfeeds: []\n")
