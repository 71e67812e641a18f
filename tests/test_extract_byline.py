"""page_byline answers as trafilatura's extract_author, without copying the tree.

It repeats trafilatura's author XPaths as Python predicates; these tests fail when a
trafilatura upgrade changes those XPaths or when the walk and the pruned copy disagree.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from conftest import CORPORA

from aggregator.extract import byline
from aggregator.extract.byline import page_byline
from aggregator.extract.charset import decode_html

EVAL = CORPORA / "extraction-eval"
# About 130 of the eval corpus's pages, each searched twice: a few seconds. Every page
# agreed when the walk was written.
EVAL_SAMPLE = 8
# The sha256 of trafilatura's AUTHOR_XPATHS and AUTHOR_DISCARD_XPATHS, joined: byline.py
# spells out these expressions, so a change to them must be carried over by hand.
XPATHS_SHA256 = "bd5f280624916a837f627a558a6f87d6ebde80d97a00908c8a856c7b7b9eae82"

STORY = "<p>" + " ".join(["The ministry confirmed the figures on Tuesday."] * 8) + "</p>"


def page(byline_html: str) -> str:
    return f"<html><head><title>Storm</title></head><body>{byline_html}{STORY}</body></html>"


BYLINES = {
    "a span classed author": '<span class="author">Maria Lopez</span>',
    "a link rel=author, no class": '<a href="/staff/ml" rel="author">Maria Lopez</a>',
    "an <author> element": "<author>Maria Lopez</author>",
    "a data-testid": '<div data-testid="AuthorCard">Maria Lopez</div>',
    "an h3 byline": '<h3 class="byline">By Maria Lopez</h3>',
    "an itemprop on a td (the last search)": '<table><tr><td itemprop="author">Maria Lopez'
    "</td></tr></table>",
    "a data-component Byline": '<section data-component="Byline">Maria Lopez</section>',
    "an id on any element": '<li id="post-Author">Maria Lopez</li>',
    "a writer class": '<em class="writer-box">Maria Lopez</em>',
    "inside comments, then the real one": '<div class="comments"><a class="author">'
    'commenter99</a></div><p class="author">Maria Lopez</p>',
    "a sidebar anchor is pruned, a sidebar paragraph is not": '<a class="sidebar-author">'
    'Ann Other</a><p class="sidebar-author">Maria Lopez</p>',
    "an id that begins with comments": '<div id="comments-area"><span class="author">'
    "commenter99</span></div>",
    "too short, then too long, then right": '<span class="author">M</span><span '
    f'class="author">{"Maria " * 30}</span><div class="byline">Maria Lopez</div>',
    "a time inside the byline (joined text: trafilatura answers)": '<span class="author">'
    "By <time>today</time>Maria Lopez</span>",
    "a figure beside the byline": '<span class="author">Maria Lopez</span><figure>x</figure>'
    "tail text",
    "a <rel>me</rel> child (trafilatura answers)": "<div><rel>me</rel>Maria Lopez</div>",
    "several authors": '<span class="author">Maria Lopez and Ivan Sidorov</span>',
    "a class that only looks close": '<span class="auth-or">Maria Lopez</span>',
    "nothing": "",
}


def theirs(html: str) -> str | None:
    from trafilatura.metadata import extract_author
    from trafilatura.utils import load_html

    return extract_author(load_html(html))


def ours(html: str) -> str | None:
    from trafilatura.utils import load_html

    return page_byline(load_html(html))


@pytest.mark.parametrize("name", BYLINES)
def test_the_byline_is_trafilaturas(name: str) -> None:
    html = page(BYLINES[name])
    assert ours(html) == theirs(html)


def test_the_cases_above_find_bylines_and_take_both_ways() -> None:
    found = {name: ours(page(html)) for name, html in BYLINES.items()}
    assert found["a span classed author"] == "Maria Lopez"
    assert found["inside comments, then the real one"] == "Maria Lopez"
    assert found["too short, then too long, then right"] == "Maria Lopez"
    assert found["nothing"] is None
    walked = []
    for name, html in BYLINES.items():
        from trafilatura.utils import load_html

        try:
            byline._first_byline(load_html(page(html)))
            walked.append(name)
        except byline._Fallback:
            pass
    assert "a time inside the byline (joined text: trafilatura answers)" not in walked
    assert "a <rel>me</rel> child (trafilatura answers)" not in walked
    assert "a figure beside the byline" in walked


def test_trafilaturas_author_xpaths_are_the_ones_byline_repeats() -> None:
    from trafilatura.xpaths import AUTHOR_DISCARD_XPATHS, AUTHOR_XPATHS

    paths = "\n".join(xpath.path for xpath in (*AUTHOR_XPATHS, *AUTHOR_DISCARD_XPATHS))
    assert hashlib.sha256(paths.encode()).hexdigest() == XPATHS_SHA256, (
        "trafilatura's author XPaths changed: carry the change over to byline.py"
    )


def test_the_byline_on_the_eval_corpus_is_trafilaturas(corpora: Path) -> None:
    from trafilatura.utils import load_html

    pages = sorted(EVAL.rglob("*.html"))[::EVAL_SAMPLE]
    assert pages, f"no pages under {EVAL}"
    differ, found = [], 0
    for path in pages:
        html = decode_html(path.read_bytes(), None)
        tree = load_html(html)
        if tree is None:
            continue
        expected = theirs(html)
        found += expected is not None
        if page_byline(tree) != expected:
            differ.append(path.name)
    assert not differ, f"{len(differ)} of {len(pages)} pages differ: {differ[:5]}"
    assert found > len(pages) // 4  # the sample holds bylines to find


@pytest.mark.parametrize(
    "fragment",
    ['<div class="comments" id="author">Maria Lopez</div>', '<time class="author">M L</time>'],
)
def test_a_root_the_copy_cannot_prune_is_searched(fragment: str) -> None:
    from lxml.html import fragment_fromstring
    from trafilatura.metadata import extract_author

    assert page_byline(fragment_fromstring(fragment)) == extract_author(
        fragment_fromstring(fragment)
    )
    assert page_byline(fragment_fromstring(fragment)) is not None
