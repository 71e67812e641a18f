"""The distributed mode's Redis: Dramatiq's broker, and the few keys of our own beside it.

Dramatiq keeps its queues under the `aggregator:` namespace (`aggregator:fetch`,
`aggregator:fetch.DQ` for delayed messages, `aggregator:fetch.XQ` for dead ones, ...). Beside
them, under the same prefix:

    aggregator:writer              the one writer's lease (holder, expires unless renewed)
    aggregator:worker:<id>         a live worker's heartbeat: host, pid, queues, what it is doing
    aggregator:host:<host>:*       per-host politeness shared by every worker (politeness.py)
    aggregator:delivery:<id>       how often a message was handed to a worker (poison messages)

A worker that dies holding messages (kill -9, a lost machine) stops heartbeating; once its
heartbeat is older than `DEAD_AFTER_MS` Dramatiq's queue maintenance puts its messages back on
their queues. The writer runs that maintenance on every queue every `SWEEP_S` seconds, so a
dead worker's messages come back within about DEAD_AFTER_MS + SWEEP_S.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from dramatiq.brokers.redis import MAINTENANCE_SCALE, RedisBroker
from dramatiq.middleware import Middleware

from aggregator.errors import AggregatorError, UsageError
from aggregator.models import Outcome
from aggregator.schedule.leases import describe, is_dead

NAMESPACE = "aggregator"
FETCH, EXTRACT, COMMIT = "fetch", "extract", "commit"
WORKER_QUEUES = (FETCH, EXTRACT)  # what `aggregator worker` consumes; COMMIT is the writer's
QUEUES = (FETCH, EXTRACT, COMMIT)

# A worker silent this long is dead and its unacknowledged messages go back on their queues.
# Every process of one deployment must agree on it (the environment sets it for tests).
DEAD_AFTER_MS = int(os.environ.get("AGGREGATOR_BROKER_DEAD_AFTER_MS", "60000"))
# Chance, per million Redis commands of a worker, that it runs that maintenance itself (the
# writer's sweep does it regardless); Dramatiq's default is 1,000.
MAINTENANCE_CHANCE = int(os.environ.get("AGGREGATOR_BROKER_MAINTENANCE", "1000"))
# How often the writer runs that maintenance.
SWEEP_S = max(1.0, min(10.0, DEAD_AFTER_MS / 2000))
SOCKET_TIMEOUT_S = 10.0

WRITER_KEY = f"{NAMESPACE}:writer"
WORKER_PREFIX = f"{NAMESPACE}:worker:"
WORKER_BEAT_TTL_MS = 15_000  # a worker's heartbeat key lives this long: silent longer, unlisted
WRITER_LEASE_MS = 30_000  # renewed every third of it


class BrokerUnavailable(AggregatorError):
    """Redis cannot be reached (or answered with an error)."""

    outcome = Outcome.INTERNAL_ERROR


class WriterBusy(UsageError):
    """Another process is the writer on this broker."""


def client(url: str) -> redis.Redis:
    """A Redis client with deadlines, so a vanished server is an error, never a hang."""
    return redis.Redis.from_url(
        url,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=SOCKET_TIMEOUT_S,
        health_check_interval=30,
    )


def make_broker(
    url: str,
    *,
    middleware: Sequence[Middleware] = (),
    maintenance_chance: int = MAINTENANCE_CHANCE,
) -> RedisBroker:
    """Dramatiq's Redis broker on `url`, with exactly the middleware given (no defaults)."""
    return RedisBroker(  # type: ignore[no-untyped-call]
        client=client(url),
        namespace=NAMESPACE,
        middleware=list(middleware),
        heartbeat_timeout=DEAD_AFTER_MS,
        maintenance_chance=maintenance_chance,
    )


def check(url: str) -> None:
    """Raise BrokerUnavailable, saying what to do, unless Redis at `url` answers."""
    try:
        with client(url) as conn:
            conn.ping()
    except (redis.RedisError, OSError) as exc:
        raise BrokerUnavailable(
            f"the broker at {redact(url)} does not answer ({exc}); is Redis running there?"
        ) from exc


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    credentials, _, where = rest.rpartition("@")
    user = credentials.partition(":")[0]
    return f"{scheme}{sep}{user + ':***' if user else '***'}@{where}"


# -- queues ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueDepth:
    queue: str
    ready: int  # waiting for a worker
    delayed: int  # waiting for their time (politeness, retries)
    in_flight: int  # handed to a worker, not acknowledged yet
    dead: int  # given up on (kept for a week by Dramatiq)
    oldest_s: float | None  # age of the oldest ready message


