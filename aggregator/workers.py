"""Where the CPU-heavy stages run: a process pool sized to the machine.

Parse, extract and fingerprint take bytes or text and return plain data, so they cross the
process boundary cheaply. The pool forks from a server process that has already imported
them (forkserver preload), so a worker starts in milliseconds instead of re-importing
trafilatura.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from aggregator.dedup import fingerprint
from aggregator.errors import AggregatorError
from aggregator.extract import extract_article
from aggregator.models import Article, Fingerprint, ParsedFeed
from aggregator.parse import parse_feed

T = TypeVar("T")


class WorkerCrashed(AggregatorError):
    outcome = "internal_error"


class WorkerTimeout(AggregatorError):
    """Parsing or extracting one body took too long (hostile or pathological input)."""

    outcome = "timeout"


# feedparser's fallback parser needs seconds per MB of broken XML, and trafilatura can be
# slow on giant pages: past these limits the worker is killed rather than waited for.
PARSE_TIMEOUT_S = 60.0
EXTRACT_TIMEOUT_S = 30.0


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


class Workers:
    """`processes=0` runs the stages on one thread instead (tests, tiny runs, debugging)."""

    def __init__(
        self,
        processes: int | None = None,
        *,
        parse_timeout_s: float = PARSE_TIMEOUT_S,
        extract_timeout_s: float = EXTRACT_TIMEOUT_S,
    ) -> None:
        self.processes = default_processes() if processes is None else processes
        self.parse_timeout_s = parse_timeout_s
        self.extract_timeout_s = extract_timeout_s
        self._executor: Executor | None = None

    def _pool(self) -> Executor:
        if self._executor is None:
            if self.processes == 0:
                self._executor = ThreadPoolExecutor(max_workers=1)
            else:
                context = multiprocessing.get_context("forkserver")
                # trafilatura and datasketch too: extract and dedup import them lazily to keep
                # the CLI's start fast, and each fresh worker would pay for them again.
                context.set_forkserver_preload(["aggregator.workers", "trafilatura", "datasketch"])
                self._executor = ProcessPoolExecutor(
                    max_workers=self.processes,
                    mp_context=context,
                    initializer=_start_worker,
                    initargs=(os.getpid(),),
                )
        return self._executor

    async def _run(self, func: Any, *args: Any, timeout: float, what: str) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(self._pool(), func, *args), timeout)
        except TimeoutError:
            self._kill()
            raise WorkerTimeout(
                f"{what} took longer than {timeout:g} s; the input is too large or malformed"
            ) from None
        except BrokenProcessPool:
            # A worker died (out of memory on a hostile page, a crash in a C library):
            # start a fresh pool for the next job and report this one as failed.
            self.close()
            raise WorkerCrashed("a worker process died while handling this input") from None

    def _kill(self) -> None:
        """Stop a pool whose worker is stuck; jobs in flight in it fail and are retried
        on a later run, the next job gets a fresh pool."""
        executor = self._executor
        if isinstance(executor, ProcessPoolExecutor):
            for process in list(getattr(executor, "_processes", {}).values()):
                process.kill()
        self.close()

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

    async def extract(self, body: bytes, url: str, charset: str | None) -> Article:
        result: Article = await self._run(
            _extract,
            body,
            url,
            charset,
            timeout=self.extract_timeout_s,
            what="extracting the article",
        )
        return result

    async def fingerprint(
        self, title: str | None, text: str | None, summary: str | None
    ) -> Fingerprint | None:
        """The item's MinHash fingerprint for near-duplicate detection (dedup.fingerprint)."""
        result: Fingerprint | None = await self._run(
            fingerprint,
            title,
            text,
            summary,
            timeout=self.extract_timeout_s,
            what="fingerprinting the article",
        )
        return result

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None


# Module-level so they pickle by reference into the worker processes.
def _parse(
    body: bytes, url: str, content_type: str | None, charset: str | None, max_entries: int
) -> ParsedFeed:
    return parse_feed(
        body, url=url, content_type=content_type, charset=charset, max_entries=max_entries
    )


def _extract(body: bytes, url: str, charset: str | None) -> Article:
    return extract_article(body, url=url, charset=charset)
