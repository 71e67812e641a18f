"""The writer of the distributed mode: it asks the workers, and commits what they answer.

`DistributedRun` is the run context (engine/run.py) of `aggregator run --broker` and
`aggregator fetch --broker`. It holds the one writer's lease in Redis (beside the store's own
instance lock and feed leases), sends each feed to refresh to the `fetch` queue as a
`FeedPoll`, and alone consumes the `commit` queue, where the workers' answers arrive:

    PollDone   the feed's entries (or its failure): fates decided against the store, entries,
               sightings, stories, fetch record and new validators committed in one
               transaction (the same `Pipeline.commit_polled` as the embedded mode), new
               items' pages left pending; then a `PageTask` per new page to the `fetch` queue
    PageDone   the page's article and fingerprint (or why not): `commit_extraction`, which
               places the item again by its text
    gave_up    a message that failed every try: recorded as the feed's or the page's failure

Applying a message twice changes nothing: a poll's answer whose fetch is already recorded is
skipped, an entry already sighted is not stored again (`apply_entry`), and a page's answer
counts on the item's extraction attempts when it was asked, which the first answer moves on.
A message is acknowledged only after its transaction committed, so a writer killed in between
has it delivered again. Pages whose message was lost are retried with the feed's next poll
(the pending-page retry of the embedded mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, cast

import redis
from dramatiq.broker import MessageProxy
from dramatiq.brokers.redis import RedisBroker
from dramatiq.errors import BrokerConnectionError
from dramatiq.message import Message

from aggregator.engine import broker as brokers
from aggregator.engine import tasks
from aggregator.engine.commit import commit_extraction
from aggregator.engine.messages import decode, encode
from aggregator.engine.pool import Workers
from aggregator.engine.refresh import (
    MAX_EXTRACT_ATTEMPTS,
    RETRIES_PER_REFRESH,
    Pipeline,
    skipped_as_gone,
)
from aggregator.engine.run import RunContext
from aggregator.engine.stages import FeedPoll, PageFetch
from aggregator.errors import AggregatorError, UsageError
from aggregator.fetch.client import Fetcher
from aggregator.models import (
    Config,
    ExtractStatus,
    Fate,
    FeedConfig,
    FeedOutcome,
    FeedStatus,
    ItemDraft,
    Outcome,
    Validators,
)
from aggregator.store import Store
from aggregator.stories.placement import place_item
from aggregator.times import iso_utc, parse_iso, utc_now

log = logging.getLogger(__name__)

PREFETCH = 16  # commit messages taken at once (put back if the writer stops)
IDLE_POLL_MS = 200  # how long the commit consumer waits when its queue is empty
COMMIT_TRIES = 5  # a commit message that fails this often (a bug, a locked store) is dead
RECONNECT_MAX_S = 5.0


class NoWorkers(UsageError):
    """`aggregator fetch --broker` with no worker listening: nothing would ever answer."""


class RemoteFailure(AggregatorError):
    """A failure a worker reported, with the outcome it had there."""

    def __init__(self, error: tasks.PollError) -> None:
        super().__init__(error.message)
        try:
            self.outcome = Outcome(error.outcome)
        except ValueError:  # a worker of another version: the failure is recorded all the same
            self.outcome = Outcome.ERROR
        self.status = error.http_status
        self.retry_after_s = error.retry_after_s


@dataclass
class WriterPipeline(Pipeline):
    """The writer's half of a refresh: it never fetches. Built with extract=False, so a new
    entry whose page is to be fetched is stored pending; `new_pages` keeps those entries for
    the workers. Such an entry is stored without a fingerprint when its page is on the way
    (`pages_follow`): its page's text places it when it comes, or, when the page fails, its
    summary (the worker sends that fingerprint), as the embedded mode decides with the page
    in hand. Placing it by its summary first would cost the writer a search among every
    formulaic teaser (most of its CPU, measured) for a decision its text then overrides."""

    new_pages: dict[str, list[ItemDraft]] = field(default_factory=dict)
    pages_follow: bool = True  # this run asks the workers for new items' pages

    async def _prepare_one(self, feed: FeedConfig, draft: ItemDraft) -> ItemDraft:
        if draft.fate is Fate.NEW and self.pages_follow and self.configured_to_extract(feed):
            try:
                attached = await self._attach_article(feed, draft, False)
            except Exception:  # the embedded path records it
                return await super()._prepare_one(feed, draft)
            if _page_follows(attached):
                return attached
        return await super()._prepare_one(feed, draft)

    async def _prepare(
        self, feed: FeedConfig, drafts: list[ItemDraft], deadline: float
    ) -> tuple[list[ItemDraft], int]:
        prepared, late = await super()._prepare(feed, drafts, deadline)
        self.new_pages[feed.name] = [d for d in prepared if _page_follows(d)]
        return prepared, late


def _page_follows(draft: ItemDraft) -> bool:
    """A new entry stored pending, whose page the workers are to fetch."""
    return (
        draft.fate is Fate.NEW
        and draft.extract_status is ExtractStatus.PENDING
        and draft.url is not None
        and bool(draft.entry.link)
    )


@dataclass
class _Page:
    feed: str
    sent: float  # time.monotonic()


class DistributedRun(RunContext):
    """`async with DistributedRun(config, store, role="daemon", url=...) as run:`; then
    `refresh(feed)` as with the embedded run context: its outcome arrives from a worker."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        role: str,
        url: str,
        extract: bool = True,
        force: bool = False,
        clock: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
        on_outcome: Callable[[FeedOutcome], None] | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(
            config, store, role=role, workers=Workers(0), extract=extract, force=force, clock=clock
        )
        self._rng = rng or random.Random()
        self.url = url
        self.on_outcome = on_outcome  # an answer nobody waits for (sent before a restart)
        self.on_lost = on_lost  # another writer took the broker over
        self.broker: RedisBroker
        self._conn: redis.Redis
        self._lease: brokers.WriterLease | None = None
        self._waiting: dict[str, asyncio.Future[FeedOutcome]] = {}
        self._asked: dict[str, str] = {}  # feed -> the ask_id of its poll not answered yet
        self._pages: dict[str, _Page] = {}  # canonical URL -> the page asked for
        self._pages_sent: dict[str, int] = {}  # feed -> pages asked for in this run
        self._pages_failed: dict[str, int] = {}  # feed -> of those, answered without article
        self._pages_idle = asyncio.Event()
        self._stopping = asyncio.Event()
        self._background: list[asyncio.Task[None]] = []
        self._consumer: Any = None
        self.applied = 0  # commit messages applied (for benchmarks and tests)

    # -- set-up and tear-down -----------------------------------------------------------------

    async def __aenter__(self) -> DistributedRun:
        await asyncio.to_thread(brokers.check, self.url)
        self._conn = brokers.client(self.url)
        self._lease = brokers.WriterLease(self._conn, self.leases.holder)
        try:
            await asyncio.to_thread(self._lease.take)
        except BaseException:
            self._conn.close()
            raise
        try:
            self.store.sync_feeds(self.config.feeds, now=iso_utc(self.clock()))
            self.leases.break_dead()
            await self._stack.enter_async_context(self.leases.kept())
            self.broker = brokers.make_broker(self.url)
            tasks.declare_actors(self.broker, None)
            self._pipeline = WriterPipeline(
                self.config,
                self.store,
                cast(Fetcher, None),  # the writer never fetches
                self.workers,
                extract=False,
                clock=self.clock,
                rng=self._rng,
                pages_follow=self._extract,
            )
            self._background = [
                asyncio.create_task(self._consume(), name="commit consumer"),
                asyncio.create_task(self._keep_lease(), name="writer lease"),
                asyncio.create_task(self._sweep(), name="queue maintenance"),
            ]
        except BaseException:
            await self._close()
            raise
        return self

    async def _close(self) -> None:  # RunContext.__aexit__ calls it
        self._stopping.set()
        for task in self._background:
            if task.get_name() != "commit consumer":
                task.cancel()
        # The consumer finishes the message in hand, then stops taking more.
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background = []
        await asyncio.to_thread(self._put_back)
        try:
            if self._lease is not None:
                await asyncio.to_thread(self._lease.release)
        except redis.RedisError:
            log.warning("could not release the writer's lease in Redis; it expires on its own")
        finally:
            self._conn.close()
            if hasattr(self, "broker"):
                self.broker.client.close()
            await super()._close()

    def _put_back(self) -> None:
        """Commit messages taken from Redis but not applied go back on the queue at once."""
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        taken = [MessageProxy(Message.decode(data)) for data in consumer.message_cache if data]
        consumer.message_cache = []
        try:
            consumer.requeue(taken)
        except (redis.RedisError, BrokerConnectionError):
            log.warning("%d commit messages come back after the writer's lease expires", len(taken))

    # -- asking the workers ---------------------------------------------------------------------

    @property
    def answer_timeout_s(self) -> float:
        """How long a feed's answer may take, queueing and politeness waits included."""
        s = self.config.settings
        return s.feed_deadline_s + (s.timeout_s + s.connect_timeout_s) * (s.max_redirects + 1)

    def workers_listening(self) -> list[dict[str, Any]]:
        """Live workers that consume the fetch queue."""
        live = brokers.live_workers(self._conn)
        return [w for w in live if brokers.FETCH in (w.get("queues") or ())]

    async def refresh_leased(self, feed: FeedConfig) -> FeedOutcome:
        """Ask a worker to poll the feed (its lease held) and wait for its answer to be
        committed; the pages of its new items are asked for then, and committed as they
        come, without waiting here."""
        t0 = time.monotonic()
        try:
            outcome = await self._ask(feed)
        except TimeoutError:
            self._postpone(feed.name)
            outcome = FeedOutcome(
                feed.name,
                Outcome.TIMEOUT,
                error=f"no worker answered within {self.answer_timeout_s:g} s; is "
                "`aggregator worker` running against this broker? The feed is tried again later",
            )
        except Exception as exc:  # the broker or the store failed: the feed is tried later
            log.exception("asking for %s failed", feed.name, extra={"feed": feed.name})
            self._postpone(feed.name)
            outcome = FeedOutcome(feed.name, Outcome.INTERNAL_ERROR, error=repr(exc))
        finally:
            self._waiting.pop(feed.name, None)
            self.leases.release(feed.name)
        return replace(outcome, duration_ms=int((time.monotonic() - t0) * 1000))

    async def _ask(self, feed: FeedConfig) -> FeedOutcome:
        state = self.store.feed_state(feed.name)
        if state.state == FeedStatus.GONE:
            return skipped_as_gone(feed.name)
        settings = self.config.settings
        poll = FeedPoll(
            feed.name,
            state.permanent_url or state.url,
            Validators() if self._force else Validators(state.etag, state.last_modified),
            max_bytes=settings.max_feed_bytes,
            max_entries=settings.max_entries,
            ask_id=uuid.uuid4().hex,
        )
        self._asked[feed.name] = poll.ask_id
        answer = asyncio.get_running_loop().create_future()
        self._waiting[feed.name] = answer
        await self._send(tasks.message(brokers.FETCH, tasks.POLL, encode(poll)))
        await self._retry_pending(feed)
        return await asyncio.wait_for(asyncio.shield(answer), self.answer_timeout_s)

    async def _retry_pending(self, feed: FeedConfig) -> None:
        """Pages that failed (or were never asked for) before: asked for again with the feed."""
        if not self.extracts(feed):
            return
        pending = self.store.pending_pages(
            feed.name, max_attempts=MAX_EXTRACT_ATTEMPTS, limit=RETRIES_PER_REFRESH
        )
        for _, url, link in pending:
            if url in self._pages:
                continue  # asked for already, not answered yet
            found = self.store.page_state(url)
            if found is not None:
                await self._ask_page(
                    tasks.PageTask(feed.name, self._fetch(url, link), found[2], None, None)
                )

    def extracts(self, feed: FeedConfig) -> bool:
        return self.pipeline.configured_to_extract(feed) and self._extract

    def _fetch(self, url: str, link: str) -> PageFetch:
        return PageFetch(url, link, self.config.settings.max_page_bytes)

    async def _ask_page(self, task: tasks.PageTask) -> None:
        self._pages[task.page.url] = _Page(task.feed, time.monotonic())
        self._pages_idle.clear()
        self._pages_sent[task.feed] = self._pages_sent.get(task.feed, 0) + 1
        await self._send(tasks.message(brokers.FETCH, tasks.FETCH_PAGE, encode(task)))

    async def _send(self, message: Message[Any], delay_ms: int | None = None) -> None:
        await asyncio.to_thread(tasks.send, self.broker, message, delay_ms=delay_ms)

    def pages_sent(self, feed: str) -> int:
        return self._pages_sent.get(feed, 0)

    def pages_failed(self, feed: str) -> int:
        """Pages asked for in this run whose answer, committed, had no article."""
        return self._pages_failed.get(feed, 0)

    def pages_in_flight(self) -> dict[str, int]:
        """Pages asked for and not answered yet, by feed."""
        counts: dict[str, int] = {}
        for page in self._pages.values():
            counts[page.feed] = counts.get(page.feed, 0) + 1
        return counts

    async def pages_done(self, timeout: float) -> bool:
        """Wait until every page asked for in this run is answered; False at the timeout."""
        if not self._pages:
            return True
        try:
            await asyncio.wait_for(self._pages_idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def between_batches(self) -> None:
        """Forget pages asked for so long ago that their message must be lost: the feed's next
        poll asks for them again."""
        limit = time.monotonic() - self.answer_timeout_s
        self._pages = {url: p for url, p in self._pages.items() if p.sent > limit}
        if not self._pages:
            self._pages_idle.set()

    # -- the commit queue -----------------------------------------------------------------------

    async def _consume(self) -> None:
        wait = 0.2
        while not self._stopping.is_set():
            try:
                if self._consumer is None:
                    self._consumer = self.broker.consume(
                        brokers.COMMIT, prefetch=PREFETCH, timeout=IDLE_POLL_MS
                    )
                message = await asyncio.to_thread(next, self._consumer)
                wait = 0.2
                if message is None:
                    continue
                await self._handle(message)
            except (BrokerConnectionError, redis.ConnectionError, redis.TimeoutError) as exc:
                # The consumer is kept: its pool reconnects, and what it took (its messages
                # in hand, acknowledged once Redis is back) stays its own.
                log.warning("the broker is unreachable (%s); trying again in %.1f s", exc, wait)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), wait)
                wait = min(wait * 2, RECONNECT_MAX_S)
            except Exception:  # the commit queue must never stop being read
                log.exception("reading the commit queue failed; going on")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), RECONNECT_MAX_S)

    async def _handle(self, message: MessageProxy) -> None:
        """Apply one commit message, then acknowledge it (the ack waits out a Redis restart:
        unacknowledged, it would be applied again, harmlessly, by the next writer)."""
        try:
            await self._apply(message)
            self.applied += 1
        except asyncio.CancelledError:
            raise
        except Exception:
            tries = int(message.options.get("commit_tries", 0)) + 1
            log.exception("applying a commit message failed (try %d of %d)", tries, COMMIT_TRIES)
            if tries < COMMIT_TRIES:
                again = message.copy(options={"commit_tries": tries})
                await self._send(again, delay_ms=1000 * tries)
            else:
                message.fail()  # dead-lettered: kept in Redis for a week, for a person to see
        consumer = self._consumer
        wait = 0.2
        while consumer is not None:
            try:
                await asyncio.to_thread(consumer.nack if message.failed else consumer.ack, message)
                return
            except BrokerConnectionError as exc:
                log.warning("could not acknowledge a commit message (%s); trying again", exc)
                await asyncio.sleep(wait)
                wait = min(wait * 2, RECONNECT_MAX_S)

    async def _apply(self, message: MessageProxy) -> None:
        if message.actor_name == tasks.COMMIT_ACTOR:
            kind, payload = message.args
            if kind == "poll":
                await self._apply_poll(decode(tasks.PollDone, payload))
            elif kind == "page":
                self._apply_page(decode(tasks.PageDone, payload))
            else:
                log.error("a commit message of unknown kind %r was dropped", kind)
        elif message.actor_name == tasks.GAVE_UP:
            await self._apply_gave_up(*message.args)
        else:
            log.error("a message for %r on the commit queue was dropped", message.actor_name)

    async def _apply_poll(self, done: tasks.PollDone) -> None:
        feed = self.config.feed(done.feed)
        if feed is None:
            self._answer(FeedOutcome(done.feed, Outcome.CONFIG_ERROR, error="not in feeds.yaml"))
            return
        # The answer asked for is applied; any other is a repeat when its fetch is recorded
        # already (fetch times are to the second: two polls of a feed may share one).
        if done.ask_id and self._asked.get(feed.name) == done.ask_id:
            del self._asked[feed.name]
        elif self.store.has_fetch(feed.name, started_at=done.started_at, url=done.url):
            log.info("the answer for %s was delivered twice; applied once", feed.name)
            return
        state = self.store.feed_state(feed.name)
        started = parse_iso(done.started_at)
        pipeline = cast(WriterPipeline, self.pipeline)
        if done.polled is None:
            error = done.error or tasks.PollError(Outcome.INTERNAL_ERROR, "no answer")
            outcome = pipeline._record_failure(feed, state, started, RemoteFailure(error))
        else:
            deadline = time.monotonic() + self.config.settings.feed_deadline_s
            outcome = await pipeline.commit_polled(
                feed, state, started=started, url=done.url, polled=done.polled, deadline=deadline
            )
            new = pipeline.new_pages.pop(feed.name, [])
            if self.extracts(feed):
                for draft in new:
                    assert draft.url is not None
                    task = tasks.PageTask(
                        feed.name,
                        self._fetch(draft.url, draft.entry.link or draft.url),
                        0,
                        draft.entry.title,
                        draft.entry.summary,
                    )
                    await self._ask_page(task)
        self._answer(outcome)

    def _answer(self, outcome: FeedOutcome) -> None:
        waiting = self._waiting.get(outcome.feed)
        if waiting is not None and not waiting.done():
            waiting.set_result(outcome)
        elif self.on_outcome is not None:
            self.on_outcome(outcome)

    def _apply_page(self, done: tasks.PageDone) -> None:
        asked = self._pages.pop(done.url, None)
        if not self._pages:
            self._pages_idle.set()
        found = self.store.page_state(done.url)
        if found is None:
            return  # the item is gone (retention)
        item_id, status, attempts = found
        if status not in (ExtractStatus.PENDING, ExtractStatus.FAILED) or attempts != done.attempts:
            return  # answered already (a message delivered twice, or asked for twice)
        if done.article is None and asked is not None:
            self._pages_failed[asked.feed] = self._pages_failed.get(asked.feed, 0) + 1
        now = iso_utc(self.clock())
        if done.article is None and done.fingerprint is not None:
            # No page: a new item is placed by its summary, as the embedded mode places it.
            with self.store.transaction() as tx:
                tx.save_extraction(item_id, None, done.error)
                if tx.stored_signature(item_id) is None:
                    place_item(tx, item_id, done.fingerprint, self.pipeline.dedup, now=now)
            return
        commit_extraction(
            self.store,
            item_id,
            done.article,
            done.error,
            fingerprint=done.fingerprint,
            dedup=self.pipeline.dedup,
            now=now,
        )

    async def _apply_gave_up(self, original: dict[str, Any], info: dict[str, Any]) -> None:
        """A message that failed every try, or whose worker died under it every time."""
        actor = original.get("actor_name")
        args: Sequence[Any] = original.get("args") or ()
        trace = str((original.get("options") or {}).get("traceback") or "").strip()
        if trace:
            why = f"it failed {int(info.get('retries', 0)) + 1} times ({trace.splitlines()[-1]})"
        else:
            why = f"its worker died while handling it {info.get('deliveries', '?')} times"
        if actor == tasks.POLL:
            poll = decode(FeedPoll, args[0])
            failed = tasks.PollError(Outcome.INTERNAL_ERROR, f"polling the feed gave up: {why}")
            now = iso_utc(self.clock())
            await self._apply_poll(
                tasks.PollDone(poll.feed, poll.url, now, None, failed, poll.ask_id)
            )
        elif actor in (tasks.FETCH_PAGE, tasks.EXTRACT_PAGE):
            if actor == tasks.FETCH_PAGE:
                task = decode(tasks.PageTask, args[0])
            else:
                task = decode(tasks.ExtractTask, args[0]).task
            # A worker of both queues extracts the pages it fetches, under the fetch message.
            what = "fetching or extracting" if actor == tasks.FETCH_PAGE else "extracting"
            error = f"{what} the page gave up: {why}; the feed's summary is kept"
            log.error("%s: %s", task.page.url, error)
            self._apply_page(tasks.PageDone(task.feed, task.page.url, task.attempts, None, error))
        else:
            log.error("a given-up message for %r was dropped", actor)

    # -- upkeep -----------------------------------------------------------------------------

    async def _keep_lease(self) -> None:
        assert self._lease is not None
        while True:
            await asyncio.sleep(self._lease.duration_ms / 3000)
            try:
                kept = await asyncio.to_thread(self._lease.renew)
            except redis.RedisError as exc:
                log.warning("could not renew the writer's lease (%s)", exc)
                continue
            if not kept:
                try:
                    await asyncio.to_thread(self._lease.take)
                    log.warning("the writer's lease had expired (Redis restarted?); taken again")
                except brokers.WriterBusy as exc:
                    log.error("%s; this writer stops", exc)
                    if self.on_lost is not None:
                        self.on_lost()
                    return

    async def _sweep(self) -> None:
        forced = brokers.sweeper(self.broker)
        while True:
            try:
                await asyncio.to_thread(brokers.sweep, forced)
            except redis.RedisError as exc:
                log.debug("queue maintenance skipped: %s", exc)
            await asyncio.sleep(brokers.SWEEP_S)


