"""Per-host politeness shared by every worker of the distributed mode, through Redis.

The same rules as one process's fetcher (fetch/client.py), held across machines: at most
`per_host` requests in flight to one host, and their starts at least `host_gap` apart (or the
site's robots.txt Crawl-delay, when longer). One Lua script decides atomically, on Redis's own
clock, whether a request may start now and, when not, how long to wait:

    aggregator:host:<host>:busy    sorted set: requests in flight, scored by when their hold
                                   expires (a worker that died mid-request frees its slot then)
    aggregator:host:<host>:last    when the last request to the host started (ms): the next
                                   starts a gap later (its own gap: a Crawl-delay counts)

`HostTurns.hold` is what the worker's Fetcher asks immediately before every request (each
hop, robots.txt too), so a turn is taken when its request really starts. Before a message's
work begins, its task asks `wait_ms` (the same question, taking nothing): a message whose host
must wait is sent again with that delay instead of keeping a worker thread asleep. A request
that would still have to wait longer than `MAX_WAIT_S` (others took the host meanwhile)
raises `HostBusy`, and its message is sent again the same way.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis
import redis.asyncio

from aggregator.engine.broker import NAMESPACE

log = logging.getLogger(__name__)

PREFIX = f"{NAMESPACE}:host:"
PATIENCE_S = 300.0  # how long a turn is waited for through a Redis outage
RETRY_BUSY_MS = 250  # when every slot of a host is taken: ask again after this long
MAX_WAIT_S = 1.0  # a request waits this long for its turn in place, at most

# KEYS: busy set, last-start key. ARGV: per_host, gap_ms, hold_ms, token ("" only asks),
# busy_retry_ms. Returns 0 when the request may start (a token then holds a slot), else the
# milliseconds to wait.
_TURN = """
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('zremrangebyscore', KEYS[1], '-inf', now)
local last = tonumber(redis.call('get', KEYS[2]) or '-1e15')
local gap = tonumber(ARGV[2])
if last + gap > now then return last + gap - now end
if redis.call('zcard', KEYS[1]) >= tonumber(ARGV[1]) then
  local first = redis.call('zrange', KEYS[1], 0, 0, 'WITHSCORES')
  local wait = tonumber(ARGV[5])
  if first[2] then wait = math.min(wait, math.max(1, tonumber(first[2]) - now)) end
  return wait
end
if ARGV[4] == '' then return 0 end
local hold = tonumber(ARGV[3])
redis.call('zadd', KEYS[1], now + hold, ARGV[4])
redis.call('pexpire', KEYS[1], hold)
redis.call('set', KEYS[2], now, 'PX', math.max(gap, 1000) + 3600000)
return 0
"""
_FREE = "redis.call('zrem', KEYS[1], ARGV[1]); return 0"


class HostBusy(Exception):
    """The host's turn is further away than a request waits in place: send the message
    again `wait_ms` later."""

    def __init__(self, host: str, wait_ms: int) -> None:
        super().__init__(f"host {host} is busy for {wait_ms} ms")
        self.host = host
        self.wait_ms = wait_ms


def host_keys(host: str) -> list[str]:
    host = host.lower()
    return [f"{PREFIX}{host}:busy", f"{PREFIX}{host}:last"]


class HostTurns:
    """A `fetch.client.HostSlots` whose turns every worker shares; one per worker process."""

    def __init__(self, url: str, *, per_host: int, gap_s: float, hold_s: float) -> None:
        self.url = url
        self.per_host = max(1, per_host)
        self.gap_s = gap_s
        self.hold_ms = max(1000, int(hold_s * 1000))
        self._async: redis.asyncio.Redis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _client(self) -> redis.asyncio.Redis:
        loop = asyncio.get_running_loop()
        if self._async is None or self._loop is not loop:
            self._async = redis.asyncio.Redis.from_url(
                self.url, socket_timeout=10, socket_connect_timeout=10
            )
            self._loop = loop
        return self._async

    async def aclose(self) -> None:
        if self._async is not None:
            await self._async.aclose()
            self._async = None

    async def _turn(self, host: str, gap_s: float, token: str) -> int:
        """The script, riding out a Redis restart (for up to PATIENCE_S)."""
        gap_ms = int(max(gap_s, self.gap_s) * 1000)
        args: list[str | int] = [*host_keys(host), self.per_host, gap_ms, self.hold_ms, token]
        args.append(RETRY_BUSY_MS)
        wait, deadline = 0.2, time.monotonic() + PATIENCE_S
        while True:
            try:
                return int(await self._client().eval(_TURN, 2, *args))
            except (redis.ConnectionError, redis.TimeoutError):
                if time.monotonic() > deadline:
                    raise
                log.warning("Redis is unreachable for the host turns; trying again in %.1f s", wait)
                await asyncio.sleep(wait)
                wait = min(wait * 2, 5.0)

    async def wait_ms(self, host: str, *, gap_s: float = 0.0) -> int:
        """How long until a request to `host` may start (0: now); takes nothing."""
        return await self._turn(host, gap_s, "")

    async def free(self, host: str, token: str) -> None:
        """Give the slot back (if Redis is away, it frees itself when its hold expires)."""
        try:
            await self._client().eval(_FREE, 1, host_keys(host)[0], token)
        except redis.RedisError as exc:
            log.debug("a host slot is left to expire: %s", exc)

    @asynccontextmanager
    async def hold(
        self, host: str, in_flight: asyncio.Semaphore, *, gap_s: float = 0.0
    ) -> AsyncIterator[None]:
        """One request's turn: this process's share of `concurrency` first, then the host's
        turn, taken as the request starts; HostBusy past MAX_WAIT_S."""
        token = secrets.token_hex(8)
        async with in_flight:
            waited = 0.0
            while wait := await self._turn(host, gap_s, token):
                if waited + wait / 1000 > MAX_WAIT_S:
                    raise HostBusy(host, wait)
                waited += wait / 1000
                await asyncio.sleep(wait / 1000)
            try:
                yield
            finally:
                await self.free(host, token)
