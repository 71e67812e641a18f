"""Where the main process's CPU goes during a one-off fetch: a diagnostic, not a contest.

`python -m benchmarks.main_cpu [--feeds 20] [--items 50] [--runs 3]`

Runs `fetch_feeds` over the throughput benchmark's site (corpus pages behind RSS feeds on the
local test server, which runs on threads of this process) and splits the process's CPU, the
server's handlers taken out:

- by thread, from /proc/self/task: the event loop's and any other (the site's server's
  left out; before the workers' pipes were read on the event loop, the process pool's
  manager and queue feeder threads carried each page to a worker and its answer back);
- the event loop's thread by asyncio task step: the CPU from a task resuming at one `await`
  to suspending at the next, named by the innermost `aggregator` frame at each end (CPU
  outside any task step is the loop's own: select and callbacks);
- the commit, by timers around its parts.

The step names are places in the code (`fetch/client.py:_request:331`), so a line number
moves with edits. Not part of `make bench`: it has no reference to compare with, and the
wrappers it installs cost CPU of their own (the total is a few percent above throughput.py's
figure for the same run).
"""

from __future__ import annotations

import argparse
import asyncio
import asyncio.events
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# throughput puts tests/ on the path, for localserver.LocalServer
from benchmarks.throughput import EVAL_CORPUS, feeds_yaml
from benchmarks.throughput_cpu import SERVER
from benchmarks.throughput_site import build_site, corpus_files

SETTINGS = {"concurrency": "16", "per_host": "8", "host_gap": "0s"}  # as throughput.py's


class StepClock:
    """CPU of the event loop's thread per (resumed at, suspended at) task step."""

    def __init__(self) -> None:
        self.cpu: Counter[tuple[str, str]] = Counter()
        self.count: Counter[tuple[str, str]] = Counter()

    @contextmanager
    def installed(self) -> Iterator[None]:
        run = asyncio.events.Handle._run
        clock = self

        def timed(handle: Any) -> None:
            task = getattr(handle._callback, "__self__", None)
            if isinstance(task, asyncio.Task):
                before = _where(task)
                start = time.thread_time()
                run(handle)
                key = (before, "done" if task.done() else _where(task))
            else:
                start = time.thread_time()
                run(handle)
                key = ("(loop callback)", getattr(handle._callback, "__qualname__", "?"))
            clock.cpu[key] += time.thread_time() - start
            clock.count[key] += 1

        asyncio.events.Handle._run = timed  # type: ignore[method-assign]
        try:
            yield
        finally:
            asyncio.events.Handle._run = run  # type: ignore[method-assign]


def _where(task: asyncio.Task[Any]) -> str:
    """Where `task` is suspended: its innermost frame in the aggregator package, else the
    innermost frame of all."""
    frames = []
    awaited: Any = task.get_coro()
    while awaited is not None:
        frame = next(
            (
                f
                for f in (getattr(awaited, a, None) for a in ("cr_frame", "ag_frame", "gi_frame"))
                if f is not None
            ),
            None,
        )
        if frame is None:
            break
        frames.append(frame)
        awaited = next(
            (
                a
                for a in (
                    getattr(awaited, n, None) for n in ("cr_await", "ag_await", "gi_yieldfrom")
                )
                if a is not None
            ),
            None,
        )
    for frame in reversed(frames):
        name = frame.f_code.co_filename
        if f"{os.sep}aggregator{os.sep}" in name:
            where = name.rsplit(f"{os.sep}aggregator{os.sep}", 1)[1]
            return f"{where}:{frame.f_code.co_name}:{frame.f_lineno}"
    if not frames:
        return "?"
    frame = frames[-1]
    return f"{Path(frame.f_code.co_filename).name}:{frame.f_code.co_name}:{frame.f_lineno}"


