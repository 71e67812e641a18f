"""`--sort` and `--until` on `items`, `stories`, `search` and `export`, through the CLI
against a real store: the order, the bounds (on the time the listing sorts by), both in table
and JSON, and the indexes the new orders walk."""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from test_dedup import article
from test_stories import FEEDS, NOW, save

from aggregator.cli import cli
from aggregator.models import Article, Entry, ItemDraft
from aggregator.publish.serve import not_modified, story_filter
from aggregator.publish.story_feed import story_feed
from aggregator.store import Store, open_reader, queries
from aggregator.stories import dedup
from aggregator.stories.identity import draft_for

# (title, first seen, published): the order they arrived is not the order they were dated.
ARRIVALS = [
    ("Alpha council report", "2026-11-27T10:00:00Z", "2026-11-20T08:00:00Z"),
    ("Bravo council report", "2026-11-27T11:00:00Z", "2026-11-25T06:00:00Z"),
    ("Charlie council report", "2026-11-27T12:00:00Z", "2026-11-22T09:00:00Z"),
    ("Delta council report", "2026-11-27T13:00:00Z", None),
]
# Alpha is carried again, by another feed, last of all.
ALPHA_AGAIN = "2026-11-27T14:00:00Z"
CLOCK = datetime(2026, 11, 27, 13, 30, tzinfo=UTC)  # the CLI's now: `--until 2h` is 11:30


def url_of(title: str) -> str:
    return "https://wire.example/" + title.split(maxsplit=1)[0].lower()


def dated(title: str, published: str | None, seed: int) -> ItemDraft:
    url = url_of(title)
    text = article(seed)
    entry = Entry(url, url, title, "", None, None, published, None)
    return replace(
        draft_for(entry),
        article=Article(text=text, html=""),
        extract_status="ok",
        fingerprint=dedup.fingerprint(title, text, None),
    )


@pytest.fixture
def base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setattr("aggregator.cli.group.utc_now", lambda: CLOCK)
    db = tmp_path / "desk.db"
    store = Store.open(str(db))
    store.sync_feeds(FEEDS, now=NOW)
    for seed, (title, seen, published) in enumerate(ARRIVALS, 1):
        save(store, "wire", dated(title, published, seed), at=seen)
    alpha = ARRIVALS[0]
    save(store, "partner", dated(alpha[0], alpha[2], 1), at=ALPHA_AGAIN)
    assert store.execute("SELECT count(*), count(DISTINCT story_id) FROM items") == [(4, 4)]
    store.close()
    return ["--db", str(db)]


def run(base: list[str], *args: str) -> Result:
    # Wide enough that a table never wraps a title, whatever terminal runs the tests.
    return CliRunner(env={"COLUMNS": "200"}).invoke(cli, [*base, *args])


def as_json(base: list[str], *args: str) -> list[dict[str, Any]]:
    result = run(base, *args, "--format", "json")
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def json_titles(base: list[str], *args: str) -> list[str]:
    return [row["title"].split()[0] for row in as_json(base, *args)]


def table_titles(base: list[str], *args: str) -> list[str]:
    """The titles in the order a table lists them."""
    result = run(base, *args)
    assert result.exit_code == 0, result.output
    return re.findall(r"\b(Alpha|Bravo|Charlie|Delta) council", result.stdout)


def titles(base: list[str], *args: str) -> list[str]:
    """The same order in JSON and in a table, or the test fails."""
    from_json = json_titles(base, *args)
    assert table_titles(base, *args) == from_json, args
    return from_json


def test_items_by_first_seen_or_published_bounded_by_the_same_time(base: list[str]) -> None:
    assert titles(base, "items") == ["Delta", "Charlie", "Bravo", "Alpha"]
    assert titles(base, "items", "--sort", "first_seen") == ["Delta", "Charlie", "Bravo", "Alpha"]
    # The feeds' own dates; the undated item last.
    assert titles(base, "items", "--sort", "published") == ["Bravo", "Charlie", "Alpha", "Delta"]
    # --until is before it, --since from it: first seen, or published with --sort published.
    assert titles(base, "items", "--until", "2026-11-27T12:00") == ["Bravo", "Alpha"]
    assert titles(base, "items", "--since", "2026-11-27T11:00", "--until", "2h") == ["Bravo"]
    published = ["items", "--sort", "published", "--since", "2026-11-21", "--until", "2026-11-25"]
    assert titles(base, *published) == ["Charlie"]
    assert titles(base, "items", "--sort", "published", "--until", "2026-11-26") == [
        "Bravo",
        "Charlie",
        "Alpha",
    ]
    assert titles(base, "items", "--sort", "published", "--limit", "2") == ["Bravo", "Charlie"]
    rows = as_json(base, "items", "--sort", "published", "--until", "2026-11-21")
    assert [(r["published_at"], r["first_seen_at"]) for r in rows] == [
        ("2026-11-20T08:00:00Z", "2026-11-27T10:00:00Z")
    ]


