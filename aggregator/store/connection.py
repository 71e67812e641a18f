"""Connections to the SQLite file: the writer's, read-only readers', and the write
transaction every change runs in."""

from __future__ import annotations

import os
import pwd
import shlex
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from aggregator.errors import StoreError
from aggregator.store.migrations import KNOWN, SET_NAME

if TYPE_CHECKING:
    from sqlite_utils import Database

# How long a write waits for another process's write lock before it gives up (ms). Writers
# hold it for one feed's refresh; only `stories rebuild` holds it for long.
BUSY_TIMEOUT_MS = 10_000

# SQL functions a reader connection refuses, and why: none of them answers a question about
# the news, and each reaches past SQL into the process (`aggregator query` runs any SQL).
DENIED_FUNCTIONS = {
    # One argument returns the address of a C tokenizer (a pointer leak); two register one
    # from any address (code execution).
    "fts3_tokenizer": "it reads and writes raw C pointers",
    "load_extension": "it loads native code",
    # Debugging helpers that decode any blob as an r-tree node (past memory-safety bugs).
    "rtreenode": "it decodes raw r-tree pages",
    "rtreedepth": "it decodes raw r-tree pages",
    # Writes to the process's error log: a side effect, not a read.
    "sqlite_log": "it writes to the process's error log",
}
# Pragmas a reader may give a value: each names what to read (a table, an index) or sets a
# limit of this connection alone. Any other pragma with a value changes the store's settings
# (journal_mode, user_version) or how this connection locks it (locking_mode), so it is
# refused, as are the pragmas that write even without one.
READING_PRAGMAS = frozenset(
    {
        "table_info",
        "table_xinfo",
        "table_list",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
        "foreign_key_check",
        "integrity_check",
        "quick_check",
        "busy_timeout",
        "cache_size",
        "foreign_keys",
        "hard_heap_limit",
        "soft_heap_limit",
        "recursive_triggers",  # sqlite-utils sets it on every connection
    }
)
WRITING_PRAGMAS = frozenset({"wal_checkpoint", "incremental_vacuum", "optimize"})
# The last refusal of the reader authorizer in this thread, for the message: SQLite itself
# only says "not authorized". The authorizer runs in the thread that prepares the query.
_refused = threading.local()


class Sql(Protocol):
    """A connection the store's functions run SQL on: the writer's sqlite-utils `Database`
    or a reader's `ReadConnection`."""

    def execute(self, sql: str, parameters: Any = None, /) -> sqlite3.Cursor: ...


