"""`aggregator run --broker`: the daemon as the distributed mode's scheduler and one writer.

The same daemon (service.py: ticks, leases, reloads, maintenance, metrics), whose refreshes go
through `engine.distributed.DistributedRun`: due feeds are sent to the workers and what they
answer is committed here. One scheduler at a time: the instance lock on the database, and the
writer's lease in Redis. `/metrics` adds the queues (depth, age of the oldest message, dead
letters) and the live workers.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis
from prometheus_client import Gauge

from aggregator.daemon.service import Daemon, _log_outcome
from aggregator.engine import broker as brokers
from aggregator.engine.distributed import DistributedRun
from aggregator.engine.pool import Workers
from aggregator.engine.run import RunContext
from aggregator.models import Config, FeedOutcome
from aggregator.store import Store

log = logging.getLogger("aggregator.daemon")

MONITOR_S = 10.0  # how often the queues and workers are counted for /metrics


class DistributedDaemon(Daemon):
    def __init__(self, config: Config, db_path: str, *, url: str, **options: Any) -> None:
        super().__init__(config, db_path, **options)
        self.url = url
        r = self.metrics.registry
        self.queue_messages = Gauge(
            "aggregator_queue_messages",
            "Messages on the broker's queues, by state",
            ["queue", "state"],
            registry=r,
        )
        self.queue_oldest = Gauge(
            "aggregator_queue_oldest_seconds",
            "Age of the oldest message waiting on a queue",
            ["queue"],
            registry=r,
        )
        self.live_workers = Gauge(
            "aggregator_workers_live", "Workers whose heartbeat is in Redis", registry=r
        )
        self._monitor: asyncio.Task[None] | None = None

    def _run_context(self, store: Store, workers: Workers) -> RunContext:
        return DistributedRun(
            self.config,
            store,
            role="daemon",
            url=self.url,
            clock=self.clock,
            rng=self.rng,
            on_outcome=self._late,
            on_lost=lambda: self.stop("another writer took the broker over"),
        )

    def _late(self, outcome: FeedOutcome) -> None:
        """A feed's answer nobody waited for (asked before a restart): counted all the same."""
        self.metrics.refreshed(outcome)
        _log_outcome(outcome)

    async def tick(self) -> None:
        await super().tick()
        if self._monitor is None and self._stopping is not None and not self._stopping.is_set():
            self._monitor = asyncio.create_task(self._count(), name="queue metrics")

    async def _count(self) -> None:
        with brokers.client(self.url) as conn:
            await self._count_with(conn)

    async def _count_with(self, conn: redis.Redis) -> None:
        while self._stopping is not None and not self._stopping.is_set():
            try:
                queues, workers = await asyncio.to_thread(
                    lambda: (brokers.depths(conn), brokers.live_workers(conn))
                )
            except redis.RedisError as exc:
                log.warning("could not count the queues: %s", exc)
            else:
                for q in queues:
                    for state in ("ready", "delayed", "in_flight", "dead"):
                        self.queue_messages.labels(q.queue, state).set(getattr(q, state))
                    self.queue_oldest.labels(q.queue).set(q.oldest_s or 0.0)
                self.live_workers.set(len(workers))
            try:
                await asyncio.wait_for(self._stopping.wait(), MONITOR_S)
            except TimeoutError:
                continue
