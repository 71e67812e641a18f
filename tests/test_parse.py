"""The parse stage: small inline feeds and hostile documents.

The shared corpora and the property-based tests are in test_parse_corpus.py.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from aggregator.errors import NotAFeed, ParseError
from aggregator.models import Entry
from aggregator.parse.feed import parse_feed
from aggregator.text import clip, html_to_text

FEED_URL = "https://news.example.com/feeds/world.xml"
SITE = "https://news.example.com/"

RSS20 = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"
     xmlns:media="http://search.yahoo.com/mrss/" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel>
  <title>World &amp; Nation</title><link>https://news.example.com/</link><ttl>15</ttl>
  <item>
    <title>Quake   hits
      coast</title>
    <link>https://news.example.com/quake</link>
    <guid isPermaLink="false">quake-1</guid>
    <description>&lt;p&gt;A strong &lt;b&gt;quake&lt;/b&gt; hit.&lt;/p&gt;
      &lt;p&gt;More soon.&lt;/p&gt;</description>
    <content:encoded><![CDATA[<p>A strong quake hit the coast.</p>
<script>track()</script>]]></content:encoded>
    <dc:creator>Ana Reporter</dc:creator>
    <category>World</category><category>Disasters</category><category>World</category>
    <media:content url="/img/quake.jpg" medium="image"/>
    <pubDate>Tue, 10 Jun 2003 04:00:00 +0200</pubDate>
  </item>
  <item><title>Second</title><link>/second</link></item>
</channel>
</rss>"""

RSS10 = b"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
         xmlns:dc="http://purl.org/dc/elements/1.1/">
  <channel rdf:about="https://example.org/"><title>RDF news</title>
    <link>https://example.org/</link></channel>
  <item rdf:about="https://example.org/a"><title>RDF item</title>
    <link>https://example.org/a</link><dc:date>2024-03-01T12:30:00+01:00</dc:date></item>
</rdf:RDF>"""

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title type="html">Atom &lt;i&gt;news&lt;/i&gt;</title>
  <link href="/" rel="alternate"/>
  <entry>
    <id>urn:uuid:1225c695</id>
    <title>Atom entry</title>
    <link href="stories/1" rel="alternate"/>
    <link href="/photo.png" rel="enclosure" type="image/png"/>
    <author><name>Bo Writer</name></author>
    <published>2024-01-02T03:04:05Z</published>
    <updated>2024-01-03T00:00:00-05:00</updated>
    <summary>Short text</summary>
    <content type="html">&lt;p&gt;short&lt;/p&gt;</content>
    <content type="html">&lt;p&gt;the longer body&lt;/p&gt;</content>
  </entry>
</feed>"""


def rss(items: str, *, prolog: str = '<?xml version="1.0" encoding="utf-8"?>') -> bytes:
    return f'{prolog}<rss version="2.0"><channel><title>T</title>{items}</channel></rss>'.encode()


def only_entry(body: bytes, **kwargs: Any) -> Entry:
    feed = parse_feed(body, url=FEED_URL, **kwargs)
    assert len(feed.entries) == 1
    return feed.entries[0]


def test_rss20() -> None:
    feed = parse_feed(RSS20, url=FEED_URL)
    assert (feed.version, feed.title, feed.site_url) == ("rss20", "World & Nation", SITE)
    assert (feed.ttl_minutes, feed.total_entries, feed.warning) == (15, 2, None)
    quake, second = feed.entries
    assert quake == Entry(
        guid="quake-1",
        link="https://news.example.com/quake",
        title="Quake hits coast",
        summary="A strong quake hit. More soon.",
        content_html="<p>A strong quake hit the coast.</p>\n<script>track()</script>",
        author="Ana Reporter",
        published_at="2003-06-10T02:00:00Z",
        updated_at=None,
        tags=("World", "Disasters"),
        image="https://news.example.com/img/quake.jpg",
        summary_html="<p>A strong <b>quake</b> hit.</p>\n      <p>More soon.</p>",
    )
    assert second.link == "https://news.example.com/second"
    assert (second.guid, second.summary, second.content_html) == (None, "", None)


