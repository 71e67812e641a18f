"""Decoding, sanitising and extracting article pages; feed entries that carry the article."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import CORPORA

from aggregator.errors import ExtractError
from aggregator.extract.article import article_from_feed, extract_article
from aggregator.extract.charset import codec_for, decode_html
from aggregator.models import Entry
from aggregator.sanitize import sanitize_html

FIXTURES = Path(__file__).parent / "fixtures"
CSTO_URL = "https://www.commonspace.eu/node/2931"

# Cyrillic on purpose, so RUF001's look-alike-letter check does not apply.
RUSSIAN = (
    "Организация Договора о коллективной безопасности приостановила усилия по налаживанию "  # noqa: RUF001
    "диалога с НАТО. Генеральный секретарь ОДКБ Николай Бордюжа сообщил об этом в четверг "  # noqa: RUF001
    "на заседании парламентской ассамблеи организации."
)


def russian_page(meta: str = "") -> str:
    return (
        f"<!DOCTYPE html><html><head>{meta}<title>Новости</title></head>"
        f"<body><article><h1>ОДКБ и НАТО</h1><p>{RUSSIAN}</p></article></body></html>"  # noqa: RUF001
    )


# --- decode_html ---------------------------------------------------------------------------


def test_windows_1251_declared_only_in_meta() -> None:
    body = russian_page('<meta charset="windows-1251">').encode("cp1251")
    assert RUSSIAN in decode_html(body, None)


def test_windows_1251_declared_in_http_equiv_meta() -> None:
    meta = '<meta http-equiv="Content-Type" content="text/html; charset=windows-1251">'
    assert RUSSIAN in decode_html(russian_page(meta).encode("cp1251"), None)


@pytest.mark.parametrize("label", ["windows-1251", "cp1251", "win-1251", "x-cp1251", "CP-1251"])
def test_windows_1251_declared_in_header(label: str) -> None:
    assert RUSSIAN in decode_html(russian_page().encode("cp1251"), label)


@pytest.mark.parametrize("declared", ["koi8-r", None])
def test_koi8_r(declared: str | None) -> None:
    # Without any label charset_normalizer has to tell KOI8-R from windows-1251 by itself.
    assert RUSSIAN in decode_html(russian_page().encode("koi8-r"), declared)


def test_koi8_r_meta() -> None:
    body = russian_page('<meta charset="koi8-r">').encode("koi8-r")
    assert RUSSIAN in decode_html(body, None)


def test_bom_beats_labels() -> None:
    page = russian_page('<meta charset="windows-1251">')
    decoded = decode_html(b"\xef\xbb\xbf" + page.encode("utf-8"), "windows-1251")
    assert decoded == page
    assert decode_html(b"\xff\xfe" + page.encode("utf-16-le"), None) == page


def test_utf16_in_header_without_bom() -> None:
    page = russian_page()
    assert decode_html(page.encode("utf-16-le"), "utf-16le") == page


def test_utf16_label_on_a_single_byte_page_is_ignored() -> None:
    assert decode_html(b"<p>plain</p>", "utf-16") == "<p>plain</p>"


def test_header_says_utf8_but_bytes_are_windows_1251() -> None:
    body = russian_page('<meta charset="windows-1251">').encode("cp1251")
    assert RUSSIAN in decode_html(body, "utf-8")


def test_header_says_utf8_no_other_label() -> None:
    assert RUSSIAN in decode_html(russian_page().encode("cp1251"), "utf-8")


def test_header_says_latin1_but_bytes_are_utf8() -> None:
    page = russian_page('<meta charset="iso-8859-1">')
    assert RUSSIAN in decode_html(page.encode("utf-8"), "ISO-8859-1")


def test_utf8_page_with_one_stray_byte_stays_utf8() -> None:
    body = russian_page('<meta charset="utf-8">').encode("utf-8").replace(b"</p>", b"\xa0</p>")
    decoded = decode_html(body, None)
    assert RUSSIAN in decoded
    assert decoded.count("\ufffd") == 1


def test_latin1_label_means_windows_1252() -> None:
    # What browsers do: “smart quotes” are 0x93/0x94 in windows-1252, controls in latin-1.
    assert "“quoted”" in decode_html("<p>“quoted” café</p>".encode("cp1252"), "latin1")


@pytest.mark.parametrize(
    ("label", "codec"),
    [
        ("WIN-1251", "cp1251"),
        (' "utf8" ', "utf-8"),
        ("latin1", "cp1252"),
        ("koi8r", "koi8-r"),
        ("gb2312", "gb18030"),
        ("base64", None),  # a bytes-to-bytes codec, not a charset
        ("hex", None),
        ("zlib", None),
        ("rot13", None),  # a str-to-str codec, not a charset either
        ("utf-16", "utf-16"),  # a charset, though one byte alone does not decode in it
        ("utf-32-le", "utf-32-le"),
        ("utf-7", None),  # refused: it smuggles markup past sanitisers
        ("no-such-charset", None),
        ("", None),
        (None, None),
    ],
)
def test_codec_for(label: str | None, codec: str | None) -> None:
    assert codec_for(label) == codec


def test_undecidable_bytes_fall_back_without_raising() -> None:
    assert isinstance(decode_html(bytes(range(256)) * 4, "utf-8"), str)
    assert decode_html(b"", None) == ""


# --- sanitize_html -------------------------------------------------------------------------

BASE = "https://news.example.org/world/2024/story.html"


def test_script_and_style_removed_with_their_content() -> None:
    cleaned = sanitize_html("<p>Text<script>alert('x')</script><style>p{}</style></p>")
    assert cleaned == "<p>Text</p>"


def test_event_handlers_and_styles_removed() -> None:
    cleaned = sanitize_html('<p onclick="steal()" style="color:red" class="lead">Hi</p>')
    assert cleaned == "<p>Hi</p>"


@pytest.mark.parametrize(
    "href", ["javascript:alert(1)", "JaVaScRiPt:alert(1)", "data:text/html,<b>x</b>", "vbscript:x"]
)
def test_dangerous_hrefs_removed(href: str) -> None:
    cleaned = sanitize_html(f'<a href="{href}">link</a>', base_url=BASE)
    assert "href" not in cleaned
    assert "link" in cleaned


def test_relative_links_absolutised_and_marked() -> None:
    cleaned = sanitize_html(
        '<p><a href="../other.html">a</a> <a href="/about">b</a> <img src="pic.jpg" alt="P"></p>',
        base_url=BASE,
    )
    assert 'href="https://news.example.org/world/other.html"' in cleaned
    assert 'href="https://news.example.org/about"' in cleaned
    assert 'src="https://news.example.org/world/2024/pic.jpg"' in cleaned
    assert 'alt="P"' in cleaned
    assert cleaned.count('rel="noopener noreferrer nofollow"') == 2


def test_relative_links_dropped_without_base() -> None:
    cleaned = sanitize_html('<a href="/about">b</a> <a href="mailto:desk@example.org">m</a>')
    assert 'href="/about"' not in cleaned
    assert 'href="mailto:desk@example.org"' in cleaned


def test_embeds_and_forms_go() -> None:
    cleaned = sanitize_html(
        '<iframe src="https://evil.example/">x</iframe><form><input value="v">F</form>'
        '<h1>Head</h1><table><tr><td colspan="2" width="9">c</td></tr></table>',
        base_url=BASE,
    )
    assert "iframe" not in cleaned
    assert "<input" not in cleaned
    assert "<h2>Head</h2>" in cleaned
    assert '<td colspan="2">c</td>' in cleaned


# --- article_from_feed ---------------------------------------------------------------------

LONG = " ".join(["The council voted on the budget again after a long debate."] * 20)  # 220 words


def entry(content_html: str | None, summary: str = "A short summary.") -> Entry:
    return Entry(
        guid="g1",
        link="https://news.example.org/story",
        title="Council votes",
        summary=summary,
        content_html=content_html,
        author="A. Writer",
        published_at="2024-05-01T08:00:00Z",
        updated_at=None,
        image="https://news.example.org/p.jpg",
    )


def test_whole_text_in_feed_is_taken() -> None:
    html = f'<p>{LONG}</p><p><a href="/more">Details</a></p><script>x()</script>'
    article = article_from_feed(entry(html), base_url="https://news.example.org/", force=False)
    assert article is not None
    assert article.text.startswith("The council voted")
    assert "x()" not in article.text
    assert 'href="https://news.example.org/more"' in article.html
    assert "<script" not in article.html
    assert (article.title, article.author) == ("Council votes", "A. Writer")
    assert article.published_at == "2024-05-01T08:00:00Z"
    assert article.image == "https://news.example.org/p.jpg"


@pytest.mark.parametrize(
    "ending",
    [
        "…",
        "...",
        " […]",
        " [...]",
        ' <a href="/s">Read more</a>',
        ' <a href="/s">Read more »</a>',
        ' <a href="/s">Continue reading <span>Council votes</span> →</a>',
    ],
)
def test_truncated_feed_content_is_not_the_article(ending: str) -> None:
    html = f"<p>{LONG}{ending}</p>"
    assert article_from_feed(entry(html), base_url="https://news.example.org/", force=False) is None
    forced = article_from_feed(entry(html), base_url="https://news.example.org/", force=True)
    assert forced is not None


def test_short_feed_content_only_when_forced() -> None:
    html = "<p>Council votes on the budget today.</p>"
    assert article_from_feed(entry(html), base_url="https://news.example.org/", force=False) is None
    forced = article_from_feed(entry(html), base_url="https://news.example.org/", force=True)
    assert forced is not None
    assert forced.text == "Council votes on the budget today."


def test_forced_falls_back_to_summary() -> None:
    article = article_from_feed(
        entry(None, summary="First <part>.\n\nSecond part."), base_url=BASE, force=True
    )
    assert article is not None
    assert article.text == "First <part>.\n\nSecond part."
    assert article.html == "<p>First &lt;part&gt;.</p><p>Second part.</p>"


@pytest.mark.parametrize("force", [True, False])
def test_nothing_to_build_from(force: bool) -> None:
    assert article_from_feed(entry(None, summary=" "), base_url=BASE, force=force) is None
    assert article_from_feed(entry(None), base_url=BASE, force=False) is None


# --- extract_article -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def csto() -> bytes:
    return (FIXTURES / "commonspace-csto.html").read_bytes()


def test_csto_article_text_only(csto: bytes) -> None:
    article = extract_article(csto, url=CSTO_URL)
    for paragraph in (
        "suspend efforts aimed at establishing dialogue with NATO",
        "openly hostile initiatives by the EU and NATO towards Russia and the CSTO",
        "Shanghai Cooperation Organization",
        "Partnership for peace",
        "impact Armenia's relations with NATO",
        "source: commonspace.eu with Itar-Tass.",
        "photo: The Secretary General of the CSTO Nikolai Bordyuzha (archive picture).",
    ):
        assert paragraph in article.text
    for boilerplate in ("Borrell", "Libya", "Radaa", "Related articles", "Popular", "Share on"):
        assert boilerplate not in article.text
        assert boilerplate not in article.html


def test_csto_metadata(csto: bytes) -> None:
    article = extract_article(csto, url=CSTO_URL, charset="utf-8")
    assert article.title == "CSTO suspends efforts to develop dialogue with NATO"
    assert article.canonical_url == (
        "https://www.commonspace.eu/news/csto-suspends-efforts-develop-dialogue-nato"
    )
    assert article.published_at == "2014-09-26T08:30:00Z"
    assert article.site_name == "commonspace.eu"
    assert article.language == "en"
    assert article.image is not None
    assert article.image.startswith("https://www.commonspace.eu/sites/default/files/")
    assert "<p>He declared that the CSTO" in article.html
    assert "<script" not in article.html


def test_no_canonical_means_none_not_the_request_url() -> None:
    page = russian_page('<meta charset="windows-1251">').encode("cp1251")
    article = extract_article(page, url="https://ru.example.org/a?id=1")
    assert article.canonical_url is None
    assert RUSSIAN in article.text
    assert article.published_at is None


def test_relative_canonical_resolved() -> None:
    page = russian_page('<link rel="Canonical" href="/news/1">').encode("utf-8")
    article = extract_article(page, url="https://ru.example.org/a?id=1&utm_source=x")
    assert article.canonical_url == "https://ru.example.org/news/1"


def test_windows_1251_page_extracts_as_cyrillic() -> None:
    page = russian_page('<meta http-equiv="content-type" content="text/html; charset=cp1251">')
    article = extract_article(page.encode("cp1251"), url="https://ru.example.org/a", charset=None)
    assert "Бордюжа" in article.text


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"<html><body><p>Subscribe to continue reading.</p></body></html>",
        b"<html><body><nav><a href='/'>Home</a></nav></body></html>",
        b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8,
    ],
)
def test_no_article_text_is_an_error(body: bytes) -> None:
    with pytest.raises(ExtractError):
        extract_article(body, url="https://news.example.org/x")


# --- real pages ----------------------------------------------------------------------------


@functools.cache
def _eval_sample(root: Path) -> dict[str, dict[str, Any]]:
    """Every 99th page of extraction-eval, by URL."""
    cases = json.loads((root / "evaldata.json").read_text(encoding="utf-8"))
    return dict(list(cases.items())[::99])


def _eval_params() -> list[object]:
    """One test per sampled page, named by its file; one skipped test without the corpora."""
    if not CORPORA.is_dir():
        reason = "../shared/corpora is absent"
        return [pytest.param(None, id="absent", marks=pytest.mark.skip(reason=reason))]
    cases = _eval_sample(CORPORA / "extraction-eval")
    return [pytest.param(url, id=case["file"]) for url, case in cases.items()]


@functools.cache
def _eval_counts(root: Path, url: str) -> tuple[int, int, int, int]:
    """Snippets on one page: `with` found and missed, `without` leaked and kept out.

    Cached: the pooled test below reuses what the per-page tests found.
    """
    case = _eval_sample(root)[url]
    path = root / "eval" / case["file"]
    path = path if path.is_file() else root / "cache" / case["file"]
    try:
        text = " ".join(extract_article(path.read_bytes(), url=url).text.split())
    except ExtractError:
        text = ""
    hits = sum(" ".join(s.split()) in text for s in case["with"])
    slips = sum(" ".join(s.split()) in text for s in case["without"])
    return hits, len(case["with"]) - hits, slips, len(case["without"]) - slips


@pytest.mark.parametrize("url", _eval_params())
def test_eval_corpus_page(url: str) -> None:
    # Anything but an ExtractError fails the test; its id names the page's file.
    _eval_counts(CORPORA / "extraction-eval", url)


def test_eval_corpus_sample(corpora: Path) -> None:
    """Every 99th page of extraction-eval: `with` snippets mostly found, `without` mostly not."""
    root = corpora / "extraction-eval"
    cases = _eval_sample(root)
    found = missed = leaked = clean = 0
    for url in cases:
        hits, misses, slips, kept_out = _eval_counts(root, url)
        found, missed = found + hits, missed + misses
        leaked, clean = leaked + slips, clean + kept_out
    assert len(cases) == 10
    assert found / (found + missed) >= 0.85
    assert leaked / (leaked + clean) <= 0.2
