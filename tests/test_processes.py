"""One worker process and its pipes (engine/processes.py), against real processes: a job
never blocks the event loop to send, its deadline holds with nobody waiting, and what a job
raises comes back whatever it is."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time

import pytest
from test_workers import exits

from aggregator.engine.pool import Workers, _start_worker
from aggregator.engine.processes import WorkerGone, WorkerProcess
from aggregator.errors import InternalError

pytestmark = pytest.mark.slow

MB = 2**20


def size_of(body: bytes) -> int:
    return len(body)


def nap(seconds: float) -> None:
    """In a worker: a job stuck for `seconds`."""
    time.sleep(seconds)


class Unpicklable(Exception):
    def __init__(self) -> None:
        super().__init__("held a lock")
        self.lock = threading.Lock()


def raise_unpicklable() -> None:
    raise Unpicklable


def fresh_worker() -> WorkerProcess:
    context = multiprocessing.get_context("forkserver")
    return WorkerProcess(context, _start_worker, (os.getpid(),))


def test_a_large_job_is_sent_as_the_worker_reads_it() -> None:
    """8 MB for a worker still starting: `submit` returns at once, the event loop writes
    the rest as the pipe drains."""

    async def scenario() -> None:
        worker = fresh_worker()
        try:
            future = worker.submit(size_of, b"x" * 8 * MB, deadline_s=60)
            assert worker._unsent  # more than a pipe holds: not all written yet
            assert await future == 8 * MB
            assert not worker.busy
            assert worker.jobs == 1
        finally:
            worker.retire()

    asyncio.run(scenario())


def test_a_job_s_deadline_holds_when_nobody_waits_for_it() -> None:
    """A feed's deadline cancels the caller first: the stuck job's worker is still stopped
    at the job's own deadline, and the pool stays its size."""

    async def scenario() -> None:
        workers = Workers(1)
        try:
            caller = asyncio.ensure_future(workers._run(nap, 3600, timeout=0.5, what="napping"))
            while not workers.worker_pids():
                await asyncio.sleep(0)
            (stuck,) = workers.worker_pids()
            caller.cancel()
            assert await exits(stuck)
            assert workers._workers[0].timed_out
            await workers._run(size_of, b"x", timeout=30, what="sizing")
            assert len(workers.worker_pids()) == 1
        finally:
            workers.close()

    asyncio.run(scenario())


def test_what_a_job_raises_comes_back_even_when_it_cannot_be_pickled() -> None:
    async def scenario() -> None:
        worker = fresh_worker()
        try:
            with pytest.raises(InternalError, match="Unpicklable"):
                await worker.submit(raise_unpicklable, deadline_s=60)
            assert await worker.submit(size_of, b"abc", deadline_s=60) == 3  # still serving
        finally:
            worker.retire()

    asyncio.run(scenario())


def test_keep_decides_before_the_worker_is_free_again() -> None:
    """A worker its answer says to retire is never handed another job."""

    async def scenario() -> None:
        worker = fresh_worker()
        assert await worker.submit(size_of, b"ab", deadline_s=60, keep=lambda _: False) == 2
        assert worker.gone
        assert not worker.busy
        with pytest.raises(AssertionError):
            worker.submit(size_of, b"a", deadline_s=60)
        assert await exits(worker.pid or 0)

    asyncio.run(scenario())


def test_a_killed_worker_fails_its_job_as_taken() -> None:
    async def scenario() -> None:
        worker = fresh_worker()
        assert await worker.submit(size_of, b"", deadline_s=60) == 0  # started, and reading
        future = worker.submit(nap, 3600, deadline_s=60)
        while worker._unread_job_bytes():  # until the worker has the job
            await asyncio.sleep(0.001)
        worker.kill()
        with pytest.raises(WorkerGone) as caught:
            await future
        assert caught.value.job_taken
        assert not worker.timed_out

    asyncio.run(scenario())
