"""Messages a live worker took from Redis and then lost: put back on their queues.

When a worker's connection to Redis breaks, Dramatiq's consumer forgets the delayed messages
it holds in memory (a politeness wait, a retry's backoff) and the ones it had prefetched. Redis
still lists them as taken by that worker, and gives them to another only once the worker stops
heartbeating, which a live worker never does: they would wait for its restart. `Orphans` looks
every CHECK_S seconds: a message Redis lists as this worker's that the worker holds nowhere
(not prefetched, not waiting for its time or a thread, not being worked on), twice running, is
put back on its queue. One put back by mistake (held in a gap between two of Dramatiq's
queues at both looks) is worked on twice, which changes nothing (the writer applies an
answer once).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterable
from queue import PriorityQueue
from typing import Any

import redis
from dramatiq.broker import Broker, MessageProxy
from dramatiq.brokers.redis import RedisBroker
from dramatiq.message import Message
from dramatiq.middleware import Middleware

from aggregator.engine import broker as brokers

log = logging.getLogger(__name__)

# A look is a few Redis reads; the tests look more often (as with broker.DEAD_AFTER_MS).
CHECK_S = int(os.environ.get("AGGREGATOR_BROKER_ORPHAN_CHECK_MS", "30000")) / 1000


class Orphans(Middleware):
    def __init__(self, conn: redis.Redis, *, check_s: float = CHECK_S) -> None:
        self.conn = conn
        self.check_s = check_s
        self._working: set[str] = set()  # redis ids of the messages worker threads are on
        self._lock = threading.Lock()
        self._suspects: dict[str, set[str]] = {}  # queue -> lost at the last look
        self._stop = threading.Event()
        self._worker: Any = None
        self._broker: RedisBroker | None = None
        self.put_back = 0  # messages put back so far (for tests)

    def after_worker_boot(self, broker: Broker, worker: Any) -> None:
        assert isinstance(broker, RedisBroker)
        self._broker, self._worker = broker, worker
        threading.Thread(target=self._watch, name="orphans", daemon=True).start()

    def before_worker_shutdown(self, broker: Broker, worker: Any) -> None:
        self._stop.set()

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        with self._lock:
            self._working.add(_redis_id(message.options))

    def after_process_message(
        self,
        broker: Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        with self._lock:
            self._working.discard(_redis_id(message.options))

    def after_skip_message(self, broker: Broker, message: MessageProxy) -> None:
        with self._lock:
            self._working.discard(_redis_id(message.options))

    def _watch(self) -> None:
        while not self._stop.wait(self.check_s):
            try:
                self.look()
            except redis.RedisError as exc:  # Redis is away: the next look will do
                log.debug("could not look for lost messages: %s", exc)
            except Exception:  # never the end of the worker
                log.exception("looking for lost messages failed")

    def look(self) -> int:
        """One look; the number of messages put back."""
        broker, worker = self._broker, self._worker
        assert broker is not None
        held = self.held()
        count = 0
        for queue in list(worker.consumers):
            key = f"{brokers.NAMESPACE}:__acks__.{broker.broker_id}.{queue}"
            taken = {m.decode() if isinstance(m, bytes) else m for m in self.conn.smembers(key)}
            lost = taken - held
            orphans = lost & self._suspects.get(queue, set())
            if orphans:
                log.warning(
                    "%d message(s) of queue %s were lost by this worker when its connection to "
                    "Redis broke; putting them back",
                    len(orphans),
                    queue,
                )
                broker.do_requeue(queue, *sorted(orphans))
                count += len(orphans)
            self._suspects[queue] = lost - orphans
        self.put_back += count
        return count

    def held(self) -> set[str]:
        """The redis ids of every message this worker holds in memory."""
        with self._lock:
            found = set(self._working)
        found.update(_queued(self._worker.work_queue))
        for thread in list(self._worker.consumers.values()):
            found.update(_queued(thread.delay_queue))
            consumer = getattr(thread, "consumer", None)
            for data in list(getattr(consumer, "message_cache", ()) or ()):
                if data:
                    with contextlib.suppress(Exception):  # not ours to judge; held all the same
                        found.add(_redis_id(Message.decode(data).options))
        return found


def _queued(queue: PriorityQueue[Any]) -> Iterable[str]:
    with queue.mutex:
        items = list(queue.queue)
    return (_redis_id(item.message.options) for item in items)


def _redis_id(options: dict[str, Any]) -> str:
    return str(options.get("redis_message_id", ""))
