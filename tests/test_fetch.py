"""Fetch basics against a real HTTP server on 127.0.0.1 (see localserver.py): the answer and
its metadata, conditional GET, decoding, error statuses and Retry-After, transport errors.

Redirects and the address guard are in test_fetch_redirects.py; size, time, concurrency caps
and the per-host gap in test_fetch_limits.py.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import zlib
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import brotli  # type: ignore[import-untyped]  # ships no type information
import pytest
from fetch_helpers import ENCODERS, LOCAL, MB, RSS, fetch
from localserver import LocalServer, RecordedRequest, ResponseWriter

from aggregator.errors import FetchError, HTTPStatusError
from aggregator.fetch.client import Fetcher, parse_retry_after
from aggregator.models import FetchResult, Validators

ETAG = '"v1"'
LAST_MODIFIED = "Mon, 03 Mar 2025 10:00:00 GMT"


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
    assert result.final_url == server.url("/feed")
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