def test_rss10() -> None:
    feed = parse_feed(RSS10, url=FEED_URL)
    assert (feed.version, feed.title) == ("rss10", "RDF news")
    (item,) = feed.entries
    assert (item.title, item.link) == ("RDF item", "https://example.org/a")
    assert item.updated_at == "2024-03-01T11:30:00Z"


def test_atom() -> None:
    feed = parse_feed(ATOM, url=FEED_URL)
    assert (feed.version, feed.title, feed.site_url) == ("atom10", "Atom news", SITE)
    (entry,) = feed.entries
    assert entry.guid == "urn:uuid:1225c695"
    assert entry.link == "https://news.example.com/feeds/stories/1"
    assert (entry.published_at, entry.updated_at) == (
        "2024-01-02T03:04:05Z",
        "2024-01-03T05:00:00Z",
    )
    assert (entry.summary, entry.content_html) == ("Short text", "<p>the longer body</p>")
    assert (entry.author, entry.image) == ("Bo Writer", "https://news.example.com/photo.png")


@pytest.mark.parametrize(
    ("item", "field", "expected"),
    [
        ("<title>x</title>", "published_at", None),
        ("<pubDate>Tue, 99 Jun 2003 04:00:00 GMT</pubDate>", "published_at", None),
        ("<pubDate>not a date at all</pubDate>", "published_at", None),
        (
            "<pubDate>Sat, 01 Jan 2000 00:00:00 -1200</pubDate>",
            "published_at",
            "2000-01-01T12:00:00Z",
        ),
        ("<title>x</title>", "link", None),
        ("<link>javascript:alert(1)</link>", "link", None),
        (
            "<link>../other/story?id=1#top</link>",
            "link",
            "https://news.example.com/other/story?id=1#top",
        ),
        ("<link>//cdn.example.net/x</link>", "link", "https://cdn.example.net/x"),
        ("<guid>   </guid>", "guid", None),
        ("<title>AT&amp;T &lt;b&gt;wins&lt;/b&gt; &amp;nbsp;big</title>", "title", "AT&T wins big"),
        ("<title><![CDATA[Rock &amp; <em>roll</em>]]></title>", "title", "Rock & roll"),
        ("<description>a &lt;script&gt;x()&lt;/script&gt;b</description>", "summary", "a b"),
        # Double-escaped: feedparser decodes one layer, the summary the other.
        (
            "<description>&amp;lt;script&amp;gt;alert(1)&amp;lt;/script&amp;gt; teaser"
            "</description>",
            "summary",
            "teaser",
        ),
        (
            "<description>&amp;lt;b&amp;gt;Bold&amp;lt;/b&amp;gt; move</description>",
            "summary_html",
            "&lt;b&gt;Bold&lt;/b&gt; move",
        ),
        (
            "<description>&lt;a href='/x' onclick='y()'&gt;A&lt;/a&gt;</description>",
            "summary_html",
            '<a href="https://news.example.com/x" rel="noopener noreferrer nofollow">A</a>',
        ),
        # Full content but no description: feedparser copies the content into the summary.
        (
            "<content:encoded>&lt;p&gt;Polls &lt;b&gt;close&lt;/b&gt;&lt;/p&gt;</content:encoded>",
            "summary",
            "Polls close",
        ),
        ("<content:encoded>&lt;p&gt;Polls close&lt;/p&gt;</content:encoded>", "summary_html", None),
        ("<enclosure url='/a.mp3' type='audio/mpeg'/>", "image", None),
        ("<enclosure url='/a.jpg' type='image/jpeg' length='1'/>", "image", SITE + "a.jpg"),
    ],
)
def test_entry_fields(item: str, field: str, expected: str | None) -> None:
    entry = only_entry(rss(f"<item>{item}</item>"))
    assert getattr(entry, field) == expected


