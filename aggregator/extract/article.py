"""The extract stage: an article page (or a feed entry that carries the article) to an Article.

Pure and CPU-bound: it runs in a worker process and never touches the network or the store.
trafilatura finds the main text; we add what it does not report faithfully (the canonical URL
the page declares, its language) and render the body as sanitised HTML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import TYPE_CHECKING, Any

from aggregator.errors import ExtractError
from aggregator.extract.charset import decode_html
from aggregator.extract.metadata import page_metadata
from aggregator.models import Article, Entry
from aggregator.sanitize import sanitize_html
from aggregator.text import UNSPACED_SCRIPTS, html_to_text
from aggregator.times import iso_utc
from aggregator.urls import http_url

if TYPE_CHECKING:
    from trafilatura.settings import Document

# Fewer words than this is a stub, not an article: consent walls, "subscribe to read", error
# pages. The shortest real pages in the eval corpus run ~27 words; wire briefs run 40+.
MIN_WORDS = 25
# A feed entry this long that does not end in a "read more" is taken to be the whole story.
FULL_TEXT_WORDS = 150

# Measured on ../shared/corpora/extraction-eval (benchmarks/extraction_f1.py): trafilatura's
# balanced default beats favor_precision and favor_recall on F1 (0.926 against 0.921 and 0.919),
# and keeping links, images or inline formatting in its tree costs 0.1 to 2 points, so the HTML
# rendering goes without them.
_TRAFILATURA_OPTIONS: dict[str, Any] = {
    "include_comments": False,  # reader comments are not the article: +0.9 points precision
    "include_tables": True,
    "with_metadata": False,  # page_metadata reads the fields we store, and only those
}
# A time of day when the page gives one, not just the date htmldate returns by default.
# No text scan: on the eval corpus it "finds" a date on 987 of 990 pages, mostly the
# copyright year as January 1st, and takes a quarter of the extraction time.
_DATE_PARAMS: dict[str, Any] = {
    "extensive_search": False,
    "original_date": True,
    "outputformat": "%Y-%m-%dT%H:%M:%S%z",
}
# Scripts written without spaces between words: two characters weigh about one word.
_UNSPACED = re.compile(f"[{UNSPACED_SCRIPTS}]")
_TRUNCATED_END = re.compile(r"(?:…|\.\.\.|\[…\]|\[\.\.\.\])[\s\])»→]*$")
# WordPress closes excerpts with "Continue reading <title> →": look a few words back.
_READ_MORE = re.compile(r"\b(?:read more|continue reading|read the full (?:story|article))\b", re.I)
_READ_MORE_WORDS = 15
_LANGUAGE_TAG = re.compile(r"^[a-z]{2,3}(?:-[a-z0-9]{1,8})*$", re.IGNORECASE)


def extract_article(body: bytes, *, url: str, charset: str | None = None) -> Article:
    """The article on a fetched page. `charset` is the Content-Type's, if the server sent one.

    Raises ExtractError when the page has no article text (or trafilatura cannot read it).
    """
    try:
        page = _read_page(decode_html(body, charset), url)
    except ExtractError:
        raise
    except Exception as exc:  # lxml and trafilatura raise anything, ValueError to XMLSyntaxError
        raise ExtractError(f"the page could not be read ({type(exc).__name__}: {exc})") from exc
    text = (page.document.text or "").strip()
    if word_count(text) < MIN_WORDS:
        raise ExtractError("no article text found on the page")
    about = page.metadata
    return Article(
        text=text,
        html=sanitize_html(page.body_html, base_url=url),
        title=_clean(about.title),
        author=_clean(about.author),
        published_at=_published_at(about.date),
        site_name=_clean(about.sitename),
        language=page.language,
        image=http_url(about.image, url),
        canonical_url=page.canonical_url,
    )


@dataclass(frozen=True, slots=True)
class _Page:
    document: Document  # trafilatura's findings: text, body tree
    metadata: Document  # what the page says about itself: title, author, date, ...
    body_html: str  # the body tree as (unsanitised) HTML
    canonical_url: str | None
    language: str | None


def _read_page(html: str, url: str) -> _Page:
    # Imported here: trafilatura takes a while to load, and only worker processes need it.
    from trafilatura import bare_extraction
    from trafilatura.htmlprocessing import convert_to_html
    from trafilatura.settings import Document
    from trafilatura.utils import load_html

    tree = load_html(html)
    if tree is None:
        raise ExtractError("the page is not HTML")
    canonical, language = _declared_canonical(tree, url), _declared_language(tree)
    # Before the text, as bare_extraction's own metadata step runs: it extracts from a copy.
    metadata = page_metadata(tree, url, _DATE_PARAMS)
    document = bare_extraction(tree, url=url, **_TRAFILATURA_OPTIONS)
    if not isinstance(document, Document) or document.body is None:
        raise ExtractError("no article text found on the page")
    body_html = _serialize(convert_to_html(document.body))  # in place: .text is already out
    return _Page(document, metadata, body_html, canonical, language)


def article_from_feed(entry: Entry, *, base_url: str, force: bool) -> Article | None:
    """The article as the feed carries it, when that saves fetching the page.

    With `force` (the feed is configured `extract: false`) any content will do, the summary
    included. Otherwise only content that is clearly the whole story: long, and not cut off.
    """
    text = html_to_text(entry.content_html) if entry.content_html else ""
    if text:
        html = sanitize_html(entry.content_html or "", base_url=base_url)
    elif force and entry.summary.strip():
        text = entry.summary.strip()
        paragraphs = (part.strip() for part in text.split("\n\n"))
        html = "".join(f"<p>{escape(part)}</p>" for part in paragraphs if part)
    else:
        return None
    if not force and not is_whole_text(text):
        return None
    return Article(
        text=text,
        html=html,
        title=entry.title or None,
        author=entry.author,
        published_at=entry.published_at or entry.updated_at,
        image=entry.image,
    )


def word_count(text: str) -> int:
    return len(text.split()) + len(_UNSPACED.findall(text)) // 2


def is_whole_text(text: str) -> bool:
    """Long enough to be a story, and not ending in "…" or a "Read more" link."""
    words = text.split()
    closing = " ".join(words[-_READ_MORE_WORDS:])
    return (
        word_count(text) >= FULL_TEXT_WORDS
        and not _TRUNCATED_END.search(closing)
        and not _READ_MORE.search(closing)
    )


def _serialize(root: Any) -> str:
    from lxml import etree

    return "".join(etree.tostring(child, encoding="unicode") for child in root.iterfind("body/*"))


def _declared_canonical(tree: Any, url: str) -> str | None:
    """`<link rel=canonical>`, else `og:url`: trafilatura echoes the request URL when absent."""
    declared = [
        link.get("href")
        for link in tree.iter("link")
        if "canonical" in (link.get("rel") or "").lower().split()
    ] + [
        meta.get("content")
        for meta in tree.iter("meta")
        if (meta.get("property") or meta.get("name") or "").lower() == "og:url"
    ]
    return next(filter(None, (http_url(link, url) for link in declared)), None)


def _declared_language(tree: Any) -> str | None:
    """`<html lang>`, else a content-language or og:locale meta, as a BCP 47 tag ("en-GB")."""
    candidates = [tree.get("lang"), tree.get("{http://www.w3.org/XML/1998/namespace}lang")]
    for meta in tree.iter("meta"):
        key = (meta.get("http-equiv") or meta.get("property") or meta.get("name") or "").lower()
        if key in ("content-language", "og:locale"):
            candidates.append(meta.get("content"))
    for candidate in candidates:
        tag = (candidate or "").strip().replace("_", "-").split(",")[0]
        if _LANGUAGE_TAG.match(tag):
            return tag
    return None


def _published_at(found: str | None) -> str | None:
    """htmldate's "2014-09-26T10:30:00+0200" as stored UTC text; a zone-less time is UTC."""
    if not found:
        return None
    try:
        return iso_utc(datetime.fromisoformat(found))
    except ValueError:
        return None


def _clean(value: str | None) -> str | None:
    """Whitespace collapsed; None for nothing."""
    collapsed = " ".join((value or "").split())
    return collapsed or None
