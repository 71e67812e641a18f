"""The stages as Dramatiq tasks: what `aggregator worker` runs, on any number of machines.

One actor per stage, on two queues the workers consume, and one queue only the writer reads:

    fetch    poll_feed     FeedPoll  -> poll + parse          -> commit ("poll", PollDone)
             fetch_page    PageTask  -> the article page      -> extract (ExtractTask)
    extract  extract_page  ExtractTask -> extract + fingerprint -> commit ("page", PageDone)
    commit   commit        read by the writer alone (engine/distributed.py)
             gave_up       a message that failed every try: the writer records the failure

A worker that consumes both `fetch` and `extract` (the default) extracts the pages it fetched
itself and answers the writer at once: a page's bytes never cross the broker (measured, the
ExtractTask was the costliest message, 2.8 ms and 126 KB for a 92 KB page). A worker of
`--queues fetch` alone hands them to the `extract` queue, for machines that only extract.

Messages carry data (engine/messages.py's JSON of the stage dataclasses: URLs, validators,
page bytes, extracted text, fingerprints), never a database row or an id a worker would look
up; the worker needs only the broker's URL and feeds.yaml's settings (timeouts, caps, the
address policy, politeness). A message is acknowledged once its work is done and its answer
sent, so a worker that dies mid-way (kill -9) has it delivered again to another.

A task that raises (a bug, a page that crashes extraction) is retried `MAX_TRIES` times in
all, then handed to the writer as `gave_up`, which records the failure; one that kills its
worker every time is given up after `MAX_DELIVERIES` deliveries the same way (`Deliveries`).
Per-host politeness is shared through Redis (politeness.py): a message whose host must wait is
sent again with a delay rather than keeping a thread asleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import re
import secrets
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import dramatiq
import redis
from dramatiq.broker import Broker, MessageProxy
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import AsyncIO, Middleware, Retries, SkipMessage, TimeLimit

from aggregator.engine import broker as brokers
from aggregator.engine import orphans
from aggregator.engine.messages import decode, encode
from aggregator.engine.politeness import HostBusy, HostTurns
from aggregator.engine.pool import EXTRACT_TIMEOUT_S, PARSE_TIMEOUT_S, Workers, WorkerTimeout
from aggregator.engine.stages import (
    FeedPoll,
    PageBody,
    PageFetch,
    PolledFeed,
    fetch_page,
    poll_feed,
)
from aggregator.errors import AggregatorError
from aggregator.fetch.client import Fetcher
from aggregator.models import Article, Fingerprint, ParsedFeed, Settings
from aggregator.parse.feed import parse_feed
from aggregator.schedule.leases import HOST
from aggregator.stories.dedup import fingerprint
from aggregator.times import iso_utc, utc_now

log = logging.getLogger(__name__)

MAX_TRIES = 3  # a task that raises is run at most this often in all
MAX_DELIVERIES = 3  # a message whose worker died under it this often is given up
RETRY_BACKOFF_MS = int(os.environ.get("AGGREGATOR_BROKER_RETRY_BACKOFF_MS", "2000"))
SEND_PATIENCE_S = 300.0  # how long a worker keeps trying to hand on its answer to Redis
BEAT_S = 2.0  # a worker's heartbeat for `aggregator workers`
BEAT_TTL_MS = brokers.WORKER_BEAT_TTL_MS  # a worker silent this long is no longer listed
DELIVERY_TTL_S = 7 * 86_400

POLL, FETCH_PAGE, EXTRACT_PAGE, COMMIT_ACTOR, GAVE_UP = (
    "poll_feed",
    "fetch_page",
    "extract_page",
    "commit",
    "gave_up",
)


# -- messages -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PageTask:
    """Fetch an item's article page; `attempts` is the item's extraction attempts when the
    writer asked, so its answer is applied once however often it is delivered."""

    feed: str
    page: PageFetch
    attempts: int
    title: str | None  # the entry's title and summary, for the fingerprint
    summary: str | None


@dataclass(frozen=True, slots=True)
class ExtractTask:
    task: PageTask
    body: PageBody


@dataclass(frozen=True, slots=True)
class PollError:
    """A poll that failed, as errors.AggregatorError said it."""

    outcome: str
    message: str
    http_status: int | None = None
    retry_after_s: int | None = None


@dataclass(frozen=True, slots=True)
class PollDone:
    """A feed's poll, answered: what the server sent (parsed), or why it failed."""

    feed: str
    url: str
    started_at: str  # when the worker started the request (the fetch record's time)
    polled: PolledFeed | None
    error: PollError | None = None
    ask_id: str = ""  # the FeedPoll's: tells the answer the writer waits for from a repeat


