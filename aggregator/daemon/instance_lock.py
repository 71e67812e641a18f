"""One daemon per database: an exclusive flock on `<database>.lock`."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from aggregator.errors import AggregatorError, StoreError
from aggregator.models import Outcome


class AlreadyRunning(AggregatorError):
    outcome = Outcome.CONFIG_ERROR

    def __init__(self, db_path: str, pid: int | None) -> None:
        who = f"pid {pid}" if pid else "another process"
        super().__init__(
            f"another `aggregator run` ({who}) already keeps {db_path} fresh; "
            "stop it first (one daemon per database)"
        )
        self.pid = pid


@contextlib.contextmanager
def instance_lock(db_path: str) -> Iterator[None]:
    """Held for the daemon's life; the kernel drops it when the process dies, kill -9 too."""
    path = Path(f"{db_path}.lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:  # a file where its folder should be, no rights, a full disk
        raise StoreError(f"cannot create the database at {db_path}: {exc}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            raise AlreadyRunning(db_path, int(text) if text.isdecimal() else None) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing releases the lock
