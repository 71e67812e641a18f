"""The throughput benchmark's site: corpus pages behind RSS feeds on the local test server.

`corpus_files` picks the pages from ../shared/corpora/extraction-eval/; `build_site` registers
FEEDS feeds of ITEMS entries each on a `tests/localserver.LocalServer`, one page per entry.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from pathlib import Path
from typing import Any


def corpus_files(corpus: Path) -> list[Path]:
    """Every page evaldata.json lists (in eval/ or cache/), in a fixed pseudo-random order."""
    import json

    data = json.loads((corpus / "evaldata.json").read_text(encoding="utf-8"))
    found = set()
    for item in data.values():
        for folder in ("eval", "cache"):
            path = corpus / folder / item["file"]
            if path.is_file() and path.stat().st_size > 0:
                found.add(path)
                break
    files = sorted(found)
    random.Random(20261127).shuffle(files)  # a quick run gets a spread of sites, not a-b-c
    return files


@dataclass(frozen=True)
class Site:
    """What the server serves: feed URLs and, per feed, its entries' page URLs."""

    feed_urls: list[str]
    items_per_feed: int
    pages: int  # distinct article URLs
    distinct_files: int
    page_bytes: int
    paths: frozenset[str]  # everything served; /robots.txt is left to answer 404

    def misses(self, server: Any) -> int:
        """Requests the server answered 404, /robots.txt apart: a broken set-up."""
        asked = (r.path.partition("?")[0] for r in server.requests)
        return sum(path not in self.paths and path != "/robots.txt" for path in asked)


def rss(feed: int, entries: list[tuple[str, str]]) -> str:
    start = datetime(2026, 11, 27, 8, tzinfo=UTC)
    items = "".join(
        f"<item><title>{escape(title)}</title><link>{escape(link)}</link>"
        f'<guid isPermaLink="false">bench-{feed}-{n}</guid>'
        f"<pubDate>{format_datetime(start - timedelta(minutes=n))}</pubDate>"
        f"<description>{escape(title)}: a short teaser, the page has the story.</description>"
        "</item>"
        for n, (title, link) in enumerate(entries)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Benchmark feed {feed}</title><link>https://example.org/{feed}</link>"
        f"<description>feed {feed}</description>{items}</channel></rss>"
    )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")[:60] or "page"


def build_site(server: Any, files: list[Path], feeds: int, items: int) -> Site:
    bodies: dict[Path, bytes] = {}
    feed_urls, paths = [], set()
    page_bytes = 0
    for f in range(feeds):
        entries = []
        for n in range(items):
            index = f * items + n
            path = files[index % len(files)]
            body = bodies.get(path) or bodies.setdefault(path, path.read_bytes())
            # ASCII only: the server matches the path as the client percent-encodes it
            page = f"/f{f:02d}/{index:05d}-{_slug(path.stem)}.html"
            # No charset in Content-Type: both contenders sniff it, as on many real sites.
            server.add(page, body, content_type="text/html")
            paths.add(page)
            page_bytes += len(body)
            entries.append((f"Article {index}: {path.stem}", server.url(page)))
        feed_path = f"/feeds/{f:02d}.xml"
        server.add(
            feed_path,
            rss(f, entries),
            etag=f'"feed-{f}"',
            last_modified="Fri, 27 Nov 2026 08:00:00 GMT",
        )
        feed_urls.append(server.url(feed_path))
        paths.add(feed_path)
    return Site(feed_urls, items, feeds * items, len(bodies), page_bytes, frozenset(paths))
