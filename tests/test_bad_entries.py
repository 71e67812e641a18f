"""One bad entry costs only itself: whatever Unicode a feed puts in one entry, the feed's good
entries are stored, and the bad one is skipped with a warning on the fetch record."""

from __future__ import annotations

import json
import re
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from feeds_builder import json_feed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from localserver import LocalServer
from store_helpers import ok_record, ok_update, save_refresh
from test_pipeline import make_config, rows, run

from aggregator.models import Entry, FeedConfig
from aggregator.parse.feed import parse_feed
from aggregator.store import Store
from aggregator.stories.identity import drafts_and_skips

GOOD = [f"Good story {n}" for n in range(5)]


def test_a_lone_surrogate_in_one_json_feed_item_costs_the_feed_nothing(
    server: LocalServer, tmp_path: Path
) -> None:
    items = [{"id": f"g{n}", "title": t, "url": server.url(f"/{n}")} for n, t in enumerate(GOOD)]
    items.insert(2, {"id": "bad", "title": "bad \ud800 title", "url": server.url("/bad")})
    server.add("/feed.json", json_feed(items), content_type="application/feed+json")
    store = Store.open(str(tmp_path / "news.db"))
    outcome = run(make_config(server, {"partner": "/feed.json"}), store, extract=False)["partner"]
    assert outcome.outcome == "ok", outcome.error
    assert outcome.new_items == 6
    # The half character became U+FFFD, as a surrogate character reference in XML does.
    assert sorted(t for (t,) in rows(store, "SELECT title FROM items")) == sorted(
        [*GOOD, "bad \ufffd title"]
    )


def test_an_entry_that_cannot_be_stored_is_skipped_with_the_reason() -> None:
    def entry(guid: str, title: str) -> Entry:
        return Entry(guid, f"https://news.example/{guid}", title, "s", None, None, None, None)

    entries = [entry("a", "Good"), entry("b", "bad \udc80 title"), entry("c", "Also good")]
    drafts, skipped = drafts_and_skips(entries)
    assert [d.entry.title for d in drafts] == ["Good", "Also good"]
    assert skipped == [
        "entry 2 ('bad ? title'): its title is not valid Unicode (it has a lone surrogate)"
    ]


# -- any Unicode in any field of one entry, in every format ----------------------------------

# Everything: surrogates, NUL, C0 and C1 controls, bidi overrides, and long runs.
ANY_TEXT = st.text(
    alphabet=st.characters(codec=None, categories=None),
    max_size=300,
) | st.sampled_from(
    ["\ud800", "\x00", "\x1b[31m", "\x85\x9b", "\u202e\u2066evil", "x" * 1_000_000, ""]
)
FIELDS = ("title", "link", "summary", "author", "guid", "content")


def _xml_text(value: str) -> str:
    """`value` inside an XML element: escaped, and every character XML 1.0 cannot carry
    written as a character reference, as a hostile server would write it."""
    out = []
    for char in escape(value):
        code = ord(char)
        legal = code in (9, 10, 13) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD
        out.append(char if legal or code > 0xFFFF else f"&#x{code:X};")
    return "".join(out)


def _document(fmt: str, bad: dict[str, str]) -> bytes:
    good = [
        {"guid": f"good-{n}", "title": t, "link": f"https://news.example/{n}", "summary": "ok"}
        for n, t in enumerate(GOOD)
    ]
    entries = [*good[:2], bad, *good[2:]]
    if fmt == "json":
        items = [
            {
                "id": e.get("guid", ""),
                "title": e.get("title", ""),
                "url": e.get("link", ""),
                "summary": e.get("summary", ""),
                "content_html": e.get("content", ""),
                "authors": [{"name": e.get("author", "")}],
            }
            for e in entries
        ]
        return json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "t",
                           "items": items}).encode()  # fmt: skip
    if fmt == "rss":
        body = "".join(
            "<item>"
            + "".join(
                f"<{tag}>{_xml_text(e[key])}</{tag}>"
                for key, tag in (
                    ("guid", "guid"),
                    ("title", "title"),
                    ("link", "link"),
                    ("summary", "description"),
                    ("author", "author"),
                    ("content", "content:encoded"),
                )
                if key in e
            )
            + "</item>"
            for e in entries
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
            'xmlns:content="http://purl.org/rss/1.0/modules/content/"><channel><title>t</title>'
            f"{body}</channel></rss>"
        ).encode("utf-8", "surrogatepass")
    body = "".join(
        "<entry>"
        + "".join(
            f"<{tag}>{_xml_text(e[key])}</{tag}>"
            for key, tag in (("guid", "id"), ("title", "title"), ("summary", "summary"))
            if key in e
        )
        + (f'<link href="{_xml_text(e["link"])}"/>' if "link" in e else "")
        + (f"<author><name>{_xml_text(e['author'])}</name></author>" if "author" in e else "")
        + (f'<content type="html">{_xml_text(e["content"])}</content>' if "content" in e else "")
        + "<updated>2026-11-27T08:00:00Z</updated></entry>"
        for e in entries
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>t</title><id>urn:t</id><updated>2026-11-27T08:00:00Z</updated>{body}</feed>"
    ).encode("utf-8", "surrogatepass")


@pytest.mark.parametrize("fmt", ["rss", "atom", "json"])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bad=st.dictionaries(st.sampled_from(FIELDS), ANY_TEXT, min_size=1))
def test_any_unicode_in_one_entry_costs_only_that_entry(
    tmp_path_factory: pytest.TempPathFactory, fmt: str, bad: dict[str, str]
) -> None:
    document = _document(fmt, bad)
    parsed = parse_feed(document, url="https://feeds.example/feed", max_entries=500)
    drafts, _ = drafts_and_skips(parsed.entries)
    store = Store.open(str(tmp_path_factory.mktemp("store") / "news.db"))
    store.sync_feeds(
        [FeedConfig("partner", "https://feeds.example/feed")], now="2026-11-27T08:00:00Z"
    )
    when = "2026-11-27T09:00:00Z"
    save_refresh(store, "partner", drafts, ok_record("partner", when), ok_update(when))
    titles = {t for (t,) in store.execute("SELECT title FROM items")}
    store.close()
    # The good entries are all there; the bad one may be stored too when it could be
    # normalised, but nothing else is.
    assert set(GOOD) <= titles
    assert len(titles - set(GOOD)) <= 1
    assert all(not re.search("[\ud800-\udfff]", t or "") for t in titles)
