"""The parse stage on the shared corpora and on generated input: it parses a document or
raises ParseError, never anything else."""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import pytest
from conftest import CORPORA
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.errors import ParseError
from aggregator.parse.feed import parse_feed

# Thousands of corpus files: the longest module, started first in a parallel run. The folder
# shares below read what the per-file tests found from the `_entries` cache: `--dist loadfile`
# keeps a module in one process.
pytestmark = pytest.mark.slow

FEED_URL = "https://news.example.com/feeds/world.xml"
FOLDERS = ("feedparser-tests", "feed-snapshots")
ABSENT = "../shared/corpora is absent"


@functools.cache
def _files(root: Path, folder: str) -> tuple[Path, ...]:
    return tuple(sorted(path for path in (root / folder).rglob("*") if path.is_file()))


def _corpus_params() -> list[object]:
    """One test per corpus file, named by its path; one skipped test without the corpora."""
    if not CORPORA.is_dir():
        return [pytest.param(None, id="absent", marks=pytest.mark.skip(reason=ABSENT))]
    return [
        pytest.param(path, id=path.relative_to(CORPORA).as_posix())
        for folder in FOLDERS
        for path in _files(CORPORA, folder)
    ]


@functools.cache
def _entries(path: Path) -> int | None:
    """How many entries the file parses into; None when parse_feed refuses it (ParseError).

    Cached: the per-folder shares below reuse what the per-file tests found.
    """
    try:
        return len(parse_feed(path.read_bytes(), url="https://example.com/feed").entries)
    except ParseError:
        return None


@pytest.mark.parametrize("path", _corpus_params())
def test_corpus_parses_or_fails_cleanly(path: Path) -> None:
    # Anything but a ParseError fails the test; its id names the file.
    _entries(path)


@pytest.mark.parametrize("folder", FOLDERS)
def test_corpus_folder_mostly_parses(corpora: Path, folder: str) -> None:
    files = _files(corpora, folder)
    entries = [_entries(path) for path in files]
    if folder == "feed-snapshots":
        # Real news feeds: nearly all carry items (a few Straits Times snapshots are empty).
        assert sum(1 for count in entries if count) >= 0.95 * len(files)
    else:
        # Torture tests: most are feeds; the rest are deliberate breakage.
        assert sum(1 for count in entries if count is not None) >= 0.8 * len(files)


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