def test_atom_content_without_a_summary_is_not_taken_for_plain_text() -> None:
    body = b"""<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title><entry><id>1</id>
    <title>x</title><content type="html">&lt;img src=x onerror=alert(document.domain)&gt;
    Aid &lt;b&gt;arrives&lt;/b&gt;</content></entry></feed>"""
    entry = only_entry(body)
    assert (entry.summary, entry.summary_html) == ("Aid arrives", None)
    assert "onerror" in (entry.content_html or "")  # raw by contract


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        ('<summary type="text">&lt;b&gt;Labelled&lt;/b&gt; text</summary>', "Labelled text"),
        ('<summary type="text">5 &lt; 6</summary>', "5 < 6"),
        ('<summary type="html">&amp;lt;i&amp;gt;Twice&amp;lt;/i&amp;gt;</summary>', "Twice"),
        (
            '<summary type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">A <b>b</b></div>'
            "</summary>",
            "A b",
        ),
    ],
)
def test_atom_summaries_are_plain_text_without_markup(summary: str, expected: str) -> None:
    body = (
        '<feed xmlns="http://www.w3.org/2005/Atom"><title>T</title>'
        f"<entry><id>1</id><title>x</title>{summary}</entry></feed>"
    ).encode()
    assert only_entry(body).summary == expected


def test_long_title_and_summary_are_capped() -> None:
    words = "word " * 3000
    entry = only_entry(
        rss(f"<item><title>{words}</title><description>{words * 2}</description></item>")
    )
    assert len(entry.title) == 1000
    assert entry.title.endswith("…")
    assert len(entry.summary) <= 5000


def test_zero_entries_is_a_feed() -> None:
    feed = parse_feed(rss(""), url=FEED_URL)
    assert (feed.entries, feed.total_entries, feed.title, feed.warning) == ((), 0, "T", None)


def test_max_entries_keeps_the_first_and_counts_all() -> None:
    body = rss("".join(f"<item><title>n{i}</title></item>" for i in range(7)))
    feed = parse_feed(body, url=FEED_URL, max_entries=3)
    assert [e.title for e in feed.entries] == ["n0", "n1", "n2"]
    assert feed.total_entries == 7


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"", None, "the server sent an empty body"),
        (b" \r\n\t", "application/rss+xml", "the server sent an empty body"),
        (b"\xef\xbb\xbf\n", None, "the server sent an empty body"),
        (
            b"<!DOCTYPE html><html><head><title>Moved</title></head><body>Hi</body></html>",
            "text/html",
            "the address serves an HTML page, not a feed; check the feed URL "
            "(the site may have moved its feed)",
        ),
        (b"<html><body>x</body></html>", None, "an HTML page"),
        (b"<?xml version='1.0'?><config><a/></config>", "application/xml", "XML that is not RSS"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "image/png", "serves image/png content, not a feed"),
        (b'{"items": []}', "application/json", "JSON, but not a JSON Feed"),
    ],
)
def test_not_a_feed(body: bytes, content_type: str | None, message: str) -> None:
    with pytest.raises(NotAFeed, match="^.*" + message.replace("(", r"\(").replace(")", r"\)")):
        parse_feed(body, url=FEED_URL, content_type=content_type)


def test_body_is_never_taken_for_a_file_name(tmp_path: Path) -> None:
    # feedparser.parse(b"/some/path") reads that file if it exists.
    secret = tmp_path / "secret.xml"
    secret.write_bytes(rss("<item><title>from the disk</title></item>"))
    with pytest.raises(NotAFeed):
        parse_feed(str(secret).encode(), url=FEED_URL)


def test_truncated_feed_keeps_what_was_read() -> None:
    whole = rss("<item><title>One</title></item>\n<item><title>Two</title></item>")
    body = whole[: whole.rindex(b"</item>")]
    feed = parse_feed(body, url=FEED_URL)
    assert [e.title for e in feed.entries] == ["One", "Two"]
    assert feed.warning is not None
    assert feed.warning.startswith("the feed is not well-formed XML (")
    assert feed.warning.endswith("at line 2); read what could be recovered")


def test_html_entities_in_xml_are_recovered() -> None:
    feed = parse_feed(rss("\n<item><title>Caf&eacute;&nbsp;opens</title></item>"), url=FEED_URL)
    assert feed.entries[0].title == "Café opens"
    assert feed.warning is not None
    assert "undefined entity at line 2" in feed.warning


def test_ill_formed_without_entries_is_an_error() -> None:
    with pytest.raises(ParseError, match=r"not well-formed XML .*no entries found"):
        parse_feed(b'<rss version="2.0"><channel><title>T</tit', url=FEED_URL)


