"""What the fetch tests share: a one-call `fetch` on loopback settings, and small bodies."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import Callable
from typing import Any

import brotli  # type: ignore[import-untyped]  # ships no type information
import zstandard
from localserver import ResponseWriter

from aggregator.fetch.client import Fetcher
from aggregator.models import FetchResult, Settings

MB = 2**20
# The test server is on loopback; most tests make many requests to it at once.
LOCAL = Settings(allow_private_networks=True, host_gap_s=0)
RSS = "<rss version='2.0'><channel><title>Wire</title></channel></rss>"

ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": zstandard.ZstdCompressor().compress,
}


def fetch(url: str, settings: Settings = LOCAL, **kwargs: Any) -> FetchResult:
    kwargs.setdefault("max_bytes", MB)

    async def run() -> FetchResult:
        async with Fetcher(settings) as fetcher:
            return await fetcher.get(url, **kwargs)

    return asyncio.run(run())


def send_headers(writer: ResponseWriter) -> None:
    """A 200 status line and an RSS Content-Type, flushed; the body is the caller's."""
    writer.send_status(200)
    writer.send_header("Content-Type", "application/rss+xml")
    writer.end_headers()
    writer.flush()
