"""Pages fetched faster than they are extracted wait in a bounded queue: a run holds at most
`concurrency + PAGES_AHEAD_PER_WORKER x processes` page bodies, not every page it fetched."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from feeds_builder import article_page, rss
from localserver import LocalServer
from test_pipeline import make_config

from aggregator.engine.pool import Workers
from aggregator.engine.refresh import PAGES_AHEAD_PER_WORKER
from aggregator.engine.run import fetch_feeds
from aggregator.errors import AggregatorError
from aggregator.models import Article, Fingerprint
from aggregator.store import Store

PAGES = 60
CONCURRENCY = 2
TEXT = [f"Sentence {n} of the report on the harvest, the port and the grain." for n in range(40)]


class HeldExtraction(Workers):
    """The run's real workers (one thread), except that no page is extracted until `hold`
    pages are waiting: the network always wins, as it does against real extraction."""

    def __init__(self, hold: int) -> None:
        super().__init__(0)
        self.hold = hold
        self.waiting = 0
        self.peak = 0
        self._go: asyncio.Event | None = None

    async def extract_fingerprinted(
        self, *args: Any, **options: Any
    ) -> tuple[Article, Fingerprint | AggregatorError | None]:
        if self._go is None:
            self._go = asyncio.Event()
        self.waiting += 1
        self.peak = max(self.peak, self.waiting)
        if self.waiting >= self.hold:
            self._go.set()
        try:
            await self._go.wait()
            return await super().extract_fingerprinted(*args, **options)
        finally:
            self.waiting -= 1


def test_fetched_pages_waiting_for_a_worker_are_bounded(
    server: LocalServer, tmp_path: Path
) -> None:
    slots = CONCURRENCY + PAGES_AHEAD_PER_WORKER  # one worker (a thread counts as one)
    entries = []
    for n in range(PAGES):
        server.add(f"/story/{n}", article_page(f"Story {n}", TEXT), content_type="text/html")
        entries.append({"title": f"Story {n}", "link": server.url(f"/story/{n}"), "guid": str(n)})
    server.add("/feed.xml", rss(entries, title="Harvest"))
    config = make_config(server, {"harvest": "/feed.xml"}, f"  concurrency: {CONCURRENCY}")
    workers = HeldExtraction(hold=slots)
    store = Store.open(str(tmp_path / "news.db"))
    try:
        (outcome,) = asyncio.run(fetch_feeds(config, store, config.feeds, workers=workers))
        ((extracted,),) = store.execute("SELECT count(*) FROM items WHERE extract_status = 'ok'")
    finally:
        store.close()
        workers.close()
    assert outcome.outcome == "ok", outcome.error
    assert extracted == PAGES
    assert server.hits("/story/0") == 1
    # The queue filled (the bound, not luck, held it) and never went past the bound.
    assert workers.peak == slots
