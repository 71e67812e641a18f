"""`aggregator serve`, for real: the command started as a subprocess on a real store, asked
over HTTP (and once by a headless browser) for every canned query and every live feed."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import feedparser
import httpx
import pytest
from click.testing import CliRunner
from serve_helpers import build_newsroom_store
from store_helpers import ok_record, ok_update, save_refresh

from aggregator.cli import cli
from aggregator.models import Entry
from aggregator.publish.serve import not_modified, story_filter
from aggregator.store import Store
from aggregator.stories.identity import drafts_for
from aggregator.times import parse_iso

pytestmark = pytest.mark.slow

START_DEADLINE_S = 30
NEWEST = "Sat, 28 Nov 2026 10:00:00 GMT"  # the latest story's last_seen_at


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base: str
    log: Path

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.get(self.base + path, timeout=30, **kwargs)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(db: Path, log: Path, *args: str) -> Server:
    """`aggregator serve` on a free port, once it answers (or a failure with its output)."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "aggregator", *args, "--db", str(db), "serve",
             "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, cwd=db.parent,
        )  # fmt: skip
    server = Server(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + START_DEADLINE_S
    while True:
        if process.poll() is not None:
            pytest.fail(f"aggregator serve exited {process.returncode}:\n{log.read_text()}")
        try:
            if server.get("/-/versions.json").status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            pytest.fail(
                f"aggregator serve did not answer in {START_DEADLINE_S} s:\n{log.read_text()}"
            )
        time.sleep(0.05)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_newsroom_store(tmp_path_factory.mktemp("serve") / "news.db")


@pytest.fixture(scope="module")
def server(store: Path) -> Iterator[Server]:
    running = start_server(store, store.parent / "serve.log")
    yield running
    running.stop()


def rows(server: Server, query: str) -> list[dict[str, object]]:
    joiner = "&" if "?" in query else "?"
    response = server.get(f"/aggregator/{query}{joiner}_shape=array")
    assert response.status_code == 200, response.text
    found = response.json()
    assert isinstance(found, list)
    return found


# -- Datasette: the canned queries --------------------------------------------------------------


def test_latest_stories_with_their_sources(server: Server) -> None:
    latest = rows(server, "latest_stories.json")
    assert [r["title"] for r in latest][:2] == [
        "City council approves new tram line to the airport",
        "Storm Bert: ferry services cancelled across the Baltic",
    ]
    grain = next(r for r in latest if str(r["title"]).startswith("Grain exports"))
    assert grain["sources"] == 3
    assert grain["feeds"] == "partner-daily, reuters-world, tass-en"
    local = rows(server, "latest_stories.json?tag=local&min_sources=2")
    assert [r["title"] for r in local] == ["Storm Bert: ferry services cancelled across the Baltic"]


def test_one_story_says_why_each_item_joined(server: Server) -> None:
    latest = rows(server, "latest_stories.json")
    csto = next(r for r in latest if str(r["title"]).startswith("CSTO"))
    items = rows(server, f"story.json?story={csto['story']}")
    assert [(i["feeds"], i["lead"], i["joined_by"]) for i in items] == [
        ("tass-en", "lead", "first copy"),
        ("reuters-world", "", "title"),
    ]
    assert items[1]["matched_item"] == items[0]["item"]
    assert items[1]["score"] == 1.0


def test_feed_health_puts_failing_feeds_first(server: Server) -> None:
    health = rows(server, "feed_health.json")
    assert health[0]["name"] == "city-desk"
    assert health[0]["state"] == "failing"
    assert health[0]["last_error"] == "HTTP 503 Service Unavailable"
    assert {h["name"] for h in health[1:]} == {"partner-daily", "reuters-world", "tass-en"}


def test_full_text_search(server: Server) -> None:
    found = rows(server, "search.json?q=ferry")
    assert [r["title"] for r in found] == ["Storm Bert: ferry services cancelled across the Baltic"]
    assert "[ferry]" in str(found[0]["snippet"]) or "[Ferry]" in str(found[0]["snippet"])
    assert rows(server, "search.json?q=") == []


@pytest.mark.parametrize("sql", ["select fts3_tokenizer('simple')", "select rtreedepth(x'00')"])
def test_the_sql_box_refuses_what_aggregator_query_refuses(server: Server, sql: str) -> None:
    response = server.get("/aggregator.json", params={"sql": sql})
    assert response.status_code == 400
    assert "not authorized" in response.text
    assert server.get("/aggregator.json", params={"sql": "select 1 as one"}).status_code == 200


def test_the_project_metadata_is_shown(server: Server) -> None:
    page = server.get("/")
    assert "aggregator: the newsroom&#39;s store" in page.text or "newsroom's store" in page.text
    assert "/feeds/stories.atom" in page.text
    tables = server.get("/aggregator.json").json()
    assert {"latest_stories", "story", "feed_health", "search"} <= {
        q["name"] for q in tables["queries"]
    }
    stories_page = server.get("/aggregator/stories")
    assert "cluster of duplicate items" in stories_page.text


# -- the live feeds -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "media_type"),
    [
        ("atom", "application/atom+xml"),
        ("rss", "application/rss+xml"),
        ("json", "application/feed+json"),
    ],
)
def test_every_feed_format_is_served_with_validators(
    server: Server, fmt: str, media_type: str
) -> None:
    path = f"/feeds/stories.{fmt}?tag=world&limit=10"
    response = server.get(path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(media_type)
    assert response.headers["last-modified"] == NEWEST
    assert response.headers["etag"] == (
        '"' + hashlib.sha256(response.content).hexdigest()[:32] + '"'
    )
    if fmt == "json":
        document = json.loads(response.text)
        titles = [item["title"] for item in document["items"]]
        assert document["feed_url"] == server.base + path
    else:
        parsed = feedparser.parse(response.content)
        assert not parsed.bozo, parsed.get("bozo_exception")
        titles = [entry.title for entry in parsed.entries]
        assert [link.href for link in parsed.feed.links if link.rel == "self"] == [
            server.base + path
        ]
    # The desk "world": tass-en's and partner-daily's stories, latest first.
    assert titles == [
        "Storm Bert: ferry services cancelled across the Baltic",
        "Libya government reaches preliminary accord with powerful armed group",
        "Grain exports through Black Sea corridor reach record in November",
        "CSTO suspends Armenia's participation in joint military exercises",
        "Central bank holds key rate at 16% as inflation slows",
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", 6),
        ("?feed=city-desk", 2),
        ("?min_sources=2", 4),
        ("?min_sources=3", 1),
        ("?limit=2", 2),
        ("?since=2026-11-28T09:15", 4),
        ("?tag=wire&min_sources=2&limit=500", 3),
    ],
)
def test_feed_filters(server: Server, query: str, expected: int) -> None:
    response = server.get(f"/feeds/stories.json{query}")
    assert response.status_code == 200, response.text
    assert len(response.json()["items"]) == expected


