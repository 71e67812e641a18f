"""The worker processes: results cross the process boundary; a stuck or dead worker costs
its own job, and the next job gets a fresh one."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from aggregator.engine import pool
from aggregator.engine.pool import WorkerCrashed, Workers, WorkerTimeout, resident_bytes
from aggregator.errors import NotAFeed
from aggregator.models import ParsedFeed

pytestmark = pytest.mark.slow

GOOD = (
    b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
    b"<item><title>a</title><link>https://example.org/a</link></item></channel></rss>"
)
# Broken XML full of unclosed tags sends feedparser to its slow fallback parser.
PATHOLOGICAL = b'<?xml version="1.0"?><rss version="2.0"><channel>' + b"<item><title>x" * 60000


def test_slow_parse_is_killed_and_the_pool_recovers() -> None:
    async def scenario() -> None:
        workers = Workers(1, parse_timeout_s=0.5)
        try:
            assert (await workers.parse(GOOD, "https://e.org/f", None, None, 10)).entries
            started = time.monotonic()
            with pytest.raises(WorkerTimeout, match=r"took longer than 0\.5 s"):
                await workers.parse(PATHOLOGICAL, "https://e.org/f", None, None, 10)
            assert time.monotonic() - started < 5
            assert (await workers.parse(GOOD, "https://e.org/f", None, None, 10)).entries
        finally:
            workers.close()

    asyncio.run(scenario())


def test_domain_errors_cross_the_process_boundary() -> None:
    async def scenario() -> None:
        workers = Workers(1)
        try:
            with pytest.raises(NotAFeed, match="empty body"):
                await workers.parse(b"", "https://e.org/f", None, None, 10)
        finally:
            workers.close()

    asyncio.run(scenario())


def slow_feed(items: int) -> bytes:
    """Broken XML that keeps feedparser busy in proportion to `items` (~50 us each)."""
    return b'<?xml version="1.0"?><rss version="2.0"><channel>' + b"<item><title>x" * items


async def parse_seconds(workers: Workers, body: bytes) -> float:
    """The middle of three parses of `body`: how long one takes in a worker, here, now."""
    times = []
    for _ in range(3):
        started = time.monotonic()
        await workers.parse(body, "https://e.org/f", None, None, 10)
        times.append(time.monotonic() - started)
    return sorted(times)[1]


def test_time_queued_for_a_worker_does_not_count_toward_the_deadline() -> None:
    """Forty honest jobs for one worker: each within a tenth of the deadline, all of them
    together four times over it. (With a margin of five, a job slowed down by the other
    test processes on a two-core machine once ran out of its deadline by itself.)"""
    body = slow_feed(1000)
    jobs = 40

    async def scenario() -> None:
        workers = Workers(1)
        try:
            each = await parse_seconds(workers, body)
            workers.parse_timeout_s = 10 * each
            started = time.monotonic()
            parsed = await asyncio.gather(
                *(workers.parse(body, "https://e.org/f", None, None, 10) for _ in range(jobs))
            )
            assert time.monotonic() - started > workers.parse_timeout_s  # they did queue
            assert len(parsed) == jobs
        finally:
            workers.close()

    asyncio.run(scenario())


def test_an_extraction_is_said_to_start_when_a_worker_takes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`started` (what a distributed worker's presence shows as extracting) is called when
    the job gets the worker, not while it waits behind another page."""
    order: list[str] = []
    first_may_end = threading.Event()

    def extraction(body: bytes, url: str, charset: str | None, title: str, summary: None) -> Any:
        order.append(f"ran {title}")
        if title == "first":
            first_may_end.wait(30)
        return None, None

    monkeypatch.setattr(pool, "_extract_fingerprinted", extraction)

    async def scenario() -> None:
        workers = Workers(0)  # one worker: the second page waits for the first
        first_started = asyncio.Event()

        def started(title: str) -> Any:
            def mark() -> None:
                order.append(f"started {title}")
                if title == "first":
                    first_started.set()

            return mark

        try:
            jobs = [
                asyncio.ensure_future(
                    workers.extract_fingerprinted(
                        b"", "u", None, title, None, started=started(title)
                    )
                )
                for title in ("first", "second")
            ]
            await first_started.wait()
            # Both jobs have run up to where they wait: the second, for the worker.
            assert "started second" not in order
            first_may_end.set()
            await asyncio.gather(*jobs)
        finally:
            workers.close()

    asyncio.run(scenario())
    assert order == ["started first", "ran first", "started second", "ran second"]


