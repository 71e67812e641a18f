"""Where the CPU-heavy stages run: a process pool sized to the machine.

Parse, extract and fingerprint take bytes or text and return plain data, so they cross the
process boundary cheaply. The pool forks from a server process that has already imported
them (forkserver preload), so a worker starts in milliseconds instead of re-importing
trafilatura. A worker reports its resident memory with each result; once one holds more than
`memory_limit_bytes` (settings.worker_memory_limit), the pool is replaced by fresh workers.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import resource
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any

from aggregator.errors import AggregatorError, InternalError
from aggregator.extract.article import extract_article
from aggregator.models import Article, Fingerprint, Outcome, ParsedFeed, Settings
from aggregator.parse.feed import parse_feed
from aggregator.stories.dedup import fingerprint

log = logging.getLogger(__name__)


class WorkerCrashed(AggregatorError):
    outcome = Outcome.INTERNAL_ERROR


class WorkerTimeout(AggregatorError):
    """Parsing or extracting one body took too long (hostile or pathological input)."""

    outcome = Outcome.TIMEOUT


# feedparser's fallback parser needs seconds per MB of broken XML, and trafilatura can be
# slow on giant pages: past these limits the worker is killed rather than waited for.
PARSE_TIMEOUT_S = 60.0
EXTRACT_TIMEOUT_S = 30.0
# Fingerprints asked for together (a feed's new entries) go to the workers as one job per
# this many, or per this many characters of text: a job's round trip costs more than
# fingerprinting a summary, and a large text still goes on its own.
FINGERPRINT_BATCH = 64
FINGERPRINT_BATCH_CHARS = 1_000_000
# Jobs a worker process does before the pool is replaced by fresh ones, whatever its memory:
# trafilatura, htmldate and lxml keep caches that only grow, and a slow leak in a C library
# never crosses worker_memory_limit in one job. A fresh pool costs milliseconds (forkserver);
# at 1,000 jobs a pool of two lasts about 2,000 articles (one job each).
JOBS_PER_WORKER = 1000
# What the forkserver imports before forking workers: trafilatura and numpy too, as
# extract and dedup import them lazily to keep the CLI's start fast and each fresh worker
# would pay for them again. A run that extracts nothing leaves trafilatura out.
PRELOAD = ("aggregator.engine.pool", "trafilatura", "numpy")
PRELOAD_WITHOUT_EXTRACTION = ("aggregator.engine.pool", "numpy")

_Text = tuple[str | None, str | None, str | None]  # title, text, summary


def _start_worker(pid: int) -> None:
    """In each worker. Ctrl-C reaches the whole process group: the parent stops gracefully,
    so the workers ignore it rather than die under the jobs in flight. And a worker exits
    when the process that started the pool is gone: it holds both ends of its job queue, so
    it never sees EOF when its parent is killed with kill -9 (and its parent is the
    forkserver anyway); without this it would wait forever."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                os._exit(0)
            except PermissionError:
                pass  # alive, another user's (only after pid reuse)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def default_processes() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


def worker_processes(executor: Executor) -> list[BaseProcess]:
    """The worker processes of a ProcessPoolExecutor (none for a thread pool), to kill them.

    It reads a private attribute: ProcessPoolExecutor gives no public access to its workers
    before Python 3.14, and 3.14's kill_workers() shuts the pool down with
    cancel_futures=True, which `Workers._discard` explains we must not do.
    `multiprocessing.active_children()` would list every pool's workers, not this one's.
    `_processes` ({pid: process}, None once the pool is shut down) has been there since
    Python 3.2; tests/test_private_apis.py fails if it goes.
    """
    if not isinstance(executor, ProcessPoolExecutor):
        return []
    return list((executor._processes or {}).values())


def resident_bytes() -> int:
    """This process's resident memory now (Linux), else the most it has held (ru_maxrss)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024  # bytes there, KB on Linux


@dataclass(frozen=True)
class _Done:
    """What a job in a worker process ended with, and the worker's memory after it."""

    result: Any
    error: AggregatorError | None  # the domain errors a stage raises; others propagate
    resident: int  # bytes
    peak: int  # the most the worker has held so far (ru_maxrss), bytes


def _peak_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes there, KB on Linux