class ReadConnection:
    """A reader's connection: what the reads use of sqlite-utils' `Database` (`execute`,
    `conn`, `close`), with the standard library alone. Importing sqlite-utils cost every
    listing 50 to 80 ms of start-up, more than most of their queries."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, parameters: Any = None, /) -> sqlite3.Cursor:
        return self.conn.execute(sql, () if parameters is None else parameters)

    def close(self) -> None:
        self.conn.close()


def connect(path: str, *, read_only: bool = False) -> sqlite3.Connection:
    """The writer's connection, or a read-only one, on a file that has been checked first
    (`check_file`): nothing is written to a file that is not a store, is damaged, or was
    migrated by a newer aggregator. A reader of a newer store only warns (see there)."""
    if read_only:
        uri = f"{Path(path).resolve().as_uri()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        conn.execute("PRAGMA query_only = ON")
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_MS)}")
        newer = check_file(conn, path)
        if newer and not read_only:
            raise StoreError(newer_message(path, newer))
        if newer:
            import logging  # here: only this warning logs, and not every reader needs it

            logging.getLogger(__name__).warning(
                "aggregator: warning: %s", newer_message(path, newer, reading=True)
            )
        if read_only:
            _upgraded(conn, path)
            harden_reader(conn)
        else:
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL is durable across application crashes in WAL mode; only power loss can
            # drop the last transactions, never corrupt the file.
            conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def harden_reader(conn: sqlite3.Connection) -> None:
    """What every connection that runs other people's SQL needs, ours or the web view's:
    mode=ro covers this file only, so ATTACH (and VACUUM INTO, which attaches) is refused, as
    are the functions in DENIED_FUNCTIONS."""
    conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    conn.set_authorizer(_reader_authorizer)


def check_file(conn: sqlite3.Connection, path: str) -> list[str]:
    """Read the file's schema and its applied migrations before anything writes to it.

    A file that is not a SQLite database, or a damaged one (a truncated file fails here:
    SQLite compares the size its header records with the file's), is a StoreError that says
    how to recover; so is a database with tables that is not a store. Returns the
    migrations this file has that this version does not know (it was written by a newer
    aggregator); an empty file is a new store."""
    try:
        tables = {
            str(r[0])
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not str(r[0]).startswith("sqlite_")
        }
        applied = (
            [
                str(r[0])
                for r in conn.execute(
                    "SELECT name FROM _sqlite_migrations WHERE migration_set = ? ORDER BY name",
                    [SET_NAME],
                )
            ]
            if "_sqlite_migrations" in tables
            else []
        )
    except sqlite3.DatabaseError as exc:
        raise store_error("cannot open the database", path, exc) from exc
    # A first start killed before migration 0001 committed leaves only the (empty) migrations
    # table: that file is still a new store, not somebody else's database.
    if tables - {"_sqlite_migrations"} and not applied:
        raise StoreError(
            f"{path} is a SQLite database but not an aggregator store (it has tables but no"
            f" {SET_NAME!r} migrations in _sqlite_migrations); point --db at the store"
        )
    return [name for name in applied if name not in KNOWN]


def _upgraded(conn: sqlite3.Connection, path: str) -> None:
    """A reader never migrates (a daemon of the old version may still be writing): a store
    this version has not upgraded yet is an error that says how to upgrade it, not a
    "no such table" from the first query that needs what a migration adds."""
    if not conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlite_migrations'"
    ).fetchone():
        return  # an empty file: the writer makes it a store
    applied = {
        str(r[0])
        for r in conn.execute(
            "SELECT name FROM _sqlite_migrations WHERE migration_set = ?", [SET_NAME]
        )
    }
    missing = [name for name in KNOWN if name not in applied]
    if applied and missing:
        raise StoreError(
            f"{path} was made by an older aggregator and is not upgraded yet (it lacks"
            f" {', '.join(missing)}); stop the old daemon, then run `aggregator fetch` or start"
            " `aggregator run` once with this version to upgrade it (a large store takes a few"
            " minutes)"
        )


def newer_message(path: str, newer: list[str], *, reading: bool = False) -> str:
    names = ", ".join(newer)
    what = f"migration{'s' if len(newer) > 1 else ''} {names}"
    head = (
        f"{path} was written by a newer aggregator (it has {what} that this version does not know)"
    )
    if reading:
        return f"{head}; reading it anyway, but what that version added may be missing here"
    return f"{head}; use that version, or restore a backup"


def _reader_authorizer(action: int, arg1: str | None, arg2: str | None, *_: str | None) -> int:
    if action == sqlite3.SQLITE_ATTACH or (
        action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in DENIED_FUNCTIONS
    ):
        _refused.pragma = None
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_PRAGMA:
        name = (arg1 or "").lower()
        if name in WRITING_PRAGMAS or (arg2 is not None and name not in READING_PRAGMAS):
            _refused.pragma = (name, arg2)
            return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def write_refusal(exc: BaseException) -> str | None:
    """What to say when a reader refused a query because it would write to the store or
    change its settings (SQLite says "not authorized", or "disk I/O error" for a journal
    mode); None for any other error."""
    code = getattr(exc, "sqlite_errorcode", 0)
    pragma: tuple[str, str | None] | None = getattr(_refused, "pragma", None)
    _refused.pragma = None
    if code == sqlite3.SQLITE_AUTH and pragma is not None:
        name, value = pragma
        if name in WRITING_PRAGMAS:
            return (
                f"`PRAGMA {name}` would write to the store and was refused: queries only read"
                " (the daemon's maintenance keeps the file in shape)"
            )
        return (
            f"`PRAGMA {name} = {value}` would change the store's settings and was refused:"
            f" queries only read; `PRAGMA {name}` without a value shows the setting"
        )
    if code & 0xFF == sqlite3.SQLITE_READONLY:
        return (
            f"the query would write to the store and was refused ({exc}): queries only"
            " read; feeds change through feeds.yaml, stories through `aggregator stories"
            " split/merge`"
        )
    return None


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
    except sqlite3.DatabaseError as exc:
        # Not IntegrityError and the like: those are bugs. A damaged file says how to recover.
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        if isinstance(exc, sqlite3.OperationalError) or code in _DAMAGED:
            raise store_error("cannot write to", file_of(db), exc) from exc
        raise


def file_of(db: Sql) -> str:
    """The file of the connection's main database, for messages."""
    try:
        return next(str(r[2]) for r in db.execute("PRAGMA database_list") if r[1] == "main")
    except (sqlite3.Error, StopIteration):
        return "the database"


_DAMAGED = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


# What SQLite says when the file system will not let it open or write the store: "unable to
# open database file", "attempt to write a readonly database", with no word of why.
_NO_ACCESS = (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM)


def store_error(doing: str, path: str, exc: sqlite3.Error) -> StoreError:
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF  # ProgrammingError and the like: none
    if code in _DAMAGED:
        return StoreError(damaged_message(doing, path, exc))
    if code in _NO_ACCESS and (why := access_problem(path)) is not None:
        return StoreError(f"{doing} {path} ({exc}): {why}")
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StoreError(
            f"{doing} {path}: another process has held its write lock for over"
            f" {BUSY_TIMEOUT_MS / 1000:g} s; try again (is a long `aggregator stories rebuild`"
            " or another tool writing to it?)"
        )
    return StoreError(f"{doing} {path}: {exc}")


def damaged_message(doing: str, path: str, exc: sqlite3.Error) -> str:
    """A file SQLite cannot read as a database (random bytes, a text file, a truncated or
    otherwise damaged database): what it said, and how to get the data back."""
    quoted = shlex.quote(path)
    return (
        f"{doing} {path}: {exc} (damaged, or not a SQLite file)."
        f" Recover what it holds with `sqlite3 {quoted} .recover > recovered.sql` (then"
        " `sqlite3 new.db < recovered.sql` and point --db at new.db), or restore a backup"
    )


def existing(path: str) -> str:
    if not Path(path).exists():
        folder = Path(path).absolute().parent
        also = "" if folder.is_dir() else f" (its folder {folder} does not exist either)"
        raise StoreError(
            f"no database at {path}{also}; run `aggregator fetch` first, or point --db"
            " (or settings.database) at the store"
        )
    return path


def cannot_create(path: str, exc: OSError) -> StoreError:
    """The store (or its folder, or its lock file) could not be made: why, and what to do."""
    why = access_problem(path) or exc.strerror or str(exc)
    return StoreError(f"cannot create the database at {path}: {why}")


def access_problem(path: str) -> str | None:
    """Why this user cannot open the store at `path` and write to it, in words, with what to
    do: a missing folder, a folder or a file without write access. None when the folder and
    the file allow it (the trouble is elsewhere)."""
    store = Path(path).absolute()
    folder = store.parent
    user = _user()
    if not folder.exists():
        above = next(p for p in folder.parents if p.exists())
        if _writable(above):
            return None  # `Store.open` makes the folder
        return (
            f"its folder {folder} does not exist, and {above} is not writable by {user} to"
            f" make it; create {folder} with write access for {user}, or point --db (or"
            " settings.database) at a folder that exists"
        )
    if not folder.is_dir():
        return f"{folder} is a file, not a folder; point --db (or settings.database) elsewhere"
    if not _writable(folder):
        why = (
            "SQLite must create the store's -wal and -shm files beside it, even to read it"
            if store.exists()
            else "so the store cannot be made in it"
        )
        return (
            f"the folder {folder} is not writable by {user}, and {why}; give {user} write"
            f" access to the folder (chown or chmod u+w {shlex.quote(str(folder))}), or point"
            " --db at a writable folder (a copy of the store there, if it has one)"
        )
    for file in (store, Path(f"{store}-wal"), Path(f"{store}-shm")):
        if file.exists() and not os.access(file, os.R_OK | os.W_OK):
            return (
                f"the file {file} is not writable by {user}; give {user} write access to it"
                f" (chown or chmod u+w {shlex.quote(str(file))}), or run aggregator as the"
                " user that owns the store"
            )
    return None


def _writable(folder: Path) -> bool:
    return os.access(folder, os.W_OK | os.X_OK)


def _user() -> str:
    """This process's user, as `ls -l` names it."""
    try:
        return f"user {pwd.getpwuid(os.geteuid()).pw_name}"
    except KeyError:  # a uid without a passwd entry (containers)
        return f"uid {os.geteuid()}"
