"""Near-duplicate detection: is a new copy the same story as one already stored? (pure)

Identity comes first (canonical URLs, identity.py); this module is the fuzzy part, and every
decision says which signal matched and how strongly, so an editor can see why two items were
joined. Three signals, cheapest first:

1. the page's declared canonical URL (`<link rel=canonical>`, `og:url`) names the other copy;
2. the same normalised headline within the time window, confirmed by text similarity (a
   headline alone is not enough: "Live updates" and "Morning briefing" repeat every day);
3. MinHash over word shingles of the text: estimated Jaccard similarity above a threshold.
   Candidates come from LSH band keys, which the store indexes.

A new copy is scored against a bounded number of stored ones, all at once, whatever the store
holds and however much its texts share. Boilerplate (a teaser under every headline, a show's
description, a site's footer) makes unrelated copies alike: boilerplate.py tells it from a
story's own words, and a MinHash match of a copy that carries some must be confirmed by them.

Nothing here touches the network or the database; `fingerprint` is the CPU-heavy part and runs
in a worker process. numpy is imported only where it is used (signatures in the workers,
scores in the writer), so the CLI starts fast.
"""

from __future__ import annotations

import hashlib
import re
import sys
import unicodedata
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import cache, lru_cache
from typing import Any
from urllib.parse import urlsplit

from aggregator.models import Copy, Fingerprint, Match, Settings, Signal
from aggregator.text import UNSPACED_SCRIPTS
from aggregator.times import parse_iso
from aggregator.urls import canonical_url

# Changing any of these changes every signature: bump FINGERPRINT_VERSION with them, and
# `aggregator stories rebuild` re-fingerprints the stored items.
FINGERPRINT_VERSION = 1
NUM_PERM = 128  # a Jaccard estimate within ±0.045 (one standard deviation) at 0.6
SEED = 20261127  # fixed: signatures must compare across processes, restarts and releases
SHINGLE_WORDS = 3
# LSH: 42 bands of 3 rows. A pair at Jaccard 0.4 shares a band 94% of the time, at 0.5 99.6%;
# two unrelated articles (Jaccard near 0.01) almost never do.
BANDS, ROWS = 42, 3
# Fewer distinct shingles than this says too little to compare: a headline with no summary,
# "Watch the video". Such items only merge by canonical URL.
MIN_SHINGLES = 12
# A CMS that declares one canonical URL for many pages (a section, a template) must not merge
# them: two copies that name each other must also share some text, when both have text.
CANONICAL_MIN_SIMILARITY = 0.1
# The stored copies an LSH lookup returns at most, those sharing the most bands first: a copy
# of the same story shares many (9 of 42 on average at a Jaccard of 0.6), an unrelated one
# almost never more than one.
BAND_CANDIDATES = 32

# Scripts written without spaces: every character is a word.

_WORD = re.compile(rf"[{UNSPACED_SCRIPTS}]|[^\W{UNSPACED_SCRIPTS}]+")
_QUOTES = re.compile(
    r"['\"\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u00ab\u00bb\u2039\u203a`\u00b4]"
)
_KICKERS = (
    r"update(?:\s*\d+)?|refile|rpt|corrected|correction|exclusive|breaking(?:\s+news)?|urgent"
    r"|flash|analysis|factbox|explainer|insight|wrapup(?:\s*\d+)?|watch|video|photos|live"
)
# "UPDATE 2-", "EXCLUSIVE:", "BREAKING NEWS |" in front of a wire headline.
_PREFIX = re.compile(rf"^\s*(?:(?:{_KICKERS})\s*[-:|\u2013\u2014]+\s*)+", re.IGNORECASE)
_AGENCIES = (
    r"reuters|ap|ap news|associated press|afp|tass|itar-tass|ria novosti|interfax|xinhua"
    r"|bloomberg|dpa|efe|ansa|kyodo|yonhap|anadolu|bbc(?:\s+news)?|cnn|al jazeera"
)
# " | Reuters", " - BBC News", " (AP)": who ran it, not what it says.
_AGENCY_SUFFIX = re.compile(
    rf"\s*(?:[-|:\u2013\u2014]\s*(?:{_AGENCIES})|\((?:{_AGENCIES})\))\s*$", re.IGNORECASE
)
# Anything after the last " | " is page chrome when it is short: "... | TV Patrol".
_PIPE_SUFFIX = re.compile(r"\s+\|\s+[^|]{1,40}$")


_DEFAULTS = Settings()


