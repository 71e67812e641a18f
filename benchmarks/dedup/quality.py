"""Precision and recall on the labelled pairs: each signal alone, the signals combined as
dedup.best_match tries them, and the whole store path (every copy saved in time order through
the writer's transaction into a real SQLite file, then: did each pair end in one story?)."""

from __future__ import annotations

import collections
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aggregator.models import Article, Copy, Entry, Fate, FeedConfig, ItemDraft, Match
from aggregator.store import Store
from aggregator.stories import dedup
from aggregator.stories.dedup import DedupPolicy
from aggregator.stories.placement import place_item
from aggregator.urls import canonical_url
from benchmarks.dedup.labelled import Pair, Side

SIGNALS = ("canonical_url", "title", "minhash")


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def add(self, same: bool, merged: bool) -> None:
        if same:
            self.tp += merged
            self.fn += not merged
        else:
            self.fp += merged
            self.tn += not merged

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass(frozen=True)
class Verdict:
    """What each signal said about one pair, and what the combination decided."""

    pair: Pair
    signals: dict[str, Match | None]
    similarity: float | None  # MinHash estimate, when comparable
    in_band: bool  # the pair shares an LSH band: the store would see it as a candidate
    combined: Match | None
    in_store: bool | None = None  # both copies in one story after the store run


@dataclass
class Report:
    verdicts: list[Verdict]
    store_seconds: float = 0.0
    store_items: int = 0
    notes: list[str] = field(default_factory=list)


def make_copies(sides: Iterable[Side]) -> dict[str, Copy]:
    """Each copy fingerprinted exactly as the pipeline does it (dedup.fingerprint)."""
    copies: dict[str, Copy] = {}
    for side in sides:
        if side.key in copies:
            continue
        url = canonical_url(side.url)
        fingerprint = dedup.fingerprint(side.title, side.text, side.summary)
        copies[side.key] = Copy(
            item_id=len(copies) + 1,
            first_seen_at=side.seen_at,
            url=url,
            declared=dedup.declared_canonical(side.declared, url),
            title_key=dedup.title_key(side.title),
            fingerprint=fingerprint,
            story_id=len(copies) + 1,
            feeds=frozenset({side.feed}),
        )
    return copies


def judge(pair: Pair, copies: dict[str, Copy], policy: DedupPolicy) -> Verdict:
    stored, new = copies[pair.first.key], copies[pair.second.key]
    fa, fb = stored.fingerprint, new.fingerprint
    in_band = bool(fa and fb and any(x == y for x, y in zip(fa.bands, fb.bands, strict=True)))
    signals = {
        "canonical_url": dedup.decide_canonical(new, stored),
        "title": dedup.decide_title(new, stored, policy),
        "minhash": dedup.decide_minhash(new, stored, policy) if in_band else None,
    }
    combined = next((m for m in signals.values() if m is not None), None)
    return Verdict(pair, signals, dedup.similarity(fa, fb), in_band, combined)


def score(verdicts: Iterable[Verdict], pick: str) -> Score:
    """`pick`: a signal's name, 'combined', or 'store'."""
    result = Score()
    for v in verdicts:
        if pick == "combined":
            merged = v.combined is not None
        elif pick == "store":
            merged = bool(v.in_store)
        else:
            merged = v.signals[pick] is not None
        result.add(v.pair.same, merged)
    return result


# -- the store path -----------------------------------------------------------------------------


def _draft(side: Side, copy: Copy) -> ItemDraft:
    entry = Entry(
        guid=side.key,
        link=side.url,
        title=side.title,
        summary=side.summary,
        content_html=None,
        author=None,
        published_at=None,
        updated_at=None,
    )
    article = Article(text=side.text, html="", canonical_url=side.declared) if side.text else None
    return ItemDraft(
        entry=entry,
        key=side.key,
        url=copy.url,
        entry_hash=side.key,
        article=article,
        extract_status="ok" if article else "failed",
        fingerprint=copy.fingerprint,
    )


def store_run(
    verdicts: Sequence[Verdict], copies: dict[str, Copy], policy: DedupPolicy
) -> tuple[list[Verdict], float, int]:
    """Save every copy, oldest first, through the writer's own code path; then read which
    story each copy ended in."""
    sides: dict[str, Side] = {}
    for v in verdicts:
        sides.setdefault(v.pair.first.key, v.pair.first)
        sides.setdefault(v.pair.second.key, v.pair.second)
    ordered = sorted(sides.values(), key=lambda s: (s.seen_at, s.key))
    feeds = sorted({s.feed for s in ordered})
    with tempfile.TemporaryDirectory() as folder:
        store = Store.open(str(Path(folder) / "dedup.db"))
        configs = [
            FeedConfig(f, f"https://{f}.example/feed", priority=10 if f == "wire" else 1)
            for f in feeds
        ]
        store.sync_feeds(configs, now=ordered[0].seen_at)
        started = time.perf_counter()
        with store.transaction() as tx:
            for side in ordered:
                draft = _draft(side, copies[side.key])
                done, item_id = tx.apply_entry(side.feed, draft, now=side.seen_at)
                if done is Fate.NEW:
                    place_item(tx, item_id, draft.fingerprint, policy, now=side.seen_at)
        seconds = time.perf_counter() - started
        story_of = {
            (feed, guid): story
            for feed, guid, story in store.execute(
                "SELECT s.feed, s.guid, i.story_id FROM sightings s"
                " JOIN items i ON i.id = s.item_id"
            )
        }
        store.close()
    out = []
    for v in verdicts:
        a = story_of[(v.pair.first.feed, v.pair.first.key)]
        b = story_of[(v.pair.second.feed, v.pair.second.key)]
        out.append(Verdict(v.pair, v.signals, v.similarity, v.in_band, v.combined, a == b))
    return out, seconds, len(ordered)


def evaluate(pairs: Sequence[Pair], policy: DedupPolicy, *, with_store: bool = True) -> Report:
    copies = make_copies(s for p in pairs for s in (p.first, p.second))
    verdicts = [judge(p, copies, policy) for p in pairs]
    if not with_store:
        return Report(verdicts)
    stored, seconds, items = store_run(verdicts, copies, policy)
    return Report(stored, seconds, items)


def kinds(verdicts: Iterable[Verdict]) -> dict[tuple[str, str, bool], list[Verdict]]:
    grouped: dict[tuple[str, str, bool], list[Verdict]] = collections.defaultdict(list)
    for v in verdicts:
        grouped[(v.pair.group, v.pair.kind, v.pair.same)].append(v)
    return grouped
