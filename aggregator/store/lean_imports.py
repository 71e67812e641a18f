"""sqlite-utils without numpy, and only for the writer.

Readers (every listing, search, export, `feeds`, the web view's feeds) use the standard
library's sqlite3 alone (`connection.ReadConnection`): importing sqlite-utils cost each of
them 50 to 80 ms of start-up before its first query. The writer's modules import it, and
the store loads them through `load_sqlite_utils` first (`aggregator.store.Store`,
`migrations.migrations`).

sqlite-utils imports numpy and pandas whenever they are installed, only to map their scalar
types to column types when it creates tables from Python values, which the store never does
(it writes with SQL). numpy is installed, for the MinHash signatures, and importing it cost
every command that opened the store more than its query (0.13 s of a 0.26 s start on two
busy cores). So sqlite-utils is imported with both hidden, unless something has imported
them already; a later `import numpy` (dedup's) finds it as usual.
"""

from __future__ import annotations

import sys

_UNUSED = ("numpy", "pandas")


def load_sqlite_utils() -> None:
    """Import sqlite-utils, if it is not yet, with numpy and pandas hidden from it."""
    if "sqlite_utils" in sys.modules:
        return
    hidden = [name for name in _UNUSED if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # `import` raises ImportError
    try:
        import sqlite_utils  # noqa: F401
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
