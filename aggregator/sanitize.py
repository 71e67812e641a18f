"""Everything that leaves the store, made safe: one function per kind of field.

- `plain_text`: titles, summaries, names, tags. Drops what XML 1.0 forbids (C0 controls but
  tab and newline, lone surrogates, U+FFFE/U+FFFF) and the C1 controls, and normalises
  whitespace, so one stray control character can never break a whole exported feed.
- `safe_html`: bodies. The allow-list below (nh3), then the same character filter.
- `safe_url`: links. Absolute http and https only; anything else (javascript:, data:, a
  relative path) is dropped rather than published.

Exports, served feeds and the web view call these and nothing else for their fields.

HTML: an allow-list, not a block-list: anything not named here (script, style, iframes, forms, event
handlers, classes, inline styles) goes. Text inside an unknown tag is kept; the content of the
tags in `_DROP_WITH_CONTENT` is not, because it is code or another document, not prose.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

import nh3

_TAGS = frozenset(
    {
        *("p", "br", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote", "pre", "code"),
        *("em", "strong", "b", "i", "a", "img", "figure", "figcaption"),
        *("table", "caption", "thead", "tbody", "tfoot", "tr", "th", "td"),
    }
)
_ATTRIBUTES = {
    "a": {"href"},
    "img": {"src", "alt"},
    "th": {"colspan", "rowspan"},
    "td": {"colspan", "rowspan"},
}
_DROP_WITH_CONTENT = frozenset(
    {"script", "style", "template", "noscript", "iframe", "object", "svg", "math"}
)
_SCHEMES = frozenset({"http", "https", "mailto"})
_LINK_REL = "noopener noreferrer nofollow"
# An <h1> inside a body repeats the headline, but dropping the tag would glue its text to the
# next paragraph: demote it to the top level we allow.
_H1 = re.compile(r"<(/?)h1\b", re.IGNORECASE)


# Not allowed in XML 1.0 (C0 but tab, newline and CR; surrogates; U+FFFE and U+FFFF), plus the
# C1 controls and CR, which no reader needs.
_FORBIDDEN = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_SPACES = re.compile(r"\s+")
_LINES = re.compile(r"[ \t\u00a0]*\n[ \t\u00a0\n]*")
_RUNS = re.compile(r"[ \t\u00a0]+")
# An HTML parser drops the newline that opens a <pre>; serialisers must write it twice.
_PRE_NEWLINE = re.compile(r"<pre>\n")
# RFC 3986 reserved characters and '%' (after the host, '[' and ']' are not allowed and '#'
# only once): anything else (non-ASCII, '<', '"', '{', ...) is percent-encoded.
_URL_SAFE = ":/?#@!$&'()*+,;=%"
_BARE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


def plain_text(text: str | None, *, multiline: bool = False) -> str:
    """`text` safe to put in any XML or JSON field: forbidden characters gone, whitespace
    collapsed (to single spaces; with `multiline`, paragraphs keep one blank line)."""
    if not text:
        return ""
    text = _FORBIDDEN.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    if not multiline:
        return _SPACES.sub(" ", text).strip()
    paragraphs = (_RUNS.sub(" ", p).strip() for p in _LINES.split(text))
    return "\n\n".join(p for p in paragraphs if p)


def safe_html(html: str | None, *, base_url: str | None = None) -> str:
    """`html` cut down to the allow-list, with no character XML forbids."""
    if not html:
        return ""
    cleaned = _FORBIDDEN.sub("", sanitize_html(_FORBIDDEN.sub("", html), base_url=base_url))
    # Stripped last, and the <pre> newline kept, so that safe_html(safe_html(x)) == safe_html(x).
    return _PRE_NEWLINE.sub("<pre>\n\n", cleaned).strip()


def safe_url(url: str | None) -> str | None:
    """An absolute http(s) URL as it may be published (an RFC 3986 URI: characters a URI may
    not hold percent-encoded), else None."""
    if not url:
        return None
    url = _FORBIDDEN.sub("", url).strip()
    if any(c.isspace() for c in url):
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port out of range)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return _as_uri(url, len(parts.scheme) + len("://") + len(parts.netloc))


def _as_uri(url: str, host_end: int) -> str:
    rest, hash_mark, fragment = url[host_end:].partition("#")
    return (
        _percent_encode(url[:host_end], _URL_SAFE + "[]")
        + _percent_encode(rest, _URL_SAFE)
        + hash_mark
        + _percent_encode(fragment, _URL_SAFE.replace("#", ""))
    )


def _percent_encode(part: str, safe: str) -> str:
    return quote(_BARE_PERCENT.sub("%25", part), safe=safe)


def sanitize_html(html: str, *, base_url: str | None = None) -> str:
    """`html` with only the allowed tags and attributes; relative URLs made absolute.

    Without a usable (absolute http/https) `base_url` relative URLs are dropped: on the page
    that republishes the fragment they would point somewhere else than the author meant.
    """
    relative: nh3.UrlRelative = "deny"
    if base_url is not None:
        parts = urlsplit(base_url)
        if parts.scheme in ("http", "https") and parts.netloc:
            relative = ("rewrite_with_base", base_url)
    html = _H1.sub(r"<\1h2", html)
    try:
        return _clean(html, relative)
    except ValueError:  # ammonia refuses some bases (a bad port, a space in the host)
        return _clean(html, "deny")


def _clean(html: str, relative: nh3.UrlRelative) -> str:
    return nh3.clean(
        html,
        tags=_TAGS,
        clean_content_tags=_DROP_WITH_CONTENT,
        attributes=_ATTRIBUTES,
        link_rel=_LINK_REL,
        url_schemes=_SCHEMES,
        url_relative=relative,
    ).strip()


# Text from the network shown on a terminal or written to a log: escaped, never dropped, so a
# reader sees what the server sent. ESC and CSI (U+009B) start a terminal's colour, cursor,
# clipboard (OSC 52) and hyperlink (OSC 8) sequences, BEL rings, CR and BS overwrite, a
# newline forges a log line, U+2028/U+2029 break lines in some viewers, and the bidi
# embeddings, overrides and isolates reorder what is read ("Trojan Source").
_BIDI = "\u2028\u2029\u202a-\u202e\u2066-\u2069"
_TERMINAL = re.compile(f"[\x00-\x1f\x7f-\x9f{_BIDI}]")
_TERMINAL_MULTILINE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_BIDI}]")  # keeps \t and \n
_NAMED_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
# What a JSON document may carry raw inside its strings that a terminal or log viewer acts
# on (json.dumps escapes C0 itself, never DEL, C1 or the rest); lone surrogates too, which
# no UTF-8 stream can carry.
_JSON_RAW = re.compile(f"[\x7f-\x9f{_BIDI}\ud800-\udfff]")


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED_ESCAPES.get(char) or (f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}")


def terminal_text(text: str, *, multiline: bool = False) -> str:
    """`text` safe to show on a terminal or write to a log line: every control character
    (C0, DEL, C1) and bidi control becomes a visible escape (`\\x1b`, `\\u009b`, `\\n`).
    With `multiline`, tab and newline stay (table cells, CSV cells, tracebacks).
    For display only: a backslash in `text` is left as it is, so this is not reversible."""
    pattern = _TERMINAL_MULTILINE if multiline else _TERMINAL
    return pattern.sub(_visible, text)


def escaped_json(document: str) -> str:
    """A serialised JSON document (json.dumps with ensure_ascii=False) with DEL, the C1
    controls, bidi controls, U+2028/U+2029 and lone surrogates written as `\\uXXXX` escapes:
    no raw control reaches a terminal or log, and any JSON reader gets exactly the same
    data back. Safe on the whole document: those characters only occur inside strings."""
    return _JSON_RAW.sub(lambda match: f"\\u{ord(match.group()):04x}", document)
