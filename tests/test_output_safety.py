"""Everything that leaves the store is safe and valid, whatever the store or the feed holds.

Property tests: arbitrary Unicode (lone surrogates, NUL, C0 and C1 controls, bidi overrides,
very long strings) and hostile HTML (script, event handlers, javascript: and data: URLs,
double-escaped markup) in every field of a story, rendered as Atom, RSS and JSON Feed, and
once through a real store; then the other way, in every field of a feed's entries, through
the parse stage.

The invariants:
- Atom and RSS parse with expat and with feedparser (not bozo); JSON Feed validates against
  tests/fixtures/jsonfeed-1.1.schema.json; every output encodes as UTF-8.
- No output carries an executable construct: no `<script` anywhere (the HTML a feed carries is
  also read after its XML or JSON layer is decoded), no `on...=` attribute in that HTML, no
  javascript: or data: URL in an href, a src or a URL field (those are absolute http(s)).
- An entry's plain summary holds no tag markup, and its summary_html is a fixed point of
  `safe_html`.
"""

from __future__ import annotations

import io
import json
import re
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

import feedparser
import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_helpers import ok_record, ok_update, save_refresh

from aggregator.errors import ParseError
from aggregator.models import (
    Article,
    Entry,
    ExtractStatus,
    FeedConfig,
    Source,
    StoryEntry,
    StoryFilter,
)
from aggregator.parse.feed import parse_feed
from aggregator.publish.story_feed import story_feed
from aggregator.publish.syndication import ATOM, CONTENT, FORMATS, Channel, render_feed
from aggregator.sanitize import safe_html, safe_url
from aggregator.store import Store, open_reader
from aggregator.stories.identity import drafts_for

NOW = "2026-11-27T10:00:00Z"
LINK = "https://desk.example/feeds/stories.atom"
SCHEMA_PATH = Path(__file__).parent / "fixtures" / "jsonfeed-1.1.schema.json"

# -- what the tests feed in ------------------------------------------------------------------

# Every code point, lone surrogates and NUL included.
ANY_CHARACTER = st.characters(codec=None, exclude_categories=())
HOSTILE = (
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<scr<script>ipt>alert(1)</script>",
    "<img src=x onerror=alert(document.domain)>",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="JaVaScRiPt:alert(1)">x</a>',
    '<a href=" java&#x09;script:alert(1)">x</a>',
    '<img src="data:image/svg+xml;base64,PHN2Zz4=">',
    '<iframe src="data:text/html,<script>alert(1)</script>"></iframe>',
    "<svg onload=alert(1)>",
    '<p style="color:red" onclick="steal()">p</p>',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    '<a href="https://ok.example/?q=<script>alert(1)</script>">q</a>',
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "&amp;lt;script&amp;gt;alert(1)&amp;lt;/script&amp;gt;",
    "&lt;img src=x onerror=alert(1)&gt;",
    "&amp;lt;img src=x onerror=alert(1)&amp;gt;",
    "&#60;script&#62;",
    "<![CDATA[<script>]]>",
    "]]>",
    "<!--",
    "-->",
    "<?xml version='1.0'?>",
    "<!DOCTYPE x [<!ENTITY a 'b'>]>",
    "&a;",
    "&#0;&#1;&#x80;&#xD800;&#xFFFE;",
    "&",
    "<",
    "<pre>\n\nx</pre>",
    "<h1>Headline</h1>",
    "<table><b>x</b><tr><td>y</td></tr></table>",
    "<textarea><script>x</script></textarea>",
    *("\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1b[31m", "\x7f", "\x85", "\x9f"),
    *("\ud800", "\udfff", "\ufffe", "\uffff", "\u202e", "\u202d", "\u2066", "\u200f"),
    *("\u2028", "\u2029", "\r\n", "\r", "\t", "\u00a0", "\U0001f600", " "),
)
URLISH = (
    "https://news.example/story",
    "javascript:alert(1)",
    " JAVASCRIPT:alert(1)",
    "java\nscript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "//evil.example/x",
    "/relative/path",
    "https://ok.example/a?q=<script>&x=\"'`{}|\\^",
    "http://ok.example/ü/\u202e/%zz/100%",
    "https://bücher.example/",
    "https://ok.example:99999/",
    "http://[::1",
    "https://",
    "mailto:desk@news.example",
)


