"""The parse stage on the shared corpora and on generated input: it parses a document or
raises ParseError, never anything else."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.errors import ParseError
from aggregator.models import ParsedFeed
from aggregator.parse import parse_feed

FEED_URL = "https://news.example.com/feeds/world.xml"


@pytest.mark.parametrize("folder", ["feedparser-tests", "feed-snapshots"])
def test_corpus_parses_or_fails_cleanly(corpora: Path, folder: str) -> None:
    files = sorted(path for path in (corpora / folder).rglob("*") if path.is_file())
    parsed: list[ParsedFeed] = []
    for path in files:
        # Anything but a ParseError fails the test, naming the file in the traceback.
        with contextlib.suppress(ParseError):
            parsed.append(parse_feed(path.read_bytes(), url="https://example.com/feed"))
    if folder == "feed-snapshots":
        # Real news feeds: nearly all carry items (a few Straits Times snapshots are empty).
        assert sum(1 for feed in parsed if feed.entries) >= 0.95 * len(files)
    else:
        # Torture tests: most are feeds; the rest are deliberate breakage.
        assert len(parsed) >= 0.8 * len(files)


XML_BITS = st.sampled_from(
    [
        "<rss version='2.0'>",
        "<channel>",
        "<item>",
        "</item>",
        "<title>",
        "</title>",
        "<link>",
        "</link>",
        "<feed xmlns='http://www.w3.org/2005/Atom'>",
        "<entry>",
        "<?xml version='1.0'?>",
        "<!DOCTYPE rss>",
        "<![CDATA[",
        "]]>",
        "&amp;",
        "&nbsp;",
        "&#x0;",
        "<pubDate>",
        "</pubDate>",
        "Tue, 10 Jun 2003 04:00:00 GMT",
        "{",
        '"version"',
        '"https://jsonfeed.org/version/1"',
        '"items"',
        ":",
        "[",
        "]",
        ",",
        "}",
        "<",
        ">",
        "é",
        "\x00",
        "\n",
    ]
)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_raise_only_parse_error(body: bytes) -> None:
    with contextlib.suppress(ParseError):
        parse_feed(body, url=FEED_URL)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(XML_BITS, max_size=60).map("".join), st.sampled_from(["utf-8", "utf-16", "latin-1"])
)
def test_feedlike_text_raises_only_parse_error(text: str, codec: str) -> None:
    with contextlib.suppress(ParseError):
        parse_feed(text.encode(codec, "replace"), url=FEED_URL)
