"""`aggregator export`: a feed for republishing, one entry per story, sanitised HTML only."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import feedparser
import pytest
from click.testing import CliRunner
from store_helpers import ok_record, ok_update, save_refresh

from aggregator.cli import cli
from aggregator.models import Article, Entry, FeedConfig
from aggregator.parse.feed import parse_feed
from aggregator.publish.syndication import Channel, StoryEntry, render
from aggregator.store import Store
from aggregator.stories.identity import drafts_for

NOW = "2026-11-27T10:00:00Z"
HOSTILE = (
    '<p onclick="steal()">Talks resume in <a href="javascript:alert(1)">Geneva</a>'
    '<script>alert(1)</script><img src="/pic.jpg" onerror="x()"></p>'
)
ENTRY = StoryEntry(
    story_id=7,
    title="Talks <resume> & continue",
    url="https://news.example/talks",
    summary="Delegations met again.",
    html=HOSTILE,
    author="Wire desk",
    published_at="2026-11-27T08:00:00Z",
    first_seen_at="2026-11-27T08:05:00Z",
    last_seen_at="2026-11-27T09:00:00Z",
    sources=("partner", "tass-en"),
)
CHANNEL = Channel(title="Newsroom stories", link="https://desk.example/", updated=NOW)


@pytest.mark.parametrize("fmt", ["atom", "rss", "json"])
def test_exports_round_trip_and_carry_only_sanitised_html(fmt: str) -> None:
    text = render([ENTRY], fmt, CHANNEL)
    for hostile in ("<script", "onclick", "javascript:", "onerror"):
        assert hostile not in text
    parsed = parse_feed(text.encode(), url=CHANNEL.link)
    assert parsed.warning is None
    (entry,) = parsed.entries
    assert entry.title == "Talks <resume> & continue"
    assert entry.link == "https://news.example/talks"
    assert entry.guid == "urn:aggregator:story:7"
    assert set(entry.tags) == {"partner", "tass-en"}
    assert entry.author == "Wire desk"
    body = entry.content_html or ""
    assert "Talks resume in" in body
    assert "https://news.example/pic.jpg" in body  # relative URLs made absolute


def test_atom_and_rss_are_well_formed_for_feedparser() -> None:
    for fmt in ("atom", "rss"):
        parsed = feedparser.parse(render([ENTRY], fmt, CHANNEL))
        assert not parsed.bozo, (fmt, parsed.get("bozo_exception"))
        assert parsed.version in ("atom10", "rss20")


def test_json_feed_is_valid_json_feed_1_1() -> None:
    document = json.loads(render([ENTRY], "json", CHANNEL))
    assert document["version"] == "https://jsonfeed.org/version/1.1"
    assert document["items"][0]["date_modified"] == "2026-11-27T09:00:00Z"
    no_html = json.loads(render([replace(ENTRY, html=None)], "json", CHANNEL))
    assert no_html["items"][0]["content_text"] == "Delegations met again."


def test_export_command_writes_one_entry_per_story(tmp_path: Path) -> None:
    db = tmp_path / "news.db"
    store = Store.open(str(db))
    store.sync_feeds([FeedConfig("wire", "https://wire.example/rss", priority=10)], now=NOW)
    entries = [
        Entry(
            guid=f"g{n}",
            link=f"https://news.example/{n}",
            title=f"Story {n}",
            summary="s",
            content_html=None,
            author=None,
            published_at=NOW,
            updated_at=None,
        )
        for n in (1, 2)
    ]
    drafts = [
        replace(d, article=Article(text="t", html=HOSTILE), extract_status="ok")
        for d in drafts_for(entries)
    ]
    save_refresh(store, "wire", drafts, ok_record("wire", NOW), ok_update(NOW))
    store.close()
    out = tmp_path / "public" / "stories.xml"
    out.parent.mkdir()
    result = CliRunner().invoke(
        cli, ["--db", str(db), "export", "--format", "rss", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "2 stories written" in result.stderr
    parsed = feedparser.parse(out.read_text())
    assert sorted(e.title for e in parsed.entries) == ["Story 1", "Story 2"]
    assert "<script" not in out.read_text()
    bad = CliRunner().invoke(cli, ["--db", str(db), "export", "--out", str(tmp_path)])
    assert bad.exit_code == 2
