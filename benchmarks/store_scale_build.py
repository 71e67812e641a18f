"""A large store for `benchmarks/store_scale.py`, built reproducibly and in bulk.

The schema is the store's own: `Store.open` applies the migrations and `Store.sync_feeds`
writes the feeds and their tags, as `aggregator fetch` would. Items, sightings, stories and
story links are then inserted with the writer's own statements (`store/item_rows.py`,
`store/story_rows.py`), many rows per `executemany`, in transactions of a few thousand items:
the full-text index is filled by its triggers, as it is in use. Stories' summary columns
(lead, title, count, times) are computed here the way `story_rows.refresh_story` computes
them. Fingerprints and the LSH index are left empty: no listing, search, export or served
feed reads them.

What it holds, from one seed: a few hundred feeds (agencies' wires with priority 10, partners
and regional outlets), each on one to three desks (tags), posting at very different rates
(a handful carry a large share of everything, some post a few times a month); items over a
year, as stories of 1 to 5 copies from different feeds within hours of each other; one copy
in five also carried by another feed (a second sighting of the same URL). Headlines, summaries
and texts are English-like: common words at their usual frequency, a news vocabulary and
names, and a long tail of rarer words, so the full-text index has realistic posting lists.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import time
from bisect import bisect
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import accumulate
from pathlib import Path

from aggregator.models import FeedConfig
from aggregator.store import Store
from aggregator.times import parse_iso

# Bump when what the builder writes changes: cached stores of another version are rebuilt.
BUILDER_VERSION = 1
NOW = "2026-11-27T12:00:00Z"
DESKS = (
    "wire", "world", "europe", "politics", "business", "markets", "tech", "science",
    "health", "sport", "culture", "local",
)  # fmt: skip
# One story in N has this many copies (1 to 5): about 1.7 items per story.
STORY_SIZES = (1, 2, 3, 4, 5)
STORY_SIZE_WEIGHTS = (62, 18, 10, 6, 4)
ITEMS_PER_TRANSACTION = 5000

_COMMON = (
    "the of and to a in that is was he for it with as his on be at by i this had not are but"
    " from or have an they which one you were her all she there would their we him been has"
    " when who will more no if out so said what up its about into than them can only other new"
    " some could time these two may then do first any my now such like our over man me even"
    " most made after also did many before must through back years where much your way well"
    " down should because each just those people how too little state good very make world"
    " still own see men work long get here between both life being under never day same"
    " another know while last might us great old year off come since against go came right"
    " used take three"
)
_NEWS = (
    "government minister president police court election parliament talks agreement"
    " military forces security council ministry officials report week month today"
    " yesterday tuesday wednesday thursday friday monday saturday sunday percent million"
    " billion economy market prices inflation bank rates growth trade exports energy oil gas"
    " pipeline sanctions summit leaders delegation visit statement spokesman according told"
    " reporters press conference agency interview decision vote opposition party coalition"
    " campaign candidate protest strike union workers company shares investors quarter"
    " profit losses budget deficit debt tax reform law bill committee hearing judge trial"
    " prosecutors investigation arrested charged killed injured attack troops border ceasefire"
    " refugees aid humanitarian crisis emergency storm flood fire earthquake rescue hospital"
    " health vaccine virus outbreak patients doctors study researchers scientists space launch"
    " satellite climate emissions weather season match team coach players league championship"
    " final goal score festival film museum exhibition award tournament record capital region"
    " province city village residents authorities national international foreign domestic"
    " central regional federal local public private official senior former deputy chief head"
    " members talks negotiations deal plan proposal project program policy measures support"
)
_NAMES = (
    "Libya Moscow Kyiv Brussels Washington Beijing Tokyo Paris Berlin London Ankara Tehran"
    " Cairo Delhi Brasilia Ottawa Canberra Warsaw Minsk Astana Tashkent Baku Yerevan Tbilisi"
    " Riga Vilnius Tallinn Helsinki Stockholm Oslo Madrid Rome Athens Vienna Prague Budapest"
    " Belgrade Sofia Bucharest Chisinau Geneva Davos Nairobi Lagos Pretoria Riyadh Doha Dubai"
    " Baghdad Damascus Beirut Jerusalem Gaza Kabul Islamabad Dhaka Jakarta Manila Hanoi Seoul"
    " Pyongyang Havana Caracas Bogota Lima Santiago Mexico Kremlin Pentagon NATO OPEC CSTO"
    " BRICS UN EU IMF WHO Gazprom Rosneft Lavrov Putin Peskov Zakharova Guterres Erdogan Macron"
    " Scholz Xi Modi Lula Biden Trump Tusk Orban Meloni Sanchez Starmer Zelensky"
)
_OUTLETS = (
    "tass", "ria", "interfax", "reuters", "ap", "afp", "dpa", "efe", "ansa", "xinhua",
    "kyodo", "anadolu", "bbc", "dw", "france24", "euronews", "aljazeera", "cnn", "npr",
    "guardian", "times", "telegraph", "independent", "lemonde", "lefigaro", "spiegel", "faz",
    "elpais", "corriere", "nrc", "kommersant", "vedomosti", "izvestia", "rbc", "meduza",
    "novaya", "kyivindependent", "ukrinform", "belta", "kazinform", "trend", "armenpress",
    "civilge", "lsm", "lrt", "err", "yle", "svt", "nrk", "dr", "rte", "swissinfo",
    "orf", "ctk", "mti", "tanjug", "bta", "agerpres", "moldpres", "pap",
)  # fmt: skip
_SECTIONS = ("en", "world", "politics", "business", "economy", "sport", "culture", "science")
_FIRST = ("Anna", "Ivan", "Maria", "Pavel", "Olga", "James", "Sarah", "Ahmed", "Li", "Elena")
_LAST = ("Petrova", "Smith", "Kuznetsov", "Garcia", "Mueller", "Rossi", "Chen", "Novak")

ITEM_COLUMNS = (
    "id", "url", "link", "title", "summary", "summary_html", "author", "published_at",
    "updated_at", "image", "extract_status", "extract_error", "text", "html", "language",
    "site_name", "page_canonical_url", "first_seen_at", "extract_attempts", "story_id",
)  # fmt: skip
_INSERT_ITEM = (
    f"INSERT INTO items ({', '.join(ITEM_COLUMNS)}) VALUES ({', '.join('?' for _ in ITEM_COLUMNS)})"
)
# store/item_rows.py: _add_sighting.
_INSERT_SIGHTING = (
    "INSERT INTO sightings (item_id, feed, guid, link, entry_hash, seen_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
# store/story_rows.py: new_story, then refresh_story's columns.
_INSERT_STORY = (
    "INSERT INTO stories (id, title, lead_item_id, first_seen_at, last_seen_at, item_count)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
# store/story_rows.py: link_item.
_INSERT_LINK = (
    "INSERT OR REPLACE INTO story_links (item_id, story_id, matched_item_id, signal, score,"
    " created_at) VALUES (?, ?, ?, ?, ?, ?)"
)
# store/item_rows.py: insert_fetch (the columns a successful poll records).
_INSERT_FETCH = (
    "INSERT INTO fetches (feed, started_at, url, http_status, outcome, duration_ms, bytes,"
    " entries, new_items, updated_items) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True, slots=True)
class Spec:
    """What a store is built from; equal specs build equal stores (and share a cache)."""

    items: int = 1_000_000
    feeds: int = 300
    days: int = 365
    seed: int = 20261127

    def key(self) -> str:
        text = json.dumps({**asdict(self), "builder": BUILDER_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Feed:
    name: str
    site: str
    priority: int
    tags: tuple[str, ...]


@dataclass(slots=True)
class Copy:
    """One item of a story while the store is planned (before ids are given out)."""

    story: int
    feed: int
    first_seen: float  # seconds from the start of the year
    seen: list[tuple[int, float]]  # (feed, seconds) of each sighting, its own feed first


class Words:
    """English-like text from a Zipf distribution over a realistic vocabulary."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        syllables = [c + v for c in "bcdfghklmnprstvz" for v in ("a", "e", "i", "o", "u", "ai")]
        tail: set[str] = set()
        while len(tail) < 30_000:
            tail.add("".join(rng.choices(syllables, k=rng.randint(2, 4))))
        news = [*_NEWS.split(), *_NAMES.split()]
        rng.shuffle(news)
        # Common words first, then news words and names interleaved with the tail.
        self.vocabulary = [*_COMMON.split(), *news, *sorted(tail)]
        self.cumulative = list(accumulate(1 / (rank + 2.7) for rank in range(len(self.vocabulary))))
        headline = [*_NEWS.split(), *_NAMES.split(), *sorted(tail)[:3000]]
        self.headline = headline
        self.headline_cumulative = list(
            accumulate(1 / (rank + 10) ** 0.8 for rank in range(len(headline)))
        )
        self.sentences = [self._sentence() for _ in range(60_000)]

    def _sentence(self) -> str:
        words = self.rng.choices(
            self.vocabulary, cum_weights=self.cumulative, k=self.rng.randint(8, 28)
        )
        return words[0].capitalize() + " " + " ".join(words[1:]) + "."

    def title(self) -> str:
        words = self.rng.choices(
            self.headline, cum_weights=self.headline_cumulative, k=self.rng.randint(5, 12)
        )
        return words[0].capitalize() + " " + " ".join(words[1:])

    def paragraphs(self) -> list[str]:
        """An article: 2 to 6 paragraphs of 3 sentences (about 100 to 300 words): wire copy
        runs longer, but the index's posting lists grow with the number of items, not with
        their length, and shorter texts keep the build within minutes."""
        picked = self.rng.choices(self.sentences, k=3 * self.rng.randint(2, 6))
        return [" ".join(picked[n : n + 3]) for n in range(0, len(picked), 3)]