def texts(*, max_pieces: int = 6) -> st.SearchStrategy[str]:
    """Arbitrary Unicode and hostile fragments, joined; now and then a very long run."""
    piece = st.one_of(st.text(ANY_CHARACTER, max_size=12), st.sampled_from(HOSTILE))
    short = st.lists(piece, max_size=max_pieces).map("".join)
    long = st.builds(
        lambda text, times: text * times, st.sampled_from(HOSTILE), st.integers(20, 400)
    )
    return st.one_of(short, short, short, long)


def urls() -> st.SearchStrategy[str | None]:
    return st.one_of(
        st.none(),
        st.sampled_from(URLISH),
        st.builds(lambda path: "https://ok.example/" + path, texts(max_pieces=3)),
        texts(max_pieces=3),
    )


SOURCES = st.builds(Source, feed=texts(), link=urls(), seen_at=st.just("2026-11-27T08:05:00Z"))
STORY_ENTRIES = st.builds(
    StoryEntry,
    story_id=st.integers(1, 2**53),
    title=texts(),
    url=urls(),
    summary=st.none() | texts(),
    summary_html=st.none() | texts(),
    text=st.none() | texts(),
    html=st.none() | texts(),
    author=st.none() | texts(),
    published_at=st.sampled_from([None, "2026-11-27T08:00:00Z"]),
    first_seen_at=st.just("2026-11-27T08:05:00Z"),
    last_seen_at=st.just("2026-11-27T09:00:00Z"),
    sources=st.lists(SOURCES, max_size=3).map(tuple),
    tags=st.lists(texts(max_pieces=2), max_size=4).map(tuple),
    image=urls(),
)

# -- what the tests check --------------------------------------------------------------------

_URL_ATTRIBUTES = frozenset(
    {"href", "src", "action", "formaction", "poster", "background", "srcset", "xlink:href"}
)
_EXECUTABLE_ELEMENTS = frozenset(
    {"script", "iframe", "object", "embed", "svg", "math", "style", "base", "form", "meta"}
)
# Browsers drop these from a URL before reading its scheme.
_URL_NOISE = re.compile(r"[\x00-\x20]")


def dangerous_url(url: str) -> bool:
    return _URL_NOISE.sub("", url).lower().startswith(("javascript:", "data:", "vbscript:"))


def web_url(url: str) -> bool:
    """An absolute http(s) URL (what every URL field of an output must be)."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not dangerous_url(url)


class _Constructs(HTMLParser):
    """What in an HTML fragment a browser would run: elements, handlers, script URLs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _EXECUTABLE_ELEMENTS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=...>")
            if name in _URL_ATTRIBUTES and value and dangerous_url(value):
                self.found.append(f"<{tag} {name}={value!r}>")


def assert_inert_html(fragment: str, where: str) -> None:
    """`fragment` is HTML as a feed carries it (its XML or JSON layer already decoded)."""
    assert "<script" not in fragment.lower(), (where, fragment)
    finder = _Constructs()
    finder.feed(fragment)
    finder.close()
    assert not finder.found, (where, finder.found, fragment)


def assert_valid_text(text: str, where: str) -> None:
    """No character XML 1.0 forbids, no C1 control: what any reader can store and show."""
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]", text), (
        where,
        text,
    )


def check_output(out: str, fmt: str) -> None:
    out.encode("utf-8")  # no lone surrogate: the body can be written and served
    assert "<script" not in out.lower()
    if fmt == "json":
        check_json_feed(out)
    else:
        check_xml_feed(out, fmt)


def check_xml_feed(out: str, fmt: str) -> None:
    root = ET.fromstring(out)  # expat: strict XML 1.0
    parsed = feedparser.parse(
        io.BytesIO(out.encode("utf-8")), sanitize_html=False, resolve_relative_uris=False
    )
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == ("atom10" if fmt == "atom" else "rss20")
    for link in root.iter(f"{{{ATOM}}}link"):
        assert web_url(link.get("href") or ""), link.attrib
    if fmt == "atom":
        check_atom_entries(root)
    else:
        check_rss_items(root)
    # What a reader built on feedparser sees, every HTML construct decoded once.
    for entry in parsed.entries:
        for part in entry.get("content") or []:
            assert_inert_html(part.get("value") or "", "feedparser content")
        if dict.get(entry, "summary_detail", {}).get("type") == "text/html":
            assert_inert_html(entry.get("summary") or "", "feedparser summary")
        for link in entry.get("links") or []:
            assert web_url(link.get("href") or ""), link
        for text in (entry.get("title"), entry.get("author"), entry.get("summary")):
            assert_valid_text(text or "", "feedparser text")


