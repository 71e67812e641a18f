"""The cost of one dedup lookup as the store grows: 10k, 100k, 1M stored items.

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
times the rate, to show what a denser window costs. Only the lookup is timed:
stories.placement.find_match, that is the canonical URL, headline and LSH probes, the candidates'
signatures and the decision, on the writer's own connection.
"""

from __future__ import annotations

import collections
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import timedelta
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from aggregator.models import Copy
from aggregator.store import Store
from aggregator.store.story_rows import week_of
from aggregator.store.transaction import Transaction
from aggregator.stories import dedup
from aggregator.stories.dedup import DedupPolicy
from aggregator.stories.placement import candidates, find_match
from aggregator.times import iso_utc, parse_iso
from benchmarks.dedup import corpus

NOW = "2026-11-27T12:00:00Z"
COMMON_DF = 5  # a shingle in this many corpus documents is a phrase, not one story's
PROBES = 600
WARM_UP = 100
PER_DAY = 1000
CHUNK = 20_000


def _profiles() -> tuple[list[tuple[np.ndarray, int, str]], np.ndarray, list[Copy]]:
    """(common shingle ids, size, title key) per profile document, the common shingles'
    permuted hash values, and the held-out probes."""
    docs = [(a.title, a.text, None) for a in corpus.articles()]
    docs += [(i.title, None, i.summary) for i in corpus.feed_items()]
    sets, probes = [], []
    for n, (title, text, summary) in enumerate(docs):
        basis = text if text else f"{title}\n{summary}"
        if n % 10 == 0:  # held out: a probe, never a profile
            fingerprint = dedup.fingerprint(title, text, summary)
            if fingerprint is not None:
                probes.append(
                    Copy(
                        0,
                        NOW,
                        f"https://probe.example/{n}",
                        None,
                        dedup.title_key(title),
                        fingerprint,
                        None,
                        frozenset({"probe"}),
                    )
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


def build_store(
    path: Path, sigs: np.ndarray, titles: Sequence[str], sizes: np.ndarray, per_day: int
) -> None:
    """A real store (our migrations) holding the synthetic items, `per_day` a day."""
    Store.open(str(path)).close()
    count = len(sigs)
    gen = np.random.default_rng(count)
    span = int(count / per_day * 86400)
    start = parse_iso(NOW) - timedelta(seconds=span + 60)
    offsets = np.sort(gen.integers(0, span, count))
    seen = [iso_utc(start + timedelta(seconds=int(s))) for s in offsets]
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -1000000")
    with conn:
        _insert_items(conn, titles, seen)
        conn.executemany(
            "INSERT INTO item_fingerprints (item_id, title_key, source, shingles, signature,"
            " version, first_seen_at) VALUES (?, ?, 'text', ?, ?, ?, ?)",
            (
                (
                    k + 1,
                    titles[k],
                    int(sizes[k]),
                    sigs[k].astype("<u4").tobytes(),
                    dedup.FINGERPRINT_VERSION,
                    seen[k],
                )
                for k in range(count)
            ),
        )
        weeks = np.array([week_of(s) for s in seen], dtype=np.int64)
        for rows in _band_rows(sigs, weeks):
            conn.executemany(
                "INSERT INTO lsh_bands (week, band, key, item_id) VALUES (?, ?, ?, ?)", rows
            )
    conn.execute("ANALYZE")
    conn.close()


def _insert_items(conn: sqlite3.Connection, titles: Sequence[str], seen: Sequence[str]) -> None:
    """One feed, and per item a story of its own, the item and its sighting."""
    conn.execute(
        "INSERT INTO feeds (name, url, added_at, priority) VALUES ('synthetic', 'x', ?, 1)", [NOW]
    )
    ids = range(1, len(seen) + 1)
    conn.executemany(
        "INSERT INTO stories (id, title, lead_item_id, first_seen_at, last_seen_at)"
        " VALUES (?, ?, ?, ?, ?)",
        ((k, titles[k - 1], k, seen[k - 1], seen[k - 1]) for k in ids),
    )
    conn.executemany(
        "INSERT INTO items (id, url, title, first_seen_at, extract_status, story_id)"
        " VALUES (?, ?, ?, ?, 'ok', ?)",
        ((k, f"https://s.example/{k}", titles[k - 1], seen[k - 1], k) for k in ids),
    )
    conn.executemany(
        "INSERT INTO sightings (item_id, feed, guid, entry_hash, seen_at)"
        " VALUES (?, 'synthetic', ?, '', ?)",
        ((k, str(k), seen[k - 1]) for k in ids),
    )


def time_lookups(
    path: Path, probes: Sequence[Copy], policy: DedupPolicy
) -> tuple[list[float], float]:
    """Seconds per lookup (after a warm-up), and the mean number of candidates read."""
    store = Store.open(str(path))
    book = Transaction(store.db)  # reads only: no transaction needs opening
    found = []
    try:
        for probe in probes[:WARM_UP]:
            find_match(book, probe, policy)
        seconds = []
        for probe in probes[WARM_UP:]:
            t0 = time.perf_counter()
            find_match(book, probe, policy)
            seconds.append(time.perf_counter() - t0)
            found.append(len(candidates(book, probe, policy)))
    finally:
        store.close()
    return seconds, statistics.fmean(found)


def _row(
    label: str,
    per_day: int,
    arrays: tuple[np.ndarray, list[str], np.ndarray],
    probes: Sequence[Copy],
    policy: DedupPolicy,
) -> tuple[str, float, float]:
    """One table row (without the ratio columns), the median and the mean in ms."""
    sigs, titles, counts = arrays
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cost.db"
        t0 = time.monotonic()
        build_store(path, sigs, titles, counts, per_day)
        built = time.monotonic() - t0
        megabytes = path.stat().st_size / 2**20
        seconds, candidates = time_lookups(path, probes, policy)
    median = statistics.median(seconds) * 1000
    mean = statistics.fmean(seconds) * 1000
    p95 = sorted(seconds)[int(len(seconds) * 0.95)] * 1000
    days = len(sigs) / per_day
    row = (
        f"| {label} | {per_day:,}/day ({days:,.0f} days) | {megabytes:,.0f} MB | {built:.0f} s"
        f" | {median:.2f} ms | {p95:.2f} ms | {mean:.2f} ms | {candidates:.1f}"
    )
    return row, median, mean


def cost_table(sizes: Sequence[int], rng: random.Random, policy: DedupPolicy) -> list[str]:
    profiles, table, probes = _profiles()
    rng.shuffle(probes)
    probes = probes[: PROBES + WARM_UP]
    sigs, titles, counts = _signatures(max(sizes), profiles, table, seed=rng.randrange(2**32))
    out = [
        f"Lookup cost per new item: {len(probes) - WARM_UP} real items looked up (after"
        f" {WARM_UP} to warm up) against synthetic stored items, on the writer's connection"
        " with SQLite's default page cache; the build is not timed.",
        "",
        "| stored items | arrival | database | build | lookup median | p95 | mean"
        " | candidates read | median / mean vs 10k |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    base: tuple[float, float] | None = None
    runs = [(f"{n:,}", n, PER_DAY) for n in sizes]
    runs.append((f"{min(100_000, max(sizes)):,} (dense)", min(100_000, max(sizes)), 10 * PER_DAY))
    for label, size, per_day in runs:
        arrays = (sigs[:size], titles[:size], counts[:size])
        row, median, mean = _row(label, per_day, arrays, probes, policy)
        base = base or (median, mean)
        out.append(f"{row} | {median / base[0]:.2f}x / {mean / base[1]:.2f}x |")
    return out