def test_stories_by_last_seen_first_seen_or_published(base: list[str]) -> None:
    # Latest carried first, as always: Alpha was carried again last.
    assert titles(base, "stories") == ["Alpha", "Delta", "Charlie", "Bravo"]
    assert titles(base, "stories", "--sort", "first_seen") == ["Delta", "Charlie", "Bravo", "Alpha"]
    assert titles(base, "stories", "--sort", "published") == [
        "Bravo",
        "Charlie",
        "Alpha",
        "Delta",
    ]
    assert titles(base, "stories", "--until", "2026-11-27T14:00") == ["Delta", "Charlie", "Bravo"]
    assert titles(base, "stories", "--sort", "first_seen", "--since", "2026-11-27T11:00") == [
        "Delta",
        "Charlie",
        "Bravo",
    ]
    by_date = ["stories", "--sort", "published", "--until", "2026-11-25", "--min-sources", "2"]
    assert titles(base, *by_date) == ["Alpha"]
    rows = as_json(base, "stories", "--sort", "published", "--limit", "1")
    assert [(r["published_at"], r["sources"]) for r in rows] == [(ARRIVALS[1][2], 1)]


def test_search_is_by_relevance_unless_sorted(base: list[str]) -> None:
    assert sorted(titles(base, "search", "council")) == ["Alpha", "Bravo", "Charlie", "Delta"]
    assert titles(base, "search", "council", "--sort", "published") == [
        "Bravo",
        "Charlie",
        "Alpha",
        "Delta",
    ]
    assert titles(base, "search", "council", "--sort", "first_seen", "--until", "2h") == [
        "Bravo",
        "Alpha",
    ]
    assert titles(base, "search", "bravo OR delta", "--sort", "first_seen") == ["Delta", "Bravo"]


