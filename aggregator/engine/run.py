"""The run context: set-up and tear-down that `aggregator fetch` and the daemon share.

Entering it syncs feeds.yaml into the store, frees the leases of crashed processes, opens the
fetcher and keeps this process's leases renewed; leaving it releases every lease, closes the
fetcher and, when it made them, the workers. `refresh` is the one way either command refreshes
a feed, with one failure policy: whatever a feed or page does is recorded by the refresh
itself; if even recording fails (the store is locked or full), the feed is postponed and the
outcome says `internal_error`. It never raises for one feed. `aggregator retry` runs in the
same context: `retry` extracts pages again under the leases of the feeds that carried them.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from types import TracebackType

from aggregator.engine.pool import PRELOAD_WITHOUT_EXTRACTION, Workers
from aggregator.engine.refresh import PageRetried, PageRetry, Pipeline
from aggregator.fetch.client import Fetcher
from aggregator.models import Config, FeedConfig, FeedOutcome, Outcome
from aggregator.schedule.leases import Leases
from aggregator.store import Store
from aggregator.times import iso_utc, utc_now

log = logging.getLogger(__name__)

RETRY_LEASED = "skipped: {who} is refreshing feed {feed} right now; run the retry again soon"
UNRECORDED_RETRY_S = 300  # a refresh whose outcome could not be stored is tried again after


class RunContext:
    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        role: str,
        workers: Workers | None = None,
        extract: bool = True,
        force: bool = False,
        clock: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.leases = Leases(store, role=role, clock=clock)
        self._own_workers = workers is None
        self.workers = workers or Workers()
        self.workers.memory_limit_bytes = config.settings.worker_memory_limit_bytes
        if not extract:  # no page is extracted in this run: its workers need no trafilatura
            self.workers.preload = PRELOAD_WITHOUT_EXTRACTION
        self._extract = extract
        self._force = force
        self._rng = rng or random.Random()
        self._stack = AsyncExitStack()
        self._pipeline: Pipeline | None = None

    async def __aenter__(self) -> RunContext:
        try:
            self.store.sync_feeds(self.config.feeds, now=iso_utc(self.clock()))
            self.leases.break_dead()
            fetcher = await self._stack.enter_async_context(Fetcher(self.config.settings))
            await self._stack.enter_async_context(self.leases.kept())
        except BaseException:
            await self._close()
            raise
        self._pipeline = Pipeline(
            self.config,
            self.store,
            fetcher,
            self.workers,
            extract=self._extract,
            force=self._force,
            clock=self.clock,
            rng=self._rng,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        self._pipeline = None
        try:
            await self._stack.aclose()
        finally:
            if self._own_workers:
                self.workers.close()

    @property
    def pipeline(self) -> Pipeline:
        if self._pipeline is None:
            raise RuntimeError("the run context is not open")
        return self._pipeline

    def reconfigure(self, config: Config) -> None:
        """feeds.yaml was reloaded: later refreshes use these feeds and settings (those the
        fetcher took at start stay until a restart)."""
        self.config = config
        self.pipeline.config = config
        self.workers.memory_limit_bytes = config.settings.worker_memory_limit_bytes

    def between_batches(self) -> None:
        """Forget the article pages already fetched: within a batch two feeds listing one
        article fetch it once, but a daemon's run lasts for weeks."""
        self.pipeline.forget_finished_pages()

    async def refresh(self, feed: FeedConfig) -> FeedOutcome:
        """Lease the feed and refresh it; one that another process is refreshing right now is
        skipped with the outcome "leased", which is no failure."""
        if not self.leases.take(feed.name):
            return FeedOutcome(feed.name, Outcome.LEASED, warning=self.leases.skipped(feed.name))
        return await self.refresh_leased(feed)

    async def refresh_leased(self, feed: FeedConfig) -> FeedOutcome:
        """Refresh a feed whose lease this run holds, and release it."""
        try:
            return await self.pipeline.refresh_feed(feed)
        except Exception as exc:  # the refresh records what feeds do: this is the store failing
            log.exception("refreshing %s failed", feed.name, extra={"feed": feed.name})
            self._postpone(feed.name)
            return FeedOutcome(feed.name, Outcome.INTERNAL_ERROR, error=repr(exc))
        finally:
            self.leases.release(feed.name)

    async def retry(
        self, pages: Sequence[PageRetry], carried_by: Mapping[int, Sequence[str]]
    ) -> list[PageRetried]:
        """Extract these pages again now. Each item's feeds (`carried_by`: item id -> feeds)
        are leased first, as a refresh leases its feed, so no other process works on them
        at the same time; an item whose feed another process holds is skipped, saying so."""
        wanted = sorted({feed for page in pages for feed in carried_by.get(page.item_id, ())})
        held = [feed for feed in wanted if self.leases.take(feed)]
        try:
            busy = set(wanted) - set(held)
            blocked = {
                page.item_id: next(f for f in carried_by.get(page.item_id, ()) if f in busy)
                for page in pages
                if busy.intersection(carried_by.get(page.item_id, ()))
            }
            done = await self.pipeline.retry_pages([p for p in pages if p.item_id not in blocked])
        finally:
            for feed in held:
                self.leases.release(feed)
        who = {feed: self.leases.holder_of(feed) or "another aggregator process" for feed in busy}
        by_item = {r.page.item_id: r for r in done}
        return [
            by_item.get(p.item_id)
            or PageRetried(
                p, error=RETRY_LEASED.format(who=who[blocked[p.item_id]], feed=blocked[p.item_id])
            )
            for p in pages
        ]

    def _postpone(self, name: str) -> None:
        """A refresh that could not even be recorded stays due and would run again at once:
        try it again later instead."""
        until = self.clock() + timedelta(seconds=UNRECORDED_RETRY_S)
        try:
            self.store.postpone(name, until=iso_utc(until))
        except Exception:
            log.exception("could not postpone %s", name, extra={"feed": name})


async def fetch_feeds(
    config: Config,
    store: Store,
    feeds: Sequence[FeedConfig],
    *,
    extract: bool = True,
    force: bool = False,
    workers: Workers | None = None,
    on_done: Callable[[FeedOutcome], None] | None = None,
) -> list[FeedOutcome]:
    """`aggregator fetch`: one pass over `feeds`, all at once within the fetcher's limits.
    `force` asks every feed in full, without its validators, for this pass only."""
    async with RunContext(
        config, store, role="fetch", workers=workers, extract=extract, force=force
    ) as run:

        async def one(feed: FeedConfig) -> FeedOutcome:
            outcome = await run.refresh(feed)
            if on_done is not None:
                on_done(outcome)
            return outcome

        return list(await asyncio.gather(*(one(f) for f in feeds)))


async def retry_pages(
    config: Config,
    store: Store,
    pages: Sequence[PageRetry],
    carried_by: Mapping[int, Sequence[str]],
    *,
    workers: Workers | None = None,
) -> list[PageRetried]:
    """`aggregator retry`: the pages of these items extracted again now, in the run context
    `aggregator fetch` uses (its leases, fetcher and workers); one answer per page, in order."""
    async with RunContext(config, store, role="retry", workers=workers) as run:
        return await run.retry(pages, carried_by)
