"""feeds.yaml's tags are stored with the feeds and filter every listing: a desk's view."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from store_helpers import ok_record, ok_update, save_refresh

from aggregator.cli import cli
from aggregator.models import Entry, FeedConfig
from aggregator.store import Store
from aggregator.stories.identity import drafts_for

NOW = "2026-11-27T10:00:00Z"
FEEDS = [
    FeedConfig("tass-en", "https://tass.example/rss", priority=10, tags=("wire", "world")),
    FeedConfig("sport-desk", "https://sport.example/rss", tags=("sport",)),
]


def entry(n: int, title: str) -> Entry:
    return Entry(f"g{n}", f"https://news.example/{n}", title, "Teaser.", None, None, NOW, None)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "news.db"
    store = Store.open(str(path))
    store.sync_feeds(FEEDS, now=NOW)
    for feed, n, title in (("tass-en", 1, "Talks in Geneva"), ("sport-desk", 2, "Cup final")):
        save_refresh(
            store, feed, drafts_for([entry(n, title)]), ok_record(feed, NOW), ok_update(NOW)
        )
    store.close()
    return path


def run(db: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--db", str(db), *args])
    return result.exit_code, result.stdout, result.stderr


def titles(output: str, key: str = "title") -> list[str]:
    return sorted(row[key] for row in json.loads(output))


def test_tags_follow_feeds_yaml(db: Path) -> None:
    store = Store.open(str(db))
    assert sorted(store.execute("SELECT feed, tag FROM feed_tags")) == [
        ("sport-desk", "sport"), ("tass-en", "wire"), ("tass-en", "world")
    ]  # fmt: skip
    store.sync_feeds([replace(FEEDS[0], tags=("wire",)), FEEDS[1]], now=NOW)
    assert sorted(store.execute("SELECT feed, tag FROM feed_tags")) == [
        ("sport-desk", "sport"), ("tass-en", "wire")
    ]  # fmt: skip
    store.close()


@pytest.mark.parametrize(
    ("command", "key"),
    [(["items"], "title"), (["stories"], "title"), (["search", "Geneva OR Cup"], "title")],
)
def test_every_listing_filters_by_tag(db: Path, command: list[str], key: str) -> None:
    code, everything, err = run(db, *command, "--format", "json")
    assert code == 0, err
    assert titles(everything, key) == ["Cup final", "Talks in Geneva"]
    _, world, _ = run(db, *command, "--tag", "world", "--format", "json")
    assert titles(world, key) == ["Talks in Geneva"]
    _, sport, _ = run(db, *command, "--tag", "sport", "--format", "json")
    assert titles(sport, key) == ["Cup final"]


@pytest.mark.parametrize("command", [["items"], ["stories"], ["search", "Geneva"]])
@pytest.mark.parametrize(
    ("option", "typo", "says"),
    [("--tag", "wrld", "there is no tag 'wrld'; did you mean 'world'?"),
     ("--feed", "tass", "there is no feed 'tass'; did you mean 'tass-en'?")],
)  # fmt: skip
def test_an_unknown_tag_or_feed_is_an_error_not_an_empty_list(
    db: Path, command: list[str], option: str, typo: str, says: str
) -> None:
    code, out, err = run(db, *command, option, typo)
    assert code == 2
    assert says in err
    assert out == ""
