"""Boilerplate: words that copies of many different stories share (a teaser under every
headline, a show's description, a site's footer), told apart from a story's own (pure).

Copies alike only in their boilerplate are not one story. The store finds the LSH bands a new
copy shares with copies of more than BOILERPLATE_STORIES different stories lately
(`story_rows.by_bands`): those bring no candidates, which keeps a lookup's work bounded, and
the copies found in them, one per story, are the background the boilerplate is read from.
When the new copy's signature shares values with that background, a MinHash match must be
confirmed by the texts: with every shingle that two background stories share taken out, what
is left of the two copies must still be alike.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aggregator.models import Fingerprint
from aggregator.stories.dedup import shingles

# A band whose buckets (their newest copies, in the time window's weeks) hold copies of more
# stories than this is boilerplate: one story's copies share bands with each other, and only
# phrasing repeated under many headlines spreads a band over many stories.
BOILERPLATE_STORIES = 8
# A shingle (or a signature's value, the minimum of a shingle's hashes) that copies of this many
# background stories share is boilerplate: theirs as much as the new copy's.
SHARED_BY = 2
# Background copies whose words are read to confirm a match.
BACKGROUND_TEXTS = 8
# Two copies carrying boilerplate are one story when, without it, their own words are at least
# this alike (exact Jaccard of the shingles left). Unrelated items that share a teaser share
# none of their own; a relay under a new headline shares its lede.
OWN_WORDS_ALIKE = 0.3


def boilerplate_rows(new: Fingerprint | None, background: Sequence[Fingerprint]) -> int:
    """How many values of the new signature copies of SHARED_BY background stories share: the
    rows where its minimum is a shingle of theirs. 0: nothing to confirm."""
    alike = [
        fp.signature
        for fp in background
        if new is not None and fp.source == new.source and len(fp.signature) == len(new.signature)
    ]
    if new is None or not new.signature or len(alike) < SHARED_BY:
        return 0
    import numpy as np  # here, not at the top: the CLI starts without it

    mine = np.frombuffer(new.signature, dtype="<u4")
    theirs = np.frombuffer(b"".join(alike), dtype="<u4").reshape(len(alike), len(mine))
    return int(((theirs == mine).sum(axis=0) >= SHARED_BY).sum())


@dataclass(frozen=True, slots=True)
class Boilerplate:
    """The shingles of the background that SHARED_BY of its stories have in common."""

    shingles: frozenset[str]

    @classmethod
    def of(cls, background: Iterable[str]) -> Boilerplate:
        """From the words of the background copies, one copy per story."""
        counts = collections.Counter(s for words in background for s in shingles(words))
        return cls(frozenset(s for s, n in counts.items() if n >= SHARED_BY))

    def own_similarity(self, a: str, b: str) -> float:
        """Exact Jaccard similarity of the two texts' shingles, boilerplate taken out."""
        mine, theirs = shingles(a) - self.shingles, shingles(b) - self.shingles
        return len(mine & theirs) / len(mine | theirs) if mine and theirs else 0.0

    def confirms(self, a: str, b: str) -> bool:
        return self.own_similarity(a, b) >= OWN_WORDS_ALIKE
