"""Fingerprints asked for together go to the workers together: a feed's new entries cost a
few jobs, not one each, and each caller still gets its own text's fingerprint."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from feeds_builder import article_page, rss
from localserver import LocalServer
from test_pipeline import make_config

from aggregator.engine import pool
from aggregator.engine.pool import Workers
from aggregator.engine.run import fetch_feeds
from aggregator.errors import InternalError
from aggregator.models import Fingerprint
from aggregator.store import Store
from aggregator.stories import dedup

pytestmark = pytest.mark.slow

WORDS = [
    "minister",
    "talks",
    "border",
    "grain",
    "exports",
    "ceasefire",
    "parliament",
    "budget",
    "vote",
    "court",
    "ruling",
]


def summary(n: int) -> str:
    return " ".join(WORDS[(n + i * 7) % len(WORDS)] for i in range(40)) + f" number {n}"


class CountedWorkers(Workers):
    """Workers that count the jobs they send (and the texts in each)."""

    def __init__(self, processes: int) -> None:
        super().__init__(processes)
        self.jobs: list[int] = []

    async def _run(self, func: Any, *args: Any, **options: Any) -> Any:
        if func is pool._fingerprints:
            self.jobs.append(len(args[0]))
        return await super()._run(func, *args, **options)


def test_fingerprints_asked_together_share_jobs_and_each_gets_its_own() -> None:
    texts = [(f"Headline {n}", None, summary(n)) for n in range(150)]

    async def scenario() -> list[Fingerprint | None]:
        workers = CountedWorkers(2)
        try:
            found = await asyncio.gather(*(workers.fingerprint(*t) for t in texts))
        finally:
            workers.close()
        # 150 texts over 2 workers, at most FINGERPRINT_BATCH to a job.
        assert sum(workers.jobs) == len(texts)
        assert len(workers.jobs) == 3
        assert max(workers.jobs) <= pool.FINGERPRINT_BATCH
        return found

    found = asyncio.run(scenario())
    assert found == [dedup.fingerprint(*t) for t in texts]
    assert all(fp is not None for fp in found)


def test_a_caller_that_gives_up_leaves_the_others_theirs() -> None:
    async def scenario() -> None:
        workers = CountedWorkers(0)
        try:
            kept = asyncio.ensure_future(workers.fingerprint("Kept", None, summary(1)))
            dropped = asyncio.ensure_future(workers.fingerprint("Dropped", None, summary(2)))
            await asyncio.sleep(0)  # both asked in the same turn of the loop
            dropped.cancel()
            assert await kept == dedup.fingerprint("Kept", None, summary(1))
            assert dropped.cancelled()
            # A text too short to compare is None, asked for alone.
            assert await workers.fingerprint("Short", None, "two words") is None
            assert workers.jobs == [1, 1]
        finally:
            workers.close()

    asyncio.run(scenario())


def test_one_text_that_fails_costs_only_itself() -> None:
    texts: list[tuple[str | None, str | None, str | None]] = [
        ("Fine", None, summary(3)),
        ("Broken", None, 42),  # type: ignore[list-item]  # not text: fingerprinting it fails
        ("Also fine", None, summary(4)),
    ]

    results = pool._fingerprints(texts)
    assert results[0] == dedup.fingerprint(*texts[0])
    assert isinstance(results[1], InternalError)
    assert "fingerprinting failed unexpectedly" in str(results[1])
    assert results[2] == dedup.fingerprint(*texts[2])


class JobLog(Workers):
    """Workers that note each job they run: its function and what it was asked."""

    def __init__(self) -> None:
        super().__init__(1)
        self.jobs: list[tuple[str, tuple[Any, ...]]] = []

    async def _run(self, func: Any, *args: Any, **options: Any) -> Any:
        self.jobs.append((func.__name__, args))
        return await super()._run(func, *args, **options)


def test_a_page_is_extracted_and_its_item_fingerprinted_in_one_job(
    server: LocalServer, tmp_path: Path
) -> None:
    """A page's item is fingerprinted in the page's extraction job. A second feed listing
    the page under another headline in the same run needs no job of its own: an item with
    text is fingerprinted by its text alone. Each stored signature is what fingerprinting
    the stored texts gives."""
    paragraphs = [f"{summary(n)}." for n in range(12)]
    server.add("/story", article_page("Grain talks resume", paragraphs), content_type="text/html")
    entry = {"link": server.url("/story"), "description": "Talks on grain exports resumed."}
    server.add("/wire.xml", rss([{**entry, "title": "Grain talks resume", "guid": "w1"}]))
    server.add("/partner.xml", rss([{**entry, "title": "Grain talks on again", "guid": "p1"}]))
    store = Store.open(str(tmp_path / "news.db"))
    workers = JobLog()
    try:
        config = make_config(server, {"wire": "/wire.xml"})
        asyncio.run(fetch_feeds(config, store, config.feeds, workers=workers))
        assert [name for name, _ in workers.jobs] == ["_parse", "_extract_fingerprinted"]
        server.add(
            "/story2", article_page("Port reopens", paragraphs[::-1]), content_type="text/html"
        )
        entry = {"link": server.url("/story2"), "description": "The port reopened."}
        server.add("/wire.xml", rss([{**entry, "title": "Port reopens", "guid": "w2"}]))
        server.add("/partner.xml", rss([{**entry, "title": "Port open again", "guid": "p2"}]))
        config = make_config(server, {"wire": "/wire.xml", "partner": "/partner.xml"})
        workers.jobs.clear()
        asyncio.run(fetch_feeds(config, store, config.feeds, workers=workers))
        stored = store.execute(
            "SELECT i.title, i.text, i.summary, f.signature FROM items i "
            "JOIN item_fingerprints f ON f.item_id = i.id ORDER BY i.id"
        )
    finally:
        store.close()
        workers.close()
    # Both feeds may want the new page (the second may find the first's item stored
    # already): it is extracted once, and no fingerprint is asked for apart.
    assert server.hits("/story2") == 1
    jobs = sorted(name for name, _ in workers.jobs)
    assert jobs == ["_extract_fingerprinted", "_parse", "_parse"]
    assert len(stored) == 2  # the partner's copy of /story2 is a sighting of the wire's item
    for title, text, summary_, signature in stored:
        made = dedup.fingerprint(title, text, summary_)
        assert made is not None
        assert signature == made.signature


def test_a_fingerprint_made_with_the_page_is_used_only_for_the_same_texts(
    server: LocalServer, tmp_path: Path
) -> None:
    """The fingerprint made with a page serves any item with the page's text, whatever its
    title; an item with other texts (the feed's own article, say) gets its own."""
    from aggregator.engine.refresh import Pipeline
    from aggregator.engine.stages import ArticleText
    from aggregator.fetch.client import Fetcher

    config = make_config(server, {"wire": "/wire.xml"})
    store = Store.open(str(tmp_path / "news.db"))
    workers = CountedWorkers(0)
    text = summary(7) + " " + summary(8)
    asked = ArticleText("Grain talks resume", text, "Talks on grain exports resumed.")
    made = dedup.fingerprint(asked.title, asked.text, asked.summary)
    assert made is not None
    retitled = ArticleText("Partner: grain talks on again", text, None)
    own_text = ArticleText(asked.title, summary(9) + " " + summary(10), asked.summary)

    async def scenario() -> list[Fingerprint | None]:
        async with Fetcher(config.settings) as fetcher:
            pipeline = Pipeline(config, store, fetcher, workers)
            # As the page's extraction leaves it: what the fingerprint depends on, and it.
            key = dedup.made_of(asked.title, asked.text, asked.summary)
            pipeline._fingerprinted["https://wire.example/story"] = (key, made)
            return [
                await pipeline._fingerprint_of("https://wire.example/story", about)
                for about in (asked, retitled, own_text)
            ]

    try:
        same, again, apart = asyncio.run(scenario())
    finally:
        store.close()
        workers.close()
    assert same is made
    assert again is made  # taken, not made again: the text alone decides it
    assert dedup.fingerprint(retitled.title, retitled.text, retitled.summary) == made
    assert workers.jobs == [1]  # only the other text's was asked for
    assert apart == dedup.fingerprint(own_text.title, own_text.text, own_text.summary)
    assert apart != made