def test_a_job_beside_a_stuck_one_is_untouched_by_its_kill(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two workers: one stuck on a pathological feed, the other busy with an ordinary one
    when the stuck worker is killed. Only the stuck worker is stopped; the ordinary job
    finishes where it runs, once, and its worker stays for the next job."""
    caplog.set_level(logging.INFO, logger="aggregator.engine.pool")
    ordinary, stuck = slow_feed(6000), slow_feed(120000)  # stuck: ~20 times the other

    async def scenario() -> None:
        workers = Workers(2)
        try:
            each = await parse_seconds(workers, ordinary)
            workers.parse_timeout_s = 3 * each
            (first,) = workers.worker_pids()  # the three parses, one after another
            stuck_job = asyncio.ensure_future(
                workers.parse(stuck, "https://e.org/stuck", None, None, 10)
            )
            # Start the ordinary job half its length before the stuck one's deadline, so it
            # is running when the stuck worker is killed (the sleep only places it).
            await asyncio.sleep(workers.parse_timeout_s - each / 2)
            parsed, timed_out = await asyncio.gather(
                workers.parse(ordinary, "https://e.org/f", None, None, 10),
                stuck_job,
                return_exceptions=True,
            )
            assert isinstance(parsed, ParsedFeed)
            assert isinstance(timed_out, WorkerTimeout)
            (second,) = workers.worker_pids()  # the stuck one, `first`, is gone
            assert second != first
            assert (await workers._run(grow, 0, timeout=30, what="growing"))[0] == second
        finally:
            workers.close()

    asyncio.run(scenario())
    assert "running it again" not in caplog.text


MB = 2**20
_HELD: list[bytearray] = []  # in a worker: what `grow` made it keep


def grow(megabytes: int) -> tuple[int, int]:
    """In a worker: keep `megabytes` more (written, so resident); which process, holding what."""
    _HELD.append(bytearray(megabytes * MB))
    return os.getpid(), resident_bytes()


def test_a_worker_over_the_memory_limit_is_replaced(caplog: pytest.LogCaptureFixture) -> None:
    """A job that leaves its worker holding more than the limit still returns its result;
    the next job runs in a fresh process. Under the limit the worker is kept."""
    caplog.set_level(logging.INFO, logger="aggregator.engine.pool")

    async def scenario() -> None:
        workers = Workers(1)
        try:
            # `_run` is what parse, extract and fingerprint call; `grow` is a job of our own.
            pid, resident = await workers._run(grow, 0, timeout=30, what="growing")
            workers.memory_limit_bytes = resident + 64 * MB
            assert (await workers._run(grow, 16, timeout=30, what="growing"))[0] == pid
            assert workers.recycled == 0
            # Ran in the same worker and left it over the limit: that worker is retired.
            assert (await workers._run(grow, 128, timeout=30, what="growing"))[0] == pid
            fresh, fresh_resident = await workers._run(grow, 0, timeout=30, what="growing")
            assert fresh != pid
            assert fresh_resident < workers.memory_limit_bytes
            assert workers.recycled == 1
            assert (await workers.parse(GOOD, "https://e.org/f", None, None, 10)).entries
        finally:
            workers.close()

    asyncio.run(scenario())
    assert "over worker_memory_limit" in caplog.text


async def exits(pid: int, within_s: float = 30.0) -> bool:
    """Whether process `pid` ends (or is left a zombie for its parent to collect) in time."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        if stat[stat.rindex(")") + 2] in "ZX":
            return True
        await asyncio.sleep(0.02)
    return False