def make_feeds(rng: random.Random, count: int) -> list[Feed]:
    feeds: list[Feed] = []
    names: set[str] = set()
    while len(feeds) < count:
        outlet = _OUTLETS[len(feeds) % len(_OUTLETS)]
        section = rng.choice(_SECTIONS)
        name = f"{outlet}-{section}"
        if name in names:
            name = f"{name}-{len(feeds)}"
        names.add(name)
        wire = len(feeds) < 12
        desks = {"wire"} if wire else set()
        desks.update(rng.sample(DESKS[1:], rng.randint(1, 2)))
        feeds.append(Feed(name, f"{outlet}.example", 10 if wire else 0, tuple(sorted(desks))))
    return feeds


def plan(spec: Spec, rng: random.Random, feeds: Sequence[Feed]) -> list[Copy]:
    """Every item's story, feed and times, ordered as they were first seen."""
    # Posting rates: a Zipf over the feeds, wires the busiest; the quietest post a few
    # items a month.
    rates = [1 / (rank + 1) ** 1.1 for rank in range(len(feeds))]
    cumulative = list(accumulate(rates))
    span = spec.days * 86400.0
    stories = round(spec.items / 1.72)
    copies: list[Copy] = []
    story = 0
    while len(copies) < spec.items:
        start = span * story / stories + rng.uniform(0, 60)
        size = rng.choices(STORY_SIZES, STORY_SIZE_WEIGHTS)[0]
        carried: set[int] = set()
        for n in range(min(size, spec.items - len(copies))):
            feed = bisect(cumulative, rng.random() * cumulative[-1])
            while feed in carried:
                feed = rng.randrange(len(feeds))
            carried.add(feed)
            first_seen = start if n == 0 else start + rng.expovariate(1 / 7200)
            seen = [(feed, first_seen)]
            roll = rng.random()
            for _ in range(2 if roll < 0.04 else 1 if roll < 0.2 else 0):
                other = rng.randrange(len(feeds))
                if other not in carried:
                    carried.add(other)
                    seen.append((other, first_seen + rng.expovariate(1 / 1800)))
            copies.append(Copy(story, feed, min(first_seen, span - 1), seen))
        story += 1
    copies.sort(key=lambda c: (c.first_seen, c.story))
    return copies


