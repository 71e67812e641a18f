"""Running the daemon in tests and benchmarks: in a thread of this process, or as a real
`python -m aggregator run` subprocess; waiting on the database, never on the clock."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from aggregator.config.loader import load_config
from aggregator.daemon.service import Daemon
from aggregator.times import utc_now

T = TypeVar("T")
PROJECT = Path(__file__).resolve().parents[1]

# Short everything: a tick every 100 ms, feeds due every 1-2 s, no politeness gap to the
# one local host, a 1 s stop deadline.
FAST = {
    "allow_private_networks": "true",
    "extract": "false",
    "interval": "1s",
    "min_interval": "1s",
    "max_interval": "2s",
    "max_backoff": "30s",
    "tick": "100ms",
    "host_gap": "0",
    "per_host": "16",
    "timeout": "5s",
    "stop_timeout": "1s",
}


def config_text(feeds: Iterable[tuple[str, str]], **settings: str) -> str:
    """feeds.yaml for (name, url) pairs; `settings` override FAST."""
    lines = ["settings:"]
    lines += [f"  {key}: {value}" for key, value in {**FAST, **settings}.items()]
    lines.append("feeds:")
    for name, url in feeds:
        lines += [f"  - name: {name}", f"    url: {url}"]
    return "\n".join(lines) + "\n"


def wait_for(probe: Callable[[], T], *, timeout: float = 30.0, what: str = "the condition") -> T:
    """Poll `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


class FastClock:
    """A clock for an in-process daemon (`ThreadDaemon(..., clock=FastClock())`) that runs
    `speed` times faster than the real one: backoffs and Retry-Afters of seconds pass in a
    fraction of that, while the tick, timeouts and the test's waits stay in real time.

    It starts a minute behind the real clock: APScheduler runs the first tick at the daemon's
    `now`, which must not be in the real future. Everything the daemon stores is on this
    clock, so compare with `clock()` (or `clock.seconds()`), never with utc_now().
    """

    def __init__(self, speed: float = 5.0, *, behind: timedelta = timedelta(minutes=1)) -> None:
        self.speed = speed
        self._start = utc_now() - behind
        self._started = time.monotonic()

    def __call__(self) -> datetime:
        return self._start + timedelta(seconds=self.seconds())

    def seconds(self) -> float:
        """Seconds on this clock since it was made (for timing requests at a server)."""
        return (time.monotonic() - self._started) * self.speed


def query(db: str | Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    """A fresh read-only look at the store, as another process would have."""
    if not Path(db).exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:
        return []  # no such table yet: the daemon is still creating the store
    finally:
        conn.close()


def scalar(db: str | Path, sql: str, *params: Any) -> Any:
    rows = query(db, sql, *params)
    return rows[0][0] if rows else None


class ThreadDaemon:
    """The daemon on its own event loop in a thread of the test process."""

    def __init__(self, config_path: Path, db_path: Path, **options: Any) -> None:
        self.daemon = Daemon(load_config(config_path), str(db_path), workers=0, **options)
        self.code: int | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="daemon", daemon=True)

    def _run(self) -> None:
        try:
            self.code = asyncio.run(self.daemon.run(handle_signals=False))
        except BaseException as exc:
            self.error = exc

    def __enter__(self) -> ThreadDaemon:
        self._thread.start()
        wait_for(lambda: self.daemon._last_tick is not None or self.error, what="the first tick")
        if self.error is not None:
            raise self.error
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self, timeout: float = 10.0) -> int | None:
        self.daemon.stop_threadsafe()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the daemon did not stop"
        if self.error is not None:
            raise self.error
        return self.code


def spawn(config: Path, db: Path, *extra: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    """`python -m aggregator --config CONFIG --db DB run --workers 0 ...` in the background."""
    with open(log or os.devnull, "ab") as out:  # the child keeps its own copy
        return _popen(config, db, extra, out)


def _popen(config: Path, db: Path, extra: tuple[str, ...], out: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aggregator",
            "--config",
            str(config),
            "--db",
            str(db),
            "run",
            "--workers",
            "0",
            *extra,
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=PROJECT,
    )


def terminate(process: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
