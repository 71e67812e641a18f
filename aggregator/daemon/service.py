"""The daemon (`aggregator run`): keeps every feed fresh until SIGTERM or SIGINT.

One process per database (an flock on `<db>.lock`). Every tick it reloads feeds.yaml if it
changed (SIGHUP: at once, with a tick of its own), asks the store which feeds are due (most
overdue first, at most `batch` in flight), leases each and refreshes it through the same run
context that `aggregator fetch` uses, with one Fetcher and one worker pool for its whole
life. The schedule lives in `feeds.next_fetch_at`, so a restart, even after kill -9, resumes where
it stopped: a refresh commits in one transaction or not at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from aggregator.config.loader import load_config
from aggregator.config.settings_keys import setting_key
from aggregator.daemon.instance_lock import instance_lock
from aggregator.daemon.metrics import Metrics, MetricsServer
from aggregator.daemon.triggers import build_scheduler
from aggregator.engine.pool import Workers
from aggregator.engine.run import RunContext
from aggregator.errors import AggregatorError
from aggregator.models import Article, Config, FeedConfig, FeedOutcome, Fingerprint, Settings
from aggregator.schedule.due import is_stale, policy_from, rate_window_start
from aggregator.store import Store
from aggregator.times import iso_utc, parse_iso, utc_now

log = logging.getLogger("aggregator.daemon")

# Settings the Fetcher or the scheduler took at start: a reload cannot change them.
RESTART_SETTINGS = (
    "database",
    "user_agent",
    "allow_private_networks",
    "allow_networks",
    "timeout_s",
    "connect_timeout_s",
    "max_redirects",
    "concurrency",
    "per_host",
    "host_gap_s",
    "tick_s",
    "broker",
)
RETENTION_BATCH = 500  # items per transaction: the writer is never held for long
CENSUS_S = 600.0  # how often the stale count (which reads every sighting) is refreshed


class MeteredWorkers(Workers):
    """Workers that time each article extraction for the metrics: from when a worker takes
    the page, not while it waits for one (the queue shows in the refresh's time)."""

    def __init__(self, processes: int | None, metrics: Metrics) -> None:
        super().__init__(processes)
        self._metrics = metrics

    async def extract_fingerprinted(
        self,
        body: bytes,
        url: str,
        charset: str | None,
        title: str | None,
        summary: str | None,
        *,
        started: Callable[[], None] | None = None,
    ) -> tuple[Article, Fingerprint | AggregatorError | None]:
        began: list[float] = []  # a job run again after its worker was stopped: the last

        def timed() -> None:
            began.append(time.monotonic())
            if started is not None:
                started()

        try:
            return await super().extract_fingerprinted(
                body, url, charset, title, summary, started=timed
            )
        finally:
            if began:
                self._metrics.extract_seconds.observe(time.monotonic() - began[-1])


class Daemon:
    def __init__(
        self,
        config: Config,
        db_path: str,
        *,
        workers: int | None = None,
        metrics_address: tuple[str, int] | None = None,
        clock: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.db_path = db_path
        self.processes = workers
        self.metrics_address = metrics_address
        self.metrics = Metrics()
        self.metrics_port: int | None = None  # once serving
        self.clock = clock
        self.rng = rng or random.Random()
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._config_mark = _mark(config.path)
        self._reload_asked = False
        self._last_tick: float | None = None  # time.monotonic() of the last finished tick
        self._last_census = -CENSUS_S
        self._stale = 0  # feeds found stale by the last census
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None  # set by SIGHUP: reload and tick now
        # Set when the daemon starts serving:
        self.store: Store
        self.run_context: RunContext

    @property
    def settings(self) -> Settings:
        return self.config.settings

    # -- life cycle -------------------------------------------------------------------------

    async def run(self, *, handle_signals: bool = True) -> int:
        """Until stopped; returns the exit code. Raises AlreadyRunning at once if another
        daemon holds this database."""
        if handle_signals and threading.current_thread() is threading.main_thread():
            # `feeds add` sends SIGHUP to the pid in the lock, which is written before the
            # store's migrations run (minutes on a large store) and before the reload handler
            # exists: by default SIGHUP would end the daemon. The edit it announces is seen
            # by the first tick's check of feeds.yaml.
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
        with instance_lock(self.db_path):
            store = Store.open(self.db_path)
            try:
                await self._serve(store, handle_signals)
            finally:
                store.close()
        return 0

    def stop(self, reason: str = "asked to stop") -> None:
        """Take no new work; in-flight feeds get `stop_timeout` to finish. Loop thread only."""
        if self._stopping is not None and not self._stopping.is_set():
            log.info("stopping: %s", reason, extra={"in_flight": len(self._in_flight)})
            self._stopping.set()

    def stop_threadsafe(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.stop)

    def reload(self) -> None:
        """Re-read feeds.yaml now, and start what became due (SIGHUP). Loop thread only."""
        self._reload_asked = True
        if self._wake is not None:
            self._wake.set()

    def reload_threadsafe(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self.reload)

    def healthy(self) -> bool:
        limit = max(10 * self.settings.tick_s, 60.0)
        return self._last_tick is not None and time.monotonic() - self._last_tick < limit

    async def _serve(self, store: Store, handle_signals: bool) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self.store = store
        workers = MeteredWorkers(self.processes, self.metrics)
        server = self._serve_metrics()
        try:
            async with self._run_context(store, workers) as run:
                self.run_context = run
                await self._until_stopped(handle_signals)
        finally:
            workers.close()
            if server is not None:
                server.close()
        log.info("stopped")

    def _run_context(self, store: Store, workers: Workers) -> RunContext:
        """Embedded: this process fetches and extracts (daemon/distributed.py: workers do)."""
        return RunContext(
            self.config, store, role="daemon", workers=workers, clock=self.clock, rng=self.rng
        )

    async def _until_stopped(self, handle_signals: bool) -> None:
        assert self._stopping is not None
        assert self._loop is not None
        scheduler = build_scheduler(
            tick=self.tick,
            tick_s=self.settings.tick_s,
            maintenance={
                "retention": self.retention,
                "optimize": self.optimize,
                "checkpoint": self.checkpoint,
            },
            now=self.clock(),
        )
        signals = _install_signals(self._loop, self) if handle_signals else []
        scheduler.start()
        waker = asyncio.create_task(self._tick_when_woken(), name="reload on SIGHUP")
        log.info(
            "daemon started",
            extra={"pid": os.getpid(), "db": self.db_path, "feeds": len(self.config.feeds)},
        )
        try:
            await self._stopping.wait()
        finally:
            waker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waker
            scheduler.shutdown(wait=False)
            for sig in signals:
                self._loop.remove_signal_handler(sig)
            await self._drain()

    async def _tick_when_woken(self) -> None:
        """A tick as soon as `reload` asks for one: the tick reloads feeds.yaml first, so a
        feed added before a SIGHUP is polled at once, not a whole `tick` later. The tick
        never awaits anything, so this one cannot interleave with the scheduler's."""
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.tick()

    async def _drain(self) -> None:
        """Let in-flight feeds finish within stop_timeout, then abandon the rest: an
        abandoned refresh committed nothing, and its feed is still due at the next start."""
        tasks = list(self._in_flight.values())
        if not tasks:
            return
        _, pending = await asyncio.wait(tasks, timeout=self.settings.stop_timeout_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if pending:
            log.warning("abandoned %d feeds still in flight at the deadline", len(pending))

    def _serve_metrics(self) -> MetricsServer | None:
        if self.metrics_address is None:
            return None
        host, port = self.metrics_address
        server = MetricsServer(self.metrics, self.healthy, host, port).start()
        self.metrics_port = server.port
        log.info("metrics on http://%s:%d/metrics, health on /healthz", host, server.port)
        return server

    # -- the tick ---------------------------------------------------------------------------

    async def tick(self) -> None:
        """Start the due feeds; never waits for them (a slow feed must not hold the rest)."""
        if self._stopping is None or self._stopping.is_set():
            return
        now = self.clock()
        self._reload_if_changed(now)
        leases = self.run_context.leases
        leases.break_dead()
        free = self.settings.batch - len(self._in_flight)
        if free > 0:
            for name in self.store.due_feeds(now=iso_utc(now), limit=free):
                feed = self.config.feed(name)
                if feed is not None and not feed.paused and leases.take(name, only_if_due=True):
                    self._start(feed)
        self.run_context.between_batches()
        self._gauges(now)
        self._last_tick = time.monotonic()
        self.metrics.last_tick.set(time.time())
        self.metrics.ticks.inc()

    def _start(self, feed: FeedConfig) -> None:
        self._in_flight[feed.name] = asyncio.create_task(
            self._refresh(feed), name=f"refresh {feed.name}"
        )
        self.metrics.in_flight.set(len(self._in_flight))

    async def _refresh(self, feed: FeedConfig) -> None:
        try:
            outcome = await self.run_context.refresh_leased(feed)
        finally:
            self._in_flight.pop(feed.name, None)
            self.metrics.in_flight.set(len(self._in_flight))
        self.metrics.refreshed(outcome)
        _log_outcome(outcome)
        now_configured = self.config.feed(feed.name)
        if now_configured is None or now_configured.paused:
            # Removed or paused while in flight: the refresh just marked it ok again.
            self.store.sync_feeds(self.config.feeds, now=iso_utc(self.clock()))

    def _gauges(self, now: datetime) -> None:
        states, oldest = self.store.schedule_overview(now=iso_utc(now))
        lag = 0.0 if oldest is None else max(0.0, (now - parse_iso(oldest)).total_seconds())
        self.metrics.due_lag.set(lag)
        if time.monotonic() - self._last_census >= CENSUS_S:
            self._last_census = time.monotonic()
            policy = policy_from(self.settings)
            since = iso_utc(rate_window_start(now, policy))
            histories = self.store.feed_histories(since=since).values()
            self._stale = sum(is_stale(h, now=now, policy=policy) for h in histories)
        self.metrics.census({**states, "stale": self._stale})

    # -- feeds.yaml -------------------------------------------------------------------------

    def _reload_if_changed(self, now: datetime) -> None:
        mark = _mark(self.config.path)
        if not self._reload_asked and mark == self._config_mark:
            return
        reason = "SIGHUP" if self._reload_asked else "file changed"
        self._reload_asked = False
        self._config_mark = mark
        try:
            config = load_config(self.config.path)
        except AggregatorError as exc:
            log.error("feeds.yaml not reloaded, the feeds stay as they were: %s", exc)
            return
        self._apply(config, now, reason)

    def _apply(self, config: Config, now: datetime, reason: str) -> None:
        old = {f.name: replace(f, line=0) for f in self.config.feeds}
        new = {f.name: replace(f, line=0) for f in config.feeds}
        edited = [name for name in new.keys() & old.keys() if new[name] != old[name]]
        kept = {k: getattr(self.settings, k) for k in RESTART_SETTINGS}
        ignored = [k for k, v in kept.items() if getattr(config.settings, k) != v]
        if ignored:  # named as feeds.yaml names them (`timeout`), not as fields (`timeout_s`)
            log.warning(
                "settings that change only on restart, kept as they were until then: %s",
                ", ".join(setting_key(name) for name in ignored),
            )
        self.config = replace(config, settings=replace(config.settings, **kept))
        self.run_context.reconfigure(self.config)
        self.store.sync_feeds(self.config.feeds, now=iso_utc(now))
        self.store.due_now(sorted(edited), now=iso_utc(now))
        log.info(
            "reloaded feeds.yaml (%s)",
            reason,
            extra={
                "added": sorted(new.keys() - old.keys()),
                "removed": sorted(old.keys() - new.keys()),
                "edited": sorted(edited),
            },
        )

    # -- maintenance (cron jobs) ------------------------------------------------------------

    async def retention(self) -> None:
        """Delete items older than `retention`, a batch per transaction."""
        if self.settings.retention_s is None:
            return
        before = iso_utc(self.clock() - timedelta(seconds=self.settings.retention_s))
        items = 0
        while count := self.store.expire_items(before=before, limit=RETENTION_BATCH):
            items += count
            await asyncio.sleep(0)  # let refreshes commit between batches
        while self.store.expire_fetches(before=before, limit=RETENTION_BATCH):
            await asyncio.sleep(0)
        log.info("retention done", extra={"items_deleted": items, "before": before})

    async def optimize(self) -> None:
        self.store.optimize()
        log.info("optimized the store (PRAGMA optimize, full-text index merge)")

    async def checkpoint(self) -> None:
        busy, wal_pages, copied = self.store.checkpoint()
        log.info("WAL checkpoint", extra={"busy": busy, "wal_pages": wal_pages, "copied": copied})


def _mark(path: str) -> tuple[int, int] | None:
    """What tells that feeds.yaml changed: its mtime and size."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _install_signals(loop: asyncio.AbstractEventLoop, daemon: Daemon) -> list[int]:
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.stop, f"{sig.name} received")
    loop.add_signal_handler(signal.SIGHUP, daemon.reload)
    return [signal.SIGTERM, signal.SIGINT, signal.SIGHUP]


def _log_outcome(outcome: FeedOutcome) -> None:
    facts = {
        "feed": outcome.feed,
        "outcome": outcome.outcome,
        "new_items": outcome.new_items,
        "duration_ms": outcome.duration_ms,
    }
    if outcome.failed:
        log.warning("%s: %s", outcome.feed, outcome.error, extra=facts)
    else:
        log.info("%s: %s", outcome.feed, outcome.outcome, extra=facts)
