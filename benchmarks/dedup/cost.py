"""The cost of placing one new entry as the store grows: 10k, 100k, 1M stored items.

Stored items are synthetic but shaped like the corpus, because what a lookup costs depends on
how often unrelated items share an LSH band, and that depends on the words they share. Each
synthetic item copies a real item's common shingles (those in 5 or more corpus documents:
phrases, boilerplate, a feed's template) and fills up with shingles of its own to that
item's size; its MinHash is computed exactly from the shared ones (the same permutations as
dedup.signature) and drawn from the right distribution for its own (the minimum of k
uniform hash values). Probes are real items held out of the profiles, fingerprinted by
dedup.fingerprint, first seen just after the newest stored item.

A store grows by keeping history: the items arrive at a steady PER_DAY (a newsroom of a
hundred-odd feeds), so 10k items span 10 days and 1M nearly three years, while the time
window always holds about the same number. One more row packs 100k items into 10 days, ten
times the rate, to show what a denser window costs. Each probe is stored (the writer's
apply_entry) and placed; only the placement is timed: stories.placement.place_item, that is
its fingerprint and LSH bands saved, the canonical URL, headline and LSH lookups, the
candidates scored, the decision and its story written, on the writer's own connection.
"""

from __future__ import annotations

import collections
import os
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from aggregator.models import Article, Entry, Fate, FeedConfig, ItemDraft
from aggregator.store import Store
from aggregator.store.story_rows import week_of
from aggregator.stories import dedup
from aggregator.stories.dedup import DedupPolicy, Tally
from aggregator.stories.identity import draft_for
from aggregator.stories.placement import place_item
from aggregator.times import iso_utc, parse_iso
from benchmarks.dedup import corpus

NOW = "2026-11-27T12:00:00Z"
COMMON_DF = 5  # a shingle in this many corpus documents is a phrase, not one story's
PROBES = 600
WARM_UP = 100
PER_DAY = 1000
CHUNK = 20_000


@dataclass(frozen=True)
class Probe:
    """A new entry to store and place."""

    feed: str
    draft: ItemDraft
    seen_at: str


def probe(feed: str, n: int, title: str, *, text: str | None, summary: str, seen_at: str) -> Probe:
    """An entry as the pipeline hands it to the writer: its page's text, if any, extracted
    and its fingerprint made (by the workers)."""
    link = f"https://{feed}.example/probe/{n}"
    entry = Entry(f"{feed}/{n}", link, title, summary, None, None, None, None)
    article = Article(text=text, html="", canonical_url=None) if text else None
    draft = replace(
        draft_for(entry),
        article=article,
        extract_status="ok" if article else "skipped",
        fingerprint=dedup.fingerprint(title, text, summary),
    )
    return Probe(feed, draft, seen_at)


def _profiles() -> tuple[list[tuple[np.ndarray, int, str]], np.ndarray, list[Probe]]:
    """(common shingle ids, size, title key) per profile document, the common shingles'
    permuted hash values, and the held-out probes."""
    docs = [(a.title, a.text, None) for a in corpus.articles()]
    docs += [(i.title, None, i.summary) for i in corpus.feed_items()]
    sets, probes = [], []
    for n, (title, text, summary) in enumerate(docs):
        basis = text if text else f"{title}\n{summary}"
        if n % 10 == 0:  # held out: a probe, never a profile
            if dedup.fingerprint(title, text, summary) is not None:
                probes.append(
                    probe("probe", n, title, text=text, summary=summary or "", seen_at=NOW)
                )
        elif len(shingles := dedup.shingles(basis)) >= dedup.MIN_SHINGLES:
            sets.append((shingles, dedup.title_key(title) or ""))
    df = collections.Counter(s for shingles, _ in sets for s in shingles)
    common = sorted(s for s, count in df.items() if count >= COMMON_DF)
    ids = {s: i for i, s in enumerate(common)}
    table = np.stack([np.frombuffer(dedup.signature([s]), dtype="<u4") for s in common])
    titles = collections.Counter(t for _, t in sets)
    profiles = [
        (
            np.array([ids[s] for s in shingles if s in ids], dtype=np.int64),
            len(shingles),
            t if titles[t] >= 3 else "",
        )  # recurring headlines recur; others are made unique
        for shingles, t in sets
    ]
    return profiles, table, probes


