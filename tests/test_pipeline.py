"""fetch -> parse -> extract -> store against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from feeds_builder import article_page, atom, json_feed, rss
from localserver import LocalServer

from aggregator.config.loader import parse_config
from aggregator.engine.pool import Workers
from aggregator.engine.run import fetch_feeds
from aggregator.models import Config, FeedOutcome
from aggregator.store import Store

FIXTURES = Path(__file__).parent / "fixtures"

CSTO_PARAGRAPHS = [
    "has decided to suspend efforts aimed at establishing dialogue with NATO",
    "bolster cooperation with the Shanghai Cooperation Organization",
    "Armenia is a member of NATO's Partnership for peace",
]
RELATED_BLOCKS = ["Borrell", "Libya", "Radaa", "Editor's choice", "Popular"]
LIBYA_TITLE = "Libya government reaches preliminary accord with powerful armed group"
LIBYA_TEXT = [
    "Libya's UN-recognized government based in Tripoli has reached a preliminary accord with a "
    "powerful armed group to end months of tensions that have flared into occasional violence, "
    "a government adviser and local media said on Saturday 13 September.",
    "Negotiations between the government and the Radaa Force were facilitated by Turkiye, "
    "according to the same sources quoted by Arab News.",
    "Ziyad Deghem, an adviser to the head of the Presidential Council transitional body, said "
    "the details of the accord will be announced to the public at a later date.",
]


def make_config(server: LocalServer, feeds: dict[str, str], extra: str = "") -> Config:
    lines = [
        "settings:",
        "  allow_private_networks: true",
        "  timeout: 10s",
        "  host_gap: 0",
        extra,
    ]
    lines.append("feeds:")
    for name, path in feeds.items():
        lines += [f"  - name: {name}", f"    url: {server.url(path)}"]
    return parse_config("\n".join(lines))


def run(config: Config, store: Store, *, extract: bool = True) -> dict[str, FeedOutcome]:
    outcomes = asyncio.run(
        fetch_feeds(config, store, config.feeds, extract=extract, workers=Workers(0))
    )
    return {o.feed: o for o in outcomes}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(str(tmp_path / "aggregator.db"))


def rows(store: Store, sql: str, *params: object) -> list[tuple[object, ...]]:
    return store.execute(sql, params)


def pairs(store: Store, sql: str) -> dict[object, object]:
    """A two-column query's rows as {first: second}."""
    return {row[0]: row[1] for row in rows(store, sql)}


def serve_commonspace(server: LocalServer) -> None:
    """The example page, the Libya story it keeps repeating, and two feeds listing both."""
    csto_html = (FIXTURES / "commonspace-csto.html").read_bytes()
    server.add("/news/csto", csto_html, content_type="text/html; charset=utf-8", etag='"csto"')
    server.add(
        "/news/libya",
        article_page(LIBYA_TITLE, LIBYA_TEXT),
        content_type="text/html; charset=utf-8",
    )
    csto = {
        "title": "CSTO suspends efforts to develop dialogue with NATO",
        "link": server.url("/news/csto"),
        "guid": "csto-1",
        "description": "The CSTO has decided to suspend efforts.",
    }
    libya = {
        "title": LIBYA_TITLE,
        "link": server.url("/news/libya"),
        "guid": "libya-1",
        "description": "Libya's UN-recognized government has reached a preliminary accord.",
    }
    server.add(
        "/feeds/editors-choice.xml",
        rss([csto, libya], title="Editor's choice"),
        etag='"ec-1"',
        last_modified="Thu, 26 Nov 2026 10:00:00 GMT",
    )
    # "Popular" lists the Libya story twice, under other GUIDs and with tracking parameters.
    popular = [
        {
            "id": "pop-1",
            "title": LIBYA_TITLE,
            "link": server.url("/news/libya?utm_source=popular&utm_medium=rss"),
        },
        {"id": "pop-2", "title": LIBYA_TITLE, "link": server.url("/news/libya#comments")},
    ]
    server.add(
        "/feeds/popular.atom",
        atom(popular, title="Popular"),
        etag='"pop-1"',
        content_type="application/atom+xml",
    )


