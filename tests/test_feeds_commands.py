"""`aggregator feeds add/remove/pause/resume/import/export/discover`: feeds.yaml edited in
place (every other byte kept), refused edits that leave it untouched, OPML in and out (hostile
files refused at once), discovery against a real server, and a running daemon that reloads
at once when told.

Nothing sleeps to wait for timing: daemon tests poll the database with a bounded deadline.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from daemon_helpers import config_text, query, scalar, spawn, terminate, wait_for
from feeds_builder import atom, json_feed, rss
from localserver import LocalServer

from aggregator.cli import cli
from aggregator.config.loader import load_config
from aggregator.models import FeedConfig

COMMENTED = """\
# The desk's feeds. Durations: 90s, 15m, 2h, 1d.
settings:
  interval: 15m
  user_agent: "aggregator/0.1 (+https://desk.example/contact)"   # who we are

feeds:
  # Wire copy first.
  - name: tass-en
    url: https://tass.com/rss/v2.xml
    interval: 10m
    priority: 10
    tags: [wire, russia]

  # The partner sends full text.
  - name: partner-x
    url: 'https://partner.example/feed.xml'
    extract: false   # no page fetch

  - name: un-news
    url: https://news.un.org/feed/subscribe/en/news/all/rss.xml
    tags: [world, un]

  # - name: old-one
  #   url: https://old.example/rss
