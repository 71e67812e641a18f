"""Article pages that fail are visible: counted per feed by `fetch`, a feed whose recent pages
mostly fail is `degraded` in `fetch` and `feeds`, `items --status` lists them, `retry`
extracts them again now, and `fetch --force` asks a feed without its validators. Through
the CLI, against a real store and real servers on 127.0.0.x."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_tables import cells
from click.testing import CliRunner, Result
from feeds_builder import article_page, rss
from localserver import LocalServer

from aggregator.cli import cli
from aggregator.cli.page_health import PageHealth, page_health
from aggregator.store import Store

PARAGRAPHS = [
    "The Security Council met on Libya on Thursday to hear a briefing on the accord between "
    "the government and armed groups in Tripoli.",
    "Diplomats said the council would return to the question next month after consultations "
    "with the parties and the regional organisations involved.",
    "The session ended without a vote, and members agreed to keep the matter under review.",
]
BROKEN_PAGES = 6


class Desk:
    """A feeds.yaml with a healthy feed and one whose article pages do not exist (yet)."""

    def __init__(self, server: LocalServer, tmp_path: Path) -> None:
        self.server = server
        self.db = tmp_path / "news.db"
        server.add(
            "/w/1", article_page("Council meets on Libya", PARAGRAPHS), content_type="text/html"
        )
        server.add(
            "/wire.xml",
            rss([{"title": "Council meets on Libya", "link": server.url("/w/1"), "guid": "w1"}]),
        )
        server.add(
            "/broken.xml",
            rss(
                [
                    {"title": f"Harbour story {n}", "link": self.page(n), "guid": f"b{n}"}
                    for n in range(1, BROKEN_PAGES + 1)
                ]
            ),
        )
        self.config = tmp_path / "feeds.yaml"
        self.config.write_text(
            "settings:\n  allow_private_networks: true\n  host_gap: 0\nfeeds:\n"
            f"  - name: wire\n    url: {server.url('/wire.xml')}\n"
            f"  - name: broken\n    url: {server.url('/broken.xml')}\n"
        )

    def page(self, n: int) -> str:
        return self.server.url(f"/b/{n}")

    def fix_pages(self) -> None:
        for n in range(1, BROKEN_PAGES + 1):
            text = [f"Harbour story {n}: {p}" for p in PARAGRAPHS]
            self.server.add(
                f"/b/{n}", article_page(f"Harbour story {n}", text), content_type="text/html"
            )

    def run(self, *args: str) -> Result:
        return CliRunner().invoke(
            cli, ["--config", str(self.config), "--db", str(self.db), *args], env={"COLUMNS": "200"}
        )

    def json(self, *args: str) -> Any:
        result = self.run(*args)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def feeds(self) -> dict[str, dict[str, Any]]:
        return {row["name"]: row for row in self.json("feeds", "--json")}


@pytest.fixture
def desk(server: LocalServer, tmp_path: Path) -> Desk:
    return Desk(server, tmp_path)


def words(text: str) -> str:
    """The text with its line wrapping undone."""
    return " ".join(text.split())


def test_a_feed_whose_pages_all_fail_is_degraded_in_fetch_and_feeds(desk: Desk) -> None:
    fetched = desk.run("fetch")
    assert fetched.exit_code == 0, fetched.output  # the feeds themselves were fetched
    header = cells(fetched.stdout, "feed")
    broken = dict(zip(header, cells(fetched.stdout, "broken"), strict=True))
    wire = dict(zip(header, cells(fetched.stdout, "wire"), strict=True))
    assert (broken["result"], broken["pages"], broken["failed"]) == ("ok (degraded)", "6", "6")
    assert (wire["result"], wire["pages"], wire["failed"]) == ("ok", "1", "0")
    said = words(fetched.stdout)
    assert (
        "warning: broken is degraded: 6 of its 6 article pages of the last 24 h failed, 6 with:"
        " the server says the page does not exist (404)" in said
    )
    assert "aggregator retry --feed broken" in said
    assert "warning: wire" not in said
    assert "2 feeds, 7 new items, 0 failed, 1 degraded" in said
    assert "broken: 6 entries, 6 new, 6 pages (6 failed)" in fetched.stderr

    health = desk.feeds()
    assert health["broken"]["state"] == "ok"  # the stored state keeps its four values
    assert health["broken"]["health"] == "degraded"
    assert health["broken"]["degraded"] is True
    assert (health["broken"]["pages_recent"], health["broken"]["pages_failed_recent"]) == (6, 6)
    assert "(404)" in health["broken"]["page_error"]
    assert health["broken"]["advice"].startswith("Degraded: 6 of its 6 article pages")
    assert "tell the feed's publisher" in health["broken"]["advice"]
    assert (health["wire"]["health"], health["wire"]["degraded"]) == ("ok", False)
    assert (health["wire"]["pages_recent"], health["wire"]["pages_failed_recent"]) == (1, 0)
    assert [row["name"] for row in desk.json("feeds", "--json")] == ["broken", "wire"]

    table = desk.run("feeds").stdout
    header = cells(table, "feed")
    row = dict(zip(header, cells(table, "broken"), strict=True))
    assert (row["state"], row["failed 24h"]) == ("degraded", "6 of 6")
    row = dict(zip(header, cells(table, "wire"), strict=True))
    assert (row["state"], row["failed 24h"]) == ("ok", "0 of 1")


def test_items_by_extraction_status(desk: Desk) -> None:
    desk.run("fetch")
    failed = desk.json("items", "--status", "failed", "--format", "json")
    assert sorted(i["url"] for i in failed) == sorted(desk.page(n) for n in range(1, 7))
    assert {i["feeds"] for i in failed} == {"broken"}
    assert all("(404)" in i["extract_error"] for i in failed)
    assert [i["title"] for i in desk.json("items", "--status", "ok", "--format", "json")] == [
        "Council meets on Libya"
    ]
    assert desk.json("items", "--status", "pending", "--format", "json") == []
    table = desk.run("items", "--status", "failed", "--feed", "broken").stdout
    assert "extract_error" in table
    assert "does not exist (404)" in table
    wrong = desk.run("items", "--status", "broken")
    assert wrong.exit_code == 2
    assert "'ok', 'feed', 'failed', 'pending', 'skipped'" in wrong.stderr


def test_retry_extracts_a_feeds_failed_pages_once_the_site_is_fixed(desk: Desk) -> None:
    desk.run("fetch")
    # Past the attempts the daemon allows: retry asks again all the same.
    store = Store.open(str(desk.db))
    store.execute("UPDATE items SET extract_attempts = 9 WHERE extract_status = 'failed'")
    store.close()

    still = desk.run("retry", "--feed", "broken")
    assert still.exit_code == 1, still.output
    assert still.stdout.count(": failed: the server says the page does not exist (404)") == 6
    assert "6 pages: 0 extracted, 6 failed" in still.stdout

    desk.fix_pages()
    fixed = desk.run("retry", "--feed", "broken")
    assert fixed.exit_code == 0, fixed.output
    lines = fixed.stdout.splitlines()
    assert sorted(lines[:-1]) == sorted(
        line for line in lines[:-1] if ": extracted, " in line and line.endswith(" words")
    )
    assert len(lines) == 7
    assert lines[-1] == "6 pages: 6 extracted, 0 failed"
    assert desk.json("items", "--status", "failed", "--format", "json") == []
    texts = desk.json("query", "select text from items where url like '%/b/%'", "--format", "json")
    assert all(row["text"].startswith("Harbour story") for row in texts)
    found = desk.json("search", "Harbour story 3 Tripoli", "--format", "json")
    assert [row["url"] for row in found] == [desk.page(3)]  # placed and indexed by its text
    health = desk.feeds()["broken"]
    assert (health["health"], health["pages_failed_recent"]) == ("ok", 0)
    again = desk.run("retry", "--feed", "broken")
    assert again.exit_code == 0
    assert again.stdout.startswith("nothing to retry: no item of broken has a failed or pending")


def test_retry_named_items_by_id_and_url(desk: Desk) -> None:
    desk.run("fetch")
    failed = desk.json("items", "--status", "failed", "--format", "json")
    first, second = sorted(failed, key=lambda i: i["id"])[:2]
    desk.server.add("/b/1", article_page("Harbour story 1", PARAGRAPHS), content_type="text/html")
    hits = desk.server.hits("/b/1"), desk.server.hits("/b/2")

    done = desk.run("retry", str(first["id"]), second["url"])
    assert done.exit_code == 1, done.output  # /b/2 still fails
    assert f"item {first['id']} {desk.page(1)}: extracted, " in done.stdout
    assert f"item {second['id']} {desk.page(2)}: failed: the server says" in done.stdout
    assert "2 pages: 1 extracted, 1 failed" in done.stdout
    assert (desk.server.hits("/b/1"), desk.server.hits("/b/2")) == (hits[0] + 1, hits[1] + 1)
    statuses = {i["id"]: i["extract_status"] for i in desk.json("items", "--format", "json")}
    assert (statuses[first["id"]], statuses[second["id"]]) == ("ok", "failed")

    # An item that has its text keeps it when the page fails again.
    desk.server.add("/b/1", "", status=503, content_type="text/plain")
    kept = desk.run("retry", str(first["id"]))
    assert kept.exit_code == 1
    assert "failed: the server failed (503); it will be retried (its text from before is kept)" in (
        kept.stdout
    )
    statuses = {i["id"]: i["extract_status"] for i in desk.json("items", "--format", "json")}
    assert statuses[first["id"]] == "ok"


def test_retry_names_that_are_not_items_or_feeds_are_usage_errors(desk: Desk) -> None:
    desk.run("fetch")
    before = len(desk.server.requests)

    typo = desk.run("retry", desk.page(1) + "x")
    assert typo.exit_code == 2
    assert f"there is no item with the URL '{desk.page(1)}x'; did you mean" in typo.stderr
    assert repr(desk.page(1)) in typo.stderr
    missing = desk.run("retry", "9999")
    assert missing.exit_code == 2
    assert "there is no item 9999 (item ids run from 1 to 7" in missing.stderr
    feed = desk.run("retry", "--feed", "brokn")
    assert feed.exit_code == 2
    assert "there is no feed 'brokn'; did you mean 'broken'?" in feed.stderr
    nothing = desk.run("retry")
    assert nothing.exit_code == 2
    assert "Usage:" in nothing.stderr
    assert "or a feed with --feed" in nothing.stderr
    word = desk.run("retry", "harbour")
    assert word.exit_code == 2
    assert "'harbour' is neither an item id (a number) nor a URL" in word.stderr
    assert len(desk.server.requests) == before  # nothing was fetched


def test_retry_skips_a_feed_another_process_is_refreshing(desk: Desk) -> None:
    desk.run("fetch")
    desk.fix_pages()
    store = Store.open(str(desk.db))
    # The daemon on another machine holds the feed (a lease that is not this host's to break).
    assert store.take_lease(
        "broken",
        holder="elsewhere:1:daemon:abc",
        now="2026-01-01T00:00:00Z",
        until="2999-01-01T00:00:00Z",
    )
    store.close()
    hits = sum(desk.server.hits(f"/b/{n}") for n in range(1, 7))

    busy = desk.run("retry", "--feed", "broken")
    assert busy.exit_code == 1
    said = "skipped: `aggregator run` (pid 1 on elsewhere) is refreshing feed broken right now"
    assert busy.stdout.count(said) == 6
    assert sum(desk.server.hits(f"/b/{n}") for n in range(1, 7)) == hits
    holder = desk.json(
        "query", "select lease_holder from feeds where name = 'broken'", "--format", "json"
    )
    assert holder == [{"lease_holder": "elsewhere:1:daemon:abc"}]  # left as it was


def test_pages_on_a_refused_address_degrade_the_feed_with_advice(tmp_path: Path) -> None:
    """The pages' host refuses connections (nothing listens on port 9 of 127.0.0.3)."""
    server = LocalServer("127.0.0.2").start()
    try:
        server.add(
            "/feed.xml",
            rss(
                [
                    {
                        "title": f"Port story {n}",
                        "link": f"http://127.0.0.3:9/a/{n}",
                        "guid": str(n),
                    }
                    for n in range(5)
                ]
            ),
        )
        config = tmp_path / "feeds.yaml"
        config.write_text(
            "settings:\n  allow_private_networks: true\n  host_gap: 0\nfeeds:\n"
            f"  - name: closed\n    url: {server.url('/feed.xml')}\n"
        )
        base = ["--config", str(config), "--db", str(tmp_path / "news.db")]
        fetched = CliRunner().invoke(cli, [*base, "fetch"], env={"COLUMNS": "200"})
        assert fetched.exit_code == 0, fetched.output
        assert "warning: closed is degraded: 5 of its 5 article pages" in words(fetched.stdout)
        assert "connection refused by host 127.0.0.3" in words(fetched.stdout)
        rows = json.loads(CliRunner().invoke(cli, [*base, "feeds", "--json"]).stdout)
        assert rows[0]["health"] == "degraded"
        assert "refuses or drops connections" in rows[0]["advice"]
    finally:
        server.stop()


