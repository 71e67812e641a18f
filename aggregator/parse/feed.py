"""The parse stage: a feed's bytes into a ParsedFeed (RSS 0.9x/1.0/2.0, Atom, JSON Feed).

Pure, so it can run in a worker process: no network, no clock, no database.

Safety, found by experiment with feedparser 6.0.14 on expat 2.5: external entities are neither
fetched nor read (`SYSTEM "file:///etc/passwd"` stays a bare `&x;`) and expat stops billion
laughs at its amplification limit (0.5 s, ~60 MB), but feedparser's lenient fallback parser
re-expands "safe" internal entities without limit (a 104 KB body gave a 100 MB title and took
~400 MB), so any entity declaration is refused. And feedparser.parse(bytes) opens the bytes as
a file path if such a file exists, so the body goes in as a stream.
"""

from __future__ import annotations

import codecs
import io
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any
from xml.sax import SAXParseException

import feedparser
from feedparser.encodings import convert_to_utf8

from aggregator.errors import NotAFeed, ParseError
from aggregator.models import Entry, ParsedFeed
from aggregator.parse import cadence
from aggregator.parse.json_feed import SUMMARY_LIMIT, TITLE_LIMIT, parse_json_feed
from aggregator.sanitize import safe_html
from aggregator.text import clip, collapse_ws, html_to_text, markup_free_text
from aggregator.times import iso_utc
from aggregator.urls import http_url

_JSON_TYPES = ("application/feed+json", "application/json")
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_HTML_CONTENT = ("text/html", "application/xhtml+xml", "html", "xhtml")

# Tokens before the root element. Comments, processing instructions and quoted literals are
# stepped over because they may hold "<x" that is not the root; "<\w" is where feedparser itself
# stops looking for entity declarations, and expat cannot take one after its root element.
_PROLOG_TOKEN = re.compile(rb"<!--|<\?|[\"']|<\w")
_PROLOG_CLOSE = {b"<!--": b"-->", b"<?": b"?>", b'"': b'"', b"'": b"'"}
_ENTITY_DECLARATION = re.compile(rb"<!ENTITY", re.IGNORECASE)
# UTF-32 first: its little-endian mark begins with UTF-16's.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32le"),
    (codecs.BOM_UTF32_BE, "utf-32be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16le"),
    (codecs.BOM_UTF16_BE, "utf-16be"),
)
# "<?xml" as it starts a document in the encodings feedparser sniffs, BOM or not.
_DECLARATION_STARTS = tuple(
    bom + "<?xml".encode(codec)
    for codec, bom in [
        ("utf-8", b""),
        ("utf-8", codecs.BOM_UTF8),
        ("utf-16-le", b""),
        ("utf-16-le", codecs.BOM_UTF16_LE),
        ("utf-16-be", b""),
        ("utf-16-be", codecs.BOM_UTF16_BE),
        ("utf-32-le", b""),
        ("utf-32-le", codecs.BOM_UTF32_LE),
        ("utf-32-be", b""),
        ("utf-32-be", codecs.BOM_UTF32_BE),
        ("cp037", b""),
    ]
)


def parse_feed(
    body: bytes,
    *,
    url: str,
    content_type: str | None = None,
    charset: str | None = None,
    max_entries: int = 500,
) -> ParsedFeed:
    """Read a feed body; raises ParseError (or its NotAFeed) and nothing else.

    `url` is the feed's address after redirects: relative links resolve against it.
    `content_type` and `charset` are what the server declared, if anything.
    """
    if not body.removeprefix(codecs.BOM_UTF8).strip():
        raise NotAFeed("the server sent an empty body")
    try:
        if _is_json(body, content_type):
            return parse_json_feed(body, url=url, max_entries=max_entries)
        return _parse_xml(
            body, url=url, content_type=content_type, charset=charset, max_entries=max_entries
        )
    except ParseError:
        raise
    except Exception as exc:  # feedparser on hostile bytes: the caller only handles ParseError
        raise ParseError(f"the feed could not be read ({type(exc).__name__}: {exc})") from exc


# Elements that name a person: feedparser looks for an e-mail address in them with a regex
# whose time grows with the square of their length (16 KB: 4 s; 1 MB: hours).
_PERSON = re.compile(
    rb"(<(?:[a-z]+:)?(?:author|creator|managingEditor|webMaster|name|email|contributor)\b[^>]*>)"
    rb"([^<]{%d})[^<]*" % 1024,
    re.IGNORECASE,
)


def _clip_people(document: bytes) -> bytes:
    """Cut what an author-like element says to 1 KB before feedparser reads it."""
    return _PERSON.sub(rb"\1\2", document)


_CHARREF = re.compile(rb"&#(?:[xX]([0-9a-fA-F]{1,8})|([0-9]{1,10}));")


