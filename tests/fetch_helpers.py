"""What the fetch tests share: a one-call `fetch` on loopback settings, and small bodies."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import brotli  # type: ignore[import-untyped]  # ships no type information
import zstandard
from localserver import ResponseWriter

from aggregator.fetch.client import Fetcher, _HostSlots
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


class TimedSlots(_HostSlots):
    """The Fetcher's own host slots, noting on the event loop's clock when each request
    starts and to which host. The gap rule is kept on that clock; a server's arrival times add
    the scheduling of two busy processes, tens of ms now and then on a loaded machine."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.per_host, settings.host_gap_s)
        self.starts: list[tuple[float, str]] = []

    @asynccontextmanager
    async def hold(
        self, host: str, in_flight: asyncio.Semaphore, *, gap_s: float = 0.0
    ) -> AsyncIterator[None]:
        async with super().hold(host, in_flight, gap_s=gap_s):
            self.starts.append((asyncio.get_running_loop().time(), host))
            yield


# The loop may run a timer up to its clock's resolution early.
CLOCK_TICK_S = 0.001


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
