"""The store: the only package that speaks SQL.

It owns the SQLite file: its migrations, one writer (`Store`, every write in one typed
transaction) and read-only readers (`Reader`) for the CLI and the web view. It applies what
the stages decided and decides nothing itself: it never imports a stage (config, fetch,
parse, extract, stories, schedule, engine, daemon, publish, cli). Other packages use only
the names below, never its row modules.
"""

# First: sqlite-utils, without numpy (see there).
from aggregator.store import lean_imports  # noqa: F401  # isort: skip
from aggregator.store.connection import harden_reader
from aggregator.store.queries import Row
from aggregator.store.reader import Reader, open_reader
from aggregator.store.writer import Store

__all__ = ["Reader", "Row", "Store", "harden_reader", "open_reader"]