"""


class Desk:
    """One feeds.yaml and one store, driven through the CLI."""

    def __init__(
        self, tmp_path: Path, text: str | None = COMMENTED, *, config: Path | None = None
    ) -> None:
        self.config = config or tmp_path / "feeds.yaml"
        self.db = tmp_path / "news.db"
        if text is not None:
            self.config.write_text(text)

    def run(self, *args: str) -> Result:
        base = ["--config", str(self.config), "--db", str(self.db)]
        return CliRunner().invoke(cli, [*base, *args])

    def text(self) -> str:
        return self.config.read_text()

    def feeds(self) -> dict[str, FeedConfig]:
        return {f.name: replace(f, line=0) for f in load_config(self.config).feeds}


@pytest.fixture
def desk(tmp_path: Path) -> Desk:
    return Desk(tmp_path)


# -- editing keeps everything else ---------------------------------------------------------


def test_add_appends_in_the_files_own_layout_and_keeps_every_other_byte(desk: Desk) -> None:
    result = desk.run(
        "feeds",
        "add",
        "reuters-world",
        "https://reuters.example/world.xml",
        "--interval",
        "20m",
        "--tag",
        "world",
        "--tag",
        "yes",  # YAML 1.1 reads a bare yes as true: it must be quoted
        "--priority",
        "7",
        "--no-extract",
    )
    assert result.exit_code == 0, result.output
    added = (
        "\n"
        "  - name: reuters-world\n"
        "    url: https://reuters.example/world.xml\n"
        "    interval: 20m\n"
        "    priority: 7\n"
        "    tags: [world, 'yes']\n"
        "    extract: false\n"
    )
    expected = COMMENTED.replace("    tags: [world, un]\n", "    tags: [world, un]\n" + added)
    assert desk.text() == expected
    assert desk.feeds()["reuters-world"] == FeedConfig(
        "reuters-world",
        "https://reuters.example/world.xml",
        interval_s=1200,
        priority=7,
        tags=("world", "yes"),
        extract=False,
    )
    assert "Added reuters-world" in result.stdout
    assert f"No daemon is running on {desk.db}" in result.stdout
    assert "next `aggregator run` or `aggregator fetch`" in result.stdout


def test_remove_takes_the_feed_and_its_comment_and_nothing_else(desk: Desk) -> None:
    result = desk.run("feeds", "remove", "partner-x")
    assert result.exit_code == 0, result.output
    assert desk.text() == COMMENTED.replace(
        "\n  # The partner sends full text.\n"
        "  - name: partner-x\n"
        "    url: 'https://partner.example/feed.xml'\n"
        "    extract: false   # no page fetch\n",
        "",
    )
    assert "its items stay in the store" in result.stdout
    # The first feed goes with the comment above it, and the gap after it.
    assert desk.run("feeds", "remove", "tass-en").exit_code == 0
    assert desk.text().startswith(
        "# The desk's feeds. Durations: 90s, 15m, 2h, 1d.\nsettings:\n"
        '  interval: 15m\n  user_agent: "aggregator/0.1 (+https://desk.example/contact)"'
        "   # who we are\n\nfeeds:\n  - name: un-news\n"
    )
    # The last one: an empty list, never a null, and the closing comments stay.
    assert desk.run("feeds", "remove", "un-news").exit_code == 0
    assert desk.text().endswith(
        "\nfeeds: []\n\n  # - name: old-one\n  #   url: https://old.example/rss\n"
    )
    assert desk.feeds() == {}


def test_pause_and_resume_are_one_line_and_undo_each_other(desk: Desk) -> None:
    result = desk.run("feeds", "pause", "partner-x")
    assert result.exit_code == 0, result.output
    assert desk.text() == COMMENTED.replace(
        "    extract: false   # no page fetch\n",
        "    extract: false   # no page fetch\n    paused: true\n",
    )
    assert desk.feeds()["partner-x"].paused
    assert "Paused partner-x" in result.stdout

    again = desk.run("feeds", "pause", "partner-x")
    assert again.exit_code == 0
    assert "already paused" in again.stdout

    assert desk.run("feeds", "resume", "partner-x").exit_code == 0
    assert desk.text() == COMMENTED
    assert "not paused, nothing to resume" in desk.run("feeds", "resume", "partner-x").stdout


def test_crlf_line_ends_and_the_files_mode_are_kept(tmp_path: Path) -> None:
    desk = Desk(tmp_path)
    desk.config.write_bytes(COMMENTED.replace("\n", "\r\n").encode())
    desk.config.chmod(0o600)
    assert desk.run("feeds", "add", "dw", "https://dw.example/rss").exit_code == 0
    assert desk.run("feeds", "pause", "tass-en").exit_code == 0
    data = desk.config.read_bytes()
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert b"  - name: dw\r\n    url: https://dw.example/rss\r\n" in data
    assert b"    tags: [wire, russia]\r\n    paused: true\r\n" in data
    assert stat.S_IMODE(desk.config.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["feeds.yaml"]  # no temporary left


def test_a_symlinked_feeds_yaml_stays_a_link(tmp_path: Path) -> None:
    real = tmp_path / "etc" / "feeds.yaml"
    real.parent.mkdir()
    real.write_text(COMMENTED)
    link = tmp_path / "feeds.yaml"
    link.symlink_to(real)
    desk = Desk(tmp_path, None, config=link)
    assert desk.run("feeds", "remove", "un-news").exit_code == 0
    assert link.is_symlink()
    assert "un-news" not in real.read_text()


def test_add_starts_a_feeds_yaml_where_there_is_none(tmp_path: Path) -> None:
    desk = Desk(tmp_path, None)
    assert desk.run("feeds", "add", "wire", "https://wire.example/rss").exit_code == 0
    assert desk.text() == "feeds:\n  - name: wire\n    url: https://wire.example/rss\n"
    # Settings and no list yet: the list is started under them.
    desk.config.write_text("settings:\n  interval: 30m\n")
    assert desk.run("feeds", "add", "wire", "https://wire.example/rss").exit_code == 0
    assert desk.text() == (
        "settings:\n  interval: 30m\nfeeds:\n  - name: wire\n    url: https://wire.example/rss\n"
    )


COMPACT = """\
feeds:
- name: a
  url: https://a.example/rss  # the first

# b: the second
- name: b
  url: https://b.example/rss