LAUGHS = (
    '<?xml version="1.0"?>{nl}<!DOCTYPE rss [{nl}<!ENTITY lol0 "lol">{nl}'
    + "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">{{nl}}' for i in range(1, 10))
    + ']>{nl}<rss version="2.0"><channel><title>&lol9;</title>'
    "<item><title>&lol9;</title></item></channel></rss>"
)
HOSTILE = {
    "billion laughs, one line": LAUGHS.format(nl=""),
    "billion laughs, multi-line": LAUGHS.format(nl="\n"),
    # feedparser's fallback parser expands "safe" entities without limit: 100 MB from 104 KB.
    "quadratic blowup": '<!DOCTYPE rss [\n<!ENTITY a "' + "A" * 100_000 + '">\n]>\n'
    '<rss version="2.0"><channel><item><title>' + "&a;" * 1000 + "</title></item></channel></rss>",
    "hidden in a comment": '<!DOCTYPE rss [\n<!--\n<!ENTITY a "x">\n-->\n]>\n<>\n<rss/>',
    "external entity": '<!DOCTYPE rss [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    '<rss version="2.0"><channel><item><title>&x;</title></item></channel></rss>',
    "external parameter entity": '<!DOCTYPE rss [\n<!ENTITY % p SYSTEM "file:///etc/passwd">\n'
    '%p;\n]><rss version="2.0"><channel><item><title>x</title></item></channel></rss>',
}


@pytest.mark.parametrize("document", HOSTILE.values(), ids=HOSTILE.keys())
def test_entity_declarations_are_refused_quickly(document: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ParseError, match="declares XML entities"):
        parse_feed(document.encode(), url=FEED_URL)
    assert time.perf_counter() - started < 1


def test_external_dtd_is_not_read() -> None:
    body = b'<!DOCTYPE rss SYSTEM "file:///etc/passwd"><rss version="2.0"><channel>' + (
        b"<item><title>safe</title></item></channel></rss>"
    )
    assert "root:" not in repr(parse_feed(body, url=FEED_URL))


CYRILLIC = "Новости дня"


@pytest.mark.parametrize("codec", ["windows-1251", "koi8-r"])
def test_charset_from_the_xml_declaration(codec: str) -> None:
    text = rss(f"<item><title>{CYRILLIC}</title></item>").decode()
    body = text.replace('encoding="utf-8"', f'encoding="{codec}"').encode(codec)
    feed = parse_feed(body, url=FEED_URL, content_type="text/xml")
    assert (feed.entries[0].title, feed.warning) == (CYRILLIC, None)


@pytest.mark.parametrize(
    "content_type", ["text/xml", "text/html", "text/plain", "application/octet-stream", None]
)
def test_media_type_does_not_decide_the_encoding(content_type: str | None) -> None:
    # RFC 3023 read text/* without a charset as us-ascii; RFC 7303 and real servers do not.
    body = rss(f"<item><title>{CYRILLIC}</title></item>", prolog="")
    feed = parse_feed(body, url=FEED_URL, content_type=content_type)
    assert (feed.entries[0].title, feed.warning) == (CYRILLIC, None)


def test_declared_charset_wins_and_a_wrong_one_is_reported() -> None:
    body = rss(f"<item><title>{CYRILLIC}</title></item>").decode()
    assert only_entry(body.encode("koi8-r"), charset="koi8-r").title == CYRILLIC
    mislabelled = body.replace('encoding="utf-8"', 'encoding="windows-1251"').encode("cp1251")
    feed = parse_feed(mislabelled, url=FEED_URL, charset="utf-8")
    assert feed.entries[0].title == CYRILLIC
    assert feed.warning == (
        "the character encoding is mislabelled "
        "(document declared as utf-8, but parsed as windows-1251)"
    )


