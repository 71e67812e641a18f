"""The run context: set-up and tear-down that `aggregator fetch` and the daemon share.

Entering it syncs feeds.yaml into the store, frees the leases of crashed processes, opens the
fetcher and keeps this process's leases renewed; leaving it releases every lease, closes the
fetcher and, when it made them, the workers. `refresh` is the one way either command refreshes
a feed, with one failure policy: whatever a feed or page does is recorded by the refresh
itself; if even recording fails (the store is locked or full), the feed is postponed and the
outcome says `internal_error`. It never raises for one feed.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from types import TracebackType

from aggregator.engine.pool import Workers
from aggregator.engine.refresh import Pipeline
from aggregator.fetch.client import Fetcher
from aggregator.models import Config, FeedConfig, FeedOutcome, Outcome
from aggregator.schedule.leases import Leases
from aggregator.store import Store
from aggregator.times import iso_utc, utc_now

log = logging.getLogger(__name__)

LEASED = "skipped: another aggregator process (the daemon) is refreshing it right now"
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
        self._extract = extract
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
            return FeedOutcome(feed.name, Outcome.LEASED, warning=LEASED)
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
    workers: Workers | None = None,
    on_done: Callable[[FeedOutcome], None] | None = None,
) -> list[FeedOutcome]:
    """`aggregator fetch`: one pass over `feeds`, all at once within the fetcher's limits."""
    async with RunContext(config, store, role="fetch", workers=workers, extract=extract) as run:

        async def one(feed: FeedConfig) -> FeedOutcome:
            outcome = await run.refresh(feed)
            if on_done is not None:
                on_done(outcome)
            return outcome

        return list(await asyncio.gather(*(one(f) for f in feeds)))