# closing remark"""


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ("add", "c", "https://c.example/rss"),
            COMPACT.replace(
                "  url: https://b.example/rss\n",
                "  url: https://b.example/rss\n\n- name: c\n  url: https://c.example/rss\n",
            ),
        ),
        (
            ("pause", "a"),
            COMPACT.replace("# the first\n", "# the first\n  paused: true\n"),
        ),
        (
            ("remove", "b"),
            # The blank line and the comment above b go with it; the closing one stays.
            COMPACT.replace("\n# b: the second\n- name: b\n  url: https://b.example/rss\n", ""),
        ),
        (
            ("remove", "a"),
            COMPACT.replace("- name: a\n  url: https://a.example/rss  # the first\n\n", ""),
        ),
    ],
)
def test_a_compact_layout_is_followed_and_comments_stay_with_their_feed(
    tmp_path: Path, args: tuple[str, ...], expected: str
) -> None:
    # Dashes at the key's column, entries ending in plain values with comments after them:
    # the comment above a feed is that feed's, not the end of the one before.
    desk = Desk(tmp_path, COMPACT)
    result = desk.run("feeds", *args)
    assert result.exit_code == 0, result.output
    assert desk.text() == expected


# -- refused edits leave the file untouched ---------------------------------------------------


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("add", "BBC World", "https://bbc.example/rss"), "for example 'bbc-world'"),
        (("add", "wire-", "https://w.example/rss"), "cannot name a feed"),
        (
            ("add", "tass-en", "https://other.example/rss"),
            "already a feed named 'tass-en' ({config}:8, https://tass.com/rss/v2.xml)",
        ),
        (
            ("add", "tass-2", "HTTPS://TASS.com/rss/v2.xml?utm_source=x"),
            "feed 'tass-en' ({config}:8) already polls https://tass.com/rss/v2.xml",
        ),
        (("add", "wire", "ftp://wire.example/rss"), "is not an http(s) address"),
        (("add", "wire", "https://w.example/rss", "--interval", "10x"), "'10x' is not a duration"),
        (("add", "wire", "https://w.example/rss", "--interval", "1m"), "settings.min_interval"),
        (("add", "wire", "https://w.example/rss", "--priority", "9999999"), "out of range"),
        (("remove", "tass-em"), "there is no feed 'tass-em'; did you mean 'tass-en'?"),
        (("pause", "partner"), "did you mean 'partner-x'?"),
        (("resume", "un"), "there is no feed 'un'"),
    ],
)
def test_a_refused_edit_exits_2_and_leaves_the_file_untouched(
    desk: Desk, args: tuple[str, ...], says: str
) -> None:
    before = desk.config.stat()
    result = desk.run("feeds", *args)
    assert result.exit_code == 2, result.output
    assert says.format(config=desk.config) in result.stderr
    assert desk.text() == COMMENTED
    assert desk.config.stat().st_mtime_ns == before.st_mtime_ns
    assert sorted(p.name for p in desk.config.parent.iterdir()) == ["feeds.yaml"]


def test_the_loader_has_the_last_word_before_anything_is_written(desk: Desk) -> None:
    result = desk.run("feeds", "add", "wire", "https://w.example/rss", "--interval", "1m")
    assert result.exit_code == 2
    assert "would not be valid, so nothing was written" in result.stderr
    assert "(feed 'wire'): interval: 1m is shorter than settings.min_interval" in result.stderr


def test_a_feeds_yaml_with_problems_is_not_edited(tmp_path: Path) -> None:
    desk = Desk(tmp_path, COMMENTED.replace("    interval: 10m", "    intreval: 10m"))
    result = desk.run("feeds", "add", "wire", "https://wire.example/rss")
    assert result.exit_code == 2
    assert "has problems; fix them first" in result.stderr
    assert "did you mean 'interval'?" in result.stderr
    assert "intreval" in desk.text()
    assert "wire.example" not in desk.text()


# -- paused feeds ---------------------------------------------------------------------------


def wire_and_partner(server: LocalServer, tmp_path: Path) -> Desk:
    """A desk of two feeds served by `server`, one entry each, no article pages."""
    for name in ("wire", "partner"):
        server.add(
            f"/{name}.xml", rss([{"title": name, "link": server.url(f"/p/{name}"), "guid": name}])
        )
    return Desk(
        tmp_path,
        "settings:\n  allow_private_networks: true\n  host_gap: 0\n  extract: false\nfeeds:\n"
        f"  - name: wire\n    url: {server.url('/wire.xml')}\n"
        f"  - name: partner\n    url: {server.url('/partner.xml')}\n",
    )


