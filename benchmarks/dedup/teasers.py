"""Feed-only intake whose summaries say little: two corpora of a run of many feeds at once
(`extract: false`), built from real feed-snapshots headlines and ledes, and what the store
path makes of them: precision, recall, and the cost of each entry as the store fills.

- teasers: regional editions of a few publishers. Every entry has its own headline and link;
  its summary is its publisher's teaser (the edition's region in it), after the story's lede
  for two entries in three, alone for the rest ("Continue reading…", press releases). One
  entry in five is another edition running a story (with a lede) an earlier edition carried:
  the same headline and summary; a new headline over the same lede; the same headline over
  the teaser alone; or a new headline over the teaser alone. That last one shares nothing
  with the story but boilerplate, and is not merged, by design.
- headlines: the same feeds with no summaries at all. A relay is another feed carrying the
  same link (with tracking parameters), or the same headline under another link, which a
  headline alone never joins, by design; recurring headlines ("Live updates") over different
  stories are the negatives.

Different-story pairs: each entry with the latest entry of another edition of its publisher
(the teaser in common) and, in the headlines corpus, every two entries under one recurring
headline. The run saves each feed's entries in one transaction, placed one by one (the
writer's own path), and counts each entry's work (dedup.Tally).
"""

from __future__ import annotations

import collections
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from aggregator.models import Entry, Fate, FeedConfig, ItemDraft
from aggregator.store import Store
from aggregator.stories import dedup
from aggregator.stories.dedup import DedupPolicy, Tally
from aggregator.stories.identity import draft_for
from aggregator.stories.placement import place_item
from aggregator.times import iso_utc, parse_iso
from benchmarks.dedup.corpus import FeedItem
from benchmarks.dedup.edits import rewrite_headline
from benchmarks.dedup.quality import Score

START = "2026-11-27T06:00:00Z"
PUBLISHERS, EDITIONS, ENTRIES = 20, 10, 50
RELAYED = 0.2
TEASERS = (
    "Get the latest news, weather and sport from {region} every morning, and the stories people"
    " are talking about. Sign up for the free {publisher} newsletter, follow us on social media"
    " and continue reading the full story on our website.",
    "This press release was distributed by {publisher} on behalf of the issuer, who is solely"
    " responsible for its content. For more information about {region}, contact the press"
    " office or visit the investor relations section of the company's website.",
    "{publisher} brings you the stories that matter in {region}, from breaking news to"
    " in-depth analysis. Continue reading on our website or in the app, and subscribe to"
    " support independent local journalism.",
    "Watch the full report on {publisher} {region}. Subscribe to our channel for more videos,"
    " turn on notifications so you never miss an update, and follow us on Facebook, Instagram"
    " and X for the latest headlines.",
    "Continue reading… This article is for subscribers only. Already a subscriber? Log in to"
    " read the full story. Not yet? Start your free trial of {publisher} {region} today and"
    " cancel at any time.",
)
REGIONS = (
    "the North", "the South", "the East", "the West", "the Valley", "the Coast",
    "the Highlands", "the Lakes", "the Capital", "the Islands",
)  # fmt: skip
RECURRING = (
    "Live updates",
    "Morning briefing",
    "Photos of the day",
    "What you need to know today",
    "Letters to the editor",
)
RELAY_KINDS = (
    "another edition, same headline and summary",
    "another edition, new headline, same lede",
    "another edition, same headline, teaser only",
    "another edition, new headline, teaser only (boilerplate alone: not merged)",
)
HEADLINE_KINDS = (
    "another feed, same link (tracking parameters)",
    "another feed, same headline, another link (a headline alone: not merged)",
)


@dataclass(frozen=True)
class Posting:
    """One feed entry as a feed-only run stores it."""

    feed: str
    guid: str
    link: str
    title: str
    lede: str  # the story's own words in the summary ("" for none)
    summary: str
    seen_at: str
    story: int  # which story it is: the truth the pairs are labelled from

    def draft(self) -> ItemDraft:
        entry = Entry(self.guid, self.link, self.title, self.summary, None, None, None, None)
        draft = draft_for(entry)
        return replace(draft, fingerprint=dedup.fingerprint(self.title, None, self.summary))


@dataclass(frozen=True)
class Labelled:
    kind: str
    same: bool
    first: Posting
    second: Posting


@dataclass(frozen=True)
class Corpus:
    name: str
    postings: list[Posting]  # in arrival order, feed by feed
    pairs: list[Labelled]


def _stories(items: Sequence[FeedItem]) -> list[tuple[str, str]]:
    """(headline, lede) of real items whose headline is theirs alone and whose lede (the
    summary's first 30 words) no other item has."""
    titles = collections.Counter(dedup.title_key(i.title) for i in items)
    ledes = collections.Counter(" ".join(i.summary.split()[:30]) for i in items)
    out = []
    for item in items:
        lede = " ".join(item.summary.split()[:30])
        if titles[dedup.title_key(item.title)] == 1 and ledes[lede] == 1 and len(lede) > 60:
            out.append((item.title, lede))
    return out