def check_atom_entries(root: ET.Element) -> None:
    ns = {"a": ATOM}
    for entry in root.findall("a:entry", ns):
        for tag in ("id", "title", "updated", "author"):
            assert entry.find(f"a:{tag}", ns) is not None, tag
        for content in entry.findall("a:content", ns):
            assert content.get("type") == "html"
            assert_inert_html(content.text or "", "atom content")


def check_rss_items(root: ET.Element) -> None:
    for item in root.iter("item"):
        assert_inert_html(item.findtext("description") or "", "rss description")
        assert_inert_html(item.findtext(f"{{{CONTENT}}}encoded") or "", "content:encoded")
        if (link := item.findtext("link")) is not None:
            assert web_url(link), link


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, inner in value.items():
            yield key
            yield from _strings(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _strings(inner)


def check_json_feed(out: str) -> None:
    document = json.loads(out)
    JSON_FEED.validate(document)
    for text in _strings(document):
        assert_valid_text(text, "json string")
    for item in document["items"]:
        assert_inert_html(item["content_html"], "content_html")
        for key in ("url", "external_url", "image", "banner_image"):
            if key in item:
                assert web_url(item[key]), (key, item[key])
        for source in item["_aggregator"]["sources"]:
            assert source["url"] is None or web_url(source["url"]), source


# -- the JSON Feed schema, with its formats checked ------------------------------------------

FORMAT_CHECKER = jsonschema.FormatChecker(formats=())
# RFC 3986: an absolute URI is a scheme, ':', then unreserved, reserved or %XX characters only;
# '[' and ']' only around an IP literal in the authority; at most one '#'.
_URI = re.compile(
    r"[A-Za-z][A-Za-z0-9+.-]*:(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?#\[\]]|%[0-9A-Fa-f]{2})*"
)
# RFC 3339 date-time.
_DATE_TIME = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(?:\.\d+)?(?:[Zz]|[+-]\d\d:\d\d)")


@FORMAT_CHECKER.checks("uri")
def _is_uri(value: object) -> bool:
    if not isinstance(value, str):
        return True  # formats only constrain strings
    if not _URI.fullmatch(value) or value.count("#") > 1:
        return False
    parts = urlsplit(value)
    return not re.search(r"[\[\]]", parts.path + parts.query + parts.fragment)


@FORMAT_CHECKER.checks("date-time")
def _is_date_time(value: object) -> bool:
    return not isinstance(value, str) or _DATE_TIME.fullmatch(value) is not None


SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
jsonschema.Draft202012Validator.check_schema(SCHEMA)
JSON_FEED = jsonschema.Draft202012Validator(SCHEMA, format_checker=FORMAT_CHECKER)


def test_the_schema_and_its_formats_refuse_what_the_spec_refuses() -> None:
    good = {"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": []}
    JSON_FEED.validate(good)
    item = {"id": "1", "content_text": "x"}
    bad = [
        {"title": "t", "items": []},
        {**good, "items": [{"id": "1"}]},  # neither content_html nor content_text
        {**good, "items": [{**item, "url": "javascript alert(1)"}]},
        {**good, "items": [{**item, "url": "https://x.example/<script>"}]},
        {**good, "items": [{**item, "url": "https://x.example/ü"}]},
        {**good, "items": [{**item, "tags": [1]}]},
        {**good, "items": [{**item, "authors": [{}]}]},
        {**good, "items": [{**item, "date_published": "27/11/2026"}]},
        {**good, "items": [{**item, "extra": 1}]},
    ]
    for document in bad:
        assert not JSON_FEED.is_valid(document), document
    JSON_FEED.validate({**good, "_ext": {}, "items": [{**item, "_aggregator": {"a": 1}}]})


# -- publishing: every field of a story, every format ----------------------------------------

# Stories from hypothesis text are slow to render and parse: 60 examples a format.
PUBLISH = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("fmt", FORMATS)
@PUBLISH
@given(entries=st.lists(STORY_ENTRIES, max_size=3), title=texts())
def test_any_story_renders_as_a_valid_inert_feed(
    fmt: str, entries: list[StoryEntry], title: str
) -> None:
    channel = Channel(title=title, link=LINK, updated=NOW, created_on="2026-11-01")
    check_output(render_feed(entries, fmt, channel), fmt)


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_hostile_fragments_each_render_inert(fmt: str) -> None:
    """Every fragment in every field, one story each (with its body, and falling back on its
    summary): the cases hypothesis may not draw."""
    entries = []
    for number, hostile in enumerate((*HOSTILE, *URLISH, "\ud800<script>" * 5_000)):
        entry = StoryEntry(
            story_id=number,
            title=hostile,
            url=hostile,
            summary=hostile,
            summary_html=hostile,
            text=hostile,
            html=hostile,
            author=hostile,
            published_at=None,
            first_seen_at=NOW,
            last_seen_at=NOW,
            sources=(Source(hostile, hostile, NOW),),
            tags=(hostile,),
            image=hostile,
        )
        entries += [entry, replace(entry, html=None), replace(entry, html=None, summary_html=None)]
    channel = Channel(title="".join(HOSTILE), link=LINK, updated=NOW, created_on="2026-11-01")
    check_output(render_feed(entries, fmt, channel), fmt)


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        # An HTML parser drops the newline that opens a <pre>: it has to be written twice.
        ("<pre>\n\nx</pre>", "<pre>\n\nx</pre>"),
        # A control character from a character reference, then the space before it.
        ("&#1; x", "x"),
        ("<p>a</p>&#2;\n", "<p>a</p>"),
    ],
)
def test_safe_html_is_a_fixed_point(html: str, expected: str) -> None:
    assert safe_html(html) == expected
    assert safe_html(expected) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://ok.example/a?q=<script>", "https://ok.example/a?q=%3Cscript%3E"),
        ("https://ok.example/\u202e/ü", "https://ok.example/%E2%80%AE/%C3%BC"),
        ("http://[::1]:8080/a[b]#c#d", "http://[::1]:8080/a%5Bb%5D#c%23d"),
        ("https://ok.example/100%/%41", "https://ok.example/100%25/%41"),
        ("https://ok.example:99999/", None),
        ("https://news.example/talks?a=1&b=2", "https://news.example/talks?a=1&b=2"),
    ],
)
def test_safe_url_publishes_uris(url: str, expected: str | None) -> None:
    assert safe_url(url) == expected