def test_a_paused_feed_is_not_fetched_and_shows_as_paused(
    server: LocalServer, tmp_path: Path
) -> None:
    desk = wire_and_partner(server, tmp_path)
    assert desk.run("feeds", "pause", "partner").exit_code == 0
    fetched = desk.run("fetch", "--workers", "0")
    assert fetched.exit_code == 0, fetched.output
    assert "1 feeds, 1 new items, 0 failed" in fetched.stdout
    assert (server.hits("/wire.xml"), server.hits("/partner.xml")) == (1, 0)
    named = desk.run("fetch", "partner", "--workers", "0")
    assert named.exit_code == 2
    assert "`aggregator feeds resume partner` first" in named.stderr

    rows = {r["name"]: r for r in json.loads(desk.run("feeds", "--json").stdout)}
    assert rows["partner"]["state"] == "paused"
    assert "aggregator feeds resume partner" in rows["partner"]["advice"]
    table = desk.run("feeds").stdout
    assert "│ partner" in table
    assert "paused" in next(line for line in table.splitlines() if "│ partner" in line)

    assert desk.run("feeds", "resume", "partner").exit_code == 0
    assert desk.run("fetch", "--workers", "0").exit_code == 0
    assert server.hits("/partner.xml") == 1
    rows = {r["name"]: r for r in json.loads(desk.run("feeds", "--json").stdout)}
    assert rows["partner"]["state"] == "ok"


def test_a_removed_feed_shows_as_disabled_and_never_due(
    server: LocalServer, tmp_path: Path
) -> None:
    desk = wire_and_partner(server, tmp_path)
    assert desk.run("fetch", "--workers", "0").exit_code == 0
    assert desk.run("feeds", "remove", "partner").exit_code == 0
    # Before any fetch or run has recorded the removal, the listing already says it.
    rows = {r["name"]: r for r in json.loads(desk.run("feeds", "--json").stdout)}
    assert (rows["partner"]["state"], rows["partner"]["next_fetch_at"]) == ("disabled", None)
    assert "Not in feeds.yaml" in rows["partner"]["advice"]
    assert rows["wire"]["state"] == "ok"
    assert rows["wire"]["next_fetch_at"] is not None
    line = next(x for x in desk.run("feeds").stdout.splitlines() if "│ partner" in x)
    assert "disabled" in line
    assert " in " not in line.split("│")[7]  # the next-due cell


def test_feeds_takes_the_formats_of_the_other_listings(server: LocalServer, tmp_path: Path) -> None:
    server.add("/wire.xml", rss([{"title": "One", "link": server.url("/p/1"), "guid": "1"}]))
    desk = Desk(
        tmp_path,
        "settings:\n  allow_private_networks: true\n  extract: false\nfeeds:\n"
        f"  - name: wire\n    url: {server.url('/wire.xml')}\n",
    )
    assert desk.run("fetch", "--workers", "0").exit_code == 0
    as_json = desk.run("feeds", "--json")
    assert desk.run("feeds", "--format", "json").stdout == as_json.stdout
    assert json.loads(as_json.stdout)[0]["name"] == "wire"
    csv_lines = desk.run("feeds", "--format", "csv").stdout.splitlines()
    assert csv_lines[0].split(",") == list(json.loads(as_json.stdout)[0])
    assert csv_lines[1].startswith("wire,")
    both = desk.run("feeds", "--json", "--format", "csv")
    assert both.exit_code == 2
    assert "--json is --format json" in both.stderr


# -- OPML -------------------------------------------------------------------------------------