def _feeds() -> list[tuple[str, int, int]]:
    """(feed, publisher, edition), in the order the run reaches them."""
    return [
        (f"p{p:02d}-{REGIONS[e].split()[-1].lower()}", p, e)
        for e in range(EDITIONS)
        for p in range(PUBLISHERS)
    ]


def _seen(n: int) -> str:
    """The n-th entry's first sighting: ten entries a second, the run's pace."""
    return iso_utc(parse_iso(START) + timedelta(seconds=n // 10))


def _neighbour(latest: dict[str, Posting], posting: Posting, kind: str) -> list[Labelled]:
    """The posting with the latest entry of another of the group's feeds, when a different
    story: a different-story pair that shares what the group shares."""
    others = [p for feed, p in latest.items() if feed != posting.feed]
    if not others:
        return []
    other = max(others, key=lambda p: (p.seen_at, p.guid))
    return [] if other.story == posting.story else [Labelled(kind, False, other, posting)]


def teasers(items: Sequence[FeedItem], rng: random.Random) -> Corpus:
    stories = _stories(items)
    rng.shuffle(stories)
    vocab = [w for title, _ in stories[:500] for w in title.split()]
    postings: list[Posting] = []
    pairs: list[Labelled] = []
    carried: dict[int, list[Posting]] = collections.defaultdict(list)  # by publisher
    latest: dict[int, dict[str, Posting]] = collections.defaultdict(dict)  # publisher: feed:
    seen_in: set[tuple[str, int]] = set()  # (feed, story): a feed carries a story once
    for feed, publisher, edition in _feeds():
        teaser = TEASERS[publisher % len(TEASERS)].format(
            publisher=f"Publisher {publisher}", region=REGIONS[edition]
        )
        for n in range(ENTRIES):
            link, seen = f"https://{feed}.example/news/{n}", _seen(len(postings))
            elsewhere = [
                o for o in carried[publisher][-200:] if o.lede and (feed, o.story) not in seen_in
            ]
            if elsewhere and rng.random() < RELAYED:
                original = rng.choice(elsewhere)
                kind = RELAY_KINDS[rng.randrange(len(RELAY_KINDS))]
                title = original.title
                if "new headline" in kind:
                    title = rewrite_headline(original.title, rng, vocab)
                lede = "" if "teaser only" in kind else original.lede
                story = original.story
            else:
                kind = ""
                title, lede = stories.pop()
                lede = lede if rng.random() < 2 / 3 else ""
                story = len(postings)
            summary = f"{lede} {teaser}".strip()
            posting = Posting(feed, f"{feed}/{n}", link, title, lede, summary, seen, story)
            if kind:
                pairs.append(Labelled(kind, True, original, posting))
            else:
                carried[publisher].append(posting)
            pairs += _neighbour(latest[publisher], posting, "another edition's story, one teaser")
            latest[publisher][feed] = posting
            seen_in.add((feed, posting.story))
            postings.append(posting)
    return Corpus("teasers", postings, pairs)


def headlines(items: Sequence[FeedItem], rng: random.Random) -> Corpus:
    stories = [title for title, _ in _stories(items)]
    rng.shuffle(stories)
    postings: list[Posting] = []
    pairs: list[Labelled] = []
    carried: list[Posting] = []
    recurring: dict[str, dict[str, Posting]] = collections.defaultdict(dict)  # title: feed:
    seen_in: set[tuple[str, int]] = set()  # (feed, story): a feed carries a story once
    for feed, _, _ in _feeds():
        for n in range(ENTRIES):
            link, seen = f"https://{feed}.example/news/{n}", _seen(len(postings))
            roll = rng.random()
            elsewhere = [o for o in carried[-200:] if (feed, o.story) not in seen_in]
            if elsewhere and roll < RELAYED:
                original = rng.choice(elsewhere)
                kind = HEADLINE_KINDS[rng.randrange(len(HEADLINE_KINDS))]
                if "same link" in kind:
                    link = f"{original.link}?utm_source={feed}&utm_medium=rss"
                posting = Posting(
                    feed, f"{feed}/{n}", link, original.title, "", "", seen, original.story
                )
                pairs.append(Labelled(kind, True, original, posting))
            elif roll < RELAYED + 0.05:
                title = RECURRING[rng.randrange(len(RECURRING))]
                posting = Posting(feed, f"{feed}/{n}", link, title, "", "", seen, len(postings))
                pairs += _neighbour(
                    recurring[title], posting, "a recurring headline, another story"
                )
                recurring[title][feed] = posting
            else:
                posting = Posting(
                    feed, f"{feed}/{n}", link, stories.pop(), "", "", seen, len(postings)
                )
                carried.append(posting)
            seen_in.add((feed, posting.story))
            postings.append(posting)
    return Corpus("headlines", postings, pairs)


@dataclass
class Run:
    """What the store made of a corpus."""

    corpus: Corpus
    joined: list[bool]  # per labelled pair: one story in the end
    seconds: list[float]  # per new entry: placing it (place_item)
    scored: list[int]  # per new entry: candidates scored
    stories: int


def store_run(corpus: Corpus, policy: DedupPolicy) -> Run:
    """Every feed's entries in one transaction, in arrival order, through the writer's path."""
    tally = Tally()
    seconds: list[float] = []
    feeds = list(dict.fromkeys(p.feed for p in corpus.postings))
    by_feed: dict[str, list[Posting]] = collections.defaultdict(list)
    for posting in corpus.postings:
        by_feed[posting.feed].append(posting)
    with tempfile.TemporaryDirectory() as folder:
        store = Store.open(str(Path(folder) / "teasers.db"))
        store.sync_feeds([FeedConfig(f, f"https://{f}.example/rss") for f in feeds], now=START)
        for feed in feeds:
            drafts = [(p, p.draft()) for p in by_feed[feed]]  # as the workers make them
            with store.transaction() as tx:
                for posting, draft in drafts:
                    fate, item_id = tx.apply_entry(feed, draft, now=posting.seen_at)
                    if fate is not Fate.NEW:
                        continue  # another feed's link: a sighting, nothing to place
                    started = time.perf_counter()
                    place_item(
                        tx, item_id, draft.fingerprint, policy, now=posting.seen_at, tally=tally
                    )
                    seconds.append(time.perf_counter() - started)
        story_of = {
            (feed, guid): story
            for feed, guid, story in store.execute(
                "SELECT s.feed, s.guid, i.story_id FROM sightings s"
                " JOIN items i ON i.id = s.item_id"
            )
        }
        ((stories,),) = store.execute("SELECT count(*) FROM stories")
        store.close()
    joined = [
        story_of[(p.first.feed, p.first.guid)] == story_of[(p.second.feed, p.second.guid)]
        for p in corpus.pairs
    ]
    return Run(corpus, joined, seconds, tally.per_copy, int(stories))


def quality_rows(run: Run) -> list[str]:
    """One row for the corpus: precision and recall through the store, and its entries' cost
    from the first thousand to the last."""
    score = Score()
    for pair, joined in zip(run.corpus.pairs, run.joined, strict=True):
        score.add(pair.same, joined)
    ms = [s * 1000 for s in run.seconds]
    first, last = ms[:1000], ms[-1000:]
    return [
        f"| {run.corpus.name} | {len(run.corpus.postings):,} | {run.stories:,}"
        f" | {len(run.corpus.pairs):,} | {score.precision:.3f} | {score.recall:.3f}"
        f" | {score.tp} | {score.fp} | {score.fn}"
        f" | {statistics.fmean(first):.2f} / {statistics.fmean(last):.2f} ms"
        f" | {statistics.fmean(run.scored):.1f} / {max(run.scored, default=0)} |"
    ]


def kind_rows(run: Run) -> list[str]:
    grouped: dict[tuple[str, bool], list[bool]] = collections.defaultdict(list)
    for pair, joined in zip(run.corpus.pairs, run.joined, strict=True):
        grouped[(pair.kind, pair.same)].append(joined)
    return [
        f"| {run.corpus.name} | {kind if same else f'**different:** {kind}'} | {len(joined):,}"
        f" | {sum(joined):,} ({sum(joined) / len(joined):.1%}) |"
        for (kind, same), joined in sorted(grouped.items(), key=lambda kv: (not kv[0][1], kv[0][0]))
    ]


def quality(corpora: Sequence[Corpus], policy: DedupPolicy) -> list[str]:
    runs = [store_run(corpus, policy) for corpus in corpora]
    return [
        f"Feed-only corpora (teasers.py): {PUBLISHERS * EDITIONS} feeds of {ENTRIES} entries,"
        f" {PUBLISHERS} publishers' regional editions, stored as one run delivers them (each"
        " feed's entries in one transaction, placed one by one); real feed-snapshots headlines"
        " and ledes. Cost: placing one new entry (place_item; its fingerprint made beforehand,"
        " as the workers do), the first thousand entries of the run against the last.",
        "",
        "| corpus | entries | stories | pairs | precision | recall | TP | FP | FN"
        " | ms per entry, first / last 1,000 | scored per entry, mean / max |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *(row for run in runs for row in quality_rows(run)),
        "",
        "| corpus | pair | pairs | merged (store) |",
        "|---|---|---|---|",
        *(row for run in runs for row in kind_rows(run)),
    ]