@pytest.mark.parametrize("walk", [True, False], ids=["walking the index", "sorting the matches"])
def test_sorted_search_finds_the_newest_matches_either_way(
    base: list[str], walk: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A word in many items is searched newest first by walking the time's index, one in
    few by sorting its matches (queries._matches_many): the same answers, undated last."""
    monkeypatch.setattr(queries, "_matches_many", lambda *args, **kwargs: walk)
    by_date = ["search", "council", "--sort", "published"]
    assert titles(base, *by_date) == ["Bravo", "Charlie", "Alpha", "Delta"]
    assert titles(base, *by_date, "--limit", "2") == ["Bravo", "Charlie"]
    assert titles(base, *by_date, "--until", "2026-11-24") == ["Charlie", "Alpha"]
    by_arrival = ["search", "council", "--sort", "first_seen"]
    assert titles(base, *by_arrival, "--since", "2026-11-27T11:00") == [
        "Delta",
        "Charlie",
        "Bravo",
    ]
    assert titles(base, "search", "bravo OR delta", "--sort", "first_seen") == ["Delta", "Bravo"]


def test_export_sorts_and_bounds_its_stories(base: list[str]) -> None:
    def exported(*args: str) -> list[str]:
        result = run(
            base, "export", "--format", "json", "--link", "https://desk.example/x.json", *args
        )
        assert result.exit_code == 0, result.output
        return [item["title"].split()[0] for item in json.loads(result.stdout)["items"]]

    assert exported() == ["Alpha", "Delta", "Charlie", "Bravo"]
    assert exported("--sort", "first_seen", "--until", "2026-11-27T13:00") == [
        "Charlie",
        "Bravo",
        "Alpha",
    ]
    assert exported("--sort", "published", "--since", "2026-11-21") == ["Bravo", "Charlie"]


def test_a_served_feed_with_until_changes_its_date_when_a_story_leaves_it(tmp_path: Path) -> None:
    """Alpha carried again moves past ?until= and out of the feed: none of the stories left in
    it changed, yet a reader asking If-Modified-Since must get the feed, not a 304."""
    store = Store.open(str(tmp_path / "desk.db"))
    store.sync_feeds(FEEDS, now=NOW)
    for seed, (title, seen, published) in enumerate(ARRIVALS, 1):
        save(store, "wire", dated(title, published, seed), at=seen)
    wanted = story_filter("until=2026-11-27T13:30", now=CLOCK)

    def served() -> tuple[list[str], str]:
        reader = open_reader(str(tmp_path / "desk.db"))
        try:
            feed = story_feed(reader, wanted, "json", link="https://desk.example/f", title="t")
        finally:
            reader.close()
        titles = [item["title"].split()[0] for item in json.loads(feed.body)["items"]]
        return titles, feed.updated

    before, updated = served()
    assert before == ["Delta", "Charlie", "Bravo", "Alpha"]
    alpha = ARRIVALS[0]
    save(store, "partner", dated(alpha[0], alpha[2], 1), at=ALPHA_AGAIN)
    store.close()
    after, updated_after = served()
    assert after == ["Delta", "Charlie", "Bravo"]
    assert updated_after == ALPHA_AGAIN
    asked = {"if-modified-since": "Fri, 27 Nov 2026 13:00:00 GMT"}  # `updated` as an HTTP date
    assert updated == "2026-11-27T13:00:00Z"
    assert not_modified(asked, etag="", updated=updated)
    assert not not_modified(asked, etag="", updated=updated_after)


@pytest.mark.parametrize("command", ["items", "stories", "search council", "export"])
def test_a_window_that_cannot_hold_anything_is_a_usage_error(base: list[str], command: str) -> None:
    args = command.split()
    backwards = run(base, *args, "--since", "2026-11-28", "--until", "2026-11-27")
    assert backwards.exit_code == 2, backwards.output
    assert "'2026-11-27' (2026-11-27T00:00:00Z) is not after --since '2026-11-28'" in (
        backwards.stderr
    )
    bad = run(base, *args, "--until", "yesterday")
    assert bad.exit_code == 2
    assert "--until" in bad.stderr
    assert "'yesterday' is neither a duration (2h, 3d) nor a date" in bad.stderr
    unknown = run(base, *args, "--sort", "title")
    assert unknown.exit_code == 2
    assert "'title' is not one of" in unknown.stderr


def plans_of(base: list[str], monkeypatch: pytest.MonkeyPatch, *args: str) -> list[str]:
    """Run the command, and ask SQLite how it ran each listing query it made."""
    from aggregator.store.connection import ReadConnection

    made: list[tuple[str, Any]] = []
    original = ReadConnection.execute

    def recording(self: ReadConnection, sql: str, parameters: Any = None) -> Any:
        if sql.lstrip().upper().startswith("SELECT") and " LIMIT ?" in sql:
            made.append((sql, parameters))
        return original(self, sql, parameters)

    monkeypatch.setattr(ReadConnection, "execute", recording)
    result = run(base, *args)
    monkeypatch.undo()
    assert result.exit_code == 0, result.output
    assert made, "the command made no listing query"
    with sqlite3.connect(base[1]) as conn:
        return [
            str(row[3])
            for sql, params in made
            for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params or []).fetchall()
        ]


def test_listings_walk_an_index_instead_of_sorting_the_table(
    base: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    items = plans_of(base, monkeypatch, "items", "--sort", "published", "--limit", "20")
    assert "SCAN i USING INDEX items_published" in items, items
    assert not any("TEMP B-TREE FOR ORDER BY" in p for p in items), items
    assert not any(p.startswith("SCAN sightings") for p in items), items  # feeds per row
    bounded = plans_of(
        base, monkeypatch, "items", "--sort", "published", "--since", "2026-11-21", "--until", "1d"
    )
    assert any(
        "SEARCH i USING INDEX items_published (published_at>? AND published_at<?)" in p
        for p in bounded
    ), bounded
    first = plans_of(base, monkeypatch, "stories", "--sort", "first_seen")
    assert "SCAN s USING INDEX stories_first_seen" in first, first
    dated_stories = plans_of(base, monkeypatch, "stories", "--sort", "published")
    assert "SCAN lead USING INDEX items_published" in dated_stories, dated_stories
    assert any("SEARCH s USING INDEX stories_lead (lead_item_id=?)" in p for p in dated_stories)
    for plans in (first, dated_stories):
        assert not any("TEMP B-TREE FOR ORDER BY" in p for p in plans), plans