@dataclass(frozen=True, slots=True)
class PageDone:
    """An article page, extracted and fingerprinted, or why it could not be."""

    feed: str
    url: str  # canonical: the item it belongs to
    attempts: int  # as PageTask carried it
    article: Article | None
    error: str | None
    fingerprint: Fingerprint | None = None


# -- sending ------------------------------------------------------------------------------------


def message(queue: str, actor: str, *args: Any) -> dramatiq.Message[Any]:
    return dramatiq.Message(queue_name=queue, actor_name=actor, args=args, kwargs={}, options={})


def send(broker: Broker, msg: dramatiq.Message[Any], *, delay_ms: int | None = None) -> None:
    """Enqueue, riding out a Redis restart for up to SEND_PATIENCE_S."""
    wait, deadline = 0.2, time.monotonic() + SEND_PATIENCE_S
    while True:
        try:
            broker.enqueue(msg, delay=delay_ms)
            return
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if time.monotonic() > deadline:
                raise brokers.BrokerUnavailable(f"could not reach the broker: {exc}") from exc
            log.warning("the broker is unreachable (%s); trying again in %.1f s", exc, wait)
            time.sleep(wait)
            wait = min(wait * 2, 5.0)


_SUBJECT = {
    POLL: re.compile(r'"feed":"((?:[^"\\]|\\.)*)"'),
    FETCH_PAGE: re.compile(r'"link":"((?:[^"\\]|\\.)*)"'),
    EXTRACT_PAGE: re.compile(r'"link":"((?:[^"\\]|\\.)*)"'),
}


def describe(actor: str, args: Sequence[Any]) -> str:
    """A message's subject in a few words (a feed, the page's link), for `aggregator
    workers`: read from the head of the JSON, without decoding a page's bytes."""
    pattern = _SUBJECT.get(actor)
    if pattern is None or not args or not isinstance(args[0], str):
        return ""
    found = pattern.search(args[0], 0, 4096)
    try:
        return str(json.loads(f'"{found.group(1)}"')) if found else ""
    except ValueError:
        return ""


# -- the worker's stages ------------------------------------------------------------------------


class ThreadWorkers(Workers):
    """Parsing on a thread of this worker process, with the embedded pool's deadline (a
    feed is quick to parse; pages are extracted in `Runtime.extractor`'s process)."""

    def __init__(self) -> None:
        super().__init__(0)

    async def _in_thread(self, func: Callable[[], Any], timeout: float, what: str) -> Any:
        try:
            return await asyncio.wait_for(asyncio.to_thread(one_at_a_time, func), timeout)
        except TimeoutError:
            raise WorkerTimeout(
                f"{what} took longer than {timeout:g} s; the input is too large or malformed"
            ) from None

    async def parse(
        self, body: bytes, url: str, content_type: str | None, charset: str | None, max_entries: int
    ) -> ParsedFeed:
        result: ParsedFeed = await self._in_thread(
            lambda: parse_feed(
                body, url=url, content_type=content_type, charset=charset, max_entries=max_entries
            ),
            self.parse_timeout_s,
            "reading the feed",
        )
        return result


# The CPU work on a worker process's threads (parsing, fingerprinting an entry) runs one at a
# time: Python threads share one core's worth of interpreter, and two at once cost a third
# more CPU each than one after the other (measured extracting: 93 against 73 ms per page
# with 8 threads). The other threads meanwhile wait on the network, which is what they are
# for.
_CPU = threading.Lock()


def one_at_a_time(func: Callable[[], Any]) -> Any:
    with _CPU:
        return func()


def without_page(task: PageTask, error: str) -> PageDone:
    """A page that could not be had: a new item is then placed by its title and summary."""
    found: Fingerprint | None = None
    if task.title is not None or task.summary is not None:
        try:
            found = one_at_a_time(lambda: fingerprint(task.title, None, task.summary))
        except AggregatorError as exc:  # stored all the same, a story of its own
            log.warning("fingerprinting failed: %s", exc)
    return PageDone(task.feed, task.page.url, task.attempts, None, error, found)