_END = parse_iso(NOW).timestamp()
_SIGNALS = (("minhash", 0.71), ("title", 0.93), ("canonical_url", 1.0))


def build(path: Path, spec: Spec) -> float:
    """Build the store at `path` (which must not exist); returns the seconds it took."""
    t0 = time.monotonic()
    builder = _Builder(spec)
    store = Store.open(str(path))
    configs = [
        FeedConfig(f.name, f"https://{f.site}/rss/{f.name}.xml", priority=f.priority, tags=f.tags)
        for f in builder.feeds
    ]
    store.sync_feeds(configs, now=builder.iso(0))
    conn = store.db.conn
    conn.execute("PRAGMA cache_size = -200000")  # 200 MB: the indexes stay in memory
    try:
        # The index is made once from all the rows with FTS5's 'rebuild' (as migration 0006
        # makes it), its insert trigger put back as it was: the same index as row by row,
        # in a third of the time.
        trigger = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'items_ai'"
        ).fetchone()
        if trigger:
            conn.execute("DROP TRIGGER items_ai")
        builder.insert(conn)
        if trigger:
            with conn:
                conn.execute(trigger[0])
                # Terms held in memory before a segment is written: 256 MB while building
                # (one segment instead of hundreds to merge), then FTS5's default again.
                conn.execute(
                    f"INSERT INTO items_fts (items_fts, rank) VALUES ('hashsize', {2**28})"
                )
                conn.execute("INSERT INTO items_fts (items_fts) VALUES ('rebuild')")
                conn.execute(
                    f"INSERT INTO items_fts (items_fts, rank) VALUES ('hashsize', {2**20})"
                )
        builder.feed_rows(conn)
        store.optimize()
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        store.close()
    return time.monotonic() - t0