def story_numbers(feed: dict[str, Any]) -> list[str]:
    """The stories of a JSON Feed, by the number its ids end in."""
    return [item["id"].rsplit(":", 1)[-1] for item in feed["items"]]


@pytest.mark.parametrize("sort", ["last_seen", "first_seen", "published"])
def test_a_feed_sorts_and_bounds_its_stories_as_export_does(
    server: Server, store: Path, sort: str
) -> None:
    """?sort= and ?until= give the stories, in the order, that `export --sort --until`
    gives (the two orders differ on this store, and the bound leaves some out)."""
    got = {}
    for until in ("", "2026-11-28T09:00"):
        bound = f"&until={until}" if until else ""
        served = server.get(f"/feeds/stories.json?sort={sort}{bound}")
        assert served.status_code == 200, served.text
        args = ["export", "--sort", sort, "--format", "json", "--link", "https://d.example/f"]
        exported = CliRunner().invoke(
            cli, ["--db", str(store), *args, *(["--until", until] if until else [])]
        )
        assert exported.exit_code == 0, exported.output
        got[until] = story_numbers(served.json())
        assert got[until] == story_numbers(json.loads(exported.output))
    assert len(got["2026-11-28T09:00"]) < len(got[""])
    by_default = story_numbers(server.get("/feeds/stories.json").json())
    assert (got[""] == by_default) == (sort == "last_seen")


