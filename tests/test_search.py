"""Full-text search covers summaries (migration 0006_search_summaries), and a query FTS5
cannot read is explained instead of failing with `fts5: syntax error`."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from feeds_builder import rss
from localserver import LocalServer
from sqlite_utils import Database

from aggregator.cli import cli
from aggregator.errors import StoreError
from aggregator.store import Store, open_reader
from aggregator.store.migrations import migrations

SUMMARY_ONLY = "quokka"  # a word in an entry's summary, nowhere else


@pytest.fixture
def base(server: LocalServer, tmp_path: Path) -> list[str]:
    server.add(
        "/wire.xml",
        rss(
            [
                {
                    "title": "Council meets on Libya",
                    "link": server.url("/p/1"),
                    "guid": "w1",
                    "description": f"Envoys spoke of a {SUMMARY_ONLY} sanctuary near Tripoli.",
                },
                {
                    "title": "Harbour budget passes",
                    "link": server.url("/p/2"),
                    "guid": "w2",
                    "description": "The port authority approved its covid-19 recovery plan.",
                },
            ]
        ),
    )
    config = tmp_path / "feeds.yaml"
    config.write_text(
        "settings:\n  allow_private_networks: true\n  host_gap: 0\nfeeds:\n"
        f"  - name: wire\n    url: {server.url('/wire.xml')}\n"
    )
    base = ["--config", str(config), "--db", str(tmp_path / "news.db")]
    fetched = CliRunner().invoke(cli, [*base, "fetch", "--no-extract"])
    assert fetched.exit_code == 0, fetched.output
    return base


def search(base: list[str], *args: str) -> Result:
    return CliRunner().invoke(cli, [*base, "search", *args, "--format", "json"])


def test_an_unextracted_item_is_found_by_a_word_only_in_its_summary(base: list[str]) -> None:
    result = search(base, SUMMARY_ONLY)
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert (row["title"], row["extract_status"]) == ("Council meets on Libya", "pending")
    assert f"[{SUMMARY_ONLY}]" in row["snippet"]  # the snippet comes from the summary
    assert result.stderr == ""
    titled = json.loads(search(base, "title:" + SUMMARY_ONLY).stdout)
    assert titled == []  # a column filter still means its column


@pytest.mark.parametrize("query", ["", "   ", "!!", '"" --', "*"])
def test_a_query_with_no_words_is_a_usage_error(base: list[str], query: str) -> None:
    result = search(base, query)
    assert result.exit_code == 2
    assert "Usage: " in result.stderr
    assert "has no words to look for; for example: aggregator search Libya" in result.stderr
    assert "fts5" not in result.output
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("query", "why"),
    [
        ('libya "', "a double quote is opened but never closed"),
        ("Libya AND (", "FTS5 cannot read it: it ends with an operator"),
        ("NOT Libya", 'FTS5 cannot read it near "NOT": AND, OR and NOT need a word on each side'),
        ("covid-19", 'a hyphen before "19" reads as a column filter'),
        ("port: budget", '"port:" reads as a column name, and the index has only title, text'),
    ],
)
def test_a_query_fts5_cannot_read_is_searched_as_words_and_explained(
    base: list[str], query: str, why: str
) -> None:
    result = search(base, query)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) is not None
    (note,) = result.stderr.splitlines()
    assert note.startswith(f"aggregator: note: {query!r} is not valid FTS5 syntax: {why}")
    assert 'queries that work: Libya | "Security Council" | Libya NOT Tripoli' in note
    assert note.endswith("its words were searched")


def test_words_with_punctuation_still_find_their_item(base: list[str]) -> None:
    (row,) = json.loads(search(base, "covid-19").stdout)
    assert row["title"] == "Harbour budget passes"
    (row,) = json.loads(search(base, 'libya "').stdout)
    assert row["title"] == "Council meets on Libya"


# -- the migration, on a store made by the schema before it ---------------------------------

ITEMS = [
    # title, summary, text
    ("Council meets on Libya", f"A {SUMMARY_ONLY} was seen at the talks.", None),
    ("Harbour budget passes", "The port budget passed.", "The harbour board voted the budget."),
    ("Storm closes the port", "Ferries stay in port.", None),
]


def old_store(path: Path) -> None:
    """A store as the version before 0006 left it: title and text indexed, summaries not."""
    db = Database(str(path))
    migrations.apply(db, stop_before="0006_search_summaries")
    db.execute(
        "INSERT INTO feeds (name, url, added_at) VALUES ('wire', 'https://wire.example/rss',"
        " '2026-11-27T08:00:00Z')"
    )
    for n, (title, summary, text) in enumerate(ITEMS, start=1):
        db.execute(
            "INSERT INTO items (id, url, title, summary, text, first_seen_at, extract_status)"
            " VALUES (?, ?, ?, ?, ?, '2026-11-27T08:00:00Z', ?)",
            [n, f"https://wire.example/{n}", title, summary, text, "ok" if text else "failed"],
        )
        db.execute(
            "INSERT INTO sightings (item_id, feed, guid, entry_hash, seen_at)"
            " VALUES (?, 'wire', ?, 'h', '2026-11-27T08:00:00Z')",
            [n, f"g{n}"],
        )
    db.conn.commit()
    db.close()
    assert "summary" not in fts_columns(path)


def fts_columns(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [row[1] for row in conn.execute("PRAGMA table_info(items_fts)")]


def applied(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [str(row[0]) for row in conn.execute("SELECT name FROM _sqlite_migrations")]


def index_is_whole(path: Path) -> None:
    """FTS5's own check that the index holds exactly what the items table does."""
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO items_fts (items_fts, rank) VALUES ('integrity-check', 1)")