class _Builder:
    def __init__(self, spec: Spec) -> None:
        self.rng = random.Random(spec.seed)
        self.span = spec.days * 86400.0
        self.feeds = make_feeds(self.rng, spec.feeds)
        self.copies = plan(spec, self.rng, self.feeds)
        self.words = Words(self.rng)
        # Each story's item ids (an item's id is its place in `copies` + 1), in the order
        # seen; story ids in the order stories began, as the writer gives them out.
        self.members: dict[int, list[int]] = {}
        for index, copy in enumerate(self.copies):
            self.members.setdefault(copy.story, []).append(index + 1)
        self.story_ids = {story: n + 1 for n, story in enumerate(self.members)}

    def iso(self, seconds: float) -> str:
        """`seconds` into the span that ends at NOW, as stored text (times.iso_utc's form)."""
        return _iso(_END - self.span + min(seconds, self.span))

    def insert(self, conn: sqlite3.Connection) -> None:
        rng, feeds = self.rng, self.feeds
        texts: dict[int, tuple[str, list[str]]] = {}  # story -> (headline, paragraphs)
        remaining = {story: len(ids) for story, ids in self.members.items()}
        batch = _Batch()
        for index, copy in enumerate(self.copies):
            item_id = index + 1
            feed = feeds[copy.feed]
            first = self.members[copy.story][0]
            if item_id == first:  # the story begins: its row first (items point at it)
                texts[copy.story] = (self.words.title(), self.words.paragraphs())
                batch.stories.append(self.story_row(copy.story, texts[copy.story][0]))
            title, paragraphs = texts[copy.story]
            if item_id != first:  # a copy: lightly edited
                paragraphs = paragraphs[: max(1, len(paragraphs) - rng.randint(0, 2))]
            row = self.item_row(item_id, copy, title, paragraphs)
            batch.items.append(row)
            for n, (sighted_by, at) in enumerate(copy.seen):
                guid = f"https://{feed.site}/news/{item_id}" if n == 0 else f"{item_id}-{n}"
                digest = hashlib.blake2b(guid.encode(), digest_size=8).hexdigest()
                batch.sightings.append(
                    (item_id, feeds[sighted_by].name, guid, row[2], digest, self.iso(at))
                )
            if item_id != first:
                signal, score = rng.choice(_SIGNALS)
                story = self.story_ids[copy.story]
                batch.links.append((item_id, story, first, signal, score, row[17]))
            remaining[copy.story] -= 1
            if remaining[copy.story] == 0:
                del texts[copy.story]
            if len(batch.items) >= ITEMS_PER_TRANSACTION or item_id == len(self.copies):
                batch.flush(conn)

    def item_row(
        self, item_id: int, copy: Copy, title: str, paragraphs: list[str]
    ) -> tuple[object, ...]:
        """The columns item_rows._insert_item writes for an entry (and its article)."""
        rng = self.rng
        site = self.feeds[copy.feed].site
        first_seen = self.iso(copy.first_seen)
        slug = "-".join(title.lower().split()[:6])
        url = f"https://{site}/news/{first_seen[:10].replace('-', '/')}/{slug}-{item_id}"
        status = rng.choices(("ok", "feed", "failed", "pending"), (85, 6, 5, 4))[0]
        has_text = status in ("ok", "feed")
        summary = paragraphs[0][:300]
        return (
            item_id,
            url,
            url + ("?utm_source=rss" if rng.random() < 0.3 else ""),
            title,
            summary,
            f"<p>{summary}</p>",
            f"{rng.choice(_FIRST)} {rng.choice(_LAST)}" if rng.random() < 0.6 else None,
            self.iso(copy.first_seen - rng.uniform(0, 3600)),
            None,
            f"https://{site}/img/{item_id}.jpg" if rng.random() < 0.5 else None,
            status,
            "HTTP 404 from the article page" if status == "failed" else None,
            "\n\n".join(paragraphs) if has_text else None,
            "".join(f"<p>{p}</p>" for p in paragraphs) if status == "ok" else None,
            "en" if has_text else None,
            site if status == "ok" else None,
            url if status == "ok" else None,
            first_seen,
            1 if status in ("ok", "failed") else 0,
            self.story_ids[copy.story],
        )

    def story_row(self, story: int, title: str) -> tuple[object, ...]:
        """story_rows.refresh_story's columns once every copy is in: the lead is the
        highest-priority feed's copy, then the earliest, then the lowest id; the title is the
        lead's (copies keep the headline)."""
        ids = self.members[story]
        copies, feeds = self.copies, self.feeds

        def rank(item_id: int) -> tuple[int, float, int]:
            copy = copies[item_id - 1]
            return (-max(feeds[f].priority for f, _ in copy.seen), copy.first_seen, item_id)

        first = min(copies[i - 1].first_seen for i in ids)
        last = max(at for i in ids for _, at in copies[i - 1].seen)
        lead = min(ids, key=rank)
        return (self.story_ids[story], title, lead, self.iso(first), self.iso(last), len(ids))

    def feed_rows(self, conn: sqlite3.Connection) -> None:
        """Each feed's state as the daemon leaves it (a few failing or gone), and the last
        day of fetches."""
        span, rng = self.span, self.rng
        conn.execute("BEGIN IMMEDIATE")
        for n, feed in enumerate(self.feeds):
            state, outcome, error = "ok", "ok", None
            if n % 37 == 5:
                state, outcome, error = "failing", "timeout", "timed out after 30 s"
            elif n % 97 == 11:
                state, outcome, error = "gone", "gone", "HTTP 410 Gone"
            conn.execute(
                "UPDATE feeds SET state = ?, last_fetched_at = ?, last_success_at = ?,"
                " next_fetch_at = ?, error_count = ?, last_outcome = ?, last_error = ?"
                " WHERE name = ?",
                [state, self.iso(span - 300), self.iso(span - 600),
                 None if state == "gone" else _iso(_END + 600),
                 0 if state == "ok" else 3, outcome, error, feed.name],
            )  # fmt: skip
        fetches = [
            (feed.name, self.iso(span - 86400 + minute * 60 + rng.uniform(0, 60)),
             f"https://{feed.site}/rss/{feed.name}.xml", 200, "ok", rng.randint(80, 900),
             rng.randint(20_000, 400_000), 50, rng.randint(0, 3), 0)
            for feed in self.feeds for minute in range(0, 1440, 15)
        ]  # fmt: skip
        conn.executemany(_INSERT_FETCH, fetches)
        conn.execute("COMMIT")


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