# -- publishing through a real store ---------------------------------------------------------

FEED_NAMES = ("wire", "<script>alert(1)</script>", "desk\u202e", "a&b")
_SURROGATES = re.compile("[\ud800-\udfff]")


def storable(strategy: st.SearchStrategy[str | None]) -> st.SearchStrategy[str | None]:
    """Text SQLite can hold: entries with a lone surrogate are never stored (drafts_for skips
    them), so the store never holds one."""
    return strategy.map(lambda text: text and _SURROGATES.sub("", text))


STORE_ENTRIES = st.builds(
    Entry,
    guid=storable(st.none() | texts(max_pieces=2)),
    link=storable(urls()),
    title=storable(texts()),
    summary=storable(texts()),
    content_html=storable(st.none() | texts()),
    author=storable(st.none() | texts()),
    published_at=st.sampled_from([None, NOW]),
    updated_at=st.none(),
    tags=st.lists(storable(texts(max_pieces=2)), max_size=3).map(tuple),
    image=storable(urls()),
    summary_html=storable(st.none() | texts()),
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    feed=st.sampled_from(FEED_NAMES),
    tags=st.lists(storable(texts(max_pieces=2)), max_size=3),
    entries=st.lists(STORE_ENTRIES, min_size=1, max_size=3),
    bodies=st.lists(st.tuples(storable(texts()), storable(texts())), min_size=3, max_size=3),
    title=texts(),
)
def test_whatever_the_store_holds_exports_valid_and_inert(
    feed: str,
    tags: list[str],
    entries: list[Entry],
    bodies: list[tuple[str, str]],
    title: str,
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "news.db")
        store = Store.open(path)
        try:
            store.sync_feeds(
                [FeedConfig(feed, "https://wire.example/rss", tags=tuple(tags))], now=NOW
            )
            # Bodies as a careless extractor might have stored them: unsanitised.
            drafts = [
                replace(d, article=Article(text=text, html=html), extract_status=ExtractStatus.OK)
                for d, (text, html) in zip(drafts_for(entries), bodies, strict=False)
            ]
            save_refresh(store, feed, drafts, ok_record(feed, NOW), ok_update(NOW))
        finally:
            store.close()
        for fmt in FORMATS:
            reader = open_reader(path)
            try:
                published = story_feed(reader, StoryFilter(), fmt, link=LINK, title=title)
            finally:
                reader.close()
            assert published.stories >= 1
            check_output(published.body, fmt)


