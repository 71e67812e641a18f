"""The feeds a web page advertises: `<link rel="alternate" type="application/rss+xml"
href="...">` in its head (pure: a decoded page in, absolute feed URLs out).

Only the head is read: HTML allows `rel="alternate"` links nowhere else, and a page's body is
most of its size.
"""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser

from aggregator.urls import http_url

# The media types of feeds, and what each is called when shown.
FEED_TYPES = {
    "application/rss+xml": "RSS",
    "application/atom+xml": "Atom",
    "application/feed+json": "JSON Feed",
}


@dataclass(frozen=True, slots=True)
class FeedLink:
    url: str  # absolute http(s)
    title: str | None  # the link's own title attribute
    media_type: str


def feed_links(page: str, *, base_url: str) -> list[FeedLink]:
    """Every feed link in the page's head, in page order, each URL once; relative links
    resolved against `<base href>` if the page has one, else `base_url`."""
    reader = _HeadReader(base_url)
    try:
        reader.feed(page)
        reader.close()
    except _EndOfHead:
        pass
    return reader.links


class _EndOfHead(Exception):
    pass


class _HeadReader(HTMLParser):
    def __init__(self, base_url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base_url = base_url
        self.links: list[FeedLink] = []
        self._seen: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            raise _EndOfHead
        values = {name: value or "" for name, value in attrs}
        if tag == "base" and values.get("href"):
            self.base_url = http_url(values["href"], self.base_url) or self.base_url
        if tag != "link" or "alternate" not in values.get("rel", "").lower().split():
            return
        media_type = values.get("type", "").partition(";")[0].strip().lower()
        url = http_url(values.get("href"), self.base_url)
        if media_type in FEED_TYPES and url is not None and url not in self._seen:
            self._seen.add(url)
            title = " ".join(values.get("title", "").split()) or None
            self.links.append(FeedLink(url=url, title=title, media_type=media_type))

    def handle_endtag(self, tag: str) -> None:
        if tag == "head":
            raise _EndOfHead
