from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from localserver import LocalServer

# Shared test material lives beside the project checkout, not inside it.
CORPORA = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"


# Importing readline (pytest does) sets COLUMNS and LINES in the C environment of the process,
# not in os.environ; xdist workers inherit them as real variables, and Rich then draws tables
# 80 columns wide. The workers get the variables as the run itself has them.
TERMINAL_SIZE = ("COLUMNS", "LINES")


# An `alone` test runs while no other test runs in any worker (it times things that a busy
# machine throws off): every test holds a flock on a file the run's workers share, shared, an
# `alone` one exclusively; a second lock, the turnstile, keeps new tests from starting while
# an `alone` test waits for the running ones to end.
LOCKS = pytest.StashKey[Path]()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist, in the controller: what each worker must see of the terminal's size, and the
    folder of the run's locks."""
    node.workerinput["terminal_size"] = {name: os.environ.get(name) for name in TERMINAL_SIZE}
    config = node.config
    if LOCKS not in config.stash:
        config.stash[LOCKS] = Path(tempfile.mkdtemp(prefix="aggregator-test-locks-"))
    node.workerinput["locks"] = str(config.stash[LOCKS])


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: two workers more than cores. A few modules spend much of their time
    waiting on real processes (daemons, workers, Redis, a browser): test_distributed used
    33 CPU s in 50 s. Two more workers use those cores meanwhile (on two cores, interleaved
    runs: 78-125 s of pytest with four workers, 91-130 s with three, 108-139 s with two)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (cores or 1) + 2


def pytest_configure(config: pytest.Config) -> None:
    worker: dict[str, Any] | None = getattr(config, "workerinput", None)
    if worker is None:
        return
    for name, value in worker.get("terminal_size", {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    if "locks" in worker:
        config.stash[LOCKS] = Path(worker["locks"])


def pytest_unconfigure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput") and LOCKS in config.stash:
        shutil.rmtree(config.stash[LOCKS], ignore_errors=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """Around the whole of a test, fixtures included (see LOCKS)."""
    folder = item.config.stash.get(LOCKS, None)
    if folder is None or not hasattr(item.config, "workerinput"):
        return (yield)  # one process: one test at a time anyway
    alone = item.get_closest_marker("alone") is not None
    with open(folder / "turnstile", "a") as turnstile, open(folder / "running", "a") as running:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        if not alone:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        fcntl.flock(running, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        if alone:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        try:
            return (yield)
        finally:
            fcntl.flock(running, fcntl.LOCK_UN)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow modules first (`--dist loadfile` gives each whole to one worker): started
    last, one would leave the other workers idle at the end of the run. An `alone` test last
    in its module: the others are then past the slow modules, so it waits least for them."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    order = {path: n for n, path in enumerate(dict.fromkeys(item.path for item in items))}
    items.sort(
        key=lambda item: (
            item.path not in slow,
            order[item.path],
            item.get_closest_marker("alone") is not None,
        )
    )


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the worker pool's forkserver in the background in each process that runs tests
    (an xdist worker, or the only process) when the tests it collected import the pool.

    The forkserver imports trafilatura and numpy before its first fork; done lazily, the
    first test to use a process pool would pay for that (seconds on a busy machine), with its
    event loop blocked and its HTTP fetches timing out meanwhile."""
    config = session.config
    controller = config.getoption("dist", "no") != "no" and not hasattr(config, "workerinput")
    if controller or config.getoption("collectonly") or "aggregator.engine.pool" not in sys.modules:
        return
    threading.Thread(target=_start_forkserver, name="start forkserver", daemon=True).start()


def _start_forkserver() -> None:
    from aggregator.engine.pool import Workers

    feed = b'<rss version="2.0"><channel><title>t</title></channel></rss>'
    workers = Workers(1)  # as the code makes its pools: the same forkserver preload
    # Nothing to report if it fails: the first pool a test makes starts the forkserver then.
    with contextlib.suppress(Exception):
        asyncio.run(workers.parse(feed, "https://example.org/feed", None, None, 1))
    workers.close()


@pytest.fixture
def corpora() -> Path:
    if not CORPORA.is_dir():
        pytest.skip("../shared/corpora is absent")
    return CORPORA


@pytest.fixture
def server() -> Iterator[LocalServer]:
    """A real HTTP server on 127.0.0.1, empty until a test adds routes."""
    local = LocalServer().start()
    try:
        yield local
    finally:
        local.stop()
