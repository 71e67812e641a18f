"""HTML fragments to plain one-line text, for titles, summaries and search."""

from __future__ import annotations

import re

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

# Where an HTML tokenizer would start a tag, an end tag, a comment or a processing instruction.
_MARKUP = re.compile(r"<(?=[A-Za-z/!?])")
# Double-escaped HTML needs two decodings; a third allows for one more careless layer.
_DECODINGS = 3

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


def has_markup(text: str) -> bool:
    """Whether an HTML parser would find a tag (or a comment) in `text`."""
    return _MARKUP.search(text) is not None


def markup_free_text(text: str, *, html: bool) -> str:
    """`text` (HTML if `html`, else plain) as plain text that holds no tag markup.

    Escaped HTML decodes to text that looks like tags (`&amp;lt;b&amp;gt;` in a feed reads
    `<b>`), and plain text labelled as such often is HTML: either is decoded again, a few
    times at most. Anything still left would become a tag in a reader that renders the text as
    HTML, so a space after its `<` keeps it text.
    """
    text = html_to_text(text) if html else collapse_ws(text)
    for _ in range(_DECODINGS):
        if not has_markup(text):
            return text
        text = html_to_text(text)
    return _MARKUP.sub("< ", text)


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, an ellipsis marking the cut."""
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + "…"