def test_export_then_import_into_an_empty_file_gives_the_same_feeds(
    desk: Desk, tmp_path: Path
) -> None:
    assert desk.run("feeds", "pause", "un-news").exit_code == 0
    exported = desk.run("feeds", "export", "--format", "opml")
    assert exported.exit_code == 0
    root = ET.fromstring(exported.stdout)
    assert (root.tag, root.get("version")) == ("opml", "2.0")
    assert [o.get("xmlUrl") for o in root.iter("outline")] == [
        "https://tass.com/rss/v2.xml",
        "https://partner.example/feed.xml",
        "https://news.un.org/feed/subscribe/en/news/all/rss.xml",
    ]
    opml = tmp_path / "desk.opml"
    written = desk.run("feeds", "export", "--out", str(opml))
    assert "3 feeds written to" in written.stderr
    assert len(list(ET.parse(opml).getroot().iter("outline"))) == 3

    (tmp_path / "other").mkdir()
    other = Desk(tmp_path / "other", "")
    imported = other.run("feeds", "import", str(opml))
    assert imported.exit_code == 0, imported.output
    assert "Added 3 feeds" in imported.stdout
    assert other.feeds() == desk.feeds()
    # Again: every address is there already, and nothing changes.
    before = other.text()
    again = other.run("feeds", "import", str(opml))
    assert again.exit_code == 0
    assert "Skipped https://tass.com/rss/v2.xml: already in feeds.yaml as 'tass-en'" in again.stdout
    assert "Nothing added" in again.stdout
    assert other.text() == before


def test_export_escapes_every_attribute(tmp_path: Path) -> None:
    desk = Desk(
        tmp_path,
        "feeds:\n  - name: desk\n    url: https://d.example/rss?a=1&b=2\n"
        '    tags: [\'R&D "desk" <x>\', "it\'s"]\n',
    )
    exported = desk.run("feeds", "export")
    assert exported.exit_code == 0
    outline = next(ET.fromstring(exported.stdout).iter("outline"))
    assert outline.get("xmlUrl") == "https://d.example/rss?a=1&b=2"
    assert outline.get("category") == 'R&D "desk" <x>,it\'s'


NESTED_OPML = """<?xml version="1.0" encoding="UTF-8"?>
<opml version="1.0">
  <head><title>From another reader</title></head>
  <body>
    <outline text="World News">
      <outline text="BBC World" type="rss" xmlUrl="https://feeds.bbci.co.uk/news/world/rss.xml"/>
      <outline text="Europe">
        <outline title="BBC World" xmlUrl="https://bbc.example/europe.xml" category="/Regions/EU"/>
      </outline>
    </outline>
    <outline text="\u0422\u0410\u0421\u0421" xmlUrl="https://www.tass.ru/rss/v2.xml"/>
    <outline text="Wire again" xmlUrl="https://TASS.com/rss/v2.xml?utm_source=reader"/>
    <outline text="Gopher" xmlUrl="gopher://old.example/feed"/>
    <outline text="Twice" xmlUrl="https://feeds.bbci.co.uk/news/world/rss.xml"/>
    <outline text="Odd values" xmlUrl="https://odd.example/rss" interval="1m"
             priority="99999999999" paused="maybe" extract="false"/>
  </body>
</opml>
"""


def test_import_makes_names_and_tags_and_reports_what_it_skipped(
    desk: Desk, tmp_path: Path
) -> None:
    opml = tmp_path / "reader.opml"
    opml.write_text(NESTED_OPML)
    result = desk.run("feeds", "import", str(opml))
    assert result.exit_code == 0, result.output
    feeds = desk.feeds()
    assert feeds["bbc-world"].tags == ("world-news",)
    assert feeds["bbc-world-2"].tags == ("world-news", "europe", "regions", "eu")
    assert feeds["tass-ru"].url == "https://www.tass.ru/rss/v2.xml"  # no Latin title: the host
    # Values feeds.yaml would refuse are left out, each with a note; the feed comes in.
    assert feeds["odd-values"] == FeedConfig("odd-values", "https://odd.example/rss", extract=False)
    assert "Note: odd-values: interval '1m' left out (shorter than settings.min_interval)" in (
        result.stdout
    )
    assert "Note: odd-values: priority '99999999999' left out (not from" in result.stdout
    assert "Note: odd-values: paused 'maybe' left out (not true or false)" in result.stdout
    assert len(feeds) == 7
    out = result.stdout
    assert (
        "Skipped https://TASS.com/rss/v2.xml?utm_source=reader: already in feeds.yaml as 'tass-en'"
        in out
    )
    assert "Skipped gopher://old.example/feed: not an http(s) address" in out
    assert "listed before (line 6), imported as 'bbc-world'" in out
    # Appended after the last feed, before the list's closing comments; the rest as it was.
    head, tail = COMMENTED.split("\n  # - name: old-one")
    assert desk.text().startswith(head + "\n  - name: bbc-world\n")
    assert desk.text().endswith("\n\n  # - name: old-one" + tail)


BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE opml [\n <!ENTITY lol "lol">\n'
    + "".join(
        f' <!ENTITY lol{n} "{("&lol%s;" % (n - 1 if n > 1 else "")) * 10}">\n' for n in range(1, 10)
    )
    + ']>\n<opml version="2.0"><body><outline text="&lol9;" xmlUrl="https://a.example/"/></body></opml>\n'
)


@pytest.mark.parametrize(
    ("document", "says"),
    [
        (BILLION_LAUGHS, "declares an XML entity"),
        (
            '<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            '<opml><body><outline text="&x;" xmlUrl="https://a.example/"/></body></opml>',
            "declares an XML entity",
        ),
        (
            '<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY % p SYSTEM "{url}"> %p;]>'
            '<opml><body><outline text="a" xmlUrl="https://a.example/"/></body></opml>',
            "declares an XML entity",
        ),
        ("<opml><body>" + "<outline text='f'>" * 10_000 + "</body></opml>", "nested over 32"),
        ('<rss version="2.0"><channel/></rss>', "it looks like a feed itself"),
        ("<opml><body><outline text='a' xmlUrl='https://a.example/'>", "not well-formed XML"),
        ("<opml><body><outline text='no address'/></body></opml>", "lists no feeds"),
    ],
)
def test_hostile_or_wrong_opml_is_refused_at_once(
    desk: Desk, server: LocalServer, tmp_path: Path, document: str, says: str
) -> None:
    opml = tmp_path / "hostile.opml"
    opml.write_text(document.replace("{url}", server.url("/evil.dtd")))
    started = time.monotonic()
    result = desk.run("feeds", "import", str(opml))
    elapsed = time.monotonic() - started
    assert result.exit_code == 2, result.output
    assert says in result.stderr
    assert elapsed < 2.0
    assert desk.text() == COMMENTED
    assert server.requests == []  # no external entity or DTD was ever fetched