def test_a_304_for_a_known_etag_and_for_an_unchanged_date(server: Server) -> None:
    first = server.get("/feeds/stories.atom")
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert modified == NEWEST
    again = server.get("/feeds/stories.atom", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    by_date = server.get("/feeds/stories.atom", headers={"If-Modified-Since": modified})
    assert by_date.status_code == 304
    assert by_date.headers["last-modified"] == modified
    # Another feed's validator, or an older date: the whole feed.
    other = server.get("/feeds/stories.atom?limit=3", headers={"If-None-Match": etag})
    assert other.status_code == 200
    assert other.headers["etag"] != etag
    older = server.get(
        "/feeds/stories.atom", headers={"If-Modified-Since": "Sat, 28 Nov 2026 09:59:59 GMT"}
    )
    assert older.status_code == 200
    assert older.content == first.content


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("?tag=wrld", "there is no tag 'wrld'; did you mean 'world'?"),
        ("?feed=tass", "there is no feed 'tass'; did you mean 'tass-en'?"),
        ("?since=yesterday", "?since=: 'yesterday' is neither a duration"),
        ("?limit=ten", "?limit= must be a whole number from 1 to 500, not 'ten'"),
        ("?limit=501", "?limit= must be a whole number from 1 to 500"),
        ("?min_sources=0", "?min_sources= must be a whole number from 1"),
        ("?tags=world", "unknown parameter ?tags="),
        ("?tag=", "?tag= is empty"),
        ("?tag=world&tag=wire", "?tag= is given 2 times"),
        ("?sort=newest", "?sort= must be one of last_seen, first_seen, published, not 'newest'"),
        ("?until=soon", "?until=: 'soon' is neither a duration"),
        ("?since=2026-11-28&until=2026-11-27", "is not after ?since=2026-11-28"),
    ],
)
def test_a_bad_filter_is_a_400_that_says_why(server: Server, query: str, says: str) -> None:
    response = server.get(f"/feeds/stories.rss{query}")
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/plain")
    assert says in response.text


def test_a_feed_is_only_read(server: Server) -> None:
    response = httpx.post(server.base + "/feeds/stories.atom", timeout=30)
    assert response.status_code in (403, 405)  # Datasette's CSRF check may answer first


# -- the command --------------------------------------------------------------------------------


def snapshot(db: Path) -> tuple[str, int, int]:
    """The store's bytes, its modification time, and the size of its write-ahead log."""
    wal = db.with_name(db.name + "-wal")
    return (
        hashlib.sha256(db.read_bytes()).hexdigest(),
        db.stat().st_mtime_ns,
        wal.stat().st_size if wal.exists() else 0,
    )


def test_nothing_is_written_and_the_publish_settings_are_used(store: Path, tmp_path: Path) -> None:
    db = tmp_path / "copy.db"
    shutil.copyfile(store, db)
    config = tmp_path / "feeds.yaml"
    config.write_text(
        "settings:\n  publish:\n    link: https://desk.example/feeds/all.atom\n"
        "    title: Wire desk\nfeeds:\n  - name: tass-en\n    url: https://tass.example/rss\n"
    )
    before = snapshot(db)
    server = start_server(db, tmp_path / "serve.log", "--config", str(config))
    try:
        for query in ("latest_stories", "story", "feed_health", "search"):
            assert server.get(f"/aggregator/{query}.json?story=1&q=grain").status_code == 200
        for page in ("/", "/aggregator", "/aggregator/items", "/aggregator/latest_stories"):
            assert server.get(page).status_code == 200
        for fmt in ("atom", "rss", "json"):
            assert server.get(f"/feeds/stories.{fmt}").status_code == 200
        assert server.get("/aggregator.json?sql=select+count(*)+from+items").status_code == 200
        refused = server.get("/aggregator.json", params={"sql": "update feeds set url = 'x'"})
        assert refused.status_code == 400
        parsed = feedparser.parse(server.get("/feeds/stories.atom?tag=world").content)
        assert parsed.feed.title == "Wire desk"
        assert [link.href for link in parsed.feed.links if link.rel == "self"] == [
            "https://desk.example/feeds/all.atom"
        ]
    finally:
        server.stop()
    digest, mtime, wal = snapshot(db)
    assert (digest, mtime) == before[:2]
    assert wal <= before[2]


