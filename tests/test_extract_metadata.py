"""page_metadata gives the fields we store as trafilatura's own extract_metadata does.

It repeats trafilatura's steps minus the categories, tags and licence searches; these tests
fail when a trafilatura upgrade changes a step our copy still makes the old way.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import CORPORA

from aggregator.extract.charset import decode_html
from aggregator.extract.metadata import page_metadata

FIXTURES = Path(__file__).parent / "fixtures"
EVAL = CORPORA / "extraction-eval"
# The fields our copy sets: those the store keeps, and url, hostname and description, which
# decide them or come with them.
KEPT = ("title", "author", "url", "hostname", "date", "sitename", "image", "description")
DATE_PARAMS = {"extensive_search": False, "original_date": True, "outputformat": "%Y-%m-%d"}
# The eval corpus has about 1,000 pages; every 33rd keeps this test under a second or two.
EVAL_SAMPLE = 33

STORY = "<p>" + " ".join(["The ministry confirmed the figures on Tuesday."] * 8) + "</p>"
PAGES = {
    "meta tags": (
        '<html><head><title>Talks resume | Example News</title><meta name="author" '
        'content="Anna Petrova"><meta property="og:image" content="/img/talks.jpg">'
        '<meta property="article:published_time" content="2026-11-30T08:15:00+03:00">'
        '<meta name="twitter:site" content="@examplenews"></head>'
        f"<body><article>{STORY}</article></body></html>"
    ),
    "json-ld": (
        '<html><head><script type="application/ld+json">'
        + json.dumps(
            {
                "@context": "https://schema.org",
                "@type": "NewsArticle",
                "headline": "Grain deal extended",
                "author": {"@type": "Person", "name": "Ivan Sidorov"},
                "datePublished": "2026-11-29",
                "publisher": {"@type": "Organization", "name": "Wire Service"},
            }
        )
        + f"</script></head><body><article>{STORY}</article></body></html>"
    ),
    "byline only": (
        "<html><head><title>Storm hits coast</title></head><body><article>"
        '<h1>Storm hits coast</h1><span class="author">By Maria Lopez</span>'
        '<div class="comments"><a class="author">commenter99</a></div>'
        f"{STORY}</article></body></html>"
    ),
    "a handle as author, a lowercase site name": (
        '<html><head><meta name="author" content="@desk"><meta property="og:site_name" '
        f'content="regional daily"></head><body>{STORY}</body></html>'
    ),
    "nothing declared": f"<html><body>{STORY}</body></html>",
}


def both(html: str, url: str) -> tuple[dict[str, object], dict[str, object]]:
    from trafilatura.metadata import extract_metadata
    from trafilatura.utils import load_html

    ours = page_metadata(load_html(html), url, DATE_PARAMS)
    theirs = extract_metadata(load_html(html), url, dict(DATE_PARAMS))
    return (
        {key: getattr(ours, key) for key in KEPT},
        {key: getattr(theirs, key) for key in KEPT},
    )


@pytest.mark.parametrize("name", PAGES)
def test_the_kept_fields_are_trafilaturas(name: str) -> None:
    ours, theirs = both(PAGES[name], "https://news.example.com/2026/11/story")
    assert ours == theirs
    assert ours["sitename"]  # every page names its site somehow, at worst by its host


def test_the_kept_fields_of_a_real_page_are_trafilaturas() -> None:
    html = decode_html((FIXTURES / "commonspace-csto.html").read_bytes(), None)
    ours, theirs = both(html, "https://www.commonspace.eu/node/2931")
    assert ours == theirs
    assert ours["title"]
    assert ours["date"]


def test_the_kept_fields_on_the_eval_corpus_are_trafilaturas(corpora: Path) -> None:
    pages = sorted(EVAL.rglob("*.html"))[::EVAL_SAMPLE]
    assert pages, f"no pages under {EVAL}"
    differ = []
    for path in pages:
        html = decode_html(path.read_bytes(), None)
        ours, theirs = both(html, f"https://example.com/{path.name}")
        if ours != theirs:
            differ.append(path.name)
    assert not differ, f"{len(differ)} of {len(pages)} pages differ: {differ[:5]}"