def _measured(func: Any, *args: Any) -> _Done:
    """In a worker: run the job and say how much memory the worker holds afterwards. A large
    page can leave a worker holding far more than it started with even once its objects are
    freed (the allocator keeps the pages), and an error can leave it as large as a success."""
    try:
        result, error = func(*args), None
    except AggregatorError as exc:
        result, error = None, exc
    return _Done(result, error, resident_bytes(), _peak_bytes())


@dataclass(eq=False)
class _Pool:
    executor: Executor
    killed: bool = False  # by us, for a stuck job: the others in it did nothing wrong
    jobs: int = 0  # jobs it has finished


class _TakenDown(Exception):
    """The job never finished through no fault of its own: run it again on a fresh pool."""


class Workers:
    """`processes=0` runs the stages on one thread instead (tests, tiny runs, debugging).

    A job waits for a free worker before its deadline starts, so a queue of slow but honest
    jobs never times out. A job past its deadline has its pool killed (a process cannot be
    interrupted any other way); the other jobs that were running in that pool start again on
    a fresh one, once.

    A worker that holds more than `memory_limit_bytes` after a job has its pool retired: new
    jobs go to a fresh pool at once, the retired one's jobs in flight finish and its workers
    exit (`shutdown(wait=False)`, nothing killed). CPython's ProcessPoolExecutor cannot retire
    one worker (one that exits on its own breaks the pool), and `max_tasks_per_child` counts
    jobs, not memory; a fresh pool costs milliseconds (forkserver). `recycled` counts them.
    A pool is retired the same way after `jobs_per_worker` jobs per process (`renewed`).
    """

    def __init__(
        self,
        processes: int | None = None,
        *,
        parse_timeout_s: float = PARSE_TIMEOUT_S,
        extract_timeout_s: float = EXTRACT_TIMEOUT_S,
        memory_limit_bytes: int | None = None,
        jobs_per_worker: int = JOBS_PER_WORKER,
    ) -> None:
        self.processes = default_processes() if processes is None else processes
        self.jobs_per_worker = jobs_per_worker
        self.parse_timeout_s = parse_timeout_s
        self.extract_timeout_s = extract_timeout_s
        if memory_limit_bytes is None:
            memory_limit_bytes = Settings().worker_memory_limit_bytes
        self.memory_limit_bytes = memory_limit_bytes
        self.recycled = 0  # pools retired because a worker passed memory_limit_bytes
        self.renewed = 0  # pools retired after jobs_per_worker jobs a worker
        self.preload: tuple[str, ...] = (
            PRELOAD  # set before the first job (RunContext does, for --no-extract)
        )
        self.peak_worker_bytes = 0  # the most any worker has held (for benchmarks/hostile)
        self._current: _Pool | None = None
        # One per event loop: a Workers outlives the asyncio.run of a test or a CLI command,
        # and a semaphore belongs to the loop it first waits in.
        self._free: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        # Fingerprints asked for in this turn of each event loop, sent together at its end.
        self._asked: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, list[tuple[_Text, asyncio.Future[Fingerprint | None]]]
        ] = weakref.WeakKeyDictionary()
        self._sending: set[asyncio.Task[None]] = set()

    def _pool(self) -> _Pool:
        if self._current is None:
            if self.processes == 0:
                executor: Executor = ThreadPoolExecutor(max_workers=1)
            else:
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload(list(self.preload))
                executor = ProcessPoolExecutor(
                    max_workers=self.processes,
                    mp_context=context,
                    initializer=_start_worker,
                    initargs=(os.getpid(),),
                )
            self._current = _Pool(executor)
        return self._current

    def _free_workers(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        free = self._free.get(loop)
        if free is None:
            free = self._free[loop] = asyncio.Semaphore(max(1, self.processes))
        return free

    async def _run(
        self,
        func: Any,
        *args: Any,
        timeout: float,
        what: str,
        started: Callable[[], None] | None = None,
    ) -> Any:
        try:
            return await self._attempt(func, args, timeout=timeout, what=what, started=started)
        except _TakenDown:
            log.info("%s: its worker was stopped with a stuck job; running it again", what)
        try:
            return await self._attempt(func, args, timeout=timeout, what=what, started=started)
        except _TakenDown:
            raise WorkerTimeout(
                f"{what} was stopped twice along with other inputs that took too long"
            ) from None

    async def _attempt(
        self,
        func: Any,
        args: tuple[Any, ...],
        *,
        timeout: float,
        what: str,
        started: Callable[[], None] | None = None,
    ) -> Any:
        """Run the job once a worker is free; only the time it runs counts toward `timeout`.
        `started` is called when it gets one."""
        loop = asyncio.get_running_loop()
        async with self._free_workers():
            if started is not None:
                started()
            pool = self._pool()
            # Only a process pool's workers are measured: a thread pool's memory is ours.
            measured = isinstance(pool.executor, ProcessPoolExecutor)
            job = (_measured, func, *args) if measured else (func, *args)
            try:
                future = loop.run_in_executor(pool.executor, *job)
            except BrokenProcessPool:  # a crash broke the pool before this job got in
                self._discard(pool)
                raise _TakenDown from None
            # A job given up on (timeout, cancelled caller) is abandoned, never cancelled in
            # the executor: asyncio.wait cancels nothing, unlike wait_for. CPython 3.11's
            # executor thread dies with InvalidStateError, leaving the pool's processes and
            # the interpreter's exit hanging, when a pool breaks under a job cancelled while
            # queued. What an abandoned job ends with is news to nobody.
            future.add_done_callback(_retrieve)
            done, _ = await asyncio.wait([future], timeout=timeout)
            if not done:
                self._kill(pool)
                raise WorkerTimeout(
                    f"{what} took longer than {timeout:g} s; the input is too large or malformed"
                )
            try:
                result = future.result()
            except BrokenProcessPool:
                if pool.killed:
                    raise _TakenDown from None
                # A worker died (out of memory on a hostile page, a crash in a C library):
                # start a fresh pool for the next job and report this one as failed.
                self._discard(pool)
                raise WorkerCrashed("a worker process died while handling this input") from None
            if not measured:
                return result
            ended: _Done = result
            self.peak_worker_bytes = max(self.peak_worker_bytes, ended.peak)
            pool.jobs += 1
            if ended.resident > self.memory_limit_bytes:
                self._retire(pool, ended.resident, what)
            elif pool.jobs >= self.jobs_per_worker * max(1, self.processes):
                self._renew(pool)
            if ended.error is not None:
                raise ended.error
            return ended.result

    def _retire(self, pool: _Pool, resident: int, what: str) -> None:
        """A worker of `pool` holds more memory than the limit: fresh workers from now on."""
        if self._current is pool:  # once per pool, however many of its jobs report it
            self.recycled += 1
            log.info(
                "after %s a worker holds %d MB, over worker_memory_limit (%d MB); "
                "starting fresh workers",
                what,
                resident // 2**20,
                self.memory_limit_bytes // 2**20,
            )
        self._discard(pool)

    def _renew(self, pool: _Pool) -> None:
        """`pool` has done its share of jobs: fresh workers from now on, as in `_retire`."""
        if self._current is pool:
            self.renewed += 1
            log.debug("workers did %d jobs; starting fresh ones", pool.jobs)
        self._discard(pool)

    def _kill(self, pool: _Pool) -> None:
        """Stop a pool whose worker is stuck; the next job gets a fresh pool. The jobs in
        flight in it fail with BrokenProcessPool and, seeing `killed`, run again."""
        pool.killed = True
        processes = worker_processes(pool.executor)
        self._discard(pool)
        for process in processes:
            process.kill()

    def _discard(self, pool: _Pool) -> None:
        """No new jobs for `pool`; the ones in it finish, fail or are killed on their own.

        Nothing is cancelled: a job cancelled inside the executor while the pool breaks is
        what makes the executor's thread die with InvalidStateError (see `_attempt`).
        """
        if self._current is pool:
            self._current = None
        pool.executor.shutdown(wait=False)

    async def parse(
        self, body: bytes, url: str, content_type: str | None, charset: str | None, max_entries: int
    ) -> ParsedFeed:
        result: ParsedFeed = await self._run(
            _parse,
            body,
            url,
            content_type,
            charset,
            max_entries,
            timeout=self.parse_timeout_s,
            what="reading the feed",
        )
        return result

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
        """The page's article (extract_article), and the fingerprint of `title` (the
        article's own when None), its text and `summary`, in one job: the text need not
        cross back to the workers for it. A fingerprint that fails is returned as its error;
        an extraction that fails raises. `started`: called when a worker takes the job."""
        result: tuple[Article, Fingerprint | AggregatorError | None] = await self._run(
            _extract_fingerprinted,
            body,
            url,
            charset,
            title,
            summary,
            timeout=self.extract_timeout_s,
            what="extracting the article",
            started=started,
        )
        return result

    async def fingerprint(
        self, title: str | None, text: str | None, summary: str | None
    ) -> Fingerprint | None:
        """The item's MinHash fingerprint for near-duplicate detection (dedup.fingerprint).

        The fingerprints asked for in one turn of the event loop (a feed's new entries are
        asked for all at once) go to the workers together, FINGERPRINT_BATCH to a job."""
        loop = asyncio.get_running_loop()
        asked = self._asked.get(loop)
        if asked is None:
            asked = self._asked[loop] = []
            loop.call_soon(self._send_fingerprints, loop)
        future: asyncio.Future[Fingerprint | None] = loop.create_future()
        asked.append(((title, text, summary), future))
        return await future

    def _send_fingerprints(self, loop: asyncio.AbstractEventLoop) -> None:
        asked = self._asked.pop(loop, [])
        # Spread over the workers, but no more than FINGERPRINT_BATCH texts to a job.
        per_job = min(FINGERPRINT_BATCH, -(-len(asked) // max(1, self.processes)))
        chunk: list[tuple[_Text, asyncio.Future[Fingerprint | None]]] = []
        size = 0
        for one in asked:
            length = sum(len(part or "") for part in one[0])
            if chunk and (len(chunk) >= per_job or size + length > FINGERPRINT_BATCH_CHARS):
                self._send_chunk(loop, chunk)
                chunk, size = [], 0
            chunk.append(one)
            size += length
        if chunk:
            self._send_chunk(loop, chunk)

    def _send_chunk(
        self,
        loop: asyncio.AbstractEventLoop,
        chunk: list[tuple[_Text, asyncio.Future[Fingerprint | None]]],
    ) -> None:
        task = loop.create_task(self._fingerprint_chunk(chunk))
        self._sending.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._sending.discard)

    async def _fingerprint_chunk(
        self, chunk: list[tuple[_Text, asyncio.Future[Fingerprint | None]]]
    ) -> None:
        wanted = [(text, future) for text, future in chunk if not future.done()]
        if not wanted:
            return  # every caller gave up (its feed's deadline)
        try:
            what = "fingerprinting the article" if len(wanted) == 1 else "fingerprinting articles"
            results: list[Fingerprint | AggregatorError | None] = await self._run(
                _fingerprints,
                [text for text, _ in wanted],
                timeout=self.extract_timeout_s,
                what=what,
            )
        except BaseException as exc:
            for _, future in wanted:
                if future.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), result in zip(wanted, results, strict=True):
            if future.done():
                continue
            if isinstance(result, AggregatorError):
                future.set_exception(result)
            else:
                future.set_result(result)

    def close(self) -> None:
        """Shut the pool down; jobs still queued are cancelled, running ones finish."""
        if self._current is not None:
            self._current.executor.shutdown(wait=False, cancel_futures=True)
            self._current = None


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark the job's outcome as seen, so an abandoned job's error is not logged at exit."""
    if not future.cancelled():
        future.exception()


# Module-level so they pickle by reference into the worker processes.
def _parse(
    body: bytes, url: str, content_type: str | None, charset: str | None, max_entries: int
) -> ParsedFeed:
    return parse_feed(
        body, url=url, content_type=content_type, charset=charset, max_entries=max_entries
    )


def _extract_fingerprinted(
    body: bytes, url: str, charset: str | None, title: str | None, summary: str | None
) -> tuple[Article, Fingerprint | AggregatorError | None]:
    article = extract_article(body, url=url, charset=charset)
    return article, _fingerprint_or_error(title or article.title, article.text, summary)


def _fingerprints(texts: list[_Text]) -> list[Fingerprint | AggregatorError | None]:
    """Each text's fingerprint, or what went wrong with it alone: one odd text must not cost
    the others theirs."""
    return [_fingerprint_or_error(*text) for text in texts]


def _fingerprint_or_error(
    title: str | None, text: str | None, summary: str | None
) -> Fingerprint | AggregatorError | None:
    try:
        return fingerprint(title, text, summary)
    except AggregatorError as exc:
        return exc
    except Exception as exc:
        return InternalError(f"fingerprinting failed unexpectedly: {exc!r}")