# -- parsing: whatever a feed's entries hold -------------------------------------------------

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_MARKUP = re.compile(r"<[A-Za-z/!?]")


def xml_text(text: str, how: str) -> str:
    """`text` as element content: escaped once, escaped twice, or in a CDATA section."""
    text = _NOT_XML.sub("", text)
    if how == "cdata" and "]]>" not in text:
        return f"<![CDATA[{text}]]>"
    if how == "double":
        return escape(escape(text))
    return escape(text)


def rss_document(fields: dict[str, str], how: str) -> bytes:
    item = "".join(
        f"<{tag}>{xml_text(value, how)}</{tag}>" for tag, value in fields.items() if value
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0" '
        f'xmlns:content="{CONTENT}" xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f"<channel><title>T</title><item>{item}</item></channel></rss>"
    ).encode()


def atom_document(fields: dict[str, str], how: str, kind: str) -> bytes:
    parts = [f"<id>{xml_text(fields['guid'] or 'x', 'escaped')}</id>"]
    parts.append(f"<title type={quoteattr(kind)}>{xml_text(fields['title'], how)}</title>")
    parts.append(f"<link href={quoteattr(_NOT_XML.sub('', fields['link']))}/>")
    if fields["description"]:
        parts.append(
            f"<summary type={quoteattr(kind)}>{xml_text(fields['description'], how)}</summary>"
        )
    if fields["content:encoded"]:
        parts.append(f'<content type="html">{xml_text(fields["content:encoded"], how)}</content>')
    parts.append(f"<author><name>{xml_text(fields['dc:creator'], how)}</name></author>")
    parts.append(f"<category term={quoteattr(_NOT_XML.sub('', fields['category']))}/>")
    return (
        f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="{ATOM}"><title>T</title>'
        f"<entry>{''.join(parts)}</entry></feed>"
    ).encode()


def json_document(fields: dict[str, str]) -> bytes:
    item: dict[str, Any] = {
        "id": fields["guid"],
        "url": fields["link"],
        "title": fields["title"],
        "summary": fields["description"],
        "content_html": fields["content:encoded"],
        "content_text": fields["description"],
        "authors": [{"name": fields["dc:creator"]}],
        "tags": [fields["category"]],
        "image": fields["link"],
    }
    document = {"version": "https://jsonfeed.org/version/1.1", "title": "T", "items": [item]}
    return json.dumps(document).encode()  # lone surrogates become \ud800 escapes


ENTRY_FIELDS = st.fixed_dictionaries(
    {
        "guid": texts(max_pieces=2),
        "link": st.sampled_from(URLISH) | texts(max_pieces=2),
        "title": texts(),
        "description": st.one_of(st.just(""), texts()),
        "content:encoded": st.one_of(st.just(""), texts()),
        "dc:creator": texts(max_pieces=2),
        "category": texts(max_pieces=2),
    }
)


def check_entry(entry: Entry) -> None:
    assert not _MARKUP.search(entry.summary), entry.summary
    if entry.summary_html is not None:
        assert_valid_text(entry.summary_html, "summary_html")
        assert safe_html(entry.summary_html) == entry.summary_html
        assert_inert_html(entry.summary_html, "summary_html")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fields=ENTRY_FIELDS,
    fmt=st.sampled_from(["rss", "atom", "json"]),
    how=st.sampled_from(["escaped", "double", "cdata"]),
    kind=st.sampled_from(["text", "html"]),
)
def test_any_entry_parses_to_a_plain_summary_and_safe_summary_html(
    fields: dict[str, str], fmt: str, how: str, kind: str
) -> None:
    if fmt == "rss":
        body = rss_document(fields, how)
    elif fmt == "atom":
        body = atom_document(fields, how, kind)
    else:
        body = json_document(fields)
    try:
        parsed = parse_feed(body, url="https://feeds.example/world.xml")
    except ParseError:
        return  # refused cleanly (test_parse_corpus.py checks that nothing else escapes)
    for entry in parsed.entries:
        check_entry(entry)