class Runtime:
    """What a worker process's tasks share: settings, the fetcher (on the event loop of
    Dramatiq's AsyncIO middleware), the shared per-host turns, the broker, and whether the
    pages it fetches are extracted here (`extracts_here`: it consumes the extract queue)."""

    def __init__(
        self, settings: Settings, broker: RedisBroker, url: str, *, extracts_here: bool = False
    ) -> None:
        self.settings = settings
        self.broker = broker
        self.extracts_here = extracts_here
        self.presence: Presence | None = None  # told when a fetched page starts extracting
        self.workers = ThreadWorkers()
        # The pages it fetched are extracted in a process of its own, as the embedded mode
        # does: on a thread, sharing the interpreter with the fetches and the broker's
        # client, extraction cost 10-27 % more CPU a page, and a stuck one could not be
        # stopped. The pool kills a job past its deadline and renews its process.
        self.extractor = Workers(1, memory_limit_bytes=settings.worker_memory_limit_bytes)
        self.turns = HostTurns(
            url,
            per_host=settings.per_host,
            gap_s=settings.host_gap_s,
            # A request holds its host's slot at most this long (a dead worker frees it then).
            hold_s=settings.timeout_s + settings.connect_timeout_s + 5,
        )
        self._fetcher: Fetcher | None = None

    def fetcher(self) -> Fetcher:
        if self._fetcher is None:  # on the event loop, where its connections live
            self._fetcher = Fetcher(self.settings, host_slots=self.turns)
        return self._fetcher

    async def extract(self, job: ExtractTask) -> PageDone:
        """The page extracted and fingerprinted in this worker's extraction process
        (`extracts_here`)."""
        task, page = job.task, job.body
        presence = self.presence

        def started() -> None:  # not while the page waits for the extraction process
            if presence is not None:
                presence.relabel(FETCH_PAGE, task.page.link, EXTRACT_PAGE)

        try:
            article, found = await self.extractor.extract_fingerprinted(
                page.body, page.url, page.charset, task.title, task.summary, started=started
            )
        except AggregatorError as exc:
            return await asyncio.to_thread(without_page, task, str(exc))
        if isinstance(found, AggregatorError):  # stored all the same, a story of its own
            log.warning("fingerprinting failed: %s", found)
            found = None
        return PageDone(task.feed, task.page.url, task.attempts, article, None, found)

    async def close(self) -> None:
        if self._fetcher is not None:
            await self._fetcher.aclose()
            self._fetcher = None
        await self.turns.aclose()
        self.extractor.close()

    async def send(self, msg: dramatiq.Message[Any], delay_ms: int | None = None) -> None:
        await asyncio.to_thread(send, self.broker, msg, delay_ms=delay_ms)

    async def later(self, actor: str, queue: str, payload: str, wait_ms: int) -> None:
        """Send the message again, to run once its host may be asked."""
        delay = wait_ms + random.randint(0, 50)  # not all at once when the host frees
        await self.send(message(queue, actor, payload), delay_ms=delay)

    async def must_wait(self, actor: str, queue: str, payload: str, url: str) -> bool:
        """True, after sending the message again for later, when the URL's host must wait."""
        host = urlsplit(url).hostname
        if not host:
            return False  # no host: the fetcher says what is wrong with the URL
        wait = await self.turns.wait_ms(host)
        if wait:
            await self.later(actor, queue, payload, wait)
        return bool(wait)


