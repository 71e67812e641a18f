"""What a query plan reads whole: the check behind tests/test_query_plans.py and
benchmarks/store_scale.py.

A listing of 20 must cost the same in a store of a million items as in one of a thousand: it
walks an index from one end and stops at its LIMIT, and reaches everything else by key. So a
plan (EXPLAIN QUERY PLAN) fails when it reads one of the big tables whole:

- `SCAN items` without an index;
- a SCAN of a big table through an index, where nothing stops it early: in a statement
  without LIMIT, inside a MATERIALIZE (the whole subquery is computed first) or a correlated
  subquery (once per row of the outer query);
- `USE TEMP B-TREE FOR ORDER BY` beside such a SCAN, or beside a SEARCH that finds more
  than MANY_ROWS rows per key in a store of a million items (`items_extract_status`: a
  quarter of them): every row is read to be sorted.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

BIG_TABLES = frozenset(
    {"items", "sightings", "stories", "story_links", "fetches", "lsh_bands", "item_fingerprints"}
)
_NOT_ALIASES = frozenset(
    ("where", "join", "left", "inner", "cross", "on", "using", "group", "order", "limit",
     "union", "as", "natural", "outer", "select", "and", "or", "not", "indexed")
)  # fmt: skip

PlanRow = tuple[int, int, str]  # (node, parent, detail)

# sqlite_stat1 of benchmarks/store_scale.py's store (1,000,000 items, 1,239,168 sightings,
# 581,770 stories, 300 feeds; migrated to 0009) after ANALYZE: (table, index, stat).
MILLION: list[tuple[str, str, str]] = [
    ("feed_counts", "feed_counts", "300 1"),
    ("feed_tags", "feed_tags_tag", "442 37 1"),
    ("feed_tags", "sqlite_autoindex_feed_tags_1", "442 2 1"),
    ("feeds", "feeds_next_fetch", "300 150"),
    ("feeds", "sqlite_autoindex_feeds_1", "300 1"),
    ("fetches", "fetches_feed_started", "28800 96 1"),
    ("fetches", "fetches_started", "28800 6"),
    ("items", "items_extract_status", "1000000 250000"),
    ("items", "items_first_seen", "1000000 1"),
    ("items", "items_published", "1000000 1"),
    ("items", "items_story", "1000000 2"),
    ("items", "sqlite_autoindex_items_1", "1000000 1"),
    ("sightings", "sightings_feed_seen", "1239168 4131 1"),
    ("sightings", "sightings_item", "1239168 2 1"),
    ("sightings", "sightings_seen", "1239168 1"),
    ("sightings", "sqlite_autoindex_sightings_1", "1239168 4131 1"),
    ("stories", "stories_first_seen", "581770 1"),
    ("stories", "stories_last_seen", "581770 1"),
    ("stories", "stories_lead", "581770 1"),
    ("story_links", "story_links_story", "418230 2"),
]
# Rows per value of each index's leading columns in that store: [rows, per 1st, per 1st+2nd..]
ROWS_PER_KEY = {index: [int(n) for n in stat.split()] for _, index, stat in MILLION}
# A SEARCH that finds more rows than this per key, sorted afterwards, is a whole read.
MANY_ROWS = 1000


@contextmanager
def traced(conn: sqlite3.Connection) -> Iterator[list[str]]:
    """The statements run on `conn` meanwhile, with their parameters written in."""
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        yield statements
    finally:
        conn.set_trace_callback(None)


def reads(statements: Sequence[str]) -> list[str]:
    """The distinct SELECTs among `statements`, in order (the store's own bookkeeping on
    sqlite_master left out)."""
    seen: dict[str, None] = {}
    for sql in statements:
        if re.match(r"\s*(SELECT|WITH)\b", sql, re.IGNORECASE) and "sqlite_master" not in sql:
            seen.setdefault(sql, None)
    return list(seen)


def explain(conn: sqlite3.Connection, sql: str, params: Any = ()) -> list[PlanRow]:
    rows = conn.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
    return [(int(r[0]), int(r[1]), str(r[3])) for r in rows]


def tables_named(sql: str) -> dict[str, str]:
    """The names a statement gives its tables (`items i`, `sightings AS sg`) and the tables'
    own names, each to its table."""
    found: dict[str, str] = {}
    pattern = r"\b(?:FROM|JOIN)\s+\[?(\w+)\]?(?:\s+(?:AS\s+)?(\w+))?"
    for table, alias in re.findall(pattern, sql, re.IGNORECASE):
        found[table] = table
        if alias and alias.lower() not in _NOT_ALIASES:
            found[alias] = table
    return found


def whole_reads(sql: str, plan: Sequence[PlanRow]) -> list[str]:
    """What in `plan` (of `sql`) reads a big table whole, one line each; empty when nothing
    does."""
    names = tables_named(sql)
    parents = {node: parent for node, parent, _ in plan}
    details = {node: detail for node, _, detail in plan}
    limited = re.search(r"\bLIMIT\b", sql, re.IGNORECASE) is not None

    def big_scan(detail: str) -> str | None:
        found = re.match(r"SCAN (\w+)", detail)
        table = names.get(found.group(1), found.group(1)) if found else None
        return table if table in BIG_TABLES else None

    def above(node: int) -> list[str]:
        found = []
        while parents.get(node, 0) != 0:
            node = parents[node]
            found.append(details.get(node, ""))
        return found

    problems = []
    for node, parent, detail in plan:
        table = big_scan(detail)
        if table is not None:
            outer = [d for d in above(node) if d.startswith(("MATERIALIZE", "CORRELATED"))]
            if " USING " not in detail:
                problems.append(f"{detail}: all of {table}, without an index")
            elif not limited:
                problems.append(f"{detail}: all of {table}, and no LIMIT stops it")
            elif outer:
                problems.append(f"{detail}: all of {table}, under {outer[0]}")
        if detail.startswith("USE TEMP B-TREE FOR") and "ORDER BY" in detail:
            beside = [d for n, p, d in plan if p == parent and n != node]
            scanned = [t for d in beside if (t := big_scan(d))]
            if scanned:
                problems.append(f"{detail}: sorts every row of {scanned[0]} it reads")
            for d in beside:
                many = rows_found(d)
                if many > MANY_ROWS:
                    problems.append(f"{detail}: sorts the ~{many:,} rows that {d} finds")
    return problems


def rows_found(detail: str) -> int:
    """How many rows a SEARCH through an index finds per probe in a store of a million
    items (ROWS_PER_KEY), from the columns it is constrained on with `=`; 1 for a rowid or
    primary key, 0 for anything else."""
    found = re.match(r"SEARCH \w+ USING (?:COVERING )?INDEX (\w+) \(([^)]*)\)", detail)
    if not found or found.group(1) not in ROWS_PER_KEY:
        return 1 if detail.startswith("SEARCH") else 0
    equal = len(re.findall(r"\w+=\?", found.group(2)))
    per_key = ROWS_PER_KEY[found.group(1)]
    return per_key[min(equal, len(per_key) - 1)]


def depth(plan: Sequence[PlanRow], node: int) -> int:
    parents = {n: p for n, p, _ in plan}
    levels = 0
    while parents.get(node, 0) != 0:
        node = parents[node]
        levels += 1
    return levels