class Timers:
    """CPU of the event loop's thread inside some synchronous functions (by module, name)."""

    def __init__(self) -> None:
        self.cpu: Counter[str] = Counter()
        self._undo: list[Callable[[], None]] = []

    def wrap(self, module: Any, name: str, *also: Any) -> None:
        """Time `module.name`, and the same function where `also` imported it by name."""
        original = getattr(module, name)
        cpu = self.cpu

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                cpu[name] += time.thread_time() - start

        for where in (module, *also):
            setattr(where, name, timed)
            self._undo.append(lambda where=where: setattr(where, name, original))

    def undo(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()


def thread_cpu() -> dict[str, float]:
    """CPU seconds of each live thread of this process, by thread class and name."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for thread in threading.enumerate():
        try:
            stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        out[f"{type(thread).__name__} {thread.name}"] = (int(fields[11]) + int(fields[12])) / tick
    return out


def one_run(feed_urls: list[str]) -> None:
    from aggregator.config.loader import parse_config
    from aggregator.engine import commit, stages
    from aggregator.engine.pool import Workers
    from aggregator.engine.run import fetch_feeds
    from aggregator.store import Store, item_rows

    config = parse_config(feeds_yaml(feed_urls, SETTINGS))
    timers = Timers()
    timers.wrap(commit, "commit_refresh", stages)
    timers.wrap(commit, "place_item")
    timers.wrap(item_rows, "_insert_item")
    steps = StepClock()
    with tempfile.TemporaryDirectory() as folder:
        store = Store.open(str(Path(folder) / "news.db"))
        workers = Workers()
        threads_before = thread_cpu()
        try:
            process, loop_thread, served = time.process_time(), time.thread_time(), SERVER.total
            with steps.installed():
                outcomes = asyncio.run(fetch_feeds(config, store, config.feeds, workers=workers))
            process = time.process_time() - process - (SERVER.total - served)
            loop_thread = time.thread_time() - loop_thread
            threads = {
                name: cpu - threads_before.get(name, 0.0) for name, cpu in thread_cpu().items()
            }
        finally:
            workers.close()
            store.close()
            timers.undo()
    items = sum(o.new_items for o in outcomes) or 1
    per = 1000 / items
    print(
        f"\n{items} articles; the main process, the server's handlers taken out: "
        f"{process * per:.2f} ms of CPU an article"
    )
    print("\nthreads (ms an article):")
    for name, cpu in sorted(threads.items(), key=lambda kv: -kv[1]):
        if "serve_forever" not in name and cpu * per >= 0.005:
            label = "the event loop's" if name.startswith("_MainThread") else name
            print(f"  {cpu * per:6.2f}  {label}")
    print("\nthe commit's parts (ms an article):")
    for name, cpu in timers.cpu.most_common():
        print(f"  {cpu * per:6.2f}  {name}")
    in_steps = sum(steps.cpu.values())
    print(
        f"\nthe event loop's thread by task step (ms an article; {in_steps * per:.2f} in "
        f"steps, {(loop_thread - in_steps) * per:.2f} outside them):"
    )
    for (start, end), cpu in steps.cpu.most_common(16):
        print(f"  {cpu * per:6.3f}  {steps.count[(start, end)]:6d} x  {start}  ->  {end}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=20)
    parser.add_argument("--items", type=int, default=50, help="entries (pages) per feed")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    if not EVAL_CORPUS.is_dir():
        print(
            f"skipped: the extraction-eval corpus is not at {EVAL_CORPUS.name}/ beside the project"
        )
        return 0
    import feedparser  # noqa: F401  (loaded before any clock starts, as throughput.py does)
    import localserver

    import aggregator.engine.refresh  # noqa: F401

    localserver._RequestHandler.disable_nagle_algorithm = True  # see throughput.py
    SERVER.install(localserver._RequestHandler)
    server = localserver.LocalServer().start()
    try:
        site = build_site(server, corpus_files(EVAL_CORPUS), args.feeds, args.items)
        for _ in range(args.runs):
            one_run(site.feed_urls)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
