"""Refresh one feed: fetch -> parse -> extract -> store. Shared by `aggregator fetch` and
the daemon, so both behave exactly alike."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from aggregator.dedup import DedupPolicy
from aggregator.drafts import drafts_for
from aggregator.errors import AggregatorError, FetchError, InternalError
from aggregator.extract import article_from_feed
from aggregator.feedstate import after_failure, after_success
from aggregator.fetch import Fetcher
from aggregator.leases import Leases
from aggregator.models import (
    Article,
    Config,
    FeedConfig,
    FeedHistory,
    FeedOutcome,
    FeedState,
    FetchRecord,
    FetchResult,
    Fingerprint,
    ItemDraft,
    Validators,
)
from aggregator.schedule import policy_from, rate_window_start
from aggregator.store import Store
from aggregator.times import iso_utc, utc_now
from aggregator.workers import Workers

log = logging.getLogger(__name__)

HTML_TYPES = ("text/html", "application/xhtml+xml")
PAGE_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"
FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9,"
    " text/xml;q=0.9, application/json;q=0.8, */*;q=0.5"
)
MAX_EXTRACT_ATTEMPTS = 3  # a page that failed this often is left with the feed's summary
RETRIES_PER_REFRESH = 20
LEASED = "skipped: another aggregator process (the daemon) is refreshing it right now"


@dataclass
class Pipeline:
    """What one run shares between feeds: the fetcher, the workers, the writer."""

    config: Config
    store: Store
    fetcher: Fetcher
    workers: Workers
    extract: bool = True  # False: --no-extract for this run
    clock: Callable[[], datetime] = utc_now
    rng: random.Random = field(default_factory=random.Random)  # the schedule's jitter
    # Article pages already being fetched in this run, so two feeds listing the same
    # article fetch its page once.
    _pages: dict[str, asyncio.Task[tuple[Article | None, str | None]]] = field(default_factory=dict)
    # How many page fetches each feed started itself (a page shared with another feed in the
    # same run counts for the feed that fetched it).
    _started: dict[str, int] = field(default_factory=dict)
    # Items whose page was retried in this run (see _retry_pending).
    _retried: set[int] = field(default_factory=set)

    def _history(self, feed: FeedConfig, now: datetime) -> FeedHistory:
        """The feed's history as the schedule sees it, with the user's interval override."""
        since = iso_utc(rate_window_start(now, policy_from(self.config.settings)))
        return replace(self.store.feed_history(feed.name, since=since), interval_s=feed.interval_s)

    def _schedule(self, feed: FeedConfig) -> dict[str, Any]:
        """after_success/after_failure's scheduling arguments, as of now."""
        now = self.clock()
        return {
            "now": now,
            "history": self._history(feed, now),
            "policy": policy_from(self.config.settings),
            "jitter": self.rng.uniform(-1.0, 1.0),
        }

    @property
    def dedup(self) -> DedupPolicy:
        """The near-duplicate thresholds from settings (dedup.py)."""
        return DedupPolicy.from_settings(self.config.settings)

    def configured_to_extract(self, feed: FeedConfig) -> bool:
        return self.config.settings.extract if feed.extract is None else feed.extract

    def extracts(self, feed: FeedConfig) -> bool:
        """Whether this run fetches the feed's article pages (--no-extract turns it off)."""
        return self.configured_to_extract(feed) and self.extract

    async def refresh_feed(self, feed: FeedConfig) -> FeedOutcome:
        """Never raises for anything a feed or page can do; the outcome says what happened."""
        started = self.clock()
        t0 = time.monotonic()
        state = self.store.feed_state(feed.name)
        if state.state == "gone":
            return FeedOutcome(
                feed.name,
                "gone",
                error="skipped: the server said the feed is gone (410); "
                "remove it from feeds.yaml or give it a new URL",
            )
        # Pages that failed on earlier runs are retried alongside, not before, the feed.
        retries = asyncio.ensure_future(self._retry_pending(feed))
        try:
            outcome = await self._refresh(feed, state, started)
        except asyncio.CancelledError:  # shutting down: the retries stop too
            retries.cancel()
            raise
        except AggregatorError as exc:
            outcome = self._record_failure(feed, state, started, exc)
        except Exception as exc:  # a bug must not stop the other feeds; it is recorded
            log.exception("refreshing %s failed unexpectedly", feed.name)
            outcome = self._record_failure(
                feed, state, started, InternalError(f"unexpected error: {exc!r}")
            )
        await retries
        return replace(
            outcome,
            pages_fetched=self._started.pop(feed.name, 0),  # new pages and retries alike
            duration_ms=int((time.monotonic() - t0) * 1000),
        )

    async def _refresh(self, feed: FeedConfig, state: FeedState, started: datetime) -> FeedOutcome:
        settings = self.config.settings
        # After a 301/308 the feed is fetched from where it moved (until feeds.yaml changes).
        url = state.permanent_url or state.url
        result = await self.fetcher.get(
            url,
            validators=Validators(state.etag, state.last_modified),
            max_bytes=settings.max_feed_bytes,
            accept=FEED_ACCEPT,
        )
        record = FetchRecord(
            feed=feed.name,
            started_at=iso_utc(started),
            url=url,
            outcome="not_modified",
            http_status=result.status,
            duration_ms=result.elapsed_ms,
            bytes=len(result.body),
        )
        if result.not_modified:
            update = after_success(state, result, None, **self._schedule(feed))
            self.store.save_refresh(feed.name, [], record, update)
            return FeedOutcome(
                feed.name,
                "not_modified",
                http_status=304,
                fetch_ms=result.elapsed_ms,
            )
        parsed = await self.workers.parse(
            result.body,
            result.final_url,
            result.content_type,
            result.charset,
            settings.max_entries,
        )
        drafts = await self._prepare(feed, drafts_for(parsed.entries))
        warning = parsed.warning
        if parsed.total_entries > len(parsed.entries):
            warning = (
                f"the feed has {parsed.total_entries} entries; only the first "
                f"{len(parsed.entries)} were read (settings.max_entries)"
            )
        parsed = replace(parsed, warning=warning)
        record = replace(record, outcome="ok", entries=len(parsed.entries), warning=warning)
        update = after_success(state, result, parsed, **self._schedule(feed))
        counts = self.store.save_refresh(feed.name, drafts, record, update, dedup=self.dedup)
        return FeedOutcome(
            feed.name,
            "ok",
            http_status=result.status,
            entries=len(parsed.entries),
            new_items=counts.new_items,
            updated_items=counts.updated_items,
            extract_failures=sum(d.extract_status == "failed" for d in drafts),
            warning=warning,
            fetch_ms=result.elapsed_ms,
        )

    async def _prepare(self, feed: FeedConfig, drafts: list[ItemDraft]) -> list[ItemDraft]:
        """Keep the drafts the store lacks or that changed, with their articles attached."""
        known_keys, known_urls = self.store.known_entries(feed.name, drafts)
        changed = [d for d in drafts if known_keys.get(d.key) != d.entry_hash]
        return list(
            await asyncio.gather(
                *(
                    self._prepare_one(feed, d, d.key in known_keys or d.url in known_urls)
                    for d in changed
                )
            )
        )

    async def _prepare_one(self, feed: FeedConfig, draft: ItemDraft, known: bool) -> ItemDraft:
        try:
            draft = await self._attach_article(feed, draft, known)
        except Exception as exc:  # one odd entry must not cost the feed its other entries
            log.exception("preparing an entry of %s failed", feed.name)
            if known:
                return draft
            return replace(
                draft, extract_status="failed", extract_error=f"unexpected error: {exc!r}"
            )
        if known:
            return draft  # the item exists and keeps its fingerprint
        article = draft.article
        title = draft.entry.title or (article.title if article else None)
        text = article.text if article else None
        return replace(draft, fingerprint=await self._fingerprint(title, text, draft.entry.summary))

    async def _fingerprint(
        self, title: str | None, text: str | None, summary: str | None
    ) -> Fingerprint | None:
        try:
            return await self.workers.fingerprint(title, text, summary)
        except AggregatorError as exc:  # the item is still stored, as a story of its own
            log.warning("fingerprinting an item failed: %s", exc)
            return None

    async def _attach_article(self, feed: FeedConfig, draft: ItemDraft, known: bool) -> ItemDraft:
        from_feed = article_from_feed(
            draft.entry, base_url=draft.entry.link or feed.url, force=feed.extract is False
        )
        if from_feed is not None:
            return replace(draft, article=from_feed, extract_status="feed")
        if known:
            return draft  # the item exists; its page was (or will be) handled on its own
        if not draft.entry.link or draft.url is None:
            return replace(draft, extract_status="skipped", extract_error="the entry has no link")
        if not self.configured_to_extract(feed):
            return replace(draft, extract_status="skipped")
        if not self.extract:
            return draft  # --no-extract: left pending for a later run
        article, error = await self._page(draft.url, draft.entry.link, feed.name)
        if article is None:
            return replace(draft, extract_status="failed", extract_error=error)
        return replace(draft, article=article, extract_status="ok")

    def forget_finished_pages(self) -> None:
        """Drop the article pages already fetched: a run's pipeline keeps them so two feeds
        listing one article fetch it once, but the daemon's pipeline lives for weeks."""
        self._pages = {url: task for url, task in self._pages.items() if not task.done()}
        self._retried.clear()

    def _page(
        self, url: str, link: str, feed: str
    ) -> asyncio.Task[tuple[Article | None, str | None]]:
        task = self._pages.get(url)
        if task is None:
            self._started[feed] = self._started.get(feed, 0) + 1
            task = asyncio.ensure_future(self._fetch_article(link))
            self._pages[url] = task
        return task

    async def _fetch_article(self, link: str) -> tuple[Article | None, str | None]:
        try:
            page = await self.fetcher.get_page(
                link, max_bytes=self.config.settings.max_page_bytes, accept=PAGE_ACCEPT
            )
            _check_html(page)
            return await self.workers.extract(page.body, page.final_url, page.charset), None
        except AggregatorError as exc:
            return None, str(exc)

    async def _retry_pending(self, feed: FeedConfig) -> int:
        """Pages that failed (or were skipped with --no-extract) on earlier runs."""
        if not self.extracts(feed):
            return 0
        pending = self.store.pending_pages(
            feed.name, max_attempts=MAX_EXTRACT_ATTEMPTS, limit=RETRIES_PER_REFRESH
        )
        # An item seen in several feeds is retried once per run, through the shared pages.
        pending = [p for p in pending if p[0] not in self._retried]
        self._retried.update(item_id for item_id, _, _ in pending)
        done = await asyncio.gather(
            *(self._retry_page(feed, item_id, url, link) for item_id, url, link in pending)
        )
        return sum(done)

    async def _retry_page(self, feed: FeedConfig, item_id: int, url: str, link: str) -> bool:
        """One earlier failure again; never raises (the feed's own refresh must go on)."""
        try:
            article, error = await self._page(url, link, feed.name)
            fingerprint = None
            if article is not None:  # the text arrived: the item is matched again by it
                fingerprint = await self._fingerprint(article.title, article.text, None)
            self.store.save_extraction(
                item_id,
                article,
                error,
                fingerprint=fingerprint,
                dedup=self.dedup,
                now=iso_utc(self.clock()),
            )
        except Exception:
            log.exception("retrying the page of item %s failed", item_id)
            return False
        return True

    def _record_failure(
        self, feed: FeedConfig, state: FeedState, started: datetime, exc: AggregatorError
    ) -> FeedOutcome:
        status = getattr(exc, "status", None)
        record = FetchRecord(
            feed=feed.name,
            started_at=iso_utc(started),
            url=state.permanent_url or state.url,
            outcome=exc.outcome,
            http_status=status,
            error=str(exc),
        )
        update = after_failure(
            state,
            outcome=exc.outcome,
            error=str(exc),
            retry_after_s=getattr(exc, "retry_after_s", None),
            **self._schedule(feed),
        )
        self.store.save_refresh(feed.name, [], record, update)
        return FeedOutcome(feed.name, exc.outcome, http_status=status, error=str(exc))