def test_an_opml_file_over_the_size_cap_is_refused_unread(desk: Desk, tmp_path: Path) -> None:
    from aggregator.config.opml import MAX_OPML_BYTES

    opml = tmp_path / "huge.opml"
    with opml.open("w") as out:
        out.write("<opml><body>")
        out.write("<!-- padding -->" * (MAX_OPML_BYTES // 16 + 1))
        out.write("</body></opml>")
    result = desk.run("feeds", "import", str(opml))
    assert result.exit_code == 2
    assert "is larger than 10 MB, more than any list of feeds needs" in result.stderr


# -- discover ---------------------------------------------------------------------------------


def home_page(server: LocalServer) -> str:
    return (
        "<!doctype html><html><head><title>Desk</title>"
        '<link rel="alternate" type="application/rss+xml" title="Top stories" href="/news.rss">'
        '<link rel="alternate" type="application/feed+json" href="/feed.json">'
        f'<link rel="alternate" type="application/atom+xml" href="{server.url("/gone.atom")}">'
        '<link rel="stylesheet" href="/style.css">'
        "</head><body><p>Hello</p></body></html>"
    )


def test_discover_lists_the_feeds_a_site_offers_with_the_command_to_add_each(
    server: LocalServer, tmp_path: Path
) -> None:
    server.add("/", home_page(server), content_type="text/html; charset=utf-8")
    server.add(
        "/news.rss", rss([{"title": "a", "link": "https://x.example/a"}], title="Top stories")
    )
    server.add(
        "/feed.json",
        json_feed([{"id": "1", "url": "https://x.example/1", "title": "one"}], title="Desk JSON"),
        content_type="application/feed+json",
    )
    server.add(
        "/feed", atom([{"id": "1", "title": "t", "link": "https://x.example/t"}], title="Desk Atom")
    )
    server.add("/rss", "<html><body>not a feed</body></html>", content_type="text/html")
    desk = Desk(
        tmp_path,
        "settings:\n  allow_private_networks: true\n  host_gap: 0\nfeeds:\n"
        f"  - name: desk-json\n    url: {server.url('/feed.json')}\n",
    )
    result = desk.run("feeds", "discover", server.url("/"))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"Feeds found at {server.url('/')}:" in out
    assert "Top stories: RSS 2.0, 1 entries (advertised by the page)" in out
    assert f"aggregator feeds add top-stories {server.url('/news.rss')}" in out
    assert "Desk JSON: JSON Feed 1.1, 1 entries (advertised by the page)" in out
    assert "already in feeds.yaml as desk-json" in out
    assert "Desk Atom: Atom 1.0, 1 entries (a usual feed address)" in out
    assert f"aggregator feeds add desk-atom {server.url('/feed')}" in out
    assert f"{server.url('/gone.atom')}: the server says the feed does not exist (404)" in out
    assert "/rss" not in out.replace("/news.rss", "")  # a guess that is no feed is not shown
    # Only the page and the candidates were asked for, each once.
    asked = [r.path for r in server.requests]
    assert sorted(set(asked)) == sorted(asked)
    assert "/style.css" not in asked


@pytest.mark.parametrize(
    ("head", "found"),
    [
        (
            '<link rel="alternate" type="application/rss+xml" href="/rss">',
            ["https://s.example/rss"],
        ),
        (
            '<base href="https://cdn.example/x/"><link rel="Alternate Feed"'
            ' type="application/atom+xml; charset=utf-8" href="atom.xml">',
            ["https://cdn.example/x/atom.xml"],
        ),
        (
            '<link rel="alternate" type="application/feed+json" href="f.json">'
            '<link rel="alternate" type="application/feed+json" href="/f.json">',
            ["https://s.example/f.json"],
        ),
        ('<link rel="alternate" type="text/html" hreflang="fr" href="/fr/">', []),
        ('<link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">', []),
        ('</head><body><link rel="alternate" type="application/rss+xml" href="/x">', []),
    ],
)
def test_the_feeds_a_page_advertises(head: str, found: list[str]) -> None:
    from aggregator.parse.alternates import feed_links

    page = f"<html><head><title>t</title>{head}</head><body></body></html>"
    assert [link.url for link in feed_links(page, base_url="https://s.example/")] == found


def test_discover_refuses_a_private_address_unless_allowed(
    server: LocalServer, tmp_path: Path
) -> None:
    server.add("/", home_page(server), content_type="text/html")
    desk = Desk(tmp_path, "feeds: []\n")
    result = desk.run("feeds", "discover", server.url("/"))
    assert result.exit_code == 1
    assert f"refused to fetch {server.url('/')}" in result.stderr
    assert server.requests == []


def test_discover_says_so_when_there_is_no_feed(server: LocalServer, tmp_path: Path) -> None:
    server.add("/", "<html><head><title>Nothing</title></head></html>", content_type="text/html")
    desk = Desk(tmp_path, "settings:\n  allow_private_networks: true\n  host_gap: 0\nfeeds: []\n")
    result = desk.run("feeds", "discover", server.url("/"))
    assert result.exit_code == 1
    assert f"No feed found at {server.url('/')}" in result.stdout
    assert "(8 addresses tried)" in result.stdout


# -- a running daemon -------------------------------------------------------------------------


def fetched(db: Path, feed: str) -> int:
    return int(scalar(db, "SELECT count(*) FROM fetches WHERE feed = ?", feed) or 0)


def one_feed(server: LocalServer, name: str) -> str:
    return rss([{"title": f"{name} story", "link": server.url(f"/p/{name}"), "guid": name}])


def test_sighup_reloads_at_once_not_at_the_next_tick(server: LocalServer, tmp_path: Path) -> None:
    for name in ("old", "new"):
        server.add(f"/{name}.xml", one_feed(server, name))
    config, db, log = tmp_path / "feeds.yaml", tmp_path / "news.db", tmp_path / "daemon.log"
    # A tick an hour long: only the signal can make the daemon look again today.
    config.write_text(config_text([("old", server.url("/old.xml"))], tick="1h"))
    daemon = spawn(config, db, "--log-format", "json", log=log)
    try:
        wait_for(lambda: fetched(db, "old"), what="the first feed")
        config.write_text(
            config_text(
                [("old", server.url("/old.xml")), ("new", server.url("/new.xml"))], tick="1h"
            )
        )
        daemon.send_signal(signal.SIGHUP)
        wait_for(lambda: fetched(db, "new"), what="the feed added before SIGHUP")
        assert terminate(daemon) == 0
    finally:
        terminate(daemon)
    events = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["message"] for e in events if e["message"].startswith("reloaded")] == [
        "reloaded feeds.yaml (SIGHUP)"
    ]
    assert fetched(db, "old") == 1  # no tick came: the old feed was not due again


def test_sighup_while_the_daemon_starts_does_not_end_it(
    server: LocalServer, tmp_path: Path
) -> None:
    """`feeds add` signals the pid in the lock file, which is written before the store is
    migrated and the reload handler installed: a daemon still starting must survive it."""
    server.add("/old.xml", one_feed(server, "old"))
    config, db = tmp_path / "feeds.yaml", tmp_path / "news.db"
    config.write_text(config_text([("old", server.url("/old.xml"))], tick="1h"))
    daemon = spawn(config, db, log=tmp_path / "daemon.log")
    lock = Path(f"{db}.lock")
    try:
        # As soon as the lock names the daemon: before its handlers exist.
        deadline = time.monotonic() + 30
        while not (lock.exists() and lock.read_text().strip() == str(daemon.pid)):
            assert time.monotonic() < deadline, "the daemon never wrote its pid"
            assert daemon.poll() is None, "the daemon ended before writing its pid"
        daemon.send_signal(signal.SIGHUP)
        wait_for(lambda: fetched(db, "old"), what="the first feed")
        assert daemon.poll() is None, "SIGHUP ended the daemon"
        assert terminate(daemon) == 0
    finally:
        terminate(daemon)


def test_feeds_add_is_picked_up_by_the_running_daemon(server: LocalServer, tmp_path: Path) -> None:
    for name in ("first", "second"):
        server.add(f"/{name}.xml", one_feed(server, name))
    config, db = tmp_path / "feeds.yaml", tmp_path / "news.db"
    config.write_text(config_text([("first", server.url("/first.xml"))], tick="1h"))
    daemon = spawn(config, db, log=tmp_path / "daemon.log")
    try:
        wait_for(lambda: fetched(db, "first"), what="the first feed")
        runner = CliRunner()
        base = ["--config", str(config), "--db", str(db), "feeds"]
        added = runner.invoke(cli, [*base, "add", "second", server.url("/second.xml")])
        assert added.exit_code == 0, added.output
        assert f"Told the running daemon (pid {daemon.pid}) to reload feeds.yaml" in added.stdout
        wait_for(lambda: fetched(db, "second"), what="the feed added with `feeds add`")
        paused = runner.invoke(cli, [*base, "pause", "first"])
        assert f"(pid {daemon.pid})" in paused.stdout
        wait_for(
            lambda: scalar(db, "SELECT state FROM feeds WHERE name = 'first'") == "paused",
            what="the daemon to pause the first feed",
        )
        assert terminate(daemon) == 0
    finally:
        terminate(daemon)
    assert query(db, "SELECT name, state FROM feeds ORDER BY name") == [
        ("first", "paused"),
        ("second", "ok"),
    ]


def test_a_stale_pid_in_the_lock_file_is_never_signalled(desk: Desk) -> None:
    # A process that is alive but holds no lock: a daemon killed with -9 left its pid, and
    # the number now belongs to someone else. It must not get a SIGHUP (which would end it).
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        Path(f"{desk.db}.lock").write_text(f"{bystander.pid}\n")
        result = desk.run("feeds", "add", "wire", "https://wire.example/rss")
        assert result.exit_code == 0, result.output
        assert "No daemon is running" in result.stdout
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
    assert os.path.exists(f"{desk.db}.lock")