@dataclass(frozen=True, slots=True)
class DedupPolicy:
    """The thresholds, from feeds.yaml's settings (the defaults are Settings')."""

    threshold: float = _DEFAULTS.dedup_threshold
    summary_threshold: float = _DEFAULTS.dedup_summary_threshold
    title_confirm_threshold: float = _DEFAULTS.title_confirm_threshold
    window_s: int = _DEFAULTS.dedup_window_s

    @classmethod
    def from_settings(cls, settings: Settings) -> DedupPolicy:
        return cls(
            threshold=settings.dedup_threshold,
            summary_threshold=settings.dedup_summary_threshold,
            title_confirm_threshold=settings.title_confirm_threshold,
            window_s=settings.dedup_window_s,
        )


# -- normalising -------------------------------------------------------------------------------


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def title_key(title: str | None) -> str | None:
    """The headline as it compares: kickers, agency suffixes, case, quotes and punctuation
    gone. None when nothing is left."""
    if not title:
        return None
    text = unicodedata.normalize("NFKC", title).strip()
    text = _PREFIX.sub("", text)
    text = _PIPE_SUFFIX.sub("", _AGENCY_SUFFIX.sub("", text))
    words = _WORD.findall(_QUOTES.sub("", text.casefold()))
    return " ".join(words) or None


def words(text: str) -> list[str]:
    return _WORD.findall(_fold(text))


def shingles(text: str, size: int | None = None) -> set[str]:
    """Every run of `size` (SHINGLE_WORDS) consecutive words; a shorter text is one shingle."""
    size = size or SHINGLE_WORDS
    tokens = words(text)
    if len(tokens) <= size:
        return {" ".join(tokens)} if tokens else set()
    return {" ".join(tokens[i : i + size]) for i in range(len(tokens) - size + 1)}


def declared_canonical(declared: str | None, url: str | None) -> str | None:
    """The page's declared canonical URL when it says something: not the page itself, not a
    site's home page (some CMSs declare that on every page)."""
    canonical = canonical_url(declared) if declared else None
    if canonical is None or canonical == url or urlsplit(canonical).path in ("", "/"):
        return None
    return canonical


# -- fingerprints --------------------------------------------------------------------------------


@cache
def _permutations() -> tuple[Any, Any]:
    """The NUM_PERM affine permutations h -> a*h + b (mod 2**32), `a` odd, drawn from SEED:
    datasketch 2's MinHash with scheme="affine32", which made the first signatures."""
    import numpy as np  # here, not at the top: the CLI starts without it

    gen = np.random.RandomState(SEED)
    a = gen.randint(0, 1 << 31, NUM_PERM, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, NUM_PERM, dtype=np.uint32)
    return a, b


def signature(shingle_set: Iterable[str]) -> bytes:
    """The MinHash signature of a set of shingles: NUM_PERM little-endian uint32.

    Each shingle's hash is the first 4 bytes of its SHA-1, avalanched by MurmurHash3's
    32-bit finalizer, then put through every permutation; the signature keeps each
    permutation's minimum. Bit for bit what datasketch's MinHash(num_perm=NUM_PERM,
    seed=SEED, scheme="affine32") gives (tests/test_dedup.py compares the two), without
    importing datasketch, which imports scipy: half a second at every worker's start.
    """
    import numpy as np

    prefixes = b"".join(hashlib.sha1(s.encode("utf-8")).digest()[:4] for s in shingle_set)
    if not prefixes:
        return b"\xff\xff\xff\xff" * NUM_PERM  # no shingle: every minimum stays at the top
    hv = np.frombuffer(prefixes, dtype="<u4").astype(np.uint32).reshape(-1, 1)
    hv ^= hv >> np.uint32(16)  # MurmurHash3's fmix32
    hv *= np.uint32(0x85EBCA6B)
    hv ^= hv >> np.uint32(13)
    hv *= np.uint32(0xC2B2AE35)
    hv ^= hv >> np.uint32(16)
    a, b = _permutations()
    return bytes((hv * a + b).min(axis=0).astype("<u4").tobytes())


def band_keys(sig: bytes) -> tuple[int, ...]:
    """One signed 64-bit key per LSH band (the type SQLite stores as INTEGER)."""
    width = ROWS * 4
    return tuple(
        int.from_bytes(
            hashlib.blake2b(sig[i * width : (i + 1) * width], digest_size=8).digest(),
            "little",
            signed=True,
        )
        for i in range(BANDS)
    )


def basis(source: str, title: str | None, text: str | None, summary: str | None) -> str:
    """The words a fingerprint of `source` ('text' or 'summary') is made from."""
    return (text or "") if source == "text" else f"{title or ''}\n{summary or ''}"


def made_of(title: str | None, text: str | None, summary: str | None) -> tuple[str | None, ...]:
    """What `fingerprint(title, text, summary)` depends on: the text alone when there is
    some, else the title and summary. Equal for two calls, equal fingerprints."""
    return (text,) if _has_text(text) else (title, summary)