def test_workers_are_replaced_after_their_share_of_jobs() -> None:
    """However little memory they hold, workers give way to fresh ones after
    jobs_per_worker jobs each; jobs asked for meanwhile all get their results."""

    async def scenario() -> None:
        workers = Workers(2, jobs_per_worker=3)
        try:
            done: list[tuple[int, int]] = []
            for _ in range(2):
                done += await asyncio.gather(
                    *(workers._run(grow, 0, timeout=30, what="growing") for _ in range(6))
                )
            jobs = Counter(pid for pid, _ in done)
            assert sum(jobs.values()) == 12
            assert max(jobs.values()) == 3  # no worker did more than its share
            used_up = {pid for pid, n in jobs.items() if n == 3}
            assert workers.renewed == len(used_up) >= 2
            assert used_up.isdisjoint(workers.worker_pids())
            assert all([await exits(pid) for pid in used_up])  # told to, by its pipe ending
            assert workers.recycled == 0  # nothing was over the memory limit
            assert (await workers.parse(GOOD, "https://e.org/f", None, None, 10)).entries
        finally:
            workers.close()

    asyncio.run(scenario())


def die() -> None:
    """In a worker: end the process at once, as the kernel's OOM killer would."""
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_worker_that_dies_fails_its_job_alone_and_is_replaced() -> None:
    async def scenario() -> None:
        workers = Workers(1)
        try:
            pid, _ = await workers._run(grow, 0, timeout=30, what="growing")
            with pytest.raises(WorkerCrashed, match="a worker process died"):
                await workers._run(die, timeout=30, what="dying")
            fresh, _ = await workers._run(grow, 0, timeout=30, what="growing")
            assert fresh != pid
            assert workers.worker_pids() == [fresh]
        finally:
            workers.close()

    asyncio.run(scenario())


def test_a_job_given_up_on_runs_on_and_its_worker_is_used_again() -> None:
    """A feed's deadline cancels its caller, not the job: the worker finishes it, and the
    pool is back to its size once it has (the job after it needed a worker meanwhile)."""
    body = slow_feed(4000)

    async def scenario() -> None:
        workers = Workers(1)
        try:
            await workers.parse(GOOD, "https://e.org/f", None, None, 10)
            (first,) = workers.worker_pids()
            caller = asyncio.ensure_future(workers.parse(body, "https://e.org/f", None, None, 10))
            await asyncio.sleep(0)  # it has its worker
            await asyncio.sleep(0)
            caller.cancel()
            other, _ = await workers._run(grow, 0, timeout=30, what="growing")
            assert other != first  # the first was still busy with the abandoned job
            # Wait for the abandoned job's answer, then a job finds the pool its size again.
            deadline = time.monotonic() + 30
            while any(w.busy for w in workers._workers) and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await workers._run(grow, 0, timeout=30, what="growing")
            assert len(workers.worker_pids()) == 1
        finally:
            workers.close()

    asyncio.run(scenario())


def test_a_job_left_running_when_its_event_loop_ends_costs_only_its_worker() -> None:
    """A Workers outlives the asyncio.run of a CLI command or a test: a job still running
    when its loop closed has no reader for its answer; the next loop's job gets a fresh
    worker and the stranded one is stopped."""
    workers = Workers(1)

    async def leave_running() -> int:
        pid, _ = await workers._run(grow, 0, timeout=30, what="growing")
        left = asyncio.ensure_future(
            workers.parse(slow_feed(60000), "https://e.org/f", None, None, 10)
        )
        await asyncio.sleep(0)  # it has its worker; asyncio.run cancels it on the way out
        assert not left.done()
        return pid

    async def next_job() -> int:
        pid, _ = await workers._run(grow, 0, timeout=30, what="growing")
        return pid

    try:
        stranded = asyncio.run(leave_running())
        fresh = asyncio.run(next_job())
        assert fresh != stranded
        assert workers.worker_pids() == [fresh]
    finally:
        workers.close()


def test_a_worker_that_died_waiting_for_work_costs_no_job() -> None:
    """Killed while idle (the OOM killer picks the largest process, busy or not): the next
    job is not lost with it, but runs in a fresh worker."""

    async def scenario() -> None:
        workers = Workers(1)
        try:
            pid, _ = await workers._run(grow, 0, timeout=30, what="growing")
            os.kill(pid, signal.SIGKILL)
            assert await exits(pid)
            fresh, _ = await workers._run(grow, 0, timeout=30, what="growing")
            assert fresh != pid
        finally:
            workers.close()

    asyncio.run(scenario())
