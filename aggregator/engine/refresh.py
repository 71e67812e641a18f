"""Refresh one feed: fetch -> parse -> extract -> store. Shared by `aggregator fetch` and
the daemon, so both behave exactly alike."""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from aggregator.engine.commit import commit_extraction, commit_refresh, with_fates
from aggregator.engine.pool import Workers
from aggregator.engine.stages import (
    ArticleText,
    FeedPoll,
    PageFetch,
    PolledFeed,
    RefreshBatch,
    commit_batch,
    extract_fingerprinted,
    fetch_page,
    fingerprint_article,
    poll_feed,
)
from aggregator.errors import AggregatorError, InternalError
from aggregator.extract.article import article_from_feed
from aggregator.fetch.client import Fetcher
from aggregator.models import (
    Article,
    Config,
    ExtractStatus,
    Fate,
    FeedConfig,
    FeedHistory,
    FeedOutcome,
    FeedState,
    FeedStatus,
    FetchRecord,
    Fingerprint,
    ItemDraft,
    Outcome,
    Validators,
)
from aggregator.schedule.after_refresh import after_failure, after_success
from aggregator.schedule.due import policy_from, rate_window_start
from aggregator.store import Store
from aggregator.stories import dedup
from aggregator.stories.dedup import DedupPolicy
from aggregator.stories.identity import drafts_and_skips
from aggregator.times import iso_utc, utc_now

log = logging.getLogger(__name__)

MAX_EXTRACT_ATTEMPTS = 3  # a page that failed this often is left with the feed's summary
RETRIES_PER_REFRESH = 20
# Fetched pages waiting for a worker, per worker process, beyond the fetches in flight: the
# network is faster than extraction, and without a bound a run held every page it had
# fetched (1,000 pages: 200 MB). 16 keep a worker busy for half a second.
PAGES_AHEAD_PER_WORKER = 16


@dataclass
class PageCount:
    """The article pages one refresh fetched, and how many of them gave no article."""

    fetched: int = 0
    failed: int = 0


def _count_failure(count: PageCount, task: asyncio.Task[tuple[Article | None, str | None]]) -> None:
    if task.cancelled():
        return  # nobody waited for it any more: neither fetched nor failed, tried next run
    if task.exception() is not None or task.result()[0] is None:
        count.failed += 1


@dataclass(frozen=True, slots=True)
class PageRetry:
    """An item whose article page `aggregator retry` extracts again."""

    item_id: int
    url: str  # canonical: the key the run's pages are shared by
    link: str  # as the feed gave it: what is fetched
    feed: str  # the feed its page is counted for
    # It has text already (extracted before, or the feed's own): a failure keeps it as it is.
    has_text: bool = False


@dataclass(frozen=True, slots=True)
class PageRetried:
    """What extracting a page again did: the article's words, or why there is none."""

    page: PageRetry
    words: int = 0
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


