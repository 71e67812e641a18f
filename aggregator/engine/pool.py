"""Where the CPU-heavy stages run: worker processes, one per core.

Parse, extract and fingerprint take bytes or text and return plain data, so they cross the
process boundary cheaply. The pool forks from a server process that has already imported
them (forkserver preload), so a worker starts in milliseconds instead of re-importing
trafilatura. A worker reports its resident memory with each result; once one holds more than
`memory_limit_bytes` (settings.worker_memory_limit), it is replaced by a fresh one. Jobs and
answers cross each worker's pipes on the event loop (processes.py).
"""

from __future__ import annotations

import asyncio
import functools
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from aggregator.engine.processes import WorkerGone, WorkerProcess
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
# Jobs a worker process does before it is replaced by a fresh one, whatever its memory:
# trafilatura, htmldate and lxml keep caches that only grow, and a slow leak in a C library
# never crosses worker_memory_limit in one job. A fresh worker costs milliseconds
# (forkserver); at 1,000 jobs each lasts about 1,000 articles (one job each).
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
    when the process that started it is gone: killed with kill -9, that process cannot
    close the worker's pipes in order, and the worker's parent is the forkserver anyway;
    this does not rest on the end of the pipe reaching the worker."""
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


class Workers:
    """`processes=0` runs the stages on one thread instead (tests, tiny runs, debugging).

    A job waits for a free worker before its deadline starts, so a queue of slow but honest
    jobs never times out. A job past its deadline has its worker killed (a process cannot be
    interrupted any other way); the other workers and their jobs go on, and the next job
    gets a fresh process.

    A worker that holds more than `memory_limit_bytes` after a job is retired (`recycled`
    counts them), as is one that has done `jobs_per_worker` jobs (`renewed`): it exits, and
    the next job starts a fresh one (milliseconds, from the forkserver). The workers and the
    pipes to them are `processes.WorkerProcess`.
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
        self.recycled = 0  # workers retired because one passed memory_limit_bytes
        self.renewed = 0  # workers retired after jobs_per_worker jobs
        self.preload: tuple[str, ...] = (
            PRELOAD  # set before the first job (RunContext does, for --no-extract)
        )
        self.peak_worker_bytes = 0  # the most any worker has held (for benchmarks/hostile)
        self._workers: list[WorkerProcess] = []
        self._thread: ThreadPoolExecutor | None = None  # processes=0
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

    def worker_pids(self) -> list[int]:
        """The live worker processes' ids."""
        return [w.pid for w in self._workers if not w.gone and w.pid is not None]

    def _idle_worker(self) -> WorkerProcess:
        """A worker with nothing to do: a waiting one, else a fresh one. A worker still busy
        with a job nobody waits for any more (its caller gave up) is left to finish; if that
        leaves more workers than `processes`, the extra ones are retired as they come idle."""
        live = []
        for worker in self._workers:
            if worker.stranded():  # its event loop closed under it: nobody reads its answer
                worker.kill()
            if not worker.gone:
                live.append(worker)
        idle = [w for w in live if not w.busy]
        for extra in idle[1:][: max(0, len(live) - self.processes)]:
            extra.retire()
            live.remove(extra)
        self._workers = live
        if idle:
            return idle[0]
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(list(self.preload))
        worker = WorkerProcess(context, _start_worker, (os.getpid(),))
        self._workers.append(worker)
        return worker

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
        """Run the job once a worker is free; only the time it runs counts toward `timeout`.
        `started` is called when it gets one."""
        async with self._free_workers():
            if started is not None:
                started()
            if self.processes == 0:
                return await self._on_thread(func, args, timeout=timeout, what=what)
            ended: _Done = await self._in_worker(func, args, timeout=timeout, what=what)
            if ended.error is not None:
                raise ended.error
            return ended.result

    def _keep(self, worker: WorkerProcess, ended: _Done, *, what: str) -> bool:
        """Whether a worker that just answered takes more jobs: not past the memory limit,
        nor past its share of jobs. Asked as the answer is read, whether or not its caller
        still waits for it."""
        self.peak_worker_bytes = max(self.peak_worker_bytes, ended.peak)
        if ended.resident > self.memory_limit_bytes:
            self.recycled += 1
            log.info(
                "after %s a worker holds %d MB, over worker_memory_limit (%d MB); "
                "starting a fresh one",
                what,
                ended.resident // 2**20,
                self.memory_limit_bytes // 2**20,
            )
            return False
        if worker.jobs >= self.jobs_per_worker:
            self.renewed += 1
            log.debug("a worker did %d jobs; starting a fresh one", worker.jobs)
            return False
        return True

    async def _in_worker(
        self, func: Any, args: tuple[Any, ...], *, timeout: float, what: str
    ) -> _Done:
        """The job in an idle worker process. Its deadline holds whether or not this caller
        waits to the end (a feed's deadline may cancel it first): a job nobody waits for
        cannot keep a worker forever."""
        for _ in range(2):  # a worker found dead before it read the job: once more
            worker = self._idle_worker()
            keep = functools.partial(self._keep, worker, what=what)
            future = worker.submit(_measured, func, *args, deadline_s=timeout, keep=keep)
            # What a job given up on ends with is news to nobody.
            future.add_done_callback(_retrieve)
            await asyncio.wait([future])  # cancelling the caller leaves the job be
            try:
                done: _Done = future.result()
                return done
            except WorkerGone as gone:
                if worker.timed_out:
                    raise WorkerTimeout(
                        f"{what} took longer than {timeout:g} s; the input is too large or"
                        " malformed"
                    ) from None
                if gone.job_taken:
                    # Out of memory on a hostile page, a crash in a C library: the next job
                    # gets a fresh process.
                    raise WorkerCrashed("a worker process died while handling this input") from None
        raise WorkerCrashed("two worker processes ended before they took this input")

    async def _on_thread(
        self, func: Any, args: tuple[Any, ...], *, timeout: float, what: str
    ) -> Any:
        """`processes=0`: the job on a thread. A thread cannot be stopped: one past its
        deadline is left to finish, and the next job gets a fresh thread."""
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1)
        thread = self._thread
        future = asyncio.get_running_loop().run_in_executor(thread, func, *args)
        future.add_done_callback(_retrieve)
        done, _ = await asyncio.wait([future], timeout=timeout)
        if not done:
            if self._thread is thread:
                self._thread = None
            thread.shutdown(wait=False)
            raise WorkerTimeout(
                f"{what} took longer than {timeout:g} s; the input is too large or malformed"
            )
        return future.result()

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
        """No more jobs: the workers exit (a busy one once its job is done, its answer
        unread); jobs still waiting for a worker are the callers' to cancel."""
        for worker in self._workers:
            worker.retire()
        self._workers = []
        if self._thread is not None:
            self._thread.shutdown(wait=False, cancel_futures=True)
            self._thread = None


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