def depths(conn: redis.Redis, queues: Sequence[str] = QUEUES) -> list[QueueDepth]:
    """How many messages wait on each queue, and how old the oldest is."""
    found = []
    now_ms = time.time() * 1000
    for queue in queues:
        base = f"{NAMESPACE}:{queue}"
        pipe = conn.pipeline(transaction=False)
        pipe.llen(base)
        pipe.hlen(f"{base}.msgs")
        pipe.hlen(f"{base}.DQ.msgs")
        pipe.zcard(f"{base}.XQ")
        pipe.lindex(base, 0)
        ready, stored, delayed, dead, first = pipe.execute()
        oldest = None
        if first is not None:
            raw = conn.hget(f"{base}.msgs", first)
            if raw is not None:
                try:
                    oldest = max(0.0, (now_ms - float(json.loads(raw)["message_timestamp"])) / 1000)
                except (ValueError, KeyError, TypeError):
                    oldest = None
        found.append(QueueDepth(queue, ready, delayed, max(0, stored - ready), dead, oldest))
    return found


def sweeper(broker: RedisBroker) -> RedisBroker:
    """A twin of `broker` (same client, same id) that runs queue maintenance on every call."""
    forced = RedisBroker(  # type: ignore[no-untyped-call]
        client=broker.client,
        namespace=broker.namespace,
        middleware=[],
        heartbeat_timeout=broker.heartbeat_timeout,
        maintenance_chance=MAINTENANCE_SCALE,
    )
    forced.broker_id = broker.broker_id
    return forced


def sweep(forced: RedisBroker, queues: Sequence[str] = QUEUES) -> None:
    """Run Dramatiq's queue maintenance on every queue and its delay queue now (`forced`
    from `sweeper`): messages held by workers silent for DEAD_AFTER_MS go back on their
    queues."""
    for queue in queues:
        for name in (queue, f"{queue}.DQ"):
            forced.do_qsize(name)


# -- the one writer -----------------------------------------------------------------------------

_TAKE = """
local held = redis.call('get', KEYS[1])
if held and held ~= ARGV[1] and ARGV[3] ~= held then return held end
redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class WriterLease:
    """One writer per broker: a Redis key naming its holder, renewed while it lives. A holder
    that died on this host (kill -9) is replaced at once; elsewhere its lease expires."""

    def __init__(self, conn: redis.Redis, holder: str, *, duration_ms: int = WRITER_LEASE_MS):
        self.conn = conn
        self.holder = holder
        self.duration_ms = duration_ms

    def take(self) -> None:
        """Raise WriterBusy when another live process holds it."""
        held = _text(self.conn.get(WRITER_KEY))
        dead = held if held is not None and is_dead(held) else ""
        taken = _text(self.conn.eval(_TAKE, 1, WRITER_KEY, self.holder, self.duration_ms, dead))
        if taken:
            raise WriterBusy(
                f"{describe(taken)} is the writer for this broker; one writer at a time"
                " commits what the workers send (it keeps every feed fresh on its own)"
            )

    def renew(self) -> bool:
        """False when the lease was lost (expired and taken by another)."""
        return bool(self.conn.eval(_RENEW, 1, WRITER_KEY, self.holder, self.duration_ms))

    def release(self) -> None:
        self.conn.eval(_RELEASE, 1, WRITER_KEY, self.holder)


# -- live workers -------------------------------------------------------------------------------


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def worker_key(worker_id: str) -> str:
    return f"{WORKER_PREFIX}{worker_id}"


def live_workers(conn: redis.Redis) -> list[dict[str, Any]]:
    """Each live worker's last heartbeat (workers whose heartbeat expired are gone), with
    `heard_s`: how long ago it was sent, on Redis's clock (the time its key has lived),
    whatever the clocks of the worker's machine and this one say."""
    keys = list(_scan(conn, f"{WORKER_PREFIX}*"))
    pipe = conn.pipeline(transaction=False)
    for key in keys:
        pipe.get(key)
        pipe.pttl(key)
    answers = pipe.execute() if keys else []
    found = []
    for raw, ttl_ms in zip(answers[0::2], answers[1::2], strict=True):
        try:
            beat = json.loads(raw) if raw is not None else None
        except ValueError:
            continue
        if not isinstance(beat, dict):
            continue  # expired between the scan and the read, or not a heartbeat
        if isinstance(ttl_ms, int) and ttl_ms >= 0:
            beat["heard_s"] = max(0, WORKER_BEAT_TTL_MS - ttl_ms) / 1000
        found.append(beat)
    return sorted(found, key=lambda w: (str(w.get("host")), int(w.get("pid") or 0)))


def _scan(conn: redis.Redis, pattern: str) -> Iterator[str]:
    for key in conn.scan_iter(match=pattern, count=500):
        yield key.decode() if isinstance(key, bytes) else str(key)
