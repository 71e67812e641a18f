"""Small builders for feed documents served by the local test server."""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape


def rss(
    items: Sequence[dict[str, str]], *, title: str = "Test feed", ttl: int | None = None
) -> str:
    body = "".join(
        "<item>"
        + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in item.items() if k != "content")
        + (
            f"<content:encoded><![CDATA[{item['content']}]]></content:encoded>"
            if "content" in item
            else ""
        )
        + "</item>"
        for item in items
    )
    ttl_tag = f"<ttl>{ttl}</ttl>" if ttl else ""
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">'
        f"<channel><title>{escape(title)}</title><link>https://example.org/</link>{ttl_tag}"
        f"{body}</channel></rss>"
    )


def atom(entries: Sequence[dict[str, str]], *, title: str = "Atom feed") -> str:
    body = "".join(
        f"<entry><id>{escape(e['id'])}</id><title>{escape(e['title'])}</title>"
        f'<link rel="alternate" href="{escape(e["link"])}"/>'
        f"<updated>{e.get('updated', '2026-11-27T08:00:00Z')}</updated>"
        f"<summary>{escape(e.get('summary', ''))}</summary></entry>"
        for e in entries
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>{escape(title)}</title><id>urn:test</id><updated>2026-11-27T08:00:00Z</updated>"
        f"{body}</feed>"
    )


def json_feed(items: Sequence[dict[str, str]], *, title: str = "JSON feed") -> str:
    return json.dumps(
        {"version": "https://jsonfeed.org/version/1.1", "title": title, "items": list(items)}
    )


def article_page(title: str, paragraphs: Sequence[str], *, related: Sequence[str] = ()) -> str:
    """An article page with the chrome a CMS puts around it."""
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    aside = "".join(
        f'<div class="teaser"><h3><a href="/x">{escape(r)}</a></h3></div>' for r in related
    )
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}"
        "</title></head><body><header><nav><a href='/'>Home</a> <a href='/news'>News</a></nav>"
        f"</header><main><article><h1>{escape(title)}</h1>{body}</article>"
        f"<aside class='related'><h2>Related articles</h2>{aside}</aside></main>"
        "<footer>© Example News. All rights reserved.</footer></body></html>"
    )


def partner_page(
    title: str, paragraphs: Sequence[str], *, byline: str = "", canonical: str | None = None
) -> str:
    """A partner's page around a copy of a story: other chrome, a byline, share buttons."""
    link = f'<link rel="canonical" href="{escape(canonical)}">' if canonical else ""
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    by = f"<p class='byline'>{escape(byline)}</p>" if byline else ""
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}"
        f" | Partner Daily</title>{link}</head><body><div class='top'><a href='/'>Partner Daily"
        "</a> <a href='/local'>Local</a> <a href='/sport'>Sport</a></div><div class='content'>"
        f"<h1>{escape(title)}</h1>{by}<div class='share'>Share on Facebook Share on X</div>"
        f"<div class='story-body'>{body}</div></div><div class='sidebar'><h3>Most read</h3>"
        "<ul><li><a href='/a'>Weather for the weekend</a></li></ul></div>"
        "<div class='foot'>Partner Daily. Subscribe to our newsletter.</div></body></html>"
    )
