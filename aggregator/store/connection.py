"""Connections to the SQLite file: the writer's, read-only readers', and the write
transaction every change runs in."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlite_utils import Database

from aggregator.errors import StoreError

# How long a write waits for another process's write lock before it gives up (ms). Writers
# hold it for one feed's refresh; only `stories rebuild` holds it for long.
BUSY_TIMEOUT_MS = 10_000


def connect(path: str, *, read_only: bool = False) -> sqlite3.Connection:
    if read_only:
        uri = f"{Path(path).resolve().as_uri()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        conn.execute("PRAGMA query_only = ON")
        # mode=ro covers this file only: ATTACH (and VACUUM INTO, which attaches) would
        # create or write any other file the user names.
        conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        conn.set_authorizer(_refuse_attach)
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL is durable across application crashes in WAL mode; only power loss can
        # drop the last transactions, never corrupt the file.
        conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_MS)}")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _refuse_attach(action: int, *_: str | None) -> int:
    return sqlite3.SQLITE_DENY if action == sqlite3.SQLITE_ATTACH else sqlite3.SQLITE_OK


@contextmanager
def writing(db: Database) -> Iterator[None]:
    """A write transaction that takes the write lock first (BEGIN IMMEDIATE).

    The daemon and `aggregator fetch` may write at once: a deferred transaction that reads
    and then writes would fail at once with "database is locked" when the other committed
    in between, where BEGIN IMMEDIATE waits its turn (busy_timeout). Waiting longer than
    that, or a full disk, is a StoreError that says so."""
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
            db.execute("COMMIT")
        except BaseException:
            db.rollback()
            raise
    except sqlite3.OperationalError as exc:  # not IntegrityError and the like: those are bugs
        raise store_error("cannot write to", _file_of(db), exc) from exc


def _file_of(db: Database) -> str:
    """The file of the connection's main database, for messages."""
    try:
        return next(str(r[2]) for r in db.execute("PRAGMA database_list") if r[1] == "main")
    except (sqlite3.Error, StopIteration):
        return "the database"


def store_error(doing: str, path: str, exc: sqlite3.Error) -> StoreError:
    if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StoreError(
            f"{doing} {path}: another process has held its write lock for over"
            f" {BUSY_TIMEOUT_MS / 1000:g} s; try again (is a long `aggregator stories rebuild`"
            " or another tool writing to it?)"
        )
    return StoreError(f"{doing} {path}: {exc}")


def existing(path: str) -> str:
    if not Path(path).exists():
        raise StoreError(f"no database at {path}; run `aggregator fetch` first")
    return path