def declare_actors(broker: Broker, runtime: Runtime | None) -> None:
    """The tasks on `broker`: with a runtime (a worker process) they can run; without one
    (the writer) they are only names to send to."""
    settings = runtime.settings if runtime is not None else Settings()
    request_s = (settings.timeout_s + settings.connect_timeout_s) * (settings.max_redirects + 1)
    retry = {"max_retries": MAX_TRIES - 1, "on_retry_exhausted": GAVE_UP}
    retry |= {"min_backoff": RETRY_BACKOFF_MS, "max_backoff": 30 * RETRY_BACKOFF_MS}

    async def poll_feed_task(payload: str) -> None:
        assert runtime is not None
        request = decode(FeedPoll, payload)
        if await runtime.must_wait(POLL, brokers.FETCH, payload, request.url):
            return
        started = iso_utc(utc_now())
        try:
            polled = await poll_feed(request, fetcher=runtime.fetcher(), workers=runtime.workers)
            done = PollDone(request.feed, request.url, started, polled, ask_id=request.ask_id)
        except AggregatorError as exc:
            error = PollError(
                exc.outcome,
                str(exc),
                getattr(exc, "status", None),
                getattr(exc, "retry_after_s", None),
            )
            done = PollDone(request.feed, request.url, started, None, error, request.ask_id)
        except HostBusy as busy:
            await runtime.later(POLL, brokers.FETCH, payload, busy.wait_ms)
            return
        await runtime.send(message(brokers.COMMIT, COMMIT_ACTOR, "poll", encode(done)))

    async def fetch_page_task(payload: str) -> None:
        assert runtime is not None
        task = decode(PageTask, payload)
        if await runtime.must_wait(FETCH_PAGE, brokers.FETCH, payload, task.page.link):
            return
        try:
            body = await fetch_page(task.page, fetcher=runtime.fetcher())
        except HostBusy as busy:
            await runtime.later(FETCH_PAGE, brokers.FETCH, payload, busy.wait_ms)
            return
        except AggregatorError as exc:
            done = await asyncio.to_thread(without_page, task, str(exc))
            await runtime.send(message(brokers.COMMIT, COMMIT_ACTOR, "page", encode(done)))
            return
        job = ExtractTask(task, body)
        if runtime.extracts_here:
            done = await runtime.extract(job)
            await runtime.send(message(brokers.COMMIT, COMMIT_ACTOR, "page", encode(done)))
        else:
            await runtime.send(message(brokers.EXTRACT, EXTRACT_PAGE, encode(job)))

    async def extract_page_task(payload: str) -> None:
        assert runtime is not None
        done = await runtime.extract(decode(ExtractTask, payload))
        await runtime.send(message(brokers.COMMIT, COMMIT_ACTOR, "page", encode(done)))

    def writer_only(*_args: Any) -> None:
        raise RuntimeError("the commit queue is the writer's; a worker never consumes it")

    poll_limit = (request_s + PARSE_TIMEOUT_S + 60) * 1000
    extract_limit = (2 * EXTRACT_TIMEOUT_S + 30) * 1000
    page_limit = (2 * request_s + 60) * 1000  # robots.txt, then the page
    if runtime is not None and runtime.extracts_here:
        # Its extraction too, and the wait for the pages fetched before it to be extracted.
        page_limit += extract_limit * 2
    for fn, name, queue, options in (
        (poll_feed_task, POLL, brokers.FETCH, {**retry, "time_limit": poll_limit}),
        (fetch_page_task, FETCH_PAGE, brokers.FETCH, {**retry, "time_limit": page_limit}),
        (extract_page_task, EXTRACT_PAGE, brokers.EXTRACT, {**retry, "time_limit": extract_limit}),
        (writer_only, COMMIT_ACTOR, brokers.COMMIT, {"max_retries": 0}),
        (writer_only, GAVE_UP, brokers.COMMIT, {"max_retries": 0}),
    ):
        dramatiq.Actor(
            fn, broker=broker, actor_name=name, queue_name=queue, priority=0, options=options
        )


# -- worker middleware ---------------------------------------------------------------------------