async def fetch_feeds_distributed(
    config: Config,
    store: Store,
    feeds: Sequence[FeedConfig],
    *,
    url: str,
    extract: bool = True,
    force: bool = False,
    on_done: Callable[[FeedOutcome], None] | None = None,
) -> list[FeedOutcome]:
    """`aggregator fetch --broker`: one pass over `feeds` through the workers; returns when
    every feed and every page it asked for is committed (pages still unanswered at the
    feeds' deadline stay pending for a later run, as in the embedded mode)."""
    async with DistributedRun(
        config, store, role="fetch", url=url, extract=extract, force=force
    ) as run:
        if not await asyncio.to_thread(run.workers_listening):
            raise NoWorkers(
                f"no worker is consuming the fetch queue of {brokers.redact(url)}; start one "
                f"with `aggregator worker --broker {brokers.redact(url)}` (on any machine)"
            )
        started = time.monotonic()

        async def one(feed: FeedConfig) -> FeedOutcome:
            outcome = await run.refresh(feed)
            if on_done is not None and not outcome.new_items:
                on_done(outcome)
            return outcome

        outcomes = list(await asyncio.gather(*(one(f) for f in feeds)))
        left = config.settings.feed_deadline_s - (time.monotonic() - started)
        await run.pages_done(max(0.0, left))
        late = run.pages_in_flight()
        finished = [
            _with_pages(o, run.pages_sent(o.feed), run.pages_failed(o.feed), late.get(o.feed, 0))
            for o in outcomes
        ]
        if on_done is not None:
            for outcome in finished:
                if outcome.new_items:
                    on_done(outcome)
        return finished


def _with_pages(outcome: FeedOutcome, sent: int, failed: int, late: int) -> FeedOutcome:
    warning = outcome.warning
    if late:
        warning = "; ".join(
            w
            for w in (
                warning,
                f"{late} article pages were not extracted by feed_deadline; their entries are "
                "stored with the feed's summary and the pages are fetched on the next run",
            )
            if w
        )
    return replace(outcome, pages_fetched=sent, pages_failed=failed, warning=warning)
