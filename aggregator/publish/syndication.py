"""Stories as a feed for republishing: Atom 1.0, RSS 2.0 or JSON Feed 1.1 (pure).

One entry per story: the lead item's title and link (wire copy first), its extracted body
(else its summary), the story's sources earliest first, and the tags of the feeds that
carried it as categories. Every field goes through `aggregator.sanitize` on the way out,
whatever the store holds, so the output always parses strictly and carries nothing a reader
would execute.

An entry's id is a `tag:` URI of the story, not of its lead item: when a higher-priority copy
becomes the lead, readers see the same entry updated, not a repost.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import format_datetime
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

from aggregator.models import Source, StoryEntry
from aggregator.sanitize import plain_text, safe_html, safe_url
from aggregator.times import parse_iso

FORMATS = ("atom", "rss", "json")
MEDIA_TYPES = {
    "atom": "application/atom+xml; charset=utf-8",
    "rss": "application/rss+xml; charset=utf-8",
    "json": "application/feed+json; charset=utf-8",
}
ATOM = "http://www.w3.org/2005/Atom"
DC = "http://purl.org/dc/elements/1.1/"
CONTENT = "http://purl.org/rss/1.0/modules/content/"


@dataclass(frozen=True, slots=True)
class Channel:
    title: str
    link: str  # where this feed is published (Atom rel="self"); an http(s) URL
    updated: str  # ISO 8601 UTC
    created_on: str  # YYYY-MM-DD: the store's first day, the date part of every tag: id

    @property
    def authority(self) -> str:
        return urlsplit(self.link).hostname or "localhost"

    def story_id(self, story: int) -> str:
        """Stable per story and per publishing host (RFC 4151)."""
        return f"tag:{self.authority},{self.created_on}:story:{story}"


def render_feed(entries: Sequence[StoryEntry], fmt: str, channel: Channel) -> str:
    if fmt == "atom":
        return _atom(entries, channel)
    if fmt == "rss":
        return _rss(entries, channel)
    if fmt == "json":
        return _json_feed(entries, channel)
    raise ValueError(f"unknown feed format {fmt!r}; use one of {', '.join(FORMATS)}")


# -- what every format says about an entry ---------------------------------------------------


def _title(entry: StoryEntry) -> str:
    return plain_text(entry.title) or plain_text(entry.summary)[:120] or "(untitled)"


def _content_html(entry: StoryEntry) -> str:
    """The lead item's extracted body, else its summary; then who carried the story."""
    body = safe_html(entry.html, base_url=safe_url(entry.url))
    if not body:
        body = safe_html(entry.summary_html, base_url=safe_url(entry.url))
    if not body and plain_text(entry.summary):
        body = f"<p>{html.escape(plain_text(entry.summary))}</p>"
    sources = _sources_html(entry.sources)
    return "\n".join(part for part in (body, sources) if part)


def _sources_html(sources: Sequence[Source]) -> str:
    if not sources:
        return ""
    named = []
    for source in sources:
        name = html.escape(plain_text(source.feed))
        link = safe_url(source.link)
        named.append(f'<a href="{html.escape(link)}">{name}</a>' if link else name)
    return f"<p>Sources: {', '.join(named)}</p>"


def _summary(entry: StoryEntry) -> str:
    return plain_text(entry.summary) or plain_text(entry.text)[:500]


def _tags(entry: StoryEntry) -> list[str]:
    return [tag for tag in (plain_text(t) for t in entry.tags) if tag]


# -- Atom 1.0 --------------------------------------------------------------------------------


def _atom(entries: Sequence[StoryEntry], channel: Channel) -> str:
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")
    _text(feed, "title", plain_text(channel.title))
    _text(feed, "id", f"tag:{channel.authority},{channel.created_on}:stories")
    _text(feed, "updated", channel.updated)
    ET.SubElement(feed, f"{{{ATOM}}}link", rel="self", href=channel.link)
    _text(feed, "generator", "aggregator")
    for entry in entries:
        item = ET.SubElement(feed, f"{{{ATOM}}}entry")
        _text(item, "id", channel.story_id(entry.story_id))
        _text(item, "title", _title(entry))
        _text(item, "updated", entry.last_seen_at)
        _text(item, "published", entry.published_at or entry.first_seen_at)
        if url := safe_url(entry.url):
            ET.SubElement(item, f"{{{ATOM}}}link", rel="alternate", href=url)
        for source in entry.sources:
            if link := safe_url(source.link):
                attributes = {"rel": "via", "href": link, "title": plain_text(source.feed)}
                ET.SubElement(item, f"{{{ATOM}}}link", attributes)
        _text(ET.SubElement(item, f"{{{ATOM}}}author"), "name", _author(entry))
        for tag in _tags(entry):
            ET.SubElement(item, f"{{{ATOM}}}category", term=tag)
        if summary := _summary(entry):
            _text(item, "summary", summary)
        if content := _content_html(entry):
            ET.SubElement(item, f"{{{ATOM}}}content", type="html").text = content
    return _xml(feed)


