"""The store stays fast at a million items: every read the CLI, exports, served feeds and
Datasette's canned queries make walks an index and stops at its limit, or reaches rows by key;
none reads a big table whole (tests/query_plans.py says what that means). Checked on the plans
SQLite makes for the reader's own statements (captured as they run), on a small real store:
as it is (no planner statistics, as a new store has none) and with the statistics of a store
of a million items (`sqlite_stat1` as ANALYZE wrote it for benchmarks/store_scale.py's
store), under which SQLite plans as it would for that store. Timings are in
benchmarks/store_scale.py; here only the plans.

And `aggregator --help` and `aggregator items` start without importing what they never use
(extraction, MinHash, HTTP, the broker, Datasette): a new process's own sys.modules.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from query_plans import MILLION, explain, reads, traced, whole_reads
from serve_helpers import build_newsroom_store
from sqlite_utils import Database
from store_helpers import ok_record, ok_update, save_refresh

from aggregator.models import Entry, FeedConfig, Order, StoryFilter
from aggregator.publish.serve_metadata import CANNED_QUERIES
from aggregator.store import Reader, Store, open_reader, queries, story_queries
from aggregator.store.migrations import migrations
from aggregator.stories.identity import drafts_for

Read = Callable[[Reader], object]
READS: dict[str, Read] = {
    "items": lambda r: r.items(since=None, feed=None, limit=20),
    "items --since": lambda r: r.items(since="2026-11-28T00:00:00Z", feed=None, limit=20),
    "items --feed": lambda r: r.items(since=None, feed="tass-en", limit=20),
    "items --tag": lambda r: r.items(since=None, feed=None, tag="world", limit=20),
    "items --status failed": lambda r: r.items(since=None, feed=None, limit=20, status="failed"),
    "items --sort published": lambda r: r.items(
        since=None, feed=None, limit=20, sort=Order.PUBLISHED
    ),
    "stories": lambda r: r.stories(since=None, min_sources=1, feed=None, limit=20),
    "stories --min-sources 2": lambda r: r.stories(since=None, min_sources=2, feed=None, limit=20),
    "stories --feed": lambda r: r.stories(since=None, min_sources=1, feed="city-desk", limit=20),
    "stories --tag": lambda r: r.stories(
        since=None, min_sources=1, feed=None, tag="europe", limit=20
    ),
    "stories --sort first_seen": lambda r: r.stories(
        since=None, min_sources=1, feed=None, limit=20, sort=Order.FIRST_SEEN
    ),
    "stories --sort published": lambda r: r.stories(
        since=None, min_sources=1, feed=None, limit=20, sort=Order.PUBLISHED
    ),
    "stories show": lambda r: (r.story(1), r.story_items(1)),
    "search": lambda r: r.search("Libya", since=None, feed=None, limit=20),
    "search --feed": lambda r: r.search("grain", since=None, feed="tass-en", limit=20),
    # Matches many for its limit: walks the time's index (queries._matches_many).
    "search --sort first_seen --limit 1": lambda r: r.search(
        "Libya", since=None, feed=None, limit=1, sort=Order.FIRST_SEEN
    ),
    # Matches few for its limit: sorts them.
    "search --sort published": lambda r: r.search(
        "grain", since=None, feed=None, limit=20, sort=Order.PUBLISHED
    ),
    "export": lambda r: r.export_entries(StoryFilter(limit=50)),
    "export --tag (a served feed's ?tag=)": lambda r: r.export_entries(
        StoryFilter(tag="wire", limit=50)
    ),
    "export --feed (a served feed's ?feed=)": lambda r: r.export_entries(
        StoryFilter(feed="partner-daily", limit=50)
    ),
    "feeds": lambda r: (r.feeds(), r.feed_histories(since="2026-11-20T00:00:00Z")),
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_newsroom_store(tmp_path_factory.mktemp("plans") / "newsroom.db")


@pytest.fixture(params=["new store", "million items"])
def reader(request: pytest.FixtureRequest, store: Path, tmp_path: Path) -> Iterator[Reader]:
    path = store
    if request.param == "million items":
        if not MILLION:
            pytest.skip("no statistics recorded")
        path = tmp_path / "with-stats.db"
        with sqlite3.connect(store) as source, sqlite3.connect(path) as copy:
            source.backup(copy)
        conn = sqlite3.connect(path)
        conn.execute("ANALYZE sqlite_schema")  # makes sqlite_stat1 (empty for a schema)
        conn.execute("DELETE FROM sqlite_stat1")
        conn.executemany("INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES (?, ?, ?)", MILLION)
        conn.commit()
        conn.close()
    reader = open_reader(str(path))
    yield reader
    reader.close()


def statements(reader: Reader, read: Read) -> list[str]:
    with traced(reader.db.conn) as ran:
        read(reader)
    return reads(ran)


@pytest.mark.parametrize("name", list(READS))
def test_no_read_takes_a_big_table_whole(reader: Reader, name: str) -> None:
    found = statements(reader, READS[name])
    assert found, "the read ran no SELECT: the trace saw nothing"
    problems = {
        sql: problems
        for sql in found
        if (problems := whole_reads(sql, explain(reader.db.conn, sql)))
    }
    assert problems == {}


# A feed or desk is listed from its own sightings when it carried few, else by walking
# stories latest first: both plans, whatever this small store's counts choose.
WALKED = {
    "items --feed": lambda r: r.items(since=None, feed="tass-en", limit=20),
    "items --tag": lambda r: r.items(since=None, feed=None, tag="wire", limit=20),
    "search --tag": lambda r: r.search("Libya", since=None, feed=None, tag="wire", limit=20),
    "stories --feed": lambda r: r.stories(since=None, min_sources=1, feed="tass-en", limit=20),
    "stories --tag": lambda r: r.stories(
        since=None, min_sources=1, feed=None, tag="wire", limit=20
    ),
    "export --feed": lambda r: r.export_entries(StoryFilter(feed="tass-en", limit=50)),
    "export --tag": lambda r: r.export_entries(StoryFilter(tag="world", limit=50)),
}


@pytest.mark.parametrize("few", [True, False], ids=["from its sightings", "walking stories"])
@pytest.mark.parametrize("name", list(WALKED))
def test_a_feed_or_desk_is_read_by_index_either_way(
    reader: Reader, name: str, few: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(story_queries, "carried_few", lambda *_, **__: few)
    monkeypatch.setattr(queries, "carried_few", lambda *_, **__: few)
    found = statements(reader, WALKED[name])
    assert any(("IN (SELECT" in sql) == few for sql in found)
    for sql in found:
        assert whole_reads(sql, explain(reader.db.conn, sql)) == [], sql


def test_walking_stories_tests_each_by_its_own_items(
    reader: Reader, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The feed test reaches the story's items first, then their sightings: SQLite once
    started from the feed's every sighting instead, for each story walked (37 s for a
    feed's served stories at a million items), a plan that reads no table whole."""
    monkeypatch.setattr(story_queries, "carried_few", lambda *_, **__: False)
    (sql,) = [s for s in statements(reader, WALKED["stories --feed"]) if "EXISTS" in s]
    plan = explain(reader.db.conn, sql)
    exists = next(n for n, _, d in plan if "CORRELATED" in d and _first_read(plan, n))
    assert _first_read(plan, exists).startswith("SEARCH m USING COVERING INDEX items_story")


