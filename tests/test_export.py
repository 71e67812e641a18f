"""`aggregator export`: a feed for republishing, one entry per story, sanitised fields only,
and a contract a desk can rely on (unknown names refused, atomic writes, rel=self)."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from xml.etree import ElementTree as ET

import feedparser
import pytest
from click.testing import CliRunner
from store_helpers import ok_record, ok_update, save_refresh

from aggregator.cli import cli
from aggregator.models import Article, Entry, FeedConfig, Source, StoryEntry
from aggregator.parse.feed import parse_feed
from aggregator.publish.syndication import Channel, render_feed
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
    summary_html=None,
    text="Talks resume in Geneva",
    html=HOSTILE,
    author="Wire desk",
    published_at="2026-11-27T08:00:00Z",
    first_seen_at="2026-11-27T08:05:00Z",
    last_seen_at="2026-11-27T09:00:00Z",
    sources=(
        Source("tass-en", "https://tass.example/1", "2026-11-27T08:05:00Z"),
        Source("partner", "https://partner.example/copy", "2026-11-27T08:30:00Z"),
    ),
    tags=("wire", "world"),
)
LINK = "https://desk.example/feeds/stories.atom"
CHANNEL = Channel(title="Newsroom stories", link=LINK, updated=NOW, created_on="2026-11-01")
STORY_ID = "tag:desk.example,2026-11-01:story:7"


@pytest.mark.parametrize("fmt", ["atom", "rss", "json"])
def test_exports_round_trip_and_carry_only_sanitised_html(fmt: str) -> None:
    text = render_feed([ENTRY], fmt, CHANNEL)
    for hostile in ("<script", "onclick", "javascript:", "onerror"):
        assert hostile not in text
    parsed = parse_feed(text.encode(), url=CHANNEL.link)
    assert parsed.warning is None
    (entry,) = parsed.entries
    assert entry.title == "Talks <resume> & continue"
    assert entry.link == "https://news.example/talks"
    assert entry.guid == STORY_ID
    assert set(entry.tags) == {"wire", "world"}
    assert entry.author == "Wire desk"
    body = entry.content_html or ""
    assert "Talks resume in" in body
    assert "https://news.example/pic.jpg" in body  # relative URLs made absolute
    # The sources, earliest first, with their links.
    assert body.index("tass-en") < body.index("partner")
    assert "https://partner.example/copy" in body


def test_atom_names_itself_and_the_sources() -> None:
    root = ET.fromstring(render_feed([ENTRY], "atom", CHANNEL))
    ns = {"a": "http://www.w3.org/2005/Atom"}
    assert [(x.get("rel"), x.get("href")) for x in root.findall("a:link", ns)] == [("self", LINK)]
    (entry,) = root.findall("a:entry", ns)
    via = [(x.get("title"), x.get("href")) for x in entry.findall("a:link[@rel='via']", ns)]
    assert via == [
        ("tass-en", "https://tass.example/1"),
        ("partner", "https://partner.example/copy"),
    ]
    assert entry.findtext("a:id", namespaces=ns) == STORY_ID


def test_the_entry_id_is_the_storys_whoever_leads_it() -> None:
    led_by_partner = replace(ENTRY, url="https://partner.example/copy", title="Partner's title")
    first = feedparser.parse(render_feed([ENTRY], "atom", CHANNEL)).entries[0]
    second = feedparser.parse(render_feed([led_by_partner], "atom", CHANNEL)).entries[0]
    assert first.id == second.id == STORY_ID


def test_atom_and_rss_are_well_formed_for_feedparser() -> None:
    for fmt in ("atom", "rss"):
        parsed = feedparser.parse(render_feed([ENTRY], fmt, CHANNEL))
        assert not parsed.bozo, (fmt, parsed.get("bozo_exception"))
        assert parsed.version in ("atom10", "rss20")


def test_json_feed_content_falls_back_to_the_summary() -> None:
    document = json.loads(render_feed([ENTRY], "json", CHANNEL))
    assert document["version"] == "https://jsonfeed.org/version/1.1"
    assert document["feed_url"] == LINK
    (item,) = document["items"]
    assert item["date_modified"] == "2026-11-27T09:00:00Z"
    assert [s["feed"] for s in item["_aggregator"]["sources"]] == ["tass-en", "partner"]
    no_text = json.loads(render_feed([replace(ENTRY, html=None, text=None)], "json", CHANNEL))
    assert no_text["items"][0]["content_html"].startswith("<p>Delegations met again.</p>")


def test_control_characters_and_double_escaped_html_never_reach_the_output() -> None:
    nasty = replace(
        ENTRY,
        title="Alert \x1b[31mred\x07 \ud800 title",
        summary="&lt;script&gt;alert(1)&lt;/script&gt; teaser",
        html=None,
        summary_html="&lt;img src=x onerror=alert(document.domain)&gt;",
        author="Desk\x0c",
    )
    for fmt in ("atom", "rss"):
        text = render_feed([nasty], fmt, CHANNEL)
        ET.fromstring(text)  # expat accepts the whole document
        assert not feedparser.parse(text).bozo
        assert "<script" not in text
        assert "<img" not in text
    document = json.loads(render_feed([nasty], "json", CHANNEL))
    assert document["items"][0]["title"] == "Alert [31mred title"


# -- the command -----------------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Two desks: the wire (tagged wire, world) and a partner (tagged world); story 1 carried
    by both, story 2 by the wire alone."""
    path = tmp_path / "news.db"
    store = Store.open(str(path))
    store.sync_feeds(
        [
            FeedConfig("wire", "https://wire.example/rss", priority=10, tags=("wire", "world")),
            FeedConfig("partner", "https://partner.example/rss", tags=("world",)),
        ],
        now=NOW,
    )

    def entry(n: int, link: str) -> Entry:
        return Entry(
            guid=f"g{n}",
            link=link,
            title=f"Story {n}",
            summary="s",
            content_html=None,
            author=None,
            published_at=NOW,
            updated_at=None,
        )

    wire = [
        replace(d, article=Article(text="t", html=HOSTILE), extract_status="ok")
        for d in drafts_for(
            [entry(1, "https://news.example/1"), entry(2, "https://news.example/2")]
        )
    ]
    save_refresh(store, "wire", wire, ok_record("wire", NOW), ok_update(NOW))
    partner = drafts_for([entry(3, "https://news.example/1")])  # the same link: story 1
    later = "2026-11-27T10:30:00Z"
    save_refresh(store, "partner", partner, ok_record("partner", later), ok_update(later))
    store.close()
    return path