def test_fewer_than_five_failed_pages_are_no_degraded_feed(
    server: LocalServer, tmp_path: Path
) -> None:
    server.add(
        "/feed.xml",
        rss(
            [
                {"title": f"Story {n}", "link": server.url(f"/x/{n}"), "guid": str(n)}
                for n in range(4)
            ]
        ),
    )
    config = tmp_path / "feeds.yaml"
    config.write_text(
        "settings:\n  allow_private_networks: true\n  host_gap: 0\nfeeds:\n"
        f"  - name: small\n    url: {server.url('/feed.xml')}\n"
    )
    base = ["--config", str(config), "--db", str(tmp_path / "news.db")]
    fetched = CliRunner().invoke(cli, [*base, "fetch"], env={"COLUMNS": "200"})
    assert "warning:" not in fetched.stdout
    row = dict(zip(cells(fetched.stdout, "feed"), cells(fetched.stdout, "small"), strict=True))
    assert (row["result"], row["pages"], row["failed"]) == ("ok", "4", "4")
    row = json.loads(CliRunner().invoke(cli, [*base, "feeds", "--json"]).stdout)[0]
    assert (row["health"], row["pages_recent"], row["pages_failed_recent"]) == ("ok", 4, 4)


def test_fetch_force_asks_without_validators_and_keeps_the_new_ones(
    server: LocalServer, tmp_path: Path
) -> None:
    stamp = "Fri, 27 Nov 2026 08:00:00 GMT"
    feed = rss([{"title": "Council meets", "link": server.url("/p/1"), "guid": "1"}])
    server.add("/feed.xml", feed, etag='"v1"', last_modified=stamp)
    config = tmp_path / "feeds.yaml"
    config.write_text(
        "settings:\n  allow_private_networks: true\n  host_gap: 0\n  extract: false\nfeeds:\n"
        f"  - name: wire\n    url: {server.url('/feed.xml')}\n"
    )
    base = ["--config", str(config), "--db", str(tmp_path / "news.db")]

    def fetch(*args: str) -> tuple[str, dict[str, str]]:
        server.clear_log()
        result = CliRunner().invoke(cli, [*base, "fetch", *args], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        (request,) = [r for r in server.requests if r.path == "/feed.xml"]
        return cells(result.stdout, "wire")[1], request.headers

    assert fetch()[0] == "ok"
    result, headers = fetch()
    assert (result, headers.get("if-none-match")) == ("not_modified", '"v1"')
    result, headers = fetch("--force")
    assert result == "ok"  # the whole feed, where the server would have said 304
    assert "if-none-match" not in headers
    assert "if-modified-since" not in headers
    # The validators of that full answer are kept: the next pass is conditional again.
    result, headers = fetch()
    assert (result, headers.get("if-none-match"), headers.get("if-modified-since")) == (
        "not_modified",
        '"v1"',
        stamp,
    )
    server.add("/feed.xml", feed, etag='"v2"', last_modified=stamp)
    assert fetch("--force")[0] == "ok"
    stored = json.loads(
        CliRunner()
        .invoke(cli, [*base, "query", "select etag from feeds", "--format", "json"])
        .stdout
    )
    assert stored == [{"etag": '"v2"'}]


def test_retry_help_has_an_example() -> None:
    result = CliRunner().invoke(cli, ["retry", "--help"])
    assert result.exit_code == 0
    assert "aggregator retry --feed tass-en" in result.output


@pytest.mark.parametrize(
    ("pages", "failed", "degraded"),
    [
        (5, 3, True),  # the fewest pages that say enough, most of them failed
        (100, 51, True),
        (4, 4, False),  # too few pages to say a site is broken
        (6, 3, False),  # half is not most
        (0, 0, False),
    ],
)
def test_degraded_is_five_pages_or_more_over_half_failed(
    pages: int, failed: int, degraded: bool
) -> None:
    assert PageHealth(pages=pages, failed=failed).degraded is degraded


def test_the_commonest_error_counts_errors_that_differ_only_by_address() -> None:
    refused = (
        "refused to fetch http://intranet.example/a/{}: host intranet.example resolves to"
        " 10.0.0.5, which is not a public address"
    )
    rows = [
        {"feed": "wire", "status": "ok", "error": None, "pages": 2},
        {"feed": "wire", "status": "failed", "error": "no article text found", "pages": 2},
        *(
            {"feed": "wire", "status": "failed", "error": refused.format(n), "pages": 1}
            for n in range(3)
        ),
        {"feed": "quiet", "status": "ok", "error": None, "pages": 1},
    ]
    health = page_health(rows)
    assert health["quiet"] == PageHealth(pages=1)
    # Each refusal names its own page: counted as one kind, they outnumber the other error.
    assert health["wire"] == PageHealth(pages=7, failed=5, error=refused.format(0), error_pages=3)