def _legal_charrefs(document: bytes) -> bytes:
    """Character references to what XML 1.0 forbids (a lone surrogate, NUL, most C0
    controls) become U+FFFD: feedparser's fallback parser crashes on a surrogate one,
    which would cost the whole feed for one entry's title."""

    def legal(match: re.Match[bytes]) -> bytes:
        code = int(match[1], 16) if match[1] else int(match[2])
        allowed = code in (9, 10, 13) or 0x20 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD
        return match[0] if allowed or 0x10000 <= code <= 0x10FFFF else b"&#xFFFD;"

    return _CHARREF.sub(legal, document) if b"&#" in document else document


def _is_json(body: bytes, content_type: str | None) -> bool:
    first = body.removeprefix(codecs.BOM_UTF8).lstrip()[:1]
    if first == b"<":
        return False  # XML, whatever the header says
    return first == b"{" or content_type in _JSON_TYPES


def _parse_xml(
    body: bytes, *, url: str, content_type: str | None, charset: str | None, max_entries: int
) -> ParsedFeed:
    document, encoding_warning = _to_utf8(body, charset)
    if _ENTITY_DECLARATION.search(document, 0, _prolog_end(document)):
        raise ParseError(
            "the feed declares XML entities, which feeds never need; refused for safety"
        )
    result = feedparser.parse(
        io.BytesIO(_clip_people(_legal_charrefs(document))),
        # Already UTF-8; content-location is the base for relative links.
        response_headers={
            "content-location": url,
            "content-type": "application/xml; charset=utf-8",
        },
        sanitize_html=False,  # Entry.content_html is raw by contract; sanitize.py cleans it
    )
    version: str = result.get("version") or ""
    entries = list(result.get("entries") or [])
    if not version and not entries:
        raise _not_a_feed(body, content_type)
    xml_problem = _xml_problem(result.get("bozo_exception"), _added_lines(body))
    if xml_problem and not entries:
        raise ParseError(f"the feed is not well-formed XML ({xml_problem}); no entries found")
    xml_warning = xml_problem and (
        f"the feed is not well-formed XML ({xml_problem}); read what could be recovered"
    )
    feed: dict[str, Any] = result.get("feed") or {}
    title = _plain(feed, "title")
    return ParsedFeed(
        title=clip(title, TITLE_LIMIT) or None,
        site_url=http_url(feed.get("link"), url),
        entries=tuple(_entry(entry, url) for entry in entries[: max(max_entries, 0)]),
        warning="; ".join(w for w in (encoding_warning, xml_warning) if w) or None,
        version=version,
        ttl_minutes=_ttl(feed.get("ttl")),
        total_entries=len(entries),
        update_period_s=cadence.update_period_s(feed),
        skip_hours=cadence.skip_hours(document),
        skip_days=cadence.skip_days(document),
    )


def _to_utf8(body: bytes, charset: str | None) -> tuple[bytes, str | None]:
    """The body as UTF-8 with a matching XML declaration, and a note if its label was wrong.

    A declared charset wins over the XML declaration (RFC 7303). The media type is not passed
    on: feedparser would apply RFC 3023's us-ascii default for text/xml, which RFC 7303
    retired, and flag the common text/html and text/plain labels as errors.
    """
    # A byte order mark outweighs any label, as in browsers; feedparser would read UTF-16
    # without an XML declaration as UTF-8.
    charset = next((codec for bom, codec in _BOMS if body.startswith(bom)), charset)
    content_type = f"application/xml; charset={charset}" if charset else "application/xml"
    outcome: dict[str, Any] = {}
    document: bytes = convert_to_utf8({"content-type": content_type}, body, outcome)
    problem = outcome.get("bozo_exception")
    if isinstance(problem, feedparser.CharacterEncodingOverride):
        return document, f"the character encoding is mislabelled ({problem})"
    if problem is not None:
        return document, "the character encoding could not be determined; text may be garbled"
    return document, None


def _prolog_end(document: bytes) -> int:
    """Where the root element starts (or a bit later), as far as entity declarations go."""
    position = 0
    while match := _PROLOG_TOKEN.search(document, position):
        close = _PROLOG_CLOSE.get(match.group())
        if close is None:
            return match.start()
        end = document.find(close, match.end())
        if end < 0:
            return len(document)
        position = end + len(close)
    return len(document)


def _added_lines(body: bytes) -> int:
    """feedparser puts an XML declaration and a newline before a body without one."""
    return 0 if body.startswith(_DECLARATION_STARTS) else 1


def _xml_problem(problem: object, added_lines: int) -> str | None:
    """What the XML parser stumbled on, or None if it did not (encoding notes aside)."""
    if isinstance(problem, SAXParseException):
        line = max((problem.getLineNumber() or 1) - added_lines, 1)
        return f"{problem.getMessage()} at line {line}"
    if isinstance(problem, Exception) and not isinstance(
        problem, feedparser.ThingsNobodyCaresAboutButMe
    ):
        return str(problem) or type(problem).__name__
    return None


def _not_a_feed(body: bytes, content_type: str | None) -> NotAFeed:
    start = body.removeprefix(codecs.BOM_UTF8).lstrip()[:4096].lower()
    if content_type in _HTML_TYPES or start.startswith(b"<!doctype html") or b"<html" in start:
        return NotAFeed(
            "the address serves an HTML page, not a feed; "
            "check the feed URL (the site may have moved its feed)"
        )
    if start.startswith(b"<"):
        return NotAFeed("the address serves XML that is not RSS or Atom; check the feed URL")
    served = f"{content_type} content" if content_type else "something"
    return NotAFeed(f"the address serves {served}, not a feed; check the feed URL")


