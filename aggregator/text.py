"""HTML fragments to plain one-line text, for titles, summaries and search."""

from __future__ import annotations

import lxml.html
from lxml import etree

# Their text is code or metadata, never prose a reader should see.
_INVISIBLE = ("script", "style", "template", "noscript", "head", "title")
# Elements whose edges separate words: "<p>a</p><p>b</p>" reads "a b", not "ab".
# fmt: off
_BREAKING = frozenset({
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption",
    "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "img", "li", "main",
    "nav", "ol", "p", "pre", "section", "table", "td", "th", "tr", "ul",
})
# fmt: on

# Scripts written without spaces between words (Thai, kana, CJK ideographs): each character
# counts as a word-like unit. Hangul is left out on purpose: Korean separates words.
UNSPACED_SCRIPTS = "\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"


def collapse_ws(text: str) -> str:
    """Runs of any whitespace (newlines, tabs, no-break spaces) become one space; ends trimmed."""
    return " ".join(text.split())


def html_to_text(html: str) -> str:
    """The visible text of an HTML fragment, entities decoded, whitespace collapsed."""
    if "<" not in html and "&" not in html:
        return collapse_ws(html)  # plain already; spares a parse for most titles
    try:
        root = lxml.html.fragment_fromstring(html, create_parent="div")
    except (etree.LxmlError, ValueError):
        # libxml2 recovers from nearly anything; this is for what it refuses outright.
        return collapse_ws(html)
    etree.strip_elements(root, etree.Comment, etree.ProcessingInstruction, with_tail=False)
    etree.strip_elements(root, *_INVISIBLE, with_tail=False)
    parts: list[str] = []
    for event, element in etree.iterwalk(root, events=("start", "end")):
        breaking = element.tag in _BREAKING
        if event == "start":
            parts.append(" " if breaking else "")
            parts.append(element.text or "")
        else:
            parts.append(" " if breaking else "")
            if element is not root:
                parts.append(element.tail or "")
    return collapse_ws("".join(parts))


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, an ellipsis marking the cut."""
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + "…"
