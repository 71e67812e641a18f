"""The edits a partner makes to wire copy, at several strengths (deterministic given an rng).

Each takes the article's paragraphs and returns the partner's paragraphs. Strength is a
fraction of the text touched; `EDITS` lists what the benchmark applies.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from html import escape

Paragraphs = list[str]
Edit = Callable[[Paragraphs, random.Random, Sequence[str]], Paragraphs]

BYLINES = ("Jane Doe", "Ahmed Karimi", "Olga Petrova", "Li Wei", "Maria Santos", "Tom Becker")
OUTLETS = ("Partner Daily", "The Evening Post", "Metro Wire", "Coastal Herald")


def byline(paragraphs: Paragraphs, rng: random.Random, _: Sequence[str]) -> Paragraphs:
    """'By ...' above, 'Reporting by ...; Editing by ...' below."""
    name, editor = rng.sample(BYLINES, 2)
    return [
        f"By {name}, {rng.choice(OUTLETS)}",
        *paragraphs,
        f"(Reporting by {name}; Editing by {editor})",
    ]


def trim(fraction: float) -> Edit:
    """Cut `fraction` of the words from the end: the last paragraphs, and the end of the
    paragraph the cut falls in."""

    def edit(paragraphs: Paragraphs, rng: random.Random, _: Sequence[str]) -> Paragraphs:
        room = sum(len(p.split()) for p in paragraphs) * (1 - fraction)
        kept: Paragraphs = []
        for paragraph in paragraphs:
            tokens = paragraph.split()
            if len(tokens) > room:  # the cut falls inside this paragraph: keep its start
                if int(room) > 0:
                    kept.append(" ".join(tokens[: int(room)]))
                break
            kept.append(paragraph)
            room -= len(tokens)
        return kept

    return edit


def update(words: int) -> Edit:
    """An update paragraph of about `words` new words, at the top or the bottom."""

    def edit(paragraphs: Paragraphs, rng: random.Random, vocabulary: Sequence[str]) -> Paragraphs:
        added = "UPDATE: " + " ".join(rng.choice(vocabulary) for _ in range(words)) + "."
        return [added, *paragraphs] if rng.random() < 0.5 else [*paragraphs, added]

    return edit


def reword(fraction: float) -> Edit:
    """Replace about `fraction` of the words with other words (an editor's light touch)."""

    def edit(paragraphs: Paragraphs, rng: random.Random, vocabulary: Sequence[str]) -> Paragraphs:
        out = []
        for paragraph in paragraphs:
            tokens = paragraph.split()
            for i in range(len(tokens)):
                if rng.random() < fraction:
                    tokens[i] = rng.choice(vocabulary)
            out.append(" ".join(tokens))
        return out

    return edit


def partner_copy(paragraphs: Paragraphs, rng: random.Random, vocab: Sequence[str]) -> Paragraphs:
    """What a partner typically runs: a byline, the last paragraph cut, a few words changed."""
    return reword(0.02)(byline(trim(0.1)(paragraphs, rng, vocab), rng, vocab), rng, vocab)


def unchanged(paragraphs: Paragraphs, rng: random.Random, vocab: Sequence[str]) -> Paragraphs:
    return list(paragraphs)


# kind -> (edit, whether the partner also rewrites the headline, whether it is served on a
# partner page with its own chrome and extracted again)
EDITS: dict[str, tuple[Edit, bool, bool]] = {
    "relisted (same text, new link)": (unchanged, False, False),
    "partner page chrome": (unchanged, False, True),
    "byline added": (byline, False, False),
    "headline rewritten": (unchanged, True, False),
    "last paragraph(s) cut 10%": (trim(0.10), False, False),
    "last paragraphs cut 25%": (trim(0.25), False, False),
    "last paragraphs cut 40%": (trim(0.40), False, False),
    "update paragraph +30 words": (update(30), False, False),
    "update paragraph +80 words": (update(80), False, False),
    "words changed 2%": (reword(0.02), False, False),
    "words changed 5%": (reword(0.05), False, False),
    "words changed 10%": (reword(0.10), False, False),
    "partner copy (all of the above, light)": (partner_copy, True, True),
}


def rewrite_headline(title: str, rng: random.Random, vocabulary: Sequence[str]) -> str:
    """A different headline over the same story: a new framing, few words in common."""
    words = title.split()
    keep = [w for w in words if w[:1].isupper()][:3] or words[:2]
    return " ".join([*keep, *(rng.choice(vocabulary) for _ in range(5))]).capitalize()


def partner_page(
    title: str, paragraphs: Sequence[str], rng: random.Random, *, canonical: str | None = None
) -> str:
    """The copy on a partner's site: its own navigation, share buttons, ads, related links;
    `canonical`: the syndication source it names in <link rel=canonical>, if any."""
    related = "".join(
        f'<li><a href="/story/{rng.randrange(10**6)}">{escape(r)}</a></li>'
        for r in ("Markets wrap", "Weather for the weekend", "Letters to the editor")
    )
    link = f'<link rel="canonical" href="{escape(canonical)}">' if canonical else ""
    body = ""
    for i, paragraph in enumerate(paragraphs):
        body += f"<p>{escape(paragraph)}</p>"
        if i == 2:
            body += '<div class="ad">Advertisement</div>'
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{escape(title)} | {rng.choice(OUTLETS)}</title>{link}</head><body>"
        "<header><nav><a href='/'>Home</a> <a href='/world'>World</a> <a href='/sport'>Sport</a>"
        " <a href='/subscribe'>Subscribe</a></nav></header><main><article>"
        f"<h1>{escape(title)}</h1><div class='share'>Share on Facebook Share on X Email</div>"
        f"{body}</article><aside><h2>Most read</h2><ul>{related}</ul></aside></main>"
        "<footer><p>Sign up for our newsletter.</p><p>© Partner Media. All rights reserved."
        "</p></footer></body></html>"
    )
