"""The store: the only package that speaks SQL.

It owns the SQLite file: its migrations, one writer (`Store`, every write in one typed
transaction) and read-only readers (`Reader`) for the CLI and the web view. It applies what
the stages decided and decides nothing itself: it never imports a stage (config, fetch,
parse, extract, stories, schedule, engine, daemon, publish, cli). Other packages use only
the names below, never its row modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aggregator.store.connection import harden_reader
from aggregator.store.queries import Row
from aggregator.store.reader import Reader, open_reader

if TYPE_CHECKING:
    from aggregator.store.writer import Store

__all__ = ["Reader", "Row", "Store", "harden_reader", "open_reader"]


def __getattr__(name: str) -> type[Store]:
    """`Store`, the writer, loaded when first asked for: it brings sqlite-utils, which no
    reader needs (lean_imports.py)."""
    if name != "Store":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from aggregator.store.lean_imports import load_sqlite_utils

    load_sqlite_utils()  # first: without numpy
    from aggregator.store.writer import Store

    globals()["Store"] = Store
    return Store