def _entry(entry: dict[str, Any], base: str) -> Entry:
    guid = entry.get("id")
    link = http_url(entry.get("link"), base)
    summary, summary_html = _summary(entry, link or base)
    return Entry(
        guid=(guid.strip() or None) if isinstance(guid, str) else None,
        link=link,
        title=clip(_plain(entry, "title"), TITLE_LIMIT),
        summary=clip(summary, SUMMARY_LIMIT),
        content_html=_content_html(entry),
        author=_author(entry),
        # dict.get: FeedParserDict maps a missing updated_parsed to published_parsed, with a
        # DeprecationWarning; published and updated stay apart here.
        published_at=_date(dict.get(entry, "published_parsed")),
        updated_at=_date(dict.get(entry, "updated_parsed")),
        tags=_tags(entry),
        image=next(_images(entry, base), None),
        summary_html=summary_html,
    )


def _summary(entry: Mapping[str, Any], base: str) -> tuple[str, str | None]:
    """The entry's summary as plain text without markup, and as safe HTML if the feed gave
    it as HTML.

    feedparser copies an entry's content into `summary` when it has none, without a
    `summary_detail`: that is the content, not a summary, and its type is the content's.
    """
    value, detail = entry.get("summary"), entry.get("summary_detail")
    if not isinstance(value, str):
        return "", None
    if isinstance(detail, Mapping):
        if _is_html(detail.get("type")):
            return markup_free_text(value, html=True), safe_html(value, base_url=base) or None
        return markup_free_text(value, html=False), None
    copied = next(
        (
            part
            for part in entry.get("content") or []
            if isinstance(part, Mapping) and part.get("value") == value
        ),
        {},
    )
    return markup_free_text(value, html=_is_html(copied.get("type"))), None


def _plain(holder: Mapping[str, Any], key: str) -> str:
    """A text construct as plain text; feedparser marks which ones hold HTML."""
    value = holder.get(key)
    if not isinstance(value, str):
        return ""
    detail = holder.get(f"{key}_detail") or {}
    return html_to_text(value) if _is_html(detail.get("type")) else collapse_ws(value)


def _is_html(media_type: object) -> bool:
    return isinstance(media_type, str) and media_type.lower() in _HTML_CONTENT


def _content_html(entry: Mapping[str, Any]) -> str | None:
    values = [
        part.get("value")
        for part in entry.get("content") or []
        if isinstance(part, Mapping) and _is_html(part.get("type"))
    ]
    return max((v for v in values if isinstance(v, str) and v.strip()), key=len, default=None)


def _author(entry: Mapping[str, Any]) -> str | None:
    detail = entry.get("author_detail") or {}
    for name in (detail.get("name"), entry.get("author")):
        if isinstance(name, str) and (text := collapse_ws(name)):
            return clip(text, TITLE_LIMIT)
    return None


def _tags(entry: Mapping[str, Any]) -> tuple[str, ...]:
    terms = (
        collapse_ws(term)
        for tag in entry.get("tags") or []
        if isinstance(tag, Mapping)
        for term in [tag.get("term") or tag.get("label")]
        if isinstance(term, str)
    )
    return tuple(dict.fromkeys(term for term in terms if term))


def _images(entry: Mapping[str, Any], base: str) -> Iterator[str]:
    """Candidate image URLs, best first: media:content, media:thumbnail, image enclosures."""
    for media in entry.get("media_content") or []:
        medium, kind = media.get("medium"), media.get("type") or ""
        # Untyped media:content is an image in practice (the Guardian, Reuters).
        if medium == "image" or kind.startswith("image/") or not (medium or kind):
            yield from _present(http_url(media.get("url"), base))
    for thumbnail in entry.get("media_thumbnail") or []:
        yield from _present(http_url(thumbnail.get("url"), base))
    for link in entry.get("links") or []:
        if link.get("rel") == "enclosure" and (link.get("type") or "").startswith("image/"):
            yield from _present(http_url(link.get("href"), base))


def _present(url: str | None) -> Iterator[str]:
    if url:
        yield url


def _date(moment: object) -> str | None:
    """feedparser's UTC struct_time as stored text; None for anything unusable."""
    if not isinstance(moment, tuple):  # struct_time is one
        return None
    try:
        year, month, day, hour, minute, second = moment[:6]
        return iso_utc(datetime(year, month, day, hour, minute, second, tzinfo=UTC))
    except (TypeError, ValueError, OverflowError):
        return None


def _ttl(value: object) -> int | None:
    text = value.strip() if isinstance(value, str) else ""
    # A week at most: beyond that the hint is a typo, and int() refuses huge digit strings.
    if text.isdecimal() and len(text) <= 6 and 0 < int(text) <= 7 * 24 * 60:
        return int(text)
    return None