def titles(path: Path, query: str) -> list[str]:
    reader = open_reader(str(path))
    try:
        return [str(r["title"]) for r in reader.search(query, since=None, feed=None, limit=10)]
    finally:
        reader.close()


def indexed_titles(path: Path, query: str) -> list[str]:
    """What the index finds, read straight from the file: a reader refuses a store that is
    not upgraded yet."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT i.title FROM items_fts JOIN items i ON i.id = items_fts.rowid"
            " WHERE items_fts MATCH ? ORDER BY i.id",
            [query],
        )
        return [str(row[0]) for row in rows]


def test_the_migration_indexes_the_summaries_of_an_older_store(tmp_path: Path) -> None:
    db = tmp_path / "news.db"
    old_store(db)
    assert indexed_titles(db, SUMMARY_ONLY) == []  # the old index has no summaries
    with pytest.raises(StoreError, match=r"not upgraded yet .*0006_search_summaries"):
        titles(db, SUMMARY_ONLY)  # a reader says how to upgrade, not "no such column"
    Store.open(str(db)).close()
    assert "0006_search_summaries" in applied(db)
    assert fts_columns(db) == ["title", "text", "summary"]
    index_is_whole(db)
    assert titles(db, SUMMARY_ONLY) == ["Council meets on Libya"]
    assert titles(db, "harbour board") == ["Harbour budget passes"]  # text, as before
    assert titles(db, "ferries") == ["Storm closes the port"]

    # The triggers keep the index in step: an edited summary, a new and a deleted item.
    store = Store.open(str(db))
    store.execute("UPDATE items SET summary = 'Ferries are back at sea.' WHERE id = 3")
    store.execute(
        "INSERT INTO items (url, title, summary, first_seen_at) VALUES"
        " ('https://wire.example/4', 'Late wire', 'A wallaby too.', '2026-11-27T09:00:00Z')"
    )
    store.execute("DELETE FROM sightings WHERE item_id = 1")
    store.execute("DELETE FROM items WHERE id = 1")
    store.execute("UPDATE items SET story_id = NULL")  # no indexed column: no re-index
    store.close()
    index_is_whole(db)
    assert titles(db, "ferries") == ["Storm closes the port"]
    assert titles(db, "stay") == []
    assert titles(db, "wallaby") == ["Late wire"]
    assert titles(db, SUMMARY_ONLY) == []


_KILLED = """
import os, sys
from aggregator.store import writer

marker = sys.argv[2]
opened = writer.connect

def connect(path, **kwargs):
    conn = opened(path, **kwargs)
    conn.set_trace_callback(lambda sql: os._exit(9) if marker in sql else None)
    return conn

writer.connect = connect
writer.Store.open(sys.argv[1])
"""


@pytest.mark.parametrize(
    "marker",
    [
        "DROP TABLE IF EXISTS items_fts",  # the triggers already dropped
        "'rebuild'",  # the new index and triggers made, not filled
        'INSERT INTO "_sqlite_migrations"',  # all done but the record of it
        "COMMIT",  # everything in the transaction, not committed
    ],
)
def test_a_start_killed_during_the_migration_leaves_the_old_index_and_does_it_again(
    tmp_path: Path, marker: str
) -> None:
    db = tmp_path / "news.db"
    old_store(db)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED, str(db), marker],
        check=False,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert killed.returncode == 9, killed.stderr.decode()
    assert "0006_search_summaries" not in applied(db)
    assert fts_columns(db) == ["title", "text"]  # the old index, whole, with its triggers
    index_is_whole(db)
    assert indexed_titles(db, "harbour board") == ["Harbour budget passes"]

    Store.open(str(db)).close()
    assert applied(db).count("0006_search_summaries") == 1
    index_is_whole(db)
    assert titles(db, SUMMARY_ONLY) == ["Council meets on Libya"]