def test_commonspace_example_end_to_end(server: LocalServer, store: Store) -> None:
    serve_commonspace(server)
    config = make_config(
        server, {"editors-choice": "/feeds/editors-choice.xml", "popular": "/feeds/popular.atom"}
    )
    outcomes = run(config, store)
    assert {o.outcome for o in outcomes.values()} == {"ok"}
    assert outcomes["editors-choice"].new_items + outcomes["popular"].new_items == 2

    (text,) = rows(store, "SELECT text FROM items WHERE url LIKE '%/news/csto'")[0]
    assert isinstance(text, str)
    for paragraph in CSTO_PARAGRAPHS:
        assert paragraph in text
    for block in RELATED_BLOCKS:
        assert block not in text

    libya = rows(store, "SELECT id, title, extract_status FROM items WHERE url LIKE '%libya'")
    assert len(libya) == 1
    assert libya[0][1:] == (LIBYA_TITLE, "ok")
    sightings = rows(
        store, "SELECT feed FROM sightings WHERE item_id = ? ORDER BY feed, guid", libya[0][0]
    )
    assert sightings == [("editors-choice",), ("popular",), ("popular",)]
    assert server.hits("/news/libya") == 1  # two feeds, three entries: one page fetch
    # ...counted once, for the feed that fetched it.
    assert outcomes["editors-choice"].pages_fetched + outcomes["popular"].pages_fetched == 2
    assert rows(store, "SELECT count(*) FROM stories") == [(2,)]


def test_second_fetch_of_unchanged_feeds_is_conditional_and_adds_nothing(
    server: LocalServer, store: Store
) -> None:
    serve_commonspace(server)
    config = make_config(
        server, {"editors-choice": "/feeds/editors-choice.xml", "popular": "/feeds/popular.atom"}
    )
    run(config, store)
    before = (
        rows(store, "SELECT count(*) FROM items")[0][0],
        rows(store, "SELECT count(*) FROM sightings")[0][0],
    )
    server.clear_log()

    outcomes = run(config, store)
    assert {o.outcome for o in outcomes.values()} == {"not_modified"}
    feed_requests = {r.path: r.headers for r in server.requests}
    assert feed_requests["/feeds/editors-choice.xml"]["if-none-match"] == '"ec-1"'
    assert feed_requests["/feeds/editors-choice.xml"]["if-modified-since"] == (
        "Thu, 26 Nov 2026 10:00:00 GMT"
    )
    assert feed_requests["/feeds/popular.atom"]["if-none-match"] == '"pop-1"'
    assert "if-modified-since" not in feed_requests["/feeds/popular.atom"]
    assert not [r for r in server.requests if r.path.startswith("/news/")]
    after = (
        rows(store, "SELECT count(*) FROM items")[0][0],
        rows(store, "SELECT count(*) FROM sightings")[0][0],
    )
    assert after == before
    assert rows(store, "SELECT outcome, http_status FROM fetches ORDER BY id DESC LIMIT 2") == [
        ("not_modified", 304),
        ("not_modified", 304),
    ]


def test_formats_encodings_and_failures_in_one_run(server: LocalServer, store: Store) -> None:
    page = article_page(
        "A wire story", ["Paragraph one of the wire story is long enough to keep."] * 8
    )
    for n in range(1, 4):
        server.add(f"/a/{n}", page, content_type="text/html")
    server.add(
        "/rss.xml", rss([{"title": "RSS one", "link": server.url("/a/1"), "guid": "r1"}]), gzip=True
    )
    server.add(
        "/feed.json",
        json_feed([{"id": "j1", "url": "/a/2", "title": "JSON one"}]),
        content_type="application/feed+json",
    )
    server.add("/moved.xml", rss([{"title": "Moved one", "link": server.url("/a/3")}]))
    server.redirect("/old.xml", "/moved.xml", status=302)
    server.add("/html-page", "<html><body><p>Hello</p></body></html>", content_type="text/html")
    config = make_config(
        server,
        {
            "rss": "/rss.xml",
            "json": "/feed.json",
            "moved": "/old.xml",
            "missing": "/nope.xml",
            "html": "/html-page",
        },
    )
    outcomes = run(config, store)

    assert outcomes["rss"].new_items == 1
    assert outcomes["json"].new_items == 1
    assert outcomes["moved"].new_items == 1
    assert (outcomes["missing"].outcome, outcomes["missing"].http_status) == ("not_found", 404)
    assert outcomes["html"].outcome == "not_a_feed"
    states = pairs(store, "SELECT name, state FROM feeds")
    assert states == {
        "rss": "ok",
        "json": "ok",
        "moved": "ok",
        "missing": "failing",
        "html": "failing",
    }
    errors = pairs(store, "SELECT name, last_error FROM feeds WHERE state = 'failing'")
    assert "404" in str(errors["missing"])
    assert "HTML page" in str(errors["html"])
    # The JSON Feed's relative link was resolved against the feed's address.
    assert rows(store, "SELECT url FROM items WHERE title = 'JSON one'") == [(server.url("/a/2"),)]