def export(db: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--db", str(db), "export", "--link", LINK, *args])
    return result.exit_code, result.stdout, result.stderr


def test_export_command_writes_one_entry_per_story(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "public" / "stories.xml"
    code, _, err = export(db, "--format", "rss", "--out", str(out))
    assert code == 0, err
    assert "2 stories written" in err
    text = out.read_text()
    parsed = feedparser.parse(text)
    assert sorted(e.title for e in parsed.entries) == ["Story 1", "Story 2"]
    assert "<script" not in text
    assert oct(out.stat().st_mode & 0o777) == "0o644"
    assert [p.name for p in out.parent.iterdir()] == ["stories.xml"]  # no temporary left


def test_export_by_tag_and_by_number_of_sources(db: Path) -> None:
    _, world, _ = export(db, "--tag", "world", "--format", "json")
    assert sorted(i["title"] for i in json.loads(world)["items"]) == ["Story 1", "Story 2"]
    _, shared, _ = export(db, "--min-sources", "2", "--format", "json")
    (item,) = json.loads(shared)["items"]
    assert item["title"] == "Story 1"
    assert sorted(item["tags"]) == ["wire", "world"]
    assert [s["feed"] for s in item["_aggregator"]["sources"]] == ["wire", "partner"]


@pytest.mark.parametrize(
    ("option", "typo", "suggestion"), [("--feed", "wier", "'wire'"), ("--tag", "wrld", "'world'")]
)
def test_an_unknown_name_is_refused_and_the_published_file_kept(
    db: Path, tmp_path: Path, option: str, typo: str, suggestion: str
) -> None:
    out = tmp_path / "desk.atom"
    out.write_text("the feed as published before")
    code, _, err = export(db, option, typo, "--out", str(out))
    assert code == 2
    assert f"did you mean {suggestion}" in err
    assert out.read_text() == "the feed as published before"


def test_an_export_without_a_publish_link_says_how_to_give_one(db: Path) -> None:
    result = CliRunner().invoke(cli, ["--db", str(db), "export"])
    assert result.exit_code == 2
    assert "settings.publish.link" in result.stderr
    assert "example.org" not in result.stdout


def test_the_publish_link_comes_from_feeds_yaml(db: Path, tmp_path: Path) -> None:
    config = tmp_path / "feeds.yaml"
    config.write_text(
        "settings:\n  publish:\n    link: https://desk.example/all.atom\n    title: Desk\n"
        "feeds:\n  - name: wire\n    url: https://wire.example/rss\n"
    )
    result = CliRunner().invoke(cli, ["--config", str(config), "--db", str(db), "export"])
    assert result.exit_code == 0, result.stderr
    parsed = feedparser.parse(result.stdout)
    assert parsed.feed.title == "Desk"
    assert [link.href for link in parsed.feed.links if link.rel == "self"] == [
        "https://desk.example/all.atom"
    ]


def test_a_failed_write_leaves_the_old_file_whole(db: Path, tmp_path: Path) -> None:
    """The export runs with a 128 KB file size limit (room for SQLite's shared memory file):
    writing the 300 KB feed fails part way, as on a full disk."""
    store = Store.open(str(db))
    long_read = Article(text="t", html="<p>" + "Geneva talks resumed today. " * 2000 + "</p>")
    drafts = [
        replace(d, article=long_read, extract_status="ok")
        for d in drafts_for(
            Entry(f"long{n}", f"https://news.example/long/{n}", f"Long read {n}", "s", None,
                  None, NOW, None)
            for n in range(6)
        )
    ]  # fmt: skip
    save_refresh(store, "wire", drafts, ok_record("wire", NOW), ok_update(NOW))
    store.close()
    out = tmp_path / "stories.atom"
    out.write_text("the feed as published before")

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error from write(), not a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (128 * 1024, 128 * 1024))

    done = subprocess.run(
        [sys.executable, "-m", "aggregator", "--db", str(db), "export", "--link", LINK,
         "--out", str(out)],
        capture_output=True, text=True, preexec_fn=small_files, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"cannot write {out}" in done.stderr
    assert out.read_text() == "the feed as published before"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
