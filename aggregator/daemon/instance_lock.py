"""One daemon per database: an exclusive flock on `<database>.lock`, which also names its pid
so that `aggregator feeds add` and the like can tell the running daemon to reload."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from aggregator.errors import AggregatorError
from aggregator.models import Outcome
from aggregator.store.connection import cannot_create

# `running_daemon` holds a shared lock for a moment: a daemon starting in that moment
# waits this long for it rather than mistaking the probe for another daemon.
PROBE_GRACE_S = 0.5


class AlreadyRunning(AggregatorError):
    outcome = Outcome.CONFIG_ERROR

    def __init__(self, db_path: str, pid: int | None) -> None:
        who = f"pid {pid}" if pid else "another process"
        super().__init__(
            f"another `aggregator run` ({who}) already keeps {db_path} fresh; "
            "stop it first (one daemon per database)"
        )
        self.pid = pid


def lock_path(db_path: str) -> Path:
    return Path(f"{db_path}.lock")


@contextlib.contextmanager
def instance_lock(db_path: str) -> Iterator[None]:
    """Held for the daemon's life; the kernel drops it when the process dies, kill -9 too."""
    path = lock_path(db_path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:  # a file where its folder should be, no rights, a full disk
        raise cannot_create(db_path, exc) from exc
    try:
        _take(fd, db_path)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            # A daemon that stopped leaves no pid behind for another process to inherit.
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing releases the lock


def _take(fd: int, db_path: str) -> None:
    """The exclusive lock, or AlreadyRunning naming the daemon that holds it."""
    deadline = time.monotonic() + PROBE_GRACE_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _recorded_pid(fd)
            # The pid written is a live daemon's, unless the holder is a passing probe and
            # the pid that of a daemon that has since stopped.
            if (pid is not None and _alive(pid)) or time.monotonic() > deadline:
                raise AlreadyRunning(db_path, pid) from None
            time.sleep(0.01)
        else:
            return


def running_daemon(db_path: str) -> int | None:
    """The pid of the daemon keeping `db_path` fresh, or None when none is running.

    Asks the lock itself, never only the pid written in it: a daemon killed with -9 leaves
    its pid behind, and that number may belong to another process by now. None too for a
    daemon caught between taking the lock and writing its pid: one that is starting sees
    feeds.yaml's change at its first tick."""
    try:
        fd = os.open(lock_path(db_path), os.O_RDONLY)
    except OSError:  # no lock file: no daemon ever ran on this database
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _recorded_pid(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _recorded_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdecimal() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True