def test_a_page_that_fails_keeps_the_item_and_is_retried(server: LocalServer, store: Store) -> None:
    server.add("/page", "down for maintenance", status=503, content_type="text/html")
    server.add(
        "/f.xml",
        rss(
            [
                {
                    "title": "Breaking",
                    "link": server.url("/page"),
                    "guid": "b1",
                    "description": "Summary from the feed.",
                }
            ]
        ),
        etag='"f1"',
    )
    config = make_config(server, {"wire": "/f.xml"})
    run(config, store)
    assert rows(store, "SELECT title, summary, extract_status FROM items") == [
        ("Breaking", "Summary from the feed.", "failed")
    ]
    assert "503" in str(rows(store, "SELECT extract_error FROM items")[0][0])

    server.add("/page", article_page("Breaking", LIBYA_TEXT), content_type="text/html")
    outcomes = run(config, store)  # the feed answers 304; the page is retried anyway
    assert outcomes["wire"].outcome == "not_modified"
    status, text = rows(store, "SELECT extract_status, text FROM items")[0]
    assert status == "ok"
    assert "Radaa Force" in str(text)


def test_a_page_over_max_page_size_keeps_the_feeds_summary(
    server: LocalServer, store: Store
) -> None:
    """Extraction needs tens of times a page's size in memory: a page larger than
    max_page_size after decompression (small on the wire) is not extracted; the item keeps
    the feed's summary and says why. A page under the cap in the same feed is extracted."""
    big = article_page(LIBYA_TITLE, LIBYA_TEXT * 400)  # ~200 KB, a few KB gzipped
    server.add("/big", big, content_type="text/html; charset=utf-8", gzip=True)
    server.add("/small", article_page(LIBYA_TITLE, LIBYA_TEXT), content_type="text/html")
    entries = [
        {"title": "Big", "link": server.url("/big"), "guid": "big", "description": "Big one."},
        {"title": "Small", "link": server.url("/small"), "guid": "small"},
    ]
    server.add("/f.xml", rss(entries))
    config = make_config(server, {"wire": "/f.xml"}, "  max_page_size: 64KB")
    assert len(big) > 64 * 1024
    assert run(config, store)["wire"].outcome == "ok"
    (summary, status, text, error), small = rows(
        store, "SELECT summary, extract_status, text, extract_error FROM items ORDER BY title"
    )
    assert (summary, status, text) == ("Big one.", "failed", None)
    assert str(error) == (
        "the page is larger than max_page_size (64 KB) after decompression, so it was not "
        "extracted and the feed's summary is kept; raise settings.max_page_size to extract "
        "pages this large"
    )
    assert small[1] == "ok"
    assert "Radaa Force" in str(small[2])


def test_full_text_feeds_are_not_fetched_again(server: LocalServer, store: Store) -> None:
    content = "<p>" + " ".join(["Full text of the partner's article."] * 40) + "</p>"
    server.add(
        "/partner.xml",
        rss([{"title": "Partner", "link": server.url("/p/1"), "guid": "p1", "content": content}]),
    )
    server.add(
        "/short.xml",
        rss(
            [
                {
                    "title": "Short",
                    "link": server.url("/p/2"),
                    "guid": "p2",
                    "description": "Only a teaser.",
                }
            ]
        ),
    )
    config = parse_config(
        "settings:\n  allow_private_networks: true\n  host_gap: 0\nfeeds:\n"
        f"  - name: partner\n    url: {server.url('/partner.xml')}\n"
        f"  - name: short\n    url: {server.url('/short.xml')}\n    extract: false\n"
    )
    run(config, store)
    assert server.hits("/p/1") == 0
    assert server.hits("/p/2") == 0
    statuses = pairs(store, "SELECT title, extract_status FROM items")
    assert statuses == {"Partner": "feed", "Short": "feed"}
    text = rows(store, "SELECT text FROM items WHERE title = 'Partner'")[0][0]
    assert "Full text of the partner's article." in str(text)


def test_no_extract_leaves_pages_pending_for_a_later_run(server: LocalServer, store: Store) -> None:
    server.add("/page", article_page("Story", LIBYA_TEXT), content_type="text/html")
    server.add("/f.xml", rss([{"title": "Story", "link": server.url("/page"), "guid": "s1"}]))
    config = make_config(server, {"wire": "/f.xml"})
    run(config, store, extract=False)
    assert server.hits("/page") == 0
    assert rows(store, "SELECT extract_status FROM items") == [("pending",)]
    run(config, store)
    assert rows(store, "SELECT extract_status FROM items") == [("ok",)]