class Deliveries(Middleware):
    """Counts each message's deliveries in Redis: one whose worker died under it (killed, out
    of memory, a crash in C) MAX_DELIVERIES times is handed to the writer as given up."""

    def __init__(self, conn: redis.Redis) -> None:
        self.conn = conn

    @staticmethod
    def _key(message: MessageProxy) -> str | None:
        redis_id = message.options.get("redis_message_id")
        return f"{brokers.NAMESPACE}:delivery:{redis_id}" if redis_id else None

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        key = self._key(message)
        if key is None or message.actor_name not in (POLL, FETCH_PAGE, EXTRACT_PAGE):
            return
        try:
            pipe = self.conn.pipeline()
            pipe.incr(key)
            pipe.expire(key, DELIVERY_TTL_S)
            count = int(pipe.execute()[0])
        except redis.RedisError as exc:  # Redis is away: the message runs uncounted
            log.warning("could not count a delivery: %s", exc)
            return
        if count > MAX_DELIVERIES:
            log.error(
                "message %s (%s) was delivered %d times and its worker never finished it; "
                "giving up",
                message.message_id,
                describe(message.actor_name, message.args),
                count - 1,
            )
            info = {"deliveries": count - 1}
            send(
                broker,
                dramatiq.Message(
                    queue_name=brokers.COMMIT,
                    actor_name=GAVE_UP,
                    args=(message.asdict(), info),
                    kwargs={},
                    options={},
                ),
            )
            self.conn.delete(key)
            raise SkipMessage("delivered too often")

    def after_process_message(
        self,
        broker: Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        key = self._key(message)
        if key is not None:
            with contextlib.suppress(redis.RedisError):  # else it expires on its own
                self.conn.delete(key)


class Presence(Middleware):
    """The worker's heartbeat in Redis (`aggregator workers`): who it is, what it consumes,
    what each thread is doing and how much it has done."""

    def __init__(self, conn: redis.Redis, *, queues: Sequence[str], threads: int) -> None:
        self.conn = conn
        self.worker_id = f"{HOST}:{os.getpid()}:{secrets.token_hex(3)}"
        self.queues = list(queues)
        self.threads = threads
        self.started_at = iso_utc(utc_now())
        self.doing: dict[int, dict[str, Any]] = {}
        self.done = 0
        self.failed = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_beat = 0.0

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            doing = [dict(d) for d in self.doing.values()]
            done, failed = self.done, self.failed
        now = time.time()
        for job in doing:
            job["for_s"] = round(now - job.pop("since"), 1)
        return {
            "id": self.worker_id,
            "host": HOST,
            "pid": os.getpid(),
            "queues": self.queues,
            "threads": self.threads,
            "started_at": self.started_at,
            "beat_at": iso_utc(utc_now()),
            "done": done,
            "failed": failed,
            "doing": doing,
        }

    def beat(self) -> None:
        self._last_beat = time.monotonic()
        try:
            self.conn.set(
                brokers.worker_key(self.worker_id), json.dumps(self.snapshot()), px=BEAT_TTL_MS
            )
        except redis.RedisError as exc:
            log.debug("heartbeat not sent: %s", exc)

    def _beat_forever(self) -> None:
        while not self._stop.wait(BEAT_S):
            self.beat()

    def after_worker_boot(self, broker: Broker, worker: Any) -> None:
        self.beat()
        self._thread = threading.Thread(target=self._beat_forever, name="heartbeat", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: Broker, worker: Any) -> None:
        self._stop.set()
        with contextlib.suppress(redis.RedisError):
            self.conn.delete(brokers.worker_key(self.worker_id))

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        job = {
            "task": message.actor_name,
            "subject": describe(message.actor_name, message.args),
            "since": time.time(),
        }
        with self._lock:
            self.doing[threading.get_ident()] = job
            stale = time.monotonic() - self._last_beat > BEAT_S / 4
        if stale or message.actor_name == EXTRACT_PAGE:  # the long jobs show at once
            self.beat()

    def relabel(self, task: str, subject: str, now: str) -> None:
        """The job of `task` on `subject` now does `now` (a fetched page, being extracted)."""
        with self._lock:
            for job in self.doing.values():
                if job["task"] == task and job["subject"] == subject:
                    job.update(task=now, since=time.time())
                    break
        self.beat()  # the long jobs show at once

    def after_process_message(
        self,
        broker: Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        with self._lock:
            self.doing.pop(threading.get_ident(), None)
            self.done += 1
            self.failed += exception is not None

    def after_skip_message(self, broker: Broker, message: MessageProxy) -> None:
        with self._lock:
            self.doing.pop(threading.get_ident(), None)


class ClosesFetcher(Middleware):
    """Closes the runtime's fetcher on its event loop as the worker shuts down (listed after
    AsyncIO, so its after-hook runs before AsyncIO stops that loop)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def after_worker_shutdown(self, broker: Broker, worker: Any) -> None:
        loop = _event_loop()
        if loop is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(self.runtime.close(), loop).result(timeout=10)


# -- running a worker -----------------------------------------------------------------------------


def worker_broker(
    settings: Settings, url: str, *, queues: Sequence[str], threads: int
) -> tuple[RedisBroker, Runtime, Presence]:
    conn = brokers.client(url)
    presence = Presence(conn, queues=queues, threads=threads)
    broker = brokers.make_broker(
        url,
        middleware=[
            AsyncIO(),
            TimeLimit(),
            presence,
            Deliveries(conn),
            orphans.Orphans(conn, check_s=orphans.CHECK_S),
            Retries(max_retries=MAX_TRIES - 1, min_backoff=RETRY_BACKOFF_MS),
        ],
    )
    runtime = Runtime(settings, broker, url, extracts_here=brokers.EXTRACT in queues)
    runtime.presence = presence
    broker.add_middleware(ClosesFetcher(runtime), after=AsyncIO)
    declare_actors(broker, runtime)
    return broker, runtime, presence


def run_worker(
    settings: Settings,
    url: str,
    *,
    queues: Sequence[str] = brokers.WORKER_QUEUES,
    threads: int = 8,
    stop: threading.Event | None = None,
    ready: Callable[[Presence], None] | None = None,
) -> None:
    """Consume `queues` until `stop` is set (or SIGTERM/SIGINT on the main thread)."""
    unknown = sorted(set(queues) - set(brokers.WORKER_QUEUES))
    if unknown or not queues:
        raise ValueError(
            f"a worker consumes {' and '.join(brokers.WORKER_QUEUES)}; not {', '.join(unknown)}"
        )
    brokers.check(url)
    broker, runtime, presence = worker_broker(settings, url, queues=queues, threads=threads)
    warm_up(runtime)
    stop = stop or threading.Event()
    handlers = _on_signals(stop)
    broker.emit_after("process_boot")
    worker = dramatiq.Worker(broker, queues=set(queues), worker_threads=threads)
    worker.start()
    log.info(
        "worker %s consuming %s with %d threads", presence.worker_id, ",".join(queues), threads
    )
    if ready is not None:
        ready(presence)
    try:
        stop.wait()
    finally:
        log.info("worker %s stopping", presence.worker_id)
        worker.stop(timeout=int(settings.stop_timeout_s * 1000))
        broker.close()
        broker.client.close()
        presence.conn.close()
        for sig, previous in handlers:
            signal.signal(sig, previous)


def run_workers(
    settings: Settings,
    url: str,
    *,
    queues: Sequence[str] = brokers.WORKER_QUEUES,
    processes: int = 1,
    threads: int = 8,
) -> None:
    """`aggregator worker`: one worker in this process, or `processes` of them in child
    processes, each restarted if it dies, all stopped on SIGTERM or SIGINT."""
    if processes <= 1:
        run_worker(settings, url, queues=queues, threads=threads)
        return
    brokers.check(url)
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # a clean process: no threads, no loop
    stop = threading.Event()
    handlers = _on_signals(stop)
    args = (settings, url, tuple(queues), threads, os.getpid())
    children = [context.Process(target=_child, args=args, daemon=False) for _ in range(processes)]
    for child in children:
        child.start()
    try:
        while not stop.wait(1.0):
            for n, child in enumerate(children):
                if not child.is_alive():
                    log.warning(
                        "worker process %s exited (%s); starting another", child.pid, child.exitcode
                    )
                    children[n] = context.Process(target=_child, args=args, daemon=False)
                    children[n].start()
    finally:
        for child in children:
            if child.is_alive() and child.pid is not None:
                os.kill(child.pid, signal.SIGTERM)
        for child in children:
            child.join(settings.stop_timeout_s + 10)
            if child.is_alive():
                child.kill()
                child.join()
        for sig, previous in handlers:
            signal.signal(sig, previous)


def _child(
    settings: Settings, url: str, queues: tuple[str, ...], threads: int, parent: int
) -> None:
    """A worker process of `run_workers`: it stops when told, or when its parent is gone."""
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(1.0):
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                stop.set()
            except PermissionError:
                pass

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    threading.Thread(target=watch, name="watch-parent", daemon=True).start()
    run_worker(settings, url, queues=queues, threads=threads, stop=stop)


def warm_up(runtime: Runtime) -> None:
    """Import and start what the first message would otherwise wait for, before the worker
    says it is alive: numpy here (a page that could not be had is fingerprinted by its
    entry), and the extraction process with trafilatura loaded (the forkserver preloads
    it, as the embedded pool's does)."""
    fingerprint("warm up", "a few words to fingerprint before the first message", None)
    if runtime.extracts_here:
        asyncio.run(_first_extraction(runtime.extractor))


async def _first_extraction(extractor: Workers) -> None:
    page = b"<html><body><p>warm up</p></body></html>"
    with contextlib.suppress(AggregatorError):  # too short to be an article: no matter
        await extractor.extract_fingerprinted(page, "http://localhost/", None, None, None)


def _event_loop() -> asyncio.AbstractEventLoop | None:
    from dramatiq.asyncio import get_event_loop_thread

    thread = get_event_loop_thread()
    return thread.loop if thread is not None else None


def _on_signals(stop: threading.Event) -> list[tuple[int, Any]]:
    if threading.current_thread() is not threading.main_thread():
        return []
    previous: list[tuple[int, Any]] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous.append((sig, signal.signal(sig, lambda *_: stop.set())))
    return previous
