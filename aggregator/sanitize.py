"""Article HTML cut down to what is safe and useful to republish.

An allow-list, not a block-list: anything not named here (script, style, iframes, forms, event
handlers, classes, inline styles) goes. Text inside an unknown tag is kept; the content of the
tags in `_DROP_WITH_CONTENT` is not, because it is code or another document, not prose.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

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