def _first_read(plan: list[tuple[int, int, str]], parent: int) -> str:
    return next((d for _, p, d in plan if p == parent and d.startswith(("SEARCH", "SCAN"))), "")


@pytest.mark.parametrize("name", list(CANNED_QUERIES))
def test_no_canned_query_takes_a_big_table_whole(reader: Reader, name: str) -> None:
    query = CANNED_QUERIES[name]
    given = {"q": "Libya", "story": "1", "tag": "world"}
    params: dict[str, Any] = {p: given.get(p, "") for p in query.get("params", [])}
    assert whole_reads(query["sql"], explain(reader.db.conn, query["sql"], params)) == []


def test_the_check_sees_a_table_read_whole(reader: Reader) -> None:
    """What the tests above would catch: a sort on an unindexed column, an aggregate over a
    whole table, a grouped subquery joined to a listing."""
    conn = reader.db.conn
    for sql in (
        "SELECT id FROM items ORDER BY title LIMIT 20",
        "SELECT feed, count(*) FROM sightings GROUP BY feed",
        "SELECT i.id, f.n FROM items i LEFT JOIN (SELECT item_id, count(*) AS n FROM sightings"
        " GROUP BY item_id) f ON f.item_id = i.id ORDER BY i.first_seen_at DESC LIMIT 20",
    ):
        assert whole_reads(sql, explain(conn, sql)), sql


# -- start-up ------------------------------------------------------------------------------------

HEAVY = (
    "trafilatura", "datasketch", "numpy", "scipy", "httpx", "httpcore", "dramatiq", "redis",
    "datasette", "feedparser", "lxml", "apscheduler", "prometheus_client",
)  # fmt: skip


def imported(args: list[str], cwd: Path) -> set[str]:
    """Which of HEAVY a new `aggregator ARGS` process has imported when it is done."""
    code = (
        "import sys\n"
        "from aggregator.cli import main\n"
        "sys.argv = ['aggregator', *sys.argv[1:]]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, check=True
    )
    return set(done.stdout.splitlines()[-1].split())


def test_help_imports_nothing_heavy(tmp_path: Path) -> None:
    assert imported(["--help"], tmp_path) == set()


def test_listings_import_nothing_heavy(store: Path, tmp_path: Path) -> None:
    for args in (["items", "--limit", "5"], ["stories"], ["search", "Libya"], ["feeds"]):
        assert imported(["--db", str(store), *args], tmp_path) == set(), args


