"""The byline on a page without an author in its metadata, as trafilatura finds it.

trafilatura's `extract_author` copies the whole tree, prunes comments, dates and figures from
the copy, then runs three XPath searches over it. Each search walks every element through a
dozen predicates, about 2 ms a page in libxml2, and the pass took half of `page_metadata`'s
time on the eval corpus. Here one walk of the tree, without a copy, asks the same questions
of each element (the predicates below are those XPaths, term for term) and finds the same
elements in the same order.

The one thing a copy changes that a walk cannot see is the text of an element that holds a
pruned one: pruning joins the text around it. A byline candidate like that, or one matched
through a `<rel>me</rel>` child element, is rare, and trafilatura's own function answers it.
tests/test_extract_byline.py checks the answer against `extract_author` on random pages made
of the searches' terms and on every 8th page of the eval corpus (all 1,032 agreed when this
was written), and pins the XPaths this module repeats.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lxml.html import HtmlElement

# trafilatura.xpaths.AUTHOR_XPATHS and AUTHOR_DISCARD_XPATHS (trafilatura 2.3), in words.
_FIRST_TAGS = frozenset(("a", "address", "div", "link", "p", "span", "strong"))
_FIRST_CLASS = re.compile("author-?name|AuthorName|authorName")
_SECOND_TAGS = frozenset(("a", "div", "h3", "h4", "p", "span"))
_SECOND_CLASSES = frozenset(("byline", "username", "byl", "BBL"))
_SECOND_ID = re.compile("author|zuozhe|bianji|xiaobian")
_SECOND_CLASS = re.compile(
    "author|channel-name|zuozhe|bianji|xiaobian|submitted-by|posted-by|journalist-name"
)
_THIRD_ID = re.compile("[Aa]uthor")
_THIRD_CLASS = re.compile("[Aa]uthor|screenname|writer|[Bb]yline")
_PRUNED_TAGS = frozenset(("a", "div", "section", "span"))
_PRUNED_ID = re.compile("^comments|comment-?list|ProductReviews")
_PRUNED_CLASS = re.compile(
    "^[Cc]omments|commentlist|comments-list|sidebar|is-hidden|quote|embedly-instagram|"
    "article-(?:share|support)|print|category|meta-date|meta-reviewer"
)
# Every class and id any search above can match holds one of these.
_CLASS_HINT = re.compile(
    "[Aa]uthor|byl|BBL|username|zuozhe|bianji|xiaobian|channel-name|submitted-by|posted-by|"
    "journalist-name|screenname|writer|Byline|[Cc]omment|sidebar|is-hidden|quote|"
    "embedly-instagram|article-s|print|category|meta-date|meta-reviewer|title|date"
)
_ID_HINT = re.compile("[Aa]uthor|zuozhe|bianji|xiaobian|comment|ProductReviews")
# extract_metainfo's bounds on what counts as an author's name.
_SHORTEST, _LONGEST = 2, 120


class _Fallback(Exception):
    """The walk cannot answer exactly as the pruned copy would."""


_PRUNED = -1  # _search()'s answer for an element the copy would not have


def page_byline(tree: HtmlElement) -> str | None:
    """`trafilatura.metadata.extract_author(tree)`, found in one walk of the tree."""
    from trafilatura.json_metadata import normalize_authors
    from trafilatura.metadata import extract_author

    try:
        found = _first_byline(tree)
    except _Fallback:
        return extract_author(tree)
    return normalize_authors(None, found) if found else found


def _first_byline(tree: HtmlElement) -> str | None:
    from trafilatura.utils import trim

    # Each element is listed under the first search that finds it: a later search finding
    # it again would only read the same text and come to the same answer.
    found: tuple[list[HtmlElement], ...] = ([], [], [])
    pruned: list[HtmlElement] = []
    for element in _elements(tree):
        if element.tag == "rel":
            raise _Fallback  # XPath's `rel='me'`: a child *element* named rel, a typo kept
        # The copy's root stays whatever it is: it has no parent to leave.
        search = _search(element, prunable=element is not tree)
        if search == _PRUNED:
            pruned.append(element)
        elif search is not None:
            found[search].append(element)
    if not any(found):
        return None  # most pages: nothing to check against what the copy would prune
    gone = set(pruned)
    holding = {above for element in pruned for above in element.iterancestors()}
    for element in (*found[0], *found[1], *found[2]):
        if not gone.isdisjoint(element.iterancestors()):
            continue  # not in the pruned copy
        if element in holding:
            raise _Fallback  # its text would be joined around what was pruned
        content = trim(" ".join(element.itertext()))
        if content and _SHORTEST < len(content) < _LONGEST:
            return content
    return None


def _search(element: HtmlElement, *, prunable: bool) -> int | None:
    """The first of the three searches that finds `element` (0, 1, 2), _PRUNED when the
    copy prunes it, None when neither."""
    tag, get = element.tag, element.get
    if prunable and tag in ("time", "figure"):
        return _PRUNED
    # A class or id without a hint matches no search, as if absent: most elements stop here.
    classes, ident = get("class") or "", get("id") or ""
    classes = classes if classes and _CLASS_HINT.search(classes) else ""
    ident = ident if ident and _ID_HINT.search(ident) else ""
    itemprop, component = get("itemprop") or "", get("data-component") or ""
    if not (classes or ident or itemprop or component):
        return 0 if tag == "author" or (tag in _FIRST_TAGS and _named_by_link(get)) else None
    if (
        prunable
        and tag in _PRUNED_TAGS
        and (
            ident == "comments"
            or classes in ("comments", "title", "date")
            or _PRUNED_ID.search(ident)
            or _PRUNED_CLASS.search(classes)
            or "Figure" in component
        )
    ):
        return _PRUNED
    if tag == "author" or (
        tag in _FIRST_TAGS
        and (
            ident == "author"
            or classes == "author"
            or itemprop == "author name"
            or _FIRST_CLASS.search(classes)
            or _named_by_link(get)
        )
    ):
        return 0
    if tag in _SECOND_TAGS and (
        classes in _SECOND_CLASSES
        or "author" in itemprop
        or _SECOND_ID.search(ident)
        or _SECOND_CLASS.search(classes)
    ):
        return 1
    if (
        "Byline" in component
        or "author" in itemprop
        or _THIRD_ID.search(ident)
        or _THIRD_CLASS.search(classes)
    ):
        return 2
    return None


def _named_by_link(get: Callable[[str], str | None]) -> bool:
    """The first search's terms on attributes no other search reads."""
    return get("rel") == "author" or get("data-testid") in ("AuthorCard", "AuthorURL")


def _elements(tree: HtmlElement) -> Iterator[HtmlElement]:
    """Every element in document order, the root included, as `//*`."""
    from lxml import etree

    elements: Callable[..., Iterator[HtmlElement]] = tree.iter
    return elements(etree.Element)