@dataclass
class Pipeline:
    """What one run shares between feeds: the fetcher, the workers, the writer."""

    config: Config
    store: Store
    fetcher: Fetcher
    workers: Workers
    extract: bool = True  # False: --no-extract for this run
    # True: `fetch --force`: feeds are asked without their validators (never a 304); the
    # validators of the full answer are stored as usual.
    force: bool = False
    clock: Callable[[], datetime] = utc_now
    rng: random.Random = field(default_factory=random.Random)  # the schedule's jitter
    # Article pages already being fetched in this run, so two feeds listing the same
    # article fetch its page once.
    _pages: dict[str, asyncio.Task[tuple[Article | None, str | None]]] = field(default_factory=dict)
    # The page fetches each refreshing feed started itself, and how many failed (a page
    # shared with another feed in the same run counts for the feed that fetched it).
    _counts: dict[str, PageCount] = field(default_factory=dict)
    # Items whose page was retried in this run (see _retry_pending).
    _retried: set[int] = field(default_factory=set)
    # How many refreshes are waiting for each page right now: one nobody waits for any more
    # (its feed's deadline passed) is stopped, so it does not hold a host's slots for nothing.
    _waiting: dict[str, int] = field(default_factory=dict)
    # The fingerprint each page's extraction made along with it, and what it depends on
    # (dedup.made_of): any item with the page's text takes it, whatever its headline.
    _fingerprinted: dict[str, tuple[tuple[str | None, ...], Fingerprint | None]] = field(
        default_factory=dict
    )
    # A page holds one from before its fetch until its extraction ends (PAGES_AHEAD_PER_WORKER).
    _page_slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        ahead = PAGES_AHEAD_PER_WORKER * max(1, self.workers.processes)
        self._page_slots = asyncio.Semaphore(self.config.settings.concurrency + ahead)

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
        if state.state == FeedStatus.GONE:
            return skipped_as_gone(feed.name)
        # The whole refresh, article pages included, ends by this (time.monotonic()).
        deadline = t0 + self.config.settings.feed_deadline_s
        # Pages that failed on earlier runs are retried alongside, not before, the feed.
        retries = asyncio.ensure_future(self._retry_pending(feed))
        try:
            outcome = await self._refresh(feed, state, started, deadline)
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
        # Retries commit one page at a time: stopping them at the deadline loses none.
        await asyncio.wait([retries], timeout=max(0.0, deadline - time.monotonic()))
        if not retries.done():
            retries.cancel()
            await asyncio.gather(retries, return_exceptions=True)
            self._drop_unwanted_pages()
        pages = self._counts.pop(feed.name, PageCount())  # new pages and retries alike
        return replace(
            outcome,
            pages_fetched=pages.fetched,
            pages_failed=pages.failed,
            duration_ms=int((time.monotonic() - t0) * 1000),
        )

    async def _refresh(
        self, feed: FeedConfig, state: FeedState, started: datetime, deadline: float
    ) -> FeedOutcome:
        settings = self.config.settings
        # After a 301/308 the feed is fetched from where it moved (until feeds.yaml changes).
        url = state.permanent_url or state.url
        poll = FeedPoll(
            feed.name,
            url,
            Validators() if self.force else Validators(state.etag, state.last_modified),
            max_bytes=settings.max_feed_bytes,
            max_entries=settings.max_entries,
        )
        polled = await poll_feed(poll, fetcher=self.fetcher, workers=self.workers)
        return await self.commit_polled(
            feed, state, started=started, url=url, polled=polled, deadline=deadline
        )

    async def commit_polled(
        self,
        feed: FeedConfig,
        state: FeedState,
        *,
        started: datetime,
        url: str,
        polled: PolledFeed,
        deadline: float,
    ) -> FeedOutcome:
        """The rest of a refresh once the feed is polled (here, or by a distributed worker)."""
        result, parsed = polled.response, polled.parsed
        record = FetchRecord(
            feed=feed.name,
            started_at=iso_utc(started),
            url=url,
            outcome=Outcome.NOT_MODIFIED,
            http_status=result.status,
            duration_ms=result.elapsed_ms,
            bytes=polled.size,
        )
        if parsed is None:
            update = after_success(state, result, None, **self._schedule(feed))
            commit_refresh(self.store, feed.name, [], record, update)
            return FeedOutcome(
                feed.name,
                Outcome.NOT_MODIFIED,
                http_status=304,
                fetch_ms=result.elapsed_ms,
            )
        entries, skipped = drafts_and_skips(parsed.entries)
        drafts, late = await self._prepare(feed, entries, deadline)
        warnings = [parsed.warning] if parsed.warning else []
        if skipped:
            shown = "; ".join(skipped[:3]) + ("; ..." if len(skipped) > 3 else "")
            warnings.append(f"{len(skipped)} entries could not be stored and were skipped: {shown}")
        if parsed.total_entries > len(parsed.entries):
            warnings.append(
                f"the feed has {parsed.total_entries} entries; only the first "
                f"{len(parsed.entries)} were read (settings.max_entries)"
            )
        if late:
            warnings.append(
                f"feed_deadline ({_duration(self.config.settings.feed_deadline_s)}) passed with"
                f" {late} of {len(drafts)} article pages unfinished; their entries are stored"
                " with the feed's summary and the pages are fetched on the next run"
            )
        warning = "; ".join(warnings) or None
        parsed = replace(parsed, warning=warning)
        record = replace(record, outcome=Outcome.OK, entries=len(parsed.entries), warning=warning)
        update = after_success(state, result, parsed, **self._schedule(feed))
        batch = RefreshBatch(feed.name, tuple(drafts), record, update)
        counts = commit_batch(batch, store=self.store, dedup=self.dedup)
        return FeedOutcome(
            feed.name,
            Outcome.OK,
            http_status=result.status,
            entries=len(parsed.entries),
            new_items=counts.new_items,
            updated_items=counts.updated_items,
            warning=warning,
            fetch_ms=result.elapsed_ms,
        )

    async def _prepare(
        self, feed: FeedConfig, drafts: list[ItemDraft], deadline: float
    ) -> tuple[list[ItemDraft], int]:
        """Keep the drafts the store lacks or that changed, each with its fate decided and,
        for new items, its article and fingerprint attached. Entries whose page is not done
        by the deadline go without it (pending, fingerprinted from the summary); returns
        how many did."""
        changed = with_fates(drafts, self.store.known_entries(feed.name, drafts))
        tasks = [asyncio.ensure_future(self._prepare_one(feed, d)) for d in changed]
        if tasks:
            await asyncio.wait(tasks, timeout=max(0.0, deadline - time.monotonic()))
        prepared, late = [], 0
        for draft, task in zip(changed, tasks, strict=True):
            if task.done():
                prepared.append(task.result())
                continue
            task.cancel()
            late += 1
            prepared.append(await self._without_page(draft))
        await asyncio.gather(*tasks, return_exceptions=True)
        self._drop_unwanted_pages()
        return prepared, late

    async def _without_page(self, draft: ItemDraft) -> ItemDraft:
        """A new entry whose page missed the deadline: stored now, its page left pending."""
        if draft.fate is not Fate.NEW:
            return draft
        title, summary = draft.entry.title, draft.entry.summary
        fingerprint = await self._fingerprint(title, None, summary)
        return replace(draft, extract_status=ExtractStatus.PENDING, fingerprint=fingerprint)

    async def _prepare_one(self, feed: FeedConfig, draft: ItemDraft) -> ItemDraft:
        known = draft.fate is not Fate.NEW
        try:
            draft = await self._attach_article(feed, draft, known)
        except Exception as exc:  # one odd entry must not cost the feed its other entries
            log.exception("preparing an entry of %s failed", feed.name)
            if known:
                return draft
            return replace(
                draft,
                extract_status=ExtractStatus.FAILED,
                extract_error=f"unexpected error: {exc!r}",
            )
        if known:
            return draft  # the item exists and keeps its fingerprint
        article = draft.article
        title = draft.entry.title or (article.title if article else None)
        text = article.text if article else None
        made_of = ArticleText(title, text, draft.entry.summary)
        return replace(draft, fingerprint=await self._fingerprint_of(draft.url, made_of))

    async def _fingerprint_of(self, url: str | None, made_of: ArticleText) -> Fingerprint | None:
        """The one made with the page's extraction when it depends on the same texts (the
        article's text alone, whatever the entry's title: dedup.made_of), else one asked
        for now."""
        done = self._fingerprinted.get(url or "")
        wanted = dedup.made_of(made_of.title, made_of.text, made_of.summary)
        if done is not None and done[0] == wanted:
            return done[1]
        return await self._fingerprint(made_of.title, made_of.text, made_of.summary)

    async def _fingerprint(
        self, title: str | None, text: str | None, summary: str | None
    ) -> Fingerprint | None:
        try:
            return await fingerprint_article(
                ArticleText(title, text, summary), workers=self.workers
            )
        except AggregatorError as exc:  # the item is still stored, as a story of its own
            log.warning("fingerprinting an item failed: %s", exc)
            return None

    async def _attach_article(self, feed: FeedConfig, draft: ItemDraft, known: bool) -> ItemDraft:
        from_feed = article_from_feed(
            draft.entry, base_url=draft.entry.link or feed.url, force=feed.extract is False
        )
        if from_feed is not None:
            return replace(draft, article=from_feed, extract_status=ExtractStatus.FEED)
        if known:
            return draft  # the item exists; its page was (or will be) handled on its own
        if not draft.entry.link or draft.url is None:
            return replace(
                draft, extract_status=ExtractStatus.SKIPPED, extract_error="the entry has no link"
            )
        if not self.configured_to_extract(feed):
            return replace(draft, extract_status=ExtractStatus.SKIPPED)
        if not self.extract:
            return draft  # --no-extract: left pending for a later run
        about = ArticleText(draft.entry.title or None, None, draft.entry.summary)
        article, error = await self._await_page(draft.url, draft.entry.link, feed.name, about)
        if article is None:
            return replace(draft, extract_status=ExtractStatus.FAILED, extract_error=error)
        return replace(draft, article=article, extract_status=ExtractStatus.OK)

    def forget_finished_pages(self) -> None:
        """Drop the article pages already fetched: a run's pipeline keeps them so two feeds
        listing one article fetch it once, but the daemon's pipeline lives for weeks."""
        self._pages = {url: task for url, task in self._pages.items() if not task.done()}
        self._fingerprinted.clear()  # a page still running adds its own when it ends
        self._retried.clear()

    async def _await_page(
        self, url: str, link: str, feed: str, about: ArticleText
    ) -> tuple[Article | None, str | None]:
        """The page's article (or why there is none), fetched once however many feeds ask;
        the first to ask has its item fingerprinted along (`about`: its title and summary).
        Shielded: when this feed gives up on it (its deadline), another feed may still wait."""
        self._waiting[url] = self._waiting.get(url, 0) + 1
        try:
            return await asyncio.shield(self._page(url, link, feed, about))
        finally:
            self._waiting[url] -= 1
            if not self._waiting[url]:
                del self._waiting[url]

    def _drop_unwanted_pages(self) -> None:
        """Stop the pages nobody waits for any more (their feeds' deadlines passed): they
        would hold a host's slots for nothing. The next run fetches them again."""
        for url, task in list(self._pages.items()):
            if not task.done() and url not in self._waiting:
                task.cancel()
                del self._pages[url]

    def _page(
        self, url: str, link: str, feed: str, about: ArticleText
    ) -> asyncio.Task[tuple[Article | None, str | None]]:
        task = self._pages.get(url)
        if task is None:
            count = self._counts.setdefault(feed, PageCount())
            count.fetched += 1
            task = asyncio.ensure_future(self._fetch_article(url, link, about))
            # Counted on the refresh's own tally: one that ended before its page did (its
            # deadline) holds no entry here any more, and the next refresh starts afresh.
            task.add_done_callback(functools.partial(_count_failure, count))
            self._pages[url] = task
        return task

    async def _fetch_article(
        self, url: str, link: str, about: ArticleText
    ) -> tuple[Article | None, str | None]:
        try:
            request = PageFetch(url, link, self.config.settings.max_page_bytes)
            async with self._page_slots:
                page = await fetch_page(request, fetcher=self.fetcher)
                done = await extract_fingerprinted(page, about, workers=self.workers)
            made = done.made_of
            key = dedup.made_of(made.title, made.text, made.summary)
            self._fingerprinted[url] = (key, done.fingerprint)
            return done.article, None
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
            await self._extract_again(PageRetry(item_id, url, link, feed.name))
        except Exception:
            log.exception("retrying the page of item %s failed", item_id)
            return False
        return True

    async def _extract_again(self, page: PageRetry) -> tuple[Article | None, str | None]:
        """An item's page once more, through the run's shared pages, and committed: its text
        and fingerprint, or the failure (unless the item has text a failure must not hide)."""
        article, error = await self._await_page(
            page.url, page.link, page.feed, ArticleText(None, None, None)
        )
        fingerprint = None
        if article is not None:  # the text arrived: the item is matched again by it
            made_of = ArticleText(article.title, article.text, None)
            fingerprint = await self._fingerprint_of(page.url, made_of)
        if article is not None or not page.has_text:
            commit_extraction(
                self.store,
                page.item_id,
                article,
                error,
                fingerprint=fingerprint,
                dedup=self.dedup,
                now=iso_utc(self.clock()),
            )
        return article, error

    async def retry_pages(self, pages: Sequence[PageRetry]) -> list[PageRetried]:
        """`aggregator retry`: these pages now, whatever their attempts so far, the way a
        refresh retries its feed's pending pages. Never raises for what a page does."""

        async def one(page: PageRetry) -> PageRetried:
            try:
                article, error = await self._extract_again(page)
            except AggregatorError as exc:  # the fingerprint or the commit
                return PageRetried(page, error=str(exc))
            except Exception as exc:
                log.exception("retrying the page of item %s failed", page.item_id)
                return PageRetried(page, error=f"unexpected error: {exc!r}")
            if article is None:
                return PageRetried(page, error=error or "no article")
            return PageRetried(page, words=len(article.text.split()))

        try:
            return list(await asyncio.gather(*(one(p) for p in pages)))
        finally:
            for page in pages:
                self._counts.pop(page.feed, None)

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
        commit_refresh(self.store, feed.name, [], record, update)
        return FeedOutcome(feed.name, exc.outcome, http_status=status, error=str(exc))


def _duration(seconds: float) -> str:
    whole = int(seconds)
    if whole % 60 or whole < 60:
        return f"{seconds:g}s"
    return f"{whole // 60}m" if whole % 3600 or whole < 3600 else f"{whole // 3600}h"


def skipped_as_gone(feed: str) -> FeedOutcome:
    """A feed the server said is gone (410) is not asked again, here or by a worker."""
    return FeedOutcome(
        feed,
        Outcome.GONE,
        error="skipped: the server said the feed is gone (410); "
        "remove it from feeds.yaml or give it a new URL",
    )