def _author(entry: StoryEntry) -> str:
    """Atom wants an author on every entry of a feed that has none: the first source."""
    return (
        plain_text(entry.author)
        or next((plain_text(s.feed) for s in entry.sources if s.feed), "")
        or "aggregator"
    )


# -- RSS 2.0 ---------------------------------------------------------------------------------


def _rss(entries: Sequence[StoryEntry], channel: Channel) -> str:
    ET.register_namespace("dc", DC)
    ET.register_namespace("content", CONTENT)
    ET.register_namespace("atom", ATOM)
    rss = ET.Element("rss", version="2.0")
    head = ET.SubElement(rss, "channel")
    ET.SubElement(head, "title").text = plain_text(channel.title)
    ET.SubElement(head, "link").text = channel.link
    ET.SubElement(head, f"{{{ATOM}}}link", rel="self", href=channel.link)
    ET.SubElement(head, "description").text = f"{plain_text(channel.title)}: one entry a story"
    ET.SubElement(head, "lastBuildDate").text = _rfc822(channel.updated)
    for entry in entries:
        item = ET.SubElement(head, "item")
        ET.SubElement(item, "title").text = _title(entry)
        if url := safe_url(entry.url):
            ET.SubElement(item, "link").text = url
        ET.SubElement(item, "guid", isPermaLink="false").text = channel.story_id(entry.story_id)
        ET.SubElement(item, "pubDate").text = _rfc822(entry.published_at or entry.first_seen_at)
        if author := plain_text(entry.author):
            ET.SubElement(item, f"{{{DC}}}creator").text = author
        for tag in _tags(entry):
            ET.SubElement(item, "category").text = tag
        if summary := _summary(entry):
            # RSS readers take a description for HTML: the plain summary goes in escaped.
            ET.SubElement(item, "description").text = html.escape(summary, quote=False)
        if content := _content_html(entry):
            ET.SubElement(item, f"{{{CONTENT}}}encoded").text = content
    return _xml(rss)


# -- JSON Feed 1.1 ---------------------------------------------------------------------------


def _json_feed(entries: Sequence[StoryEntry], channel: Channel) -> str:
    items = []
    for entry in entries:
        item: dict[str, object] = {
            "id": channel.story_id(entry.story_id),
            "title": _title(entry),
            "content_html": _content_html(entry) or html.escape(_title(entry)),
            "date_published": entry.published_at or entry.first_seen_at,
            "date_modified": entry.last_seen_at,
            "tags": _tags(entry),
            # A JSON Feed extension (an underscore key): the story's sources, earliest first.
            "_aggregator": {
                "sources": [
                    {"feed": plain_text(s.feed), "url": safe_url(s.link), "seen_at": s.seen_at}
                    for s in entry.sources
                ]
            },
        }
        if url := safe_url(entry.url):
            item["url"] = url
        if summary := _summary(entry):
            item["summary"] = summary
        if author := plain_text(entry.author):
            item["authors"] = [{"name": author}]
        if image := safe_url(entry.image):
            item["image"] = image
        items.append(item)
    document = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": plain_text(channel.title),
        "feed_url": channel.link,
        "items": items,
    }
    # "<" and ">" only occur inside strings: escaped there, the same JSON can never open a tag
    # in a page that embeds it or a client that sniffs it as HTML.
    text = json.dumps(document, ensure_ascii=False, indent=2)
    return text.replace("<", "\\u003c").replace(">", "\\u003e") + "\n"


# -- XML helpers -----------------------------------------------------------------------------


def _text(parent: ET.Element, tag: str, text: str) -> None:
    ET.SubElement(parent, f"{{{ATOM}}}{tag}").text = text


def _rfc822(iso: str) -> str:
    return format_datetime(parse_iso(iso), usegmt=True)


def _xml(root: ET.Element) -> str:
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