class _Batch:
    """One transaction's rows, written in the order the foreign keys need."""

    def __init__(self) -> None:
        self.stories: list[tuple[object, ...]] = []
        self.items: list[tuple[object, ...]] = []
        self.sightings: list[tuple[object, ...]] = []
        self.links: list[tuple[object, ...]] = []

    def flush(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(_INSERT_STORY, self.stories)
        conn.executemany(_INSERT_ITEM, self.items)
        conn.executemany(_INSERT_SIGHTING, self.sightings)
        conn.executemany(_INSERT_LINK, self.links)
        conn.execute("COMMIT")
        for rows in (self.stories, self.items, self.sightings, self.links):
            rows.clear()


def counts(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return {
            table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            for table in ("items", "sightings", "stories", "story_links", "feeds", "fetches")
        }
    finally:
        conn.close()


def cached(spec: Spec, folder: Path) -> tuple[Path, float | None]:
    """The store for `spec` in `folder`, built first when it is not there yet (under a
    temporary name, so a build that was stopped is never taken for a store); returns its
    path and the seconds a build took (None: it was there)."""
    path = folder / f"store_scale-{spec.items}-{spec.key()}.db"
    if path.exists():
        return path, None
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    for leftover in folder.glob(partial.name + "*"):
        leftover.unlink()
    seconds = build(partial, spec)
    partial.rename(path)
    return path, seconds
