"""Fetch limits against a real HTTP server on 127.0.0.1 (see localserver.py): body size and
compression bombs, deadlines, requests in flight, and the gap between requests to one host."""

from __future__ import annotations

import asyncio
import threading
import time
import tracemalloc
from dataclasses import replace
from itertools import pairwise

import pytest
from fetch_helpers import (
    CLOCK_TICK_S,
    ENCODERS,
    LOCAL,
    MB,
    RSS,
    TimedSlots,
    fetch,
    send_headers,
)
from localserver import LocalServer, RecordedRequest, ResponseWriter

from aggregator.config.loader import parse_config
from aggregator.errors import BodyFragmented, BodyTooLarge, FetchTimeout, InvalidConfig
from aggregator.fetch.client import _KEEP_STARTS, Fetcher, _HostSlots
from aggregator.models import FetchResult, Settings


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


def serve_chunked(server: LocalServer, path: str, *, size: int, chunk: int) -> None:
    """`size` bytes in chunks of `chunk` (Transfer-Encoding: chunked)."""
    piece = b"%x\r\n" % chunk + b"x" * chunk + b"\r\n"
    # Built here, not in the handler: the server runs in this process, and what it allocates
    # while the client is measured would be counted as the client's.
    payload = piece * (size // chunk) + b"0\r\n\r\n"

    def chunked(request: RecordedRequest, writer: ResponseWriter) -> None:
        writer.send_status(200)
        writer.send_header("Content-Type", "application/rss+xml")
        writer.send_header("Transfer-Encoding", "chunked")
        writer.end_headers()
        writer.write(payload)

    server.add_handler(path, chunked)


def test_a_body_in_one_byte_chunks_costs_its_size_not_its_chunks(server: LocalServer) -> None:
    """A chunked body can be cut as fine as the server likes. Kept as one bytes object per
    chunk, 1-byte chunks cost ~57 bytes each: 1.19 GB held for a 20 MB cap (4 MB here). Now
    the body is one buffer, and a body this finely cut is refused after 4,096 pieces, before
    it takes the event loop from every other request."""
    cap = 64 * 1024  # traced, each chunk costs ~50 us: a larger cap makes a slow test
    serve_chunked(server, "/tiny", size=cap + 1024, chunk=1)
    server.add("/small", RSS)

    async def run() -> int:
        # Made and warmed up before anything is measured; a deadline no busy machine reaches.
        async with Fetcher(replace(LOCAL, timeout_s=300)) as fetcher:
            await fetcher.get(server.url("/small"), max_bytes=cap)
            tracemalloc.start()
            try:
                with pytest.raises(BodyFragmented) as caught:
                    await fetcher.get(server.url("/tiny"), max_bytes=cap)
                assert caught.value.outcome == "fragmented"
                assert "in 4,096 pieces" in str(caught.value)
                return tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()

    # What a connection holds whatever its body: asyncio takes up to 256 KB from the socket
    # at once and anyio copies it into httpcore's 64 KB reads (~0.5 MB measured).
    reads = MB
    peak = asyncio.run(run())
    assert peak < 2 * cap + reads, f"{peak:,} bytes held for a {cap:,}-byte cap"


def test_endless_body(server: LocalServer) -> None:
    def endless(request: RecordedRequest, writer: ResponseWriter) -> None:
        send_headers(writer)
        while True:
            writer.write(b"<item>more</item>" * 4096)

    server.add_handler("/feed", endless)
    with pytest.raises(BodyTooLarge):
        fetch(server.url("/feed"), max_bytes=MB)


def test_slow_drip_hits_the_total_deadline(server: LocalServer) -> None:
    def drip(request: RecordedRequest, writer: ResponseWriter) -> None:
        send_headers(writer)
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
        send_headers(writer)
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


def record_arrivals(server: LocalServer, path: str) -> list[str]:
    """The Host header of each request to `path`, as the server saw it arrive."""
    arrivals: list[str] = []

    def arrive(request: RecordedRequest, writer: ResponseWriter) -> None:
        arrivals.append(request.headers["host"])
        send_headers(writer)
        writer.write(b"ok")

    server.add_handler(path, arrive)
    return arrivals


def get_all(settings: Settings, urls: list[str], *, concurrent: bool) -> list[tuple[float, str]]:
    """Fetch `urls`; the (loop time, host) each request started at, in order."""
    slots = TimedSlots(settings)

    async def run() -> None:
        async with Fetcher(settings, host_slots=slots) as fetcher:
            if concurrent:
                await asyncio.gather(*(fetcher.get(url, max_bytes=MB) for url in urls))
            else:
                for url in urls:
                    await fetcher.get(url, max_bytes=MB)

    asyncio.run(run())
    return slots.starts


@pytest.mark.parametrize("concurrent", [False, True])
def test_requests_to_one_host_start_a_gap_apart(server: LocalServer, concurrent: bool) -> None:
    arrivals = record_arrivals(server, "/feed")
    urls = [server.url(f"/feed?n={n}") for n in range(3)]
    starts = get_all(replace(LOCAL, host_gap_s=0.3, per_host=3), urls, concurrent=concurrent)
    assert len(arrivals) == len(starts) == 3
    assert min(b - a for (a, _), (b, _) in pairwise(starts)) >= 0.3 - CLOCK_TICK_S


@pytest.mark.parametrize("concurrent", [False, True])
def test_no_gap_means_no_delay(server: LocalServer, concurrent: bool) -> None:
    arrivals = record_arrivals(server, "/feed")
    urls = [server.url(f"/feed?n={n}") for n in range(3)]
    starts = get_all(replace(LOCAL, host_gap_s=0), urls, concurrent=concurrent)
    assert len(arrivals) == 3
    assert starts[-1][0] - starts[0][0] < 0.2


def test_waiting_for_a_host_holds_no_global_slot(server: LocalServer) -> None:
    """With one request in flight overall, another host goes while the first host waits."""
    arrivals = record_arrivals(server, "/feed")
    other_host = server.url("/feed?n=3").replace("127.0.0.1", "localhost")
    urls = [server.url("/feed?n=1"), server.url("/feed?n=2"), other_host]
    starts = get_all(replace(LOCAL, host_gap_s=0.3, concurrency=1), urls, concurrent=True)
    assert len(arrivals) == 3
    (first, first_host), (_, second_host), (third, third_host) = starts
    assert [first_host, second_host, third_host] == ["127.0.0.1", "localhost", "127.0.0.1"]
    assert third - first >= 0.3 - CLOCK_TICK_S


def test_hosts_no_longer_held_back_are_forgotten() -> None:
    """The daemon's Fetcher meets thousands of hosts over weeks; its table of request starts
    keeps only those that may still delay a request (started within the longest gap)."""

    async def run() -> int:
        hosts = _HostSlots(per_host=1, gap_s=0)
        in_flight = asyncio.Semaphore(1)
        for n in range(3 * _KEEP_STARTS):
            async with hosts.hold(f"h{n}.example", in_flight):
                pass
        return len(hosts._started)

    assert asyncio.run(run()) <= _KEEP_STARTS + 1


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("500ms", 0.5), ("2s", 2.0), ("0.25s", 0.25), ("1s", 1.0), ("0", 0.0), ("0s", 0.0)],
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
