"""page_byline answers as trafilatura's extract_author, without copying the tree.

It repeats trafilatura's author XPaths as Python predicates; these tests fail when a
trafilatura upgrade changes those XPaths or when the walk and the pruned copy disagree.
"""

from __future__ import annotations

import hashlib
import random
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

LONG_NAME = "Maria Lopez Garcia de la Fuente y Ortega " * 3
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
    # Two bylines: the first search's exact terms win over a later, broader search.
    "an id of author before a byline div": '<div class="byline">Desk</div><p id="author">'
    "Maria Lopez</p>",
    "an itemprop of author name before a writer": '<em class="writer">Desk</em>'
    '<strong itemprop="author name">Maria Lopez</strong>',
    "an h4 byline before a writer": '<em class="writer">Desk</em><h4 class="byl">Maria Lopez</h4>',
    "a BBL div before a writer": '<em class="writer">Desk</em><div class="BBL">Maria Lopez</div>',
    "an id of xiaobian before a writer": '<em class="writer">Desk</em><div id="xiaobian">'
    "Maria Lopez</div>",
    "a quote's author is pruned": '<div class="pull-quote"><span class="author">Quoted Person'
    '</span></div><p class="author">Maria Lopez</p>',
    "a figure caption's author is pruned": '<div data-component="FigureCaption"><span '
    'class="author">Photo Credit</span></div><p class="author">Maria Lopez</p>',
    "a name spread over lines": '<span class="author">\n  Maria\n\t Lopez  </span>',
    "a short name padded past the bound": f'<span class="author">Maria{" " * 130}Lopez</span>',
    "three characters, the shortest name": '<span class="author">Abc</span>',
    "119 characters, the longest": f'<span class="author">{LONG_NAME[:119]}</span>',
    "120 characters, too long": f'<span class="author">{LONG_NAME[:120]}</span>',
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


# What the random pages are made of: every term of trafilatura's author XPaths and near misses.
TAGS = ("a", "address", "div", "link", "p", "span", "strong", "h3", "h4", "section", "li", "em")
PRUNING_TAGS = ("time", "figure")
OTHER_TAGS = ("author", "td", "Span", "x-author", "fb:author")
CLASSES = (
    "author", "Author", "author-name", "authorname", "AuthorName", "authorName", "byline",
    "Byline", "byl", "BBL", "username", "channel-name", "zuozhe", "bianji", "xiaobian",
    "submitted-by", "posted-by", "journalist-name", "screenname", "writer", "auth-or", "bylin",
    "AUTHOR", "by line", "",
)  # fmt: skip
PRUNING_CLASSES = (
    "comments", "Comments", "comments-area", "x comments", "commentlist", "comments-list",
    "sidebar", "is-hidden", "quote", "embedly-instagram", "article-share", "article-support",
    "print", "category", "meta-date", "meta-reviewer", "title", "date", "title x",
    "post-author sidebar", "byline quote",
)  # fmt: skip
IDS = (
    "author", "Author", "post-author", "zuozhe", "bianji", "xiaobian", "comments", "comments-1",
    "x-comments", "commentlist", "comment-list", "ProductReviews", "productreviews", "title", "",
)  # fmt: skip
ATTRIBUTES = {
    "itemprop": ("author", "author name", "name author", "Author", "creator", ""),
    "rel": ("author", "me", "Author", "nofollow author", ""),
    "data-testid": ("AuthorCard", "AuthorURL", "authorcard", ""),
    "data-component": ("Byline", "byline", "Figure", "FigureCaption", "Text", ""),
}
TEXTS = (
    "Maria Lopez", "M", "Jo", "Abc", "By Maria Lopez", "Ivan Sidorov and Ann Other", "x" * 130,
    "  Kim Lee  ", "me", "Maria Lopez | News", "x" * 119, "y" * 120, "Jo\nLee",
)  # fmt: skip
RANDOM_PAGES = 400


def random_element(rng: random.Random, depth: int, pruning: bool) -> str:
    tags = TAGS + OTHER_TAGS + (PRUNING_TAGS if pruning else ())
    classes = CLASSES + (PRUNING_CLASSES if pruning else ())
    attributes = {"class": rng.choice(classes)} if rng.random() < 0.5 else {}
    if rng.random() < 0.25:
        attributes["id"] = rng.choice(IDS)
    for name, values in ATTRIBUTES.items():
        if rng.random() < 0.1:
            attributes[name] = rng.choice(values)
    inside = [rng.choice(TEXTS)] if rng.random() < 0.6 else []
    for _ in range(rng.randint(0, 3) if depth else 0):
        inside.append("<!--c-->" if rng.random() < 0.1 else random_element(rng, depth - 1, pruning))
        if rng.random() < 0.5:
            inside.append(rng.choice(TEXTS))  # a tail
    tag = rng.choice(tags)
    marked = "".join(f' {name}="{value}"' for name, value in attributes.items())
    return f"<{tag}{marked}>{''.join(inside)}</{tag}>"


def test_random_pages_get_trafilaturas_byline_and_are_left_as_they_were() -> None:
    """Pages made of the searches' own terms, half without anything pruned (so the walk, not
    the fallback, answers more often): a fixed seed, the same pages every run."""
    from lxml import etree
    from trafilatura.utils import load_html

    rng = random.Random(20261201)
    differ, walked, found = [], 0, 0
    for n in range(RANDOM_PAGES):
        body = "".join(random_element(rng, 3, n % 2 == 0) for _ in range(rng.randint(1, 4)))
        html = page(body)
        tree = load_html(html)
        before = etree.tostring(tree)
        answer = page_byline(tree)
        assert etree.tostring(tree) == before, "the walk changed the tree"
        if answer != theirs(html):
            differ.append((body, answer, theirs(html)))
        found += answer is not None
        try:
            byline._first_byline(load_html(html))
            walked += 1
        except byline._Fallback:
            pass
    assert not differ, differ[:3]
    assert found > RANDOM_PAGES // 3
    assert walked > RANDOM_PAGES // 2


def test_the_cases_above_find_bylines_and_take_both_ways() -> None:
    found = {name: ours(page(html)) for name, html in BYLINES.items()}
    assert found["a span classed author"] == "Maria Lopez"
    assert found["inside comments, then the real one"] == "Maria Lopez"
    assert found["too short, then too long, then right"] == "Maria Lopez"
    assert found["an id of author before a byline div"] == "Maria Lopez"
    assert found["three characters, the shortest name"] == "Abc"
    assert found["119 characters, the longest"] == LONG_NAME[:119]
    assert found["120 characters, too long"] is None
    assert found["a short name padded past the bound"] == "Maria Lopez"  # measured trimmed
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