@pytest.mark.parametrize("codec", ["utf-8-sig", "utf-16", "utf-32"])  # each writes a BOM
@pytest.mark.parametrize("prolog", ["", "<?xml version='1.0'?>"])
def test_byte_order_mark(codec: str, prolog: str) -> None:
    body = rss(f"<item><title>{CYRILLIC}</title></item>", prolog=prolog).decode().encode(codec)
    # The BOM outweighs the header's (wrong) label.
    feed = parse_feed(body, url=FEED_URL, content_type="application/rss+xml", charset="latin-1")
    assert (feed.entries[0].title, feed.warning) == (CYRILLIC, None)


JSON11 = {
    "version": "https://jsonfeed.org/version/1.1",
    "title": "JSON news",
    "home_page_url": "https://json.example.org/",
    "authors": [{"name": "Desk"}],
    "items": [
        {
            "id": 42,
            "url": "/posts/42",
            "title": "  Forty\ntwo ",
            "content_html": "<p>Full <b>text</b></p>",
            "date_published": "2024-05-06T07:08:09+02:00",
            "date_modified": "yesterday",
            "tags": ["a", "b", 3],
            "image": "img/42.png",
        },
        {
            "id": "x",
            "external_url": "https://elsewhere.example/",
            "content_text": "Plain",
            "authors": [{"name": "Ann"}, {"name": "Bob"}],
            "banner_image": "https://cdn.example/b.jpg",
        },
        "not an object",
    ],
}


def test_json_feed_11() -> None:
    feed = parse_feed(
        json.dumps(JSON11).encode(), url=FEED_URL, content_type="application/feed+json"
    )
    assert (feed.version, feed.title, feed.site_url) == (
        "json11",
        "JSON news",
        "https://json.example.org/",
    )
    assert (feed.total_entries, feed.warning) == (
        2,
        "skipped 1 items that are not JSON objects",
    )
    first, second = feed.entries
    assert first == Entry(
        guid="42",
        link="https://json.example.org/posts/42",
        title="Forty two",
        summary="Full text",
        content_html="<p>Full <b>text</b></p>",
        author="Desk",
        published_at="2024-05-06T05:08:09Z",
        updated_at=None,
        tags=("a", "b"),
        image="https://json.example.org/img/42.png",
    )
    assert (second.link, second.summary, second.author) == (
        "https://elsewhere.example/",
        "Plain",
        "Ann, Bob",
    )
    assert second.image == "https://cdn.example/b.jpg"


def test_json_feed_10_sniffed_without_content_type() -> None:
    body = b'\n {"version": "https:\\/\\/jsonfeed.org\\/version\\/1", "author": {"name": "Old"},'
    body += b' "items": [{"id": "1", "url": "a.html", "summary": "S",'
    body += b' "date_published": "2024-01-01T00:00:00Z"}]}'
    feed = parse_feed(body, url=FEED_URL, content_type="text/plain")
    assert feed.version == "json10"
    (entry,) = feed.entries
    assert (entry.link, entry.author, entry.summary) == (SITE + "feeds/a.html", "Old", "S")
    assert entry.published_at == "2024-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": [', "not valid JSON"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": {}}', "no list of items"),
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": [], "t": "\xff"}', "UTF-8"),
        (b"[" * 100_000, "nested too deeply|not valid JSON"),
        (b"[1]", "not a JSON Feed"),
    ],
)
def test_json_feed_errors(body: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_feed(body, url=FEED_URL, content_type="application/json")


def test_json_max_entries() -> None:
    items = [{"id": str(i)} for i in range(5)]
    body = json.dumps({"version": "https://jsonfeed.org/version/1.1", "items": items}).encode()
    feed = parse_feed(body, url=FEED_URL, max_entries=2)
    assert ([e.guid for e in feed.entries], feed.total_entries) == (["0", "1"], 5)


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("", ""),
        ("plain  words\n", "plain words"),
        ("<p>one</p><p>two</p>", "one two"),
        ("a<br>b", "a b"),
        ("<b>Hel</b>lo &amp; bye&nbsp;now", "Hello & bye now"),
        ("<style>p{}</style><!-- note -->kept<script>x()</script>", "kept"),
        ("<?xml version='1.0' encoding='utf-8'?><p>x</p>", "x"),
        ("a < b > c", "a < b > c"),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


def test_clip() -> None:
    assert (clip("abc", 3), clip("abcd", 3), clip("ab cd", 4)) == ("abc", "ab…", "ab…")