def test_feeds_follow_the_daemons_writes(store: Path, tmp_path: Path) -> None:
    """The feeds are live: a story committed while the server runs is in the next answer,
    and the old validators no longer match (whichever worker thread answers)."""
    db = tmp_path / "live.db"
    shutil.copyfile(store, db)
    server = start_server(db, tmp_path / "serve.log")
    try:
        before = server.get("/feeds/stories.json?tag=local")
        for _ in range(8):  # rendered once, then kept
            assert server.get("/feeds/stories.json?tag=local").content == before.content
        writer = Store.open(str(db))
        late = "2026-11-28T11:00:00Z"
        (draft,) = drafts_for(
            [Entry("c9", "https://city.example/bridge", "Old bridge closes for repairs",
                   "The old bridge closes on Monday.", None, None, late, None)]
        )  # fmt: skip
        save_refresh(writer, "city-desk", [draft], ok_record("city-desk", late), ok_update(late))
        writer.close()
        for _ in range(8):
            after = server.get(
                "/feeds/stories.json?tag=local", headers={"If-None-Match": before.headers["etag"]}
            )
            assert after.status_code == 200
            assert after.json()["items"][0]["title"] == "Old bridge closes for repairs"
            assert after.headers["last-modified"] == "Sat, 28 Nov 2026 11:00:00 GMT"
    finally:
        server.stop()


def test_a_missing_database_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--db", str(tmp_path / "none.db"), "serve"])
    assert result.exit_code == 2
    assert "no database at" in result.stderr
    assert not (tmp_path / "none.db").exists()


def test_a_taken_port_is_a_clear_error(server: Server, store: Path) -> None:
    port = server.base.rsplit(":", 1)[1]
    done = subprocess.run(
        [sys.executable, "-m", "aggregator", "--db", str(store), "serve", "--port", port],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr


def test_help_has_an_example() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0
    assert "127.0.0.1" in result.output
    assert "/feeds/stories.atom" in result.output


# -- the pieces, without a server -----------------------------------------------------------------


def test_conditional_request_rules() -> None:
    etag, updated = '"abc"', "2026-11-28T10:00:00Z"
    assert not_modified({"if-none-match": '"x", W/"abc"'}, etag=etag, updated=updated)
    assert not_modified({"if-none-match": "*"}, etag=etag, updated=updated)
    # If-None-Match decides alone when given (RFC 9110 13.2.2).
    assert not not_modified(
        {"if-none-match": '"x"', "if-modified-since": NEWEST}, etag=etag, updated=updated
    )
    assert not_modified({"if-modified-since": "Sun, 29 Nov 2026 00:00:00 GMT"}, etag=etag,
                        updated=updated)  # fmt: skip
    assert not not_modified({"if-modified-since": "yesterday"}, etag=etag, updated=updated)
    assert not not_modified({}, etag=etag, updated=updated)


def test_since_in_a_feed_url_is_relative_to_now() -> None:
    now = parse_iso("2026-11-30T12:00:00Z")
    assert story_filter("since=2h&limit=5", now=now).since == "2026-11-30T10:00:00Z"
    assert story_filter("", now=now).limit == 50


@pytest.mark.parametrize(
    ("query", "until"),
    [
        ("until=2026-11-28T09:00+02:00", "2026-11-28T07:00:00Z"),  # "+" read as a space
        ("until=2026-11-28T09:00%2B02:00", "2026-11-28T07:00:00Z"),
        ("until=2026-11-28T09:00:30+0530", "2026-11-28T03:30:30Z"),
        ("until=2026-11-28T09:00-02:00", "2026-11-28T11:00:00Z"),
        ("until=2026-11-28+09:00", "2026-11-28T09:00:00Z"),  # a space between date and time
    ],
)
def test_a_time_in_a_feed_url_keeps_its_offset(query: str, until: str) -> None:
    assert story_filter(query, now=parse_iso("2026-11-30T12:00:00Z")).until == until


# -- what a person sees ---------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary installed")
def test_an_editor_sees_the_latest_stories_in_a_browser(server: Server, tmp_path: Path) -> None:
    assert CHROMIUM is not None
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
         server.base + "/aggregator/latest_stories"],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "HOME": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert "Latest stories</h1>" in dom
    for title in (
        "City council approves new tram line to the airport",
        "Grain exports through Black Sea corridor reach record in November",
        "CSTO suspends Armenia's participation in joint military exercises",
    ):
        assert title.replace("'", "&#39;") in dom or title in dom
    assert '<td class="col-feeds">partner-daily, reuters-world, tass-en</td>' in dom
    assert "2026-11-28 10:00" in dom  # times as the CLI shows them
    # A story's number links to the story itself.
    assert 'href="/aggregator/story?story=' in dom