def _check_html(page: FetchResult) -> None:
    if page.content_type and page.content_type not in HTML_TYPES:
        raise FetchError(
            f"the link serves {page.content_type}, not an HTML article page", url=page.final_url
        )


async def fetch_feeds(
    config: Config,
    store: Store,
    feeds: Sequence[FeedConfig],
    *,
    extract: bool = True,
    workers: Workers | None = None,
    on_done: Callable[[FeedOutcome], None] | None = None,
) -> list[FeedOutcome]:
    """One pass over `feeds`, all at once within the fetcher's limits (`aggregator fetch`).

    Each feed is leased while it is refreshed; one that another process (the daemon) is
    refreshing right now is skipped with the outcome "leased", which is no failure."""
    store.sync_feeds(config.feeds, now=iso_utc(utc_now()))
    own_workers = workers is None
    workers = workers or Workers()
    leases = Leases(store, role="fetch")
    leases.break_dead()
    try:
        async with Fetcher(config.settings) as fetcher, leases.kept():
            pipeline = Pipeline(config, store, fetcher, workers, extract=extract)

            async def one(feed: FeedConfig) -> FeedOutcome:
                if leases.take(feed.name):
                    try:
                        outcome = await pipeline.refresh_feed(feed)
                    except Exception as exc:  # even recording the failure failed
                        log.exception("refreshing %s failed", feed.name)
                        outcome = FeedOutcome(feed.name, "internal_error", error=repr(exc))
                    finally:
                        leases.release(feed.name)
                else:
                    outcome = FeedOutcome(feed.name, "leased", warning=LEASED)
                if on_done is not None:
                    on_done(outcome)
                return outcome

            return list(await asyncio.gather(*(one(f) for f in feeds)))
    finally:
        if own_workers:
            workers.close()
