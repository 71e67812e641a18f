"""`aggregator stories merge`, `split` and `rebuild` through the CLI against a real store: an
editor's corrections hold through rebuilds, and the latest one wins."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from test_dedup import article
from test_stories import FEEDS, LATE, NOW, PARTNER, WIRE, draft, save, story_of

from aggregator.cli import cli
from aggregator.store import Store

OTHER = "https://other.example/3"


@dataclass
class Desk:
    store: Store
    base: list[str]

    def run(self, *args: str) -> Result:
        return CliRunner().invoke(cli, [*self.base, *args])

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.exit_code == 0, result.output
        return result.stdout

    def rows(self, *args: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = json.loads(self.ok(*args, "--format", "json"))
        return found

    def item(self, url: str) -> int:
        return int(self.store.execute("SELECT id FROM items WHERE url = ?", [url])[0][0])

    def count(self, table: str) -> int:
        return int(self.store.execute(f"SELECT count(*) FROM {table}")[0][0])


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[Desk]:
    db = tmp_path / "desk.db"
    store = Store.open(str(db))
    store.sync_feeds(FEEDS, now=NOW)
    config = tmp_path / "feeds.yaml"
    config.write_text(
        "feeds:\n"
        + "".join(
            f"  - name: {f.name}\n    url: {f.url}\n    priority: {f.priority}\n" for f in FEEDS
        )
    )
    yield Desk(store, ["--config", str(config), "--db", str(db)])
    store.close()


def two_stories(desk: Desk) -> tuple[int, int]:
    """A partner's story first, then a different wire story: (partner's, wire's)."""
    save(desk.store, "partner", draft(PARTNER, text=article(2), title="Partner's account"))
    save(desk.store, "wire", draft(WIRE, text=article(1)), at=LATE)
    partner, wire = story_of(desk.store, PARTNER), story_of(desk.store, WIRE)
    assert partner < wire
    return partner, wire


def test_merge_joins_the_stories_and_rebuild_keeps_them_together(desk: Desk) -> None:
    partner, wire = two_stories(desk)
    desk.ok("stories", "rebuild")  # different texts: a rebuild alone keeps them apart
    assert story_of(desk.store, PARTNER) != story_of(desk.store, WIRE)

    said = desk.ok("stories", "merge", str(wire), str(partner))
    wire_item = desk.item(WIRE)
    assert f"story {wire} joined story {partner}: 2 items, led by item {wire_item}" in said
    # One story, with the lower number; its lead is the wire's copy though the partner's
    # came first, as placement chooses it.
    (story,) = desk.rows("stories")
    assert (story["story"], story["items"], story["sources"], story["lead_url"]) == (
        partner,
        2,
        2,
        WIRE,
    )
    assert story["title"] == "Libya government reaches accord with armed group"
    shown = desk.rows("stories", "show", str(partner))
    assert [(i["item"], i["lead"], i["signal"]) for i in shown] == [
        (wire_item, 1, "editor"),
        (desk.item(PARTNER), 0, None),
    ]

    rebuilt = desk.ok("stories", "rebuild")
    assert "2 items in 1 stories (1 by an editor's merge)" in rebuilt
    assert story_of(desk.store, WIRE) == story_of(desk.store, PARTNER) == partner
    assert desk.count("stories") == 1


def test_a_split_after_a_merge_wins_through_rebuild(desk: Desk) -> None:
    partner, wire = two_stories(desk)
    desk.ok("stories", "merge", str(partner), str(wire))
    desk.ok("stories", "split", str(desk.item(WIRE)))
    assert story_of(desk.store, WIRE) != story_of(desk.store, PARTNER)
    assert desk.count("story_merges") == 0  # a merge of one is no merge

    desk.ok("stories", "rebuild")
    assert story_of(desk.store, WIRE) != story_of(desk.store, PARTNER)
    assert desk.count("stories") == 2


def test_a_merge_after_a_split_wins_through_rebuild(desk: Desk) -> None:
    save(desk.store, "wire", draft(WIRE, text=article(1)))
    save(desk.store, "partner", draft(PARTNER, text=article(1), title="Partner"), at=LATE)
    assert story_of(desk.store, WIRE) == story_of(desk.store, PARTNER)
    desk.ok("stories", "split", str(desk.item(PARTNER)))
    desk.ok("stories", "rebuild")
    wire, partner = story_of(desk.store, WIRE), story_of(desk.store, PARTNER)
    assert wire != partner  # the split holds: the texts alone would join them

    desk.ok("stories", "merge", str(partner), str(wire))
    assert story_of(desk.store, WIRE) == story_of(desk.store, PARTNER) == wire
    queried = desk.rows("query", "select count(*) as n from story_splits")
    assert queried == [{"n": 0}]  # the merge forgot the split between them
    desk.ok("stories", "rebuild")
    assert story_of(desk.store, WIRE) == story_of(desk.store, PARTNER) == wire
    # A copy arriving later joins the one story, as it would have before the split.
    save(desk.store, "other", draft(OTHER, text=article(1)), at="2026-11-27T13:00:00Z")
    assert story_of(desk.store, OTHER) == wire
    assert desk.count("stories") == 1


def test_three_stories_merge_into_the_lowest_and_stay_one(desk: Desk) -> None:
    partner, wire = two_stories(desk)
    save(desk.store, "other", draft(OTHER, text=article(3), title="Third"), at=LATE)
    other = story_of(desk.store, OTHER)
    said = desk.ok("stories", "merge", str(other), str(wire), str(partner))
    assert f"stories {wire}, {other} joined story {partner}: 3 items" in said
    desk.ok("stories", "rebuild")
    assert {story_of(desk.store, url) for url in (WIRE, PARTNER, OTHER)} == {partner}
    (story,) = desk.rows("stories")
    assert (story["items"], story["feeds"]) == (3, "other,partner,wire")
    # One of them split out again: the other two stay merged, it stays apart.
    desk.ok("stories", "split", str(desk.item(OTHER)))
    desk.ok("stories", "rebuild")
    assert story_of(desk.store, WIRE) == story_of(desk.store, PARTNER) == partner
    assert story_of(desk.store, OTHER) != partner
    assert desk.count("story_merges") == 2


def test_merging_what_is_not_there_or_a_story_with_itself_is_an_error(desk: Desk) -> None:
    partner, wire = two_stories(desk)
    unknown = desk.run("stories", "merge", str(partner), "998", "999")
    assert unknown.exit_code == 2, unknown.output
    assert "there is no story 998, 999; `aggregator stories` lists them" in unknown.stderr
    itself = desk.run("stories", "merge", str(wire), str(wire))
    assert itself.exit_code == 2, itself.output
    assert f"story {wire} is named more than once: a story cannot be merged with itself" in (
        itself.stderr
    )
    alone = desk.run("stories", "merge", str(wire))
    assert alone.exit_code == 2
    assert "name two or more stories to merge" in alone.stderr
    not_a_number = desk.run("stories", "merge", str(wire), "forty-two")
    assert not_a_number.exit_code == 2
    assert "'forty-two' is not a valid integer" in not_a_number.stderr
    # Nothing changed.
    assert desk.count("stories") == 2
    assert desk.count("story_merges") == 0