def test_edited_entry_updates_the_item(server: LocalServer, store: Store) -> None:
    server.add("/page", article_page("Story", LIBYA_TEXT), content_type="text/html")
    server.add("/f.xml", rss([{"title": "First title", "link": server.url("/page"), "guid": "s1"}]))
    config = make_config(server, {"wire": "/f.xml"})
    run(config, store)
    server.add(
        "/f.xml", rss([{"title": "Corrected title", "link": server.url("/page"), "guid": "s1"}])
    )
    outcome = run(config, store)["wire"]
    assert (outcome.new_items, outcome.updated_items) == (0, 1)
    assert rows(store, "SELECT title, extract_status FROM items") == [("Corrected title", "ok")]
    assert server.hits("/page") == 1


def test_private_addresses_are_refused_by_default(server: LocalServer, store: Store) -> None:
    server.add("/f.xml", rss([]))
    config = parse_config(f"feeds:\n  - name: local\n    url: {server.url('/f.xml')}\n")
    outcome = run(config, store)["local"]
    assert outcome.outcome == "address_refused"
    assert server.hits("/f.xml") == 0
    assert "allow_private_networks" in str(outcome.error)


def test_process_pool_path(server: LocalServer, store: Store) -> None:
    """The default path: parse and extract in worker processes."""
    serve_commonspace(server)
    config = make_config(server, {"editors-choice": "/feeds/editors-choice.xml"})
    workers = Workers(1)
    try:
        outcomes = asyncio.run(fetch_feeds(config, store, config.feeds, workers=workers))
    finally:
        workers.close()
    assert outcomes[0].new_items == 2
    conn = sqlite3.connect(store.path)
    assert conn.execute("SELECT count(*) FROM items WHERE extract_status = 'ok'").fetchone() == (2,)
    conn.close()


def test_an_entry_with_an_unusable_link_costs_the_feed_nothing(
    server: LocalServer, store: Store
) -> None:
    server.add("/page", article_page("Story", LIBYA_TEXT), content_type="text/html")
    entries = [
        {
            "title": "Bad port",
            "link": "http://a.example:99999/bad",
            "guid": "b1",
            "content": "<p>" + "Full text carried by the feed. " * 60 + "</p>",
        },
        {"title": "Space in host", "link": "http://a b.example/x", "guid": "b2"},
        {"title": "Good", "link": server.url("/page"), "guid": "g1"},
    ]
    server.add("/f.xml", rss(entries))
    outcome = run(make_config(server, {"wire": "/f.xml"}), store)["wire"]
    assert (outcome.outcome, outcome.new_items) == ("ok", 3)
    assert dict(rows(store, "SELECT title, extract_status FROM items")) == {  # type: ignore[arg-type]
        "Bad port": "feed",
        "Space in host": "skipped",
        "Good": "ok",
    }


def test_a_page_pending_in_two_feeds_is_retried_once_per_run(
    server: LocalServer, store: Store
) -> None:
    server.add("/page", "down", status=503, content_type="text/html")
    for name in ("a", "b"):
        server.add(
            f"/{name}.xml",
            rss([{"title": "Shared", "link": server.url("/page"), "guid": f"{name}1"}]),
            etag=f'"{name}"',
        )
    config = make_config(server, {"a": "/a.xml", "b": "/b.xml"})
    run(config, store)
    assert server.hits("/page") == 1
    run(config, store)  # both feeds answer 304; the shared page is retried once
    assert server.hits("/page") == 2
    assert rows(store, "SELECT extract_attempts FROM items") == [(2,)]


def test_a_bug_while_refreshing_is_recorded_as_internal_error(
    server: LocalServer, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aggregator.engine.refresh

    def broken(entries: object) -> None:
        raise RuntimeError("boom")

    server.add("/f.xml", rss([{"title": "x", "link": "https://example.org/x"}]))
    server.add("/g.xml", rss([{"title": "y", "link": "https://example.org/y"}]))
    config = make_config(server, {"broken": "/f.xml"})
    monkeypatch.setattr(aggregator.engine.refresh, "drafts_and_skips", broken)
    outcome = run(config, store)["broken"]
    assert outcome.outcome == "internal_error"
    assert rows(store, "SELECT outcome, error FROM fetches") == [
        ("internal_error", "unexpected error: RuntimeError('boom')")
    ]
    assert rows(store, "SELECT state, last_outcome FROM feeds") == [("failing", "internal_error")]
