"""Stories as a feed for republishing: Atom 1.0, RSS 2.0 or JSON Feed 1.1 (pure).

One entry per story, from its lead item (wire copy first). Every piece of HTML is run
through the sanitiser again on the way out, whatever the store holds: what we republish
must be safe even if a row was written by an older version or by hand.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from email.utils import format_datetime
from xml.etree import ElementTree as ET

from aggregator.sanitize import sanitize_html
from aggregator.times import parse_iso

FORMATS = ("atom", "rss", "json")
ATOM = "http://www.w3.org/2005/Atom"
DC = "http://purl.org/dc/elements/1.1/"
CONTENT = "http://purl.org/rss/1.0/modules/content/"


@dataclass(frozen=True, slots=True)
class StoryEntry:
    """A story as republished: its lead item, and the feeds that carried it."""

    story_id: int
    title: str
    url: str | None
    summary: str | None
    html: str | None  # the lead item's body
    author: str | None
    published_at: str | None
    first_seen_at: str
    last_seen_at: str
    sources: tuple[str, ...]
    image: str | None = None


@dataclass(frozen=True, slots=True)
class Channel:
    title: str
    link: str  # the site the export is republished on
    updated: str  # ISO 8601 UTC


def _id(entry: StoryEntry) -> str:
    # Stable across exports: readers use it to recognise an entry they have seen.
    return f"urn:aggregator:story:{entry.story_id}"


def _content(entry: StoryEntry) -> str:
    return sanitize_html(entry.html or "", base_url=entry.url)


def render(entries: Sequence[StoryEntry], fmt: str, channel: Channel) -> str:
    if fmt == "atom":
        return _atom(entries, channel)
    if fmt == "rss":
        return _rss(entries, channel)
    if fmt == "json":
        return _json_feed(entries, channel)
    raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")


def _atom(entries: Sequence[StoryEntry], channel: Channel) -> str:
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")
    _text(feed, "title", channel.title)
    _text(feed, "id", f"urn:aggregator:export:{channel.link}")
    _text(feed, "updated", channel.updated)
    ET.SubElement(feed, f"{{{ATOM}}}link", rel="alternate", href=channel.link)
    _text(feed, "generator", "aggregator")
    for entry in entries:
        item = ET.SubElement(feed, f"{{{ATOM}}}entry")
        _text(item, "id", _id(entry))
        _text(item, "title", entry.title)
        _text(item, "updated", entry.last_seen_at)
        _text(item, "published", entry.published_at or entry.first_seen_at)
        if entry.url:
            ET.SubElement(item, f"{{{ATOM}}}link", rel="alternate", href=entry.url)
        if entry.author:
            _text(ET.SubElement(item, f"{{{ATOM}}}author"), "name", entry.author)
        for source in entry.sources:
            ET.SubElement(item, f"{{{ATOM}}}category", term=source)
        if entry.summary:
            _text(item, "summary", entry.summary)
        if entry.html:
            ET.SubElement(item, f"{{{ATOM}}}content", type="html").text = _content(entry)
    return _xml(feed)


def _rss(entries: Sequence[StoryEntry], channel: Channel) -> str:
    ET.register_namespace("dc", DC)
    ET.register_namespace("content", CONTENT)
    rss = ET.Element("rss", version="2.0")
    head = ET.SubElement(rss, "channel")
    ET.SubElement(head, "title").text = channel.title
    ET.SubElement(head, "link").text = channel.link
    ET.SubElement(head, "description").text = f"{channel.title}: one entry per story"
    ET.SubElement(head, "lastBuildDate").text = _rfc822(channel.updated)
    for entry in entries:
        item = ET.SubElement(head, "item")
        ET.SubElement(item, "title").text = entry.title
        if entry.url:
            ET.SubElement(item, "link").text = entry.url
        ET.SubElement(item, "guid", isPermaLink="false").text = _id(entry)
        ET.SubElement(item, "pubDate").text = _rfc822(entry.published_at or entry.first_seen_at)
        if entry.author:
            ET.SubElement(item, f"{{{DC}}}creator").text = entry.author
        for source in entry.sources:
            ET.SubElement(item, "category").text = source
        if entry.summary:
            ET.SubElement(item, "description").text = entry.summary
        if entry.html:
            ET.SubElement(item, f"{{{CONTENT}}}encoded").text = _content(entry)
    return _xml(rss)


def _json_feed(entries: Sequence[StoryEntry], channel: Channel) -> str:
    items = []
    for entry in entries:
        item: dict[str, object] = {
            "id": _id(entry),
            "title": entry.title,
            "date_published": entry.published_at or entry.first_seen_at,
            "date_modified": entry.last_seen_at,
            "tags": list(entry.sources),
        }
        if entry.url:
            item["url"] = entry.url
        if entry.summary:
            item["summary"] = entry.summary
        if entry.html:
            item["content_html"] = _content(entry)
        else:  # JSON Feed wants one of the two
            item["content_text"] = entry.summary or entry.title
        if entry.author:
            item["authors"] = [{"name": entry.author}]
        if entry.image:
            item["image"] = entry.image
        items.append(item)
    document = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": channel.title,
        "home_page_url": channel.link,
        "items": items,
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def _text(parent: ET.Element, tag: str, text: str) -> None:
    ET.SubElement(parent, f"{{{ATOM}}}{tag}").text = text


def _rfc822(iso: str) -> str:
    return format_datetime(parse_iso(iso), usegmt=True)


def _xml(root: ET.Element) -> str:
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