def _has_text(text: str | None) -> bool:
    return bool(text and text.strip())


def fingerprint(title: str | None, text: str | None, summary: str | None) -> Fingerprint | None:
    """The extracted text's fingerprint, else title + summary's; None when too little is
    known to compare (a headline alone, a stub)."""
    if _has_text(text):
        source = "text"
    elif not summary or title_key(summary) in (None, title_key(title)):
        return None  # a headline alone never merges on similarity
    else:
        source = "summary"
    shingle_set = shingles(basis(source, title, text, summary))
    if len(shingle_set) < MIN_SHINGLES:
        return None
    sig = signature(shingle_set)
    return Fingerprint(source, sig, band_keys(sig), len(shingle_set), FINGERPRINT_VERSION)


def _values(sig: bytes) -> array[int]:
    values = array("I", sig)
    if sys.byteorder == "big":
        values.byteswap()
    return values


def jaccard(a: bytes, b: bytes) -> float:
    """Estimated Jaccard similarity of the two shingle sets the signatures summarise."""
    left, right = _values(a), _values(b)
    if len(left) != len(right) or not left:
        return 0.0
    return sum(x == y for x, y in zip(left, right, strict=True)) / len(left)


def similarity(a: Fingerprint | None, b: Fingerprint | None) -> float | None:
    """Jaccard estimate of two comparable fingerprints; None when they are not comparable
    (missing, or one from text and one from a summary: their sets differ by construction)."""
    if a is None or b is None or a.source != b.source:
        return None
    return jaccard(a.signature, b.signature)


def similarities(
    new: Fingerprint | None, others: Sequence[Fingerprint | None]
) -> list[float | None]:
    """`similarity(new, other)` for each of `others`, in one numpy comparison."""
    out: list[float | None] = [None] * len(others)
    if new is None:
        return out
    rows: list[int] = []
    for i, fp in enumerate(others):
        if fp is not None and fp.source == new.source:
            out[i] = 0.0  # as jaccard(): a signature of another size shares nothing
            if len(fp.signature) == len(new.signature) > 0:
                rows.append(i)
    if not rows:
        return out
    import numpy as np  # here, not at the top: the CLI starts without it

    mine = np.frombuffer(new.signature, dtype="<u4")
    joined = b"".join(fp.signature for i in rows if (fp := others[i]) is not None)
    theirs = np.frombuffer(joined, dtype="<u4").reshape(len(rows), len(mine))
    for i, same in zip(rows, (theirs == mine).sum(axis=1).tolist(), strict=True):
        out[i] = same / len(mine)
    return out


def _admissible(new: Copy, other: Copy, policy: DedupPolicy) -> bool:
    """Whether resemblance may join them: first seen within the window and, for summaries, no
    feed in common (a stored copy's feeds are its story's). A feed repeats its own boilerplate
    ("Subscribe to our channel", "The best photos from the wires") under many headlines, so
    its summaries alike say nothing, and another feed's copy of one must not bring the others
    along; its pages' text still speaks."""
    if not within_window(new, other, policy):
        return False
    summary = new.fingerprint is not None and new.fingerprint.source == "summary"
    return not (summary and new.feeds & other.feeds)


def comparable(new: Copy, other: Copy, policy: DedupPolicy) -> float | None:
    """Their similarity when resemblance may join them (both fingerprinted alike, and see
    `_admissible`), else None."""
    score = similarity(new.fingerprint, other.fingerprint)
    if score is None or not _admissible(new, other, policy):
        return None
    return score


# -- decisions ----------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _moment(text: str) -> datetime:
    """A stored time, parsed once: a placement compares every candidate's with the new copy's,
    and a feed's entries share theirs."""
    return parse_iso(text)


def within_window(new: Copy, other: Copy, policy: DedupPolicy) -> bool:
    apart = _moment(new.first_seen_at) - _moment(other.first_seen_at)
    return abs(apart) <= timedelta(seconds=policy.window_s)


def decide_canonical(new: Copy, other: Copy) -> Match | None:
    """Same story when one copy's page names the other's URL as canonical, or both name the
    same one. Any age: a URL is identity, not resemblance."""
    return _canonical(new, other, similarity(new.fingerprint, other.fingerprint))


def decide_title(new: Copy, other: Copy, policy: DedupPolicy) -> Match | None:
    """The same headline, confirmed by the text: a lower bar than text alone needs."""
    return _title(new, other, policy, similarity(new.fingerprint, other.fingerprint))


