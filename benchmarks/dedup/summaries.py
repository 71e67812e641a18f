"""Summary pairs (title + summary, no article text) from real feed-snapshots items."""

from __future__ import annotations

import collections
import difflib
import itertools
import random
from collections.abc import Sequence
from datetime import timedelta

from aggregator.stories import dedup
from aggregator.times import parse_iso
from benchmarks.dedup.corpus import FeedItem
from benchmarks.dedup.edits import reword, rewrite_headline
from benchmarks.dedup.labelled import TAILS, Pair, Side, _later, exact_jaccard, keyword_neighbours

RELAYED = 600  # items another feed relays, each with every relay edit
DAY = timedelta(days=1)


def _side(i: int, item: FeedItem) -> Side:
    return Side(f"f{i}", item.feed, item.link, item.title, None, item.summary, item.seen_at)


def _relay(i: int, kind: str, original: Side, rng: random.Random, vocab: Sequence[str]) -> Side:
    """Another feed carrying the same item, edited as `kind` says."""
    title, summary = original.title, original.summary
    if kind == "headline kicker and agency suffix":
        title = f"UPDATE 1-{title} | Reuters"
    elif kind == "summary words changed 5%":
        summary = "\n".join(reword(0.05)([summary], rng, vocab))
    elif kind == "boilerplate tail added":
        summary = f"{summary} {rng.choice(TAILS)}"
    elif kind == "headline rewritten":
        title = rewrite_headline(title, rng, vocab)
    n = RELAY_KINDS.index(kind)  # each edit from a feed of its own
    return Side(
        f"{original.key}/{kind}",
        f"relay-{n}",
        f"https://relay{n}.example/{i}",
        title,
        None,
        summary,
        _later(original, 1),
    )


RELAY_KINDS = (
    "relayed by another feed (same title and summary)",
    "headline kicker and agency suffix",
    "summary words changed 5%",
    "boilerplate tail added",
    "headline rewritten",
)


def _apart(a: Side, b: Side, limit: timedelta) -> bool:
    return abs(parse_iso(a.seen_at) - parse_iso(b.seen_at)) <= limit


def _longest_run(a: str, b: str) -> int:
    left, right = dedup.words(a), dedup.words(b)
    matcher = difflib.SequenceMatcher(None, left, right, autojunk=False)
    return matcher.find_longest_match(0, len(left), 0, len(right)).size


def summary_pairs(
    items: Sequence[FeedItem], rng: random.Random
) -> tuple[list[Pair], list[Pair], list[str]]:
    """Labelled pairs, unlabelled ones (different outlets' items on the same topic that share
    too much text to call different articles without reading them), and notes."""
    usable = [
        (i, it)
        for i, it in enumerate(items)
        if dedup.fingerprint(it.title, None, it.summary) is not None
    ]
    sides = {i: _side(i, it) for i, it in usable}
    vocab = [w for it in items[:500] for w in it.summary.split()]
    pairs: list[Pair] = []
    for n, i in enumerate(sorted(rng.sample(sorted(sides), RELAYED))):
        for kind in RELAY_KINDS:
            pairs.append(
                Pair("summary", kind, True, sides[i], _relay(n, kind, sides[i], rng, vocab))
            )
    pairs += _same_summary_elsewhere(sides)
    negatives, unlabelled = _real_negatives(sides)
    notes = [f"{len(sides)} of {len(items)} feed items have a summary to fingerprint"]
    return pairs + negatives, unlabelled, notes


def _same_summary_elsewhere(sides: dict[int, Side]) -> list[Pair]:
    """Real relays: the same summary (15 words or more) in two different feeds."""
    groups: dict[str, list[Side]] = collections.defaultdict(list)
    for side in sides.values():
        if len(side.summary.split()) >= 15:
            groups[" ".join(dedup.words(side.summary))].append(side)
    pairs = []
    for group in groups.values():
        ordered = sorted(group, key=lambda s: s.seen_at)
        for a, b in itertools.pairwise(ordered):
            if a.feed != b.feed and _apart(a, b, 3 * DAY):
                pairs.append(Pair("summary", "real: the same summary in two feeds", True, a, b))
    return pairs


def _real_negatives(sides: dict[int, Side]) -> tuple[list[Pair], list[Pair]]:
    keys = sorted(sides)
    texts = [f"{sides[k].title}\n{sides[k].summary}" for k in keys]
    pairs, unlabelled = [], []
    for i, j, _ in keyword_neighbours(texts, min_cos=0.35):
        a, b = sorted((sides[keys[i]], sides[keys[j]]), key=lambda s: s.seen_at)
        if a.url == b.url or dedup.title_key(a.title) == dedup.title_key(b.title):
            continue
        if a.feed == b.feed and _apart(a, b, DAY):
            pairs.append(Pair("summary", "same feed, same day, shared keywords", False, a, b))
        elif a.feed != b.feed and _apart(a, b, 3 * DAY):
            text_a, text_b = texts[i], texts[j]
            if exact_jaccard(text_a, text_b) < 0.2 and _longest_run(text_a, text_b) < 8:
                pairs.append(Pair("summary", "same event, different outlets", False, a, b))
            else:
                unlabelled.append(Pair("summary", "cross-feed, shared text", False, a, b))
    by_title: dict[tuple[str, str | None], list[Side]] = collections.defaultdict(list)
    for side in sides.values():
        by_title[(side.feed, dedup.title_key(side.title))].append(side)
    for group in by_title.values():
        ordered = sorted(group, key=lambda s: s.seen_at)
        for a, b in itertools.pairwise(ordered):
            if (
                a.url != b.url
                and _apart(a, b, 3 * DAY)
                and dedup.title_key(a.summary) != dedup.title_key(b.summary)
            ):
                pairs.append(
                    Pair("summary", "same feed's recurring headline, different story", False, a, b)
                )
    return pairs, unlabelled
