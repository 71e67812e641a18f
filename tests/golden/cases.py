"""The golden fixtures and how each is served: the one table `test_golden.py` and
`regenerate.py` both read.

A fixture is `feeds/<name>` or `articles/<name>`; its expected output is `<name>.json` beside it.
Adding a fixture means adding its row here and running the regenerate command.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aggregator.errors import ExtractError, ParseError
from aggregator.extract.article import extract_article
from aggregator.parse.feed import parse_feed

GOLDEN = Path(__file__).resolve().parent
REGENERATE = ".venv/bin/python -m tests.golden.regenerate"


@dataclass(frozen=True)
class Case:
    """One fixture and what the pretend server said about it."""

    folder: str  # "feeds" (parse_feed) or "articles" (extract_article)
    name: str  # the fixture's file name, also the test id
    url: str  # the address it was fetched from, after redirects
    content_type: str | None = None  # feeds only: the media type the server declared
    charset: str | None = None  # the Content-Type header's charset, if any
    max_entries: int = 500  # feeds only

    @property
    def path(self) -> Path:
        return GOLDEN / self.folder / self.name

    @property
    def expected_path(self) -> Path:
        return self.path.with_name(self.name + ".json")


def _feed(
    name: str,
    url: str,
    content_type: str | None,
    charset: str | None = None,
    max_entries: int = 500,
) -> Case:
    return Case("feeds", name, url, content_type, charset, max_entries)


def _article(name: str, url: str, charset: str | None = None) -> Case:
    return Case("articles", name, url, charset=charset)


RSS = "application/rss+xml"
ATOM = "application/atom+xml"

FEEDS = (
    _feed("rss091.xml", "https://feeds.example/gazette/rss091.xml", RSS),
    _feed("rss20.xml", "https://www.northwind.example/feeds/world.rss", RSS),
    _feed("rss20-cadence.xml", "https://feeds.example/markets/wire.xml", "text/xml", max_entries=2),
    _feed("rss20-windows1251.xml", "https://vn.example/rss/main.xml", RSS),
    _feed("rss20-utf8-bom.xml", "https://feeds.example/asia/desk.rss", RSS, charset="iso-8859-1"),
    _feed("rss20-illformed.xml", "https://coast.example/feed/", RSS),
    _feed("atom03.xml", "https://riverside.example/notes/atom.xml", ATOM),
    _feed("atom10.xml", "https://feeds.example/observer/science.atom", ATOM),
    _feed("atom10-iso8859-1.xml", "https://courrier.example/flux/atom.xml", "application/xml"),
    _feed("rdf.xml", "https://valley.example/index.rdf", "application/rdf+xml"),
    _feed("jsonfeed10.json", "https://feeds.example/hilltop/feed.json", "application/feed+json"),
    _feed("jsonfeed11.json", "https://feeds.example/lantern/feed.json", "application/json"),
    _feed("html-page.html", "https://www.northwind.example/rss", "text/html", charset="utf-8"),
)

ARTICLES = (
    _article("plain-news.html", "https://www.northwind.example/2024/03/05/council-budget"),
    _article("boilerplate.html", "https://valleypost.example/news/rail-line-reopens", "utf-8"),
    _article("windows-1252-meta.html", "https://courrier.example/suisse/glacier-du-rhone"),
    _article("canonical.html", "https://m.gazette.example/a/8812?utm_source=rss&utm_medium=feed"),
    _article("og-url.html", "https://transit.example/s/4471"),
    _article("meta-byline.html", "https://www.observer.example/culture/2024/mar/05/panels"),
    _article("russian.html", "https://vn.example/news/2024/03/05/metro", "utf-8"),
    _article("chinese-gb2312.html", "https://asia.example/sh/2024/03/05/metro.html"),
    _article("scripts-styles.html", "https://coast.example/2024/03/05/pier"),
    _article("time-element.html", "https://rheinpost.example/koeln/hochwasser-pegel-sinkt"),
    _article("paywall-stub.html", "https://www.northwind.example/2024/03/05/budget-papers"),
)

CASES = FEEDS + ARTICLES


def output(case: Case) -> dict[str, Any]:
    """What the code makes of the fixture now: the dataclass as a dict, or the error raised."""
    body = case.path.read_bytes()
    result: Any
    try:
        if case.folder == "feeds":
            result = parse_feed(
                body,
                url=case.url,
                content_type=case.content_type,
                charset=case.charset,
                max_entries=case.max_entries,
            )
        else:
            result = extract_article(body, url=case.url, charset=case.charset)
    except (ParseError, ExtractError) as exc:
        return {"error": type(exc).__name__, "message": str(exc)}
    return dataclasses.asdict(result)


def render(found: dict[str, Any]) -> str:
    """The expected-output file's text: stable across runs, so changes review as diffs."""
    return json.dumps(found, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
