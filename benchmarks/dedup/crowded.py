"""The cost of placing an entry of the feed-only corpora (teasers.py) as the store grows to
10k, 100k and 1M items, every one of them inside the time window.

That is the hardest case there is: a store of a million entries first seen in the two days
before the new ones, so each teaser's LSH buckets hold as many entries as the store has
carried with that teaser, and a lookup that read a bucket whole would read hundreds of
thousands of rows. The stored items are synthetic copies of the corpus's entries:

- teasers: each one publisher edition's teaser plus words of its own, as many as a real
  entry's headline and lede have; its signature is exact for the teaser's shingles and drawn
  from the right distribution for its own (the minimum of k uniform hash values, as in
  cost.py). Each is a story of its own, so the teaser's buckets hold as many stories as
  entries.
- headlines: a headline each, no fingerprint; one in twenty a recurring one ("Live updates").

The new entries are the corpus's last ones (real fingerprints), stored and placed as cost.py
places its probes.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np

from aggregator.stories import dedup
from aggregator.stories.dedup import DedupPolicy
from benchmarks.dedup.cost import NOW, PROBES, WARM_UP, Cost, Probe, Stored, cost_rows, probe
from benchmarks.dedup.teasers import RECURRING, Corpus, Posting

WINDOW_DAYS = 2  # the stored items arrive over the two days before the new ones
CHUNK = 100_000


def _teaser(posting: Posting) -> str:
    return posting.summary[len(posting.lede) :].strip()


def teaser_items(postings: Sequence[Posting], count: int, seed: int) -> Stored:
    """`count` stored items shaped like `postings`: their teasers, their own words' count."""
    teasers = sorted({_teaser(p) for p in postings})
    ids = {t: i for i, t in enumerate(teasers)}
    shared = [dedup.shingles(t) for t in teasers]
    table = np.stack(
        [np.frombuffer(dedup.signature(s), dtype="<u4") for s in shared]
    )  # each teaser's minima: exact
    profiles = [
        (ids[_teaser(p)], len(dedup.shingles(f"{p.title}\n{p.summary}") - shared[ids[_teaser(p)]]))
        for p in postings
    ]
    gen = np.random.default_rng(seed)
    picks = gen.integers(0, len(profiles), count)
    teaser_of = np.array([profiles[k][0] for k in picks], dtype=np.int64)
    own = np.maximum(np.array([profiles[k][1] for k in picks], dtype=np.float64), 1.0)
    sigs = np.empty((count, dedup.NUM_PERM), dtype=np.uint32)
    top = float(2**32 - 1)
    for start in range(0, count, CHUNK):
        part = slice(start, min(start + CHUNK, count))
        u = gen.random((part.stop - part.start, dedup.NUM_PERM))
        values = np.floor(top * (1.0 - (1.0 - u) ** (1.0 / own[part, None]))).astype(np.uint32)
        sigs[part] = np.minimum(values, table[teaser_of[part]])
    sizes = own.astype(np.int64) + np.array([len(shared[t]) for t in teaser_of], dtype=np.int64)
    titles = [f"stored story {k}" for k in range(count)]
    return Stored(titles, sigs, sizes, "summary", [teasers[t] for t in teaser_of])


def headline_items(count: int, seed: int) -> Stored:
    """`count` stored headlines without fingerprints, one in twenty a recurring one."""
    rng = random.Random(seed)
    titles = [
        dedup.title_key(rng.choice(RECURRING)) or "" if rng.random() < 0.05 else f"headline {k}"
        for k in range(count)
    ]
    return Stored(titles)


def _probes(corpus: Corpus) -> list[Probe]:
    """The corpus's last entries, new to the stores."""
    last = corpus.postings[-(PROBES + WARM_UP) :]
    return [
        probe(p.feed, n, p.title, text=None, summary=p.summary, seen_at=NOW)
        for n, p in enumerate(last)
    ]


def cost_tables(
    corpora: Sequence[Corpus],
    sizes: Sequence[int],
    rng: random.Random,
    policy: DedupPolicy,
    costs: list[Cost] | None = None,
) -> list[str]:
    out = [
        f"Feed-only corpora, cost per new entry: the last {PROBES + WARM_UP} entries of each"
        f" corpus stored and placed (the first {WARM_UP} to warm up) in stores whose items"
        f" all arrived over the {WINDOW_DAYS} days before them (crowded.py): every stored item"
        " is inside the time window.",
    ]
    for corpus in corpora:
        seed = rng.randrange(2**32)
        if corpus.name == "teasers":
            stored = teaser_items(corpus.postings, max(sizes), seed)
        else:
            stored = headline_items(max(sizes), seed)
        runs = [(f"{n:,} ({corpus.name})", n // WINDOW_DAYS, stored.head(n)) for n in sizes]
        out += ["", *cost_rows(runs, _probes(corpus), policy, costs)]
    return out