def decide_minhash(new: Copy, other: Copy, policy: DedupPolicy) -> Match | None:
    """Estimated Jaccard similarity of the texts over the threshold; summaries, being short
    and formulaic, need the stricter summary threshold."""
    return _minhash(new, other, policy, similarity(new.fingerprint, other.fingerprint))


# The decisions given their similarity (None: not comparable), as `similarities` made it.


def _canonical(new: Copy, other: Copy, score: float | None) -> Match | None:
    named = (new.declared is not None and new.declared in (other.url, other.declared)) or (
        other.declared is not None and other.declared == new.url
    )
    if not named or (score is not None and score < CANONICAL_MIN_SIMILARITY):
        return None
    return Match(Signal.CANONICAL_URL, 1.0)


def _title(new: Copy, other: Copy, policy: DedupPolicy, score: float | None) -> Match | None:
    if new.title_key is None or new.title_key != other.title_key:
        return None
    if score is None or not _admissible(new, other, policy):
        return None
    if score < _bar(new, policy.title_confirm_threshold, policy):
        return None
    return Match(Signal.TITLE, score)


def _minhash(new: Copy, other: Copy, policy: DedupPolicy, score: float | None) -> Match | None:
    if score is None or not _admissible(new, other, policy):
        return None
    if score < _bar(new, policy.threshold, policy):
        return None
    return Match(Signal.MINHASH, score)


def _bar(new: Copy, text_bar: float, policy: DedupPolicy) -> float:
    """Summaries are short and formulaic: they clear every bar by the summary margin more."""
    if new.fingerprint is not None and new.fingerprint.source == "summary":
        return min(1.0, text_bar + policy.summary_threshold - policy.threshold)
    return text_bar


@dataclass(slots=True)
class Tally:
    """What placing copies took, counted rather than timed: tests and benchmarks hand one in
    to see that the work per copy stays bounded."""

    copies: int = 0  # new copies looked up
    candidates: int = 0  # stored copies read as candidates
    scored: int = 0  # candidate signatures compared with the new copy's
    confirmed: int = 0  # MinHash matches checked against the texts (boilerplate.py)
    per_copy: list[int] = field(default_factory=list)  # scored, for each copy looked up

    def add(self, candidates: int, scored: int) -> None:
        self.copies += 1
        self.candidates += candidates
        self.scored += scored
        self.per_copy.append(scored)


def best_match(
    new: Copy,
    candidates: Sequence[Copy],
    policy: DedupPolicy,
    *,
    apart_from: frozenset[int] = frozenset(),
    confirm: Callable[[Copy], bool] | None = None,
    tally: Tally | None = None,
) -> tuple[Copy, Match] | None:
    """The stored copy whose story the new one joins, and why; None: it is a story of its own.

    Signals are tried cheapest first and the first that matches decides; within a signal the
    highest score wins, then the earliest copy. Every candidate is scored once, together.
    `apart_from`: stories an editor split this item from; `confirm`: what a MinHash match
    must also pass (the texts' own words alike, when the new copy carries boilerplate).
    """
    eligible = sorted(
        (c for c in candidates if c.item_id != new.item_id and c.story_id not in apart_from),
        key=lambda c: (c.first_seen_at, c.item_id),
    )
    scored = similarities(new.fingerprint, [c.fingerprint for c in eligible])
    if tally is not None:
        tally.add(len(candidates), sum(s is not None for s in scored))
    signals: tuple[Callable[[Copy, float | None], Match | None], ...] = (
        lambda c, s: _canonical(new, c, s),
        lambda c, s: _title(new, c, policy, s),
        lambda c, s: _minhash(new, c, policy, s),
    )
    for decide in signals:
        matches = [
            (c, m) for c, s in zip(eligible, scored, strict=True) if (m := decide(c, s)) is not None
        ]
        if matches and confirm is not None and matches[0][1].signal is Signal.MINHASH:
            # The best first; sorted() keeps the earliest of equals first.
            ranked = sorted(matches, key=lambda cm: -cm[1].score)
            return next(((c, m) for c, m in ranked if confirm(c)), None)
        if matches:
            return max(matches, key=lambda cm: cm[1].score)  # max keeps the first of equals
    return None


def usable(fp: Fingerprint | None) -> Fingerprint | None:
    """A stored fingerprint, when made with today's parameters (None: not comparable until
    `stories rebuild`). Its band keys are left out: only the new copy's are looked up."""
    return fp if fp is not None and fp.version == FINGERPRINT_VERSION else None


def current(fp: Fingerprint | None) -> Fingerprint | None:
    """A new copy's fingerprint as a lookup needs it: `usable`, its LSH band keys filled in."""
    fp = usable(fp)
    return fp if fp is None or fp.bands else replace(fp, bands=band_keys(fp.signature))