# -- feed_counts ------------------------------------------------------------------------------


def _counts(store: Store) -> tuple[dict[str, int], dict[str, int]]:
    """feed_counts, and the count it stands for."""
    kept = dict(store.db.execute("SELECT feed, sightings FROM feed_counts WHERE sightings > 0"))
    counted = dict(store.db.execute("SELECT feed, count(*) FROM sightings GROUP BY feed"))
    return kept, counted


def test_feed_counts_follow_the_sightings(tmp_path: Path) -> None:
    """Migration 0009 counts the sightings a store has; then every sighting the writer
    adds, and every one retention deletes, moves its feed's count."""
    path = tmp_path / "old.db"
    db = Database(sqlite3.connect(path))
    migrations.apply(db, stop_before="0009_store_at_scale")
    added = "2026-11-01T00:00:00Z"
    db.conn.executemany(
        "INSERT INTO feeds (name, url, added_at) VALUES (?, ?, ?)",
        [("wire", "https://wire.example/rss", added), ("partner", "https://p.example/f", added)],
    )
    db.conn.executemany(
        "INSERT INTO items (id, url, first_seen_at) VALUES (?, ?, ?)",
        [(n, f"https://news.example/{n}", added) for n in (1, 2)],
    )
    db.conn.executemany(
        "INSERT INTO sightings (item_id, feed, guid, entry_hash, seen_at) VALUES (?, ?, ?, ?, ?)",
        [
            (1, "wire", "w1", "h", added),
            (2, "wire", "w2", "h", added),
            (2, "partner", "p2", "h", added),
        ],
    )
    db.conn.commit()
    db.close()

    store = Store.open(str(path))
    assert _counts(store) == ({"wire": 2, "partner": 1}, {"wire": 2, "partner": 1})

    later = "2026-11-27T10:00:00Z"
    entries = [
        Entry(
            guid=f"g{n}",
            link=f"https://news.example/{n}",
            title=f"Story {n}",
            summary=None,
            content_html=None,
            author=None,
            published_at=later,
            updated_at=None,
        )
        for n in (2, 3, 4)
    ]
    save_refresh(
        store, "partner", drafts_for(entries), ok_record("partner", later), ok_update(later)
    )
    kept, counted = _counts(store)
    assert kept == counted == {"wire": 2, "partner": 4}

    assert store.expire_items(before="2026-11-02T00:00:00Z", limit=10) == 2
    kept, counted = _counts(store)
    assert kept == counted == {"partner": 2}
    store.close()


# -- the CLI's choices, written out so that `--help` imports nothing heavy ----------------------


def test_formats_written_out_agree_with_their_modules() -> None:
    from aggregator.cli import export_command, run_command
    from aggregator.daemon import logs
    from aggregator.publish import syndication

    assert run_command.LOG_FORMATS == logs.FORMATS
    assert export_command.FORMATS == syndication.FORMATS


# -- search: best match among the newest ---------------------------------------------------------


def test_search_ranks_the_newest_matches_after_the_filters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Relevance ranks the newest SEARCH_RANKED matches that pass the filters: the oldest
    item, the best match, drops out once more matches than that are newer; a feed's own
    older matches are ranked when the filter leaves few."""
    store = Store.open(str(tmp_path / "search.db"))
    store.sync_feeds(
        [FeedConfig("wire", "https://wire.example/rss"), FeedConfig("city", "https://c.example/f")],
        now="2026-11-01T00:00:00Z",
    )
    refreshes = [
        ("wire", 1, "Libya Libya Libya: the Libya talks"),  # the oldest and best match
        ("wire", 2, "Talks on Libya resume"),
        ("city", 3, "Council debates tram and Libya aid"),
        ("city", 4, "Libya aid convoy reaches the coast"),
        ("city", 5, "Storm delays Libya flights"),
    ]
    for feed, n, title in refreshes:
        when = f"2026-11-0{n}T10:00:00Z"
        entry = Entry(
            guid=f"g{n}",
            link=f"https://news.example/{n}",
            title=title,
            summary=None,
            content_html=None,
            author=None,
            published_at=when,
            updated_at=None,
        )
        save_refresh(store, feed, drafts_for([entry]), ok_record(feed, when), ok_update(when))
    store.close()
    reader = open_reader(str(tmp_path / "search.db"))

    def found(**filters: Any) -> list[str]:
        rows = reader.search("Libya", since=None, limit=10, **{"feed": None, **filters})
        return [str(row["title"]) for row in rows]

    titles = [title for _, _, title in refreshes]
    best = titles[0]
    assert found()[0] == best
    assert sorted(found()) == sorted(titles)
    monkeypatch.setattr(queries, "SEARCH_RANKED", 3)
    assert sorted(found()) == sorted(titles[2:])  # the newest three; the best is older
    assert found(feed="wire") == [best, titles[1]]
    reader.close()
