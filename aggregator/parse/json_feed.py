"""JSON Feed 1.0 and 1.1 (https://www.jsonfeed.org/version/1.1/) read into a ParsedFeed.

Also holds the entry-field rules shared with `parse`, which reads RSS and Atom into the same
Entry: links absolute http(s) only, titles and summaries capped.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from aggregator.errors import NotAFeed, ParseError
from aggregator.models import Entry, ParsedFeed
from aggregator.text import clip, collapse_ws, markup_free_text
from aggregator.times import iso_utc
from aggregator.urls import http_url

VERSION_PREFIX = "https://jsonfeed.org/version/"
TITLE_LIMIT = 1000
SUMMARY_LIMIT = 5000


def parse_json_feed(body: bytes, *, url: str, max_entries: int) -> ParsedFeed:
    """Read a JSON Feed; ParseError if the JSON is broken, NotAFeed if it is other JSON."""
    document = _load(body)
    version = document.get("version") if isinstance(document, dict) else None
    if not isinstance(version, str) or not version.startswith(VERSION_PREFIX):
        raise NotAFeed(
            "the address serves JSON, but not a JSON Feed (its version is not "
            f"{VERSION_PREFIX}...); check the feed URL"
        )
    items = document.get("items")
    if not isinstance(items, list):
        raise ParseError(
            "the JSON Feed has no list of items (its 'items' is missing or not a list)"
        )
    home = http_url(document.get("home_page_url"), url)
    # Relative item links read naturally against the site's home page, as in HTML.
    base = home or url
    feed_authors = _authors(document)
    objects = [item for item in items if isinstance(item, dict)]
    skipped = len(items) - len(objects)
    entries = tuple(_entry(item, base, feed_authors) for item in objects[: max(max_entries, 0)])
    title = _text(document.get("title"))
    return ParsedFeed(
        title=clip(title, TITLE_LIMIT) or None,
        site_url=home,
        entries=entries,
        warning=f"skipped {skipped} items that are not JSON objects" if skipped else None,
        version="json10" if version == VERSION_PREFIX + "1" else "json11",
        total_entries=len(objects),
    )


_SURROGATE = re.compile("[\ud800-\udfff]")


def _without_surrogates(text: str) -> str:
    """JSON's \\ud800 escapes can name half of a character; such a half becomes U+FFFD, as
    the XML path does for a surrogate character reference."""
    return _SURROGATE.sub("\ufffd", text)


def _clean_value(value: Any) -> Any:
    if isinstance(value, str):
        return _without_surrogates(value)
    if isinstance(value, list):
        return [_clean_value(v) for v in value]
    return value


def _load(body: bytes) -> Any:
    try:
        # Every string, keys included, goes through the hook for objects and arrays alike.
        return json.loads(
            body,
            object_pairs_hook=lambda pairs: {
                _without_surrogates(k): _clean_value(v) for k, v in pairs
            },
        )
    except json.JSONDecodeError as exc:
        raise ParseError(
            f"the body is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"
        ) from None
    except UnicodeDecodeError:
        raise ParseError("the JSON is not valid UTF-8 text") from None
    except ValueError as exc:  # e.g. an integer beyond Python's digit limit
        raise ParseError(f"the JSON could not be read ({exc})") from None
    except RecursionError:
        raise ParseError("the JSON is nested too deeply to read") from None


def _entry(item: dict[str, Any], base: str, feed_authors: str | None) -> Entry:
    content_html = _text(item.get("content_html"), collapse=False) or None
    # `summary` and `content_text` are plain text by the spec; publishers put HTML in them
    # too, and none of it may reach the plain summary as tags.
    plain = _text(item.get("summary")) or _text(item.get("content_text"))
    summary = markup_free_text(plain, html=False)
    if not summary and content_html:
        summary = markup_free_text(content_html, html=True)
    tags = item.get("tags")
    return Entry(
        guid=_guid(item.get("id")),
        link=http_url(item.get("url"), base) or http_url(item.get("external_url"), base),
        title=clip(_text(item.get("title")), TITLE_LIMIT),
        summary=clip(summary, SUMMARY_LIMIT),
        content_html=content_html,
        # Per the spec, an item without authors has the feed's.
        author=_authors(item) or feed_authors,
        published_at=_date(item.get("date_published")),
        updated_at=_date(item.get("date_modified")),
        tags=tuple(dict.fromkeys(t for t in map(_text, tags) if t))
        if isinstance(tags, list)
        else (),
        image=http_url(item.get("image"), base) or http_url(item.get("banner_image"), base),
    )


def _authors(holder: dict[str, Any]) -> str | None:
    """Names from `authors` (1.1) or `author` (1.0), joined with commas."""
    people = holder.get("authors")
    if not isinstance(people, list):
        people = [holder.get("author")]
    names = [_text(person.get("name")) for person in people if isinstance(person, dict)]
    return ", ".join(name for name in names if name) or None


def _guid(value: object) -> str | None:
    # The spec says a string; some publishers write numbers.
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value).strip() or None


def _text(value: object, *, collapse: bool = True) -> str:
    if not isinstance(value, str):
        return ""
    return collapse_ws(value) if collapse else value


def _date(value: object) -> str | None:
    """RFC 3339 text as stored ISO UTC; None when absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        return iso_utc(datetime.fromisoformat(value.strip().upper()))
    except (ValueError, OverflowError):
        return None