def _signatures(
    count: int, profiles: Sequence[tuple[np.ndarray, int, str]], table: np.ndarray, seed: int
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """`count` synthetic signatures (count x NUM_PERM uint32), title keys, shingle counts."""
    gen = np.random.default_rng(seed)
    picks = gen.integers(0, len(profiles), count)
    sigs = np.empty((count, dedup.NUM_PERM), dtype=np.uint32)
    sizes = np.empty(count, dtype=np.int64)
    titles = []
    top = float(2**32 - 1)
    for k, p in enumerate(picks):
        common, size, title = profiles[p]
        own = max(size - len(common), 1)
        u = gen.random(dedup.NUM_PERM)
        values = np.floor(top * (1.0 - (1.0 - u) ** (1.0 / own))).astype(np.uint32)
        if len(common):
            values = np.minimum(values, table[common].min(axis=0))
        sigs[k] = values
        sizes[k] = size
        titles.append(title or f"synthetic story {k}")
    return sigs, titles, sizes


def _bands(chunk: bytes) -> list[tuple[int, ...]]:
    width = dedup.NUM_PERM * 4
    return [dedup.band_keys(chunk[i : i + width]) for i in range(0, len(chunk), width)]


def _band_rows(sigs: np.ndarray, weeks: np.ndarray) -> Iterator[list[tuple[int, ...]]]:
    """(week, band, key, item_id) for every item, sorted as the index stores them (so the
    build appends), a million rows at a time."""
    blobs = [sigs[i : i + CHUNK].astype("<u4").tobytes() for i in range(0, len(sigs), CHUNK)]
    with Pool(2) as pool:
        key = np.fromiter(
            (k for part in pool.imap(_bands, blobs) for keys in part for k in keys), np.int64
        )
    count = len(sigs)
    band = np.tile(np.arange(dedup.BANDS, dtype=np.int32), count)
    item = np.repeat(np.arange(1, count + 1, dtype=np.int32), dedup.BANDS)
    week = np.repeat(weeks.astype(np.int32), dedup.BANDS)
    order = np.lexsort((item, key, band, week))
    for start in range(0, len(order), 1_000_000):
        part = order[start : start + 1_000_000]
        columns = (
            week[part].tolist(),
            band[part].tolist(),
            key[part].tolist(),
            item[part].tolist(),
        )
        yield list(zip(*columns, strict=True))


@dataclass(frozen=True)
class Stored:
    """Synthetic stored items: each its own story, one feed's."""

    titles: list[str]  # headlines (as title keys)
    sigs: np.ndarray | None = None  # NUM_PERM uint32 a row; None: no fingerprints
    sizes: np.ndarray | None = None  # shingles each signature summarises
    source: str = "text"
    summaries: list[str] | None = None

    def head(self, count: int) -> Stored:
        return Stored(
            self.titles[:count],
            None if self.sigs is None else self.sigs[:count],
            None if self.sizes is None else self.sizes[:count],
            self.source,
            None if self.summaries is None else self.summaries[:count],
        )


def build_store(path: Path, stored: Stored, per_day: int) -> None:
    """A real store (our migrations) holding the synthetic items, `per_day` a day, written
    with the writer's own SQL, in bulk."""
    Store.open(str(path)).close()
    count = len(stored.titles)
    gen = np.random.default_rng(count)
    span = int(count / per_day * 86400)
    start = parse_iso(NOW) - timedelta(seconds=span + 60)
    offsets = np.sort(gen.integers(0, span, count))
    seen = [iso_utc(start + timedelta(seconds=int(s))) for s in offsets]
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -1000000")
    with conn:
        _insert_items(conn, stored, seen)
        sigs, sizes = stored.sigs, stored.sizes
        conn.executemany(
            "INSERT INTO item_fingerprints (item_id, title_key, source, shingles, signature,"
            " version, first_seen_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                (k + 1, stored.titles[k], None, None, None, None, seen[k])
                if sigs is None or sizes is None
                else (
                    k + 1,
                    stored.titles[k],
                    stored.source,
                    int(sizes[k]),
                    sigs[k].astype("<u4").tobytes(),
                    dedup.FINGERPRINT_VERSION,
                    seen[k],
                )
                for k in range(count)
            ),
        )
        if sigs is not None:
            weeks = np.array([week_of(s) for s in seen], dtype=np.int64)
            for rows in _band_rows(sigs, weeks):
                conn.executemany(
                    "INSERT INTO lsh_bands (week, band, key, item_id) VALUES (?, ?, ?, ?)", rows
                )
    conn.execute("ANALYZE")
    conn.close()


def _insert_items(conn: sqlite3.Connection, stored: Stored, seen: Sequence[str]) -> None:
    """One feed, and per item a story of its own, the item and its sighting."""
    conn.execute(
        "INSERT INTO feeds (name, url, added_at, priority) VALUES ('synthetic', 'x', ?, 1)", [NOW]
    )
    titles, summaries = stored.titles, stored.summaries
    ids = range(1, len(seen) + 1)
    conn.executemany(
        "INSERT INTO stories (id, title, lead_item_id, first_seen_at, last_seen_at)"
        " VALUES (?, ?, ?, ?, ?)",
        ((k, titles[k - 1], k, seen[k - 1], seen[k - 1]) for k in ids),
    )
    conn.executemany(
        "INSERT INTO items (id, url, title, summary, first_seen_at, extract_status, story_id)"
        " VALUES (?, ?, ?, ?, ?, 'ok', ?)",
        (
            (k, f"https://s.example/{k}", titles[k - 1], summary, seen[k - 1], k)
            for k, summary in zip(ids, summaries or [None] * len(seen), strict=True)
        ),
    )
    conn.executemany(
        "INSERT INTO sightings (item_id, feed, guid, entry_hash, seen_at)"
        " VALUES (?, 'synthetic', ?, '', ?)",
        ((k, str(k), seen[k - 1]) for k in ids),
    )


