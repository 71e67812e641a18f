"""The process pool: results cross the process boundary; a stuck worker is killed and the
pool recovers for the next job."""

from __future__ import annotations

import asyncio
import time

import pytest

from aggregator.errors import NotAFeed
from aggregator.workers import Workers, WorkerTimeout

GOOD = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
    b"<item><title>a</title><link>https://example.org/a</link></item></channel></rss>"
)
# Broken XML full of unclosed tags sends feedparser to its slow fallback parser.
PATHOLOGICAL = b'<?xml version="1.0"?><rss version="2.0"><channel>' + b"<item><title>x" * 60000


def test_slow_parse_is_killed_and_the_pool_recovers() -> None:
    async def scenario() -> None:
        workers = Workers(1, parse_timeout_s=0.5)
        try:
            assert (await workers.parse(GOOD, "https://e.org/f", None, None, 10)).entries
            started = time.monotonic()
            with pytest.raises(WorkerTimeout, match=r"took longer than 0\.5 s"):
                await workers.parse(PATHOLOGICAL, "https://e.org/f", None, None, 10)
            assert time.monotonic() - started < 5
            assert (await workers.parse(GOOD, "https://e.org/f", None, None, 10)).entries
        finally:
            workers.close()

    asyncio.run(scenario())


def test_domain_errors_cross_the_process_boundary() -> None:
    async def scenario() -> None:
        workers = Workers(1)
        try:
            with pytest.raises(NotAFeed, match="empty body"):
                await workers.parse(b"", "https://e.org/f", None, None, 10)
        finally:
            workers.close()

    asyncio.run(scenario())