def _cpu_busy() -> float:
    """CPU seconds the whole machine has used since boot (/proc/stat; 0 elsewhere)."""
    try:
        line = Path("/proc/stat").read_text().split("\n", 1)[0]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, line.split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass
class Placed:
    seconds: list[float]  # placing each probe after the warm-up
    read: float  # candidates read per probe
    scored: list[int]  # candidates scored, each probe after the warm-up
    others: float  # cores the rest of the machine kept busy meanwhile


def place_probes(path: Path, probes: Sequence[Probe], policy: DedupPolicy) -> Placed:
    """Store each probe and place it, as the writer does, in one transaction; time the
    placements after WARM_UP, and what the rest of the machine did meanwhile."""
    store = Store.open(str(path))
    feeds = sorted({p.feed for p in probes})
    store.sync_feeds([FeedConfig(f, f"https://{f}.example/rss") for f in feeds], now=NOW)
    tally = Tally()
    seconds = []
    try:
        with store.transaction() as tx:
            wall, cpu, busy = time.perf_counter(), time.process_time(), _cpu_busy()
            for n, p in enumerate(probes):
                fate, item_id = tx.apply_entry(p.feed, p.draft, now=p.seen_at)
                if fate is not Fate.NEW:
                    continue
                started = time.perf_counter()
                place_item(tx, item_id, p.draft.fingerprint, policy, now=p.seen_at, tally=tally)
                if n >= WARM_UP:
                    seconds.append(time.perf_counter() - started)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            others = max(_cpu_busy() - busy - cpu, 0.0) / wall
    finally:
        store.close()
    read = tally.candidates / max(tally.copies, 1)
    return Placed(seconds, read, tally.per_copy[WARM_UP:], others)


@dataclass(frozen=True)
class Cost:
    """A row's cost per entry beside its table's first row's: the summary's figures."""

    label: str
    median_ms: float
    mean_ms: float
    first_label: str
    first_median_ms: float


def cost_rows(
    runs: Sequence[tuple[str, int, Stored]],
    probes: Sequence[Probe],
    policy: DedupPolicy,
    costs: list[Cost] | None = None,
) -> list[str]:
    """One table row per (label, items a day, stored items): build, place the probes; each
    row's figures also added to `costs`."""
    out = [
        "| stored items | arrival | database | build | per entry: median | p95 | mean"
        " | candidates read / scored: mean, max | others' load | median / mean vs first |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    base: tuple[float, float] | None = None
    for label, per_day, stored in runs:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "cost.db"
            t0 = time.monotonic()
            build_store(path, stored, per_day)
            built = time.monotonic() - t0
            megabytes = path.stat().st_size / 2**20
            placed = place_probes(path, probes, policy)
        ms = sorted(s * 1000 for s in placed.seconds)
        median, mean, p95 = statistics.median(ms), statistics.fmean(ms), ms[int(len(ms) * 0.95)]
        base = base or (median, mean)
        if costs is not None:
            costs.append(Cost(label, median, mean, runs[0][0], base[0]))
        days = len(stored.titles) / per_day
        out.append(
            f"| {label} | {per_day:,}/day ({days:,.0f} days) | {megabytes:,.0f} MB"
            f" | {built:.0f} s | {median:.2f} ms | {p95:.2f} ms | {mean:.2f} ms"
            f" | {placed.read:.1f} / {statistics.fmean(placed.scored):.1f}, {max(placed.scored)}"
            f" | {placed.others:.1f} cores | {median / base[0]:.2f}x / {mean / base[1]:.2f}x |"
        )
    return out


def cost_table(
    sizes: Sequence[int],
    rng: random.Random,
    policy: DedupPolicy,
    costs: list[Cost] | None = None,
) -> list[str]:
    profiles, table, probes = _profiles()
    rng.shuffle(probes)
    probes = probes[: PROBES + WARM_UP]
    sigs, titles, counts = _signatures(max(sizes), profiles, table, seed=rng.randrange(2**32))
    stored = Stored(titles, sigs, counts)
    dense = min(100_000, max(sizes))
    runs = [(f"{n:,}", PER_DAY, stored.head(n)) for n in sizes]
    runs.append((f"{dense:,} (dense)", 10 * PER_DAY, stored.head(dense)))
    return [
        f"Cost per new entry: {len(probes) - WARM_UP} real items (article texts and feed"
        f" items) stored and placed (after {WARM_UP} to warm up) in stores of synthetic"
        " items, on the writer's connection with SQLite's default page cache; only"
        " place_item is timed, the build is not. Others' load: the cores the rest of the"
        " machine kept busy while the entries were placed.",
        "",
        *cost_rows(runs, probes, policy, costs),
    ]
