"""Near-duplicate decisions (aggregator/dedup.py): pure, table-driven, no store."""

from __future__ import annotations

import random
import subprocess
import sys
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.models import Copy, Fingerprint, Match
from aggregator.store.story_rows import choose_lead
from aggregator.stories import dedup
from aggregator.stories.dedup import DedupPolicy

POLICY = DedupPolicy()
NOW = "2026-11-27T10:00:00Z"
LATER = "2026-11-27T14:00:00Z"
_WORDS = (
    "the government said on monday that talks with the armed group had reached a preliminary "
    "accord after months of tension in the capital where fighting flared between rival forces "
    "officials declined to give details but diplomats expected an announcement within days as "
    "negotiators met in the city under pressure from neighbours traders and residents who fear "
    "renewed violence ministers parliament election budget port oil prices exports inflation "
    "court judge ruling appeal hospital doctors vaccine outbreak storm flood rescue airport "
    "strike union workers wages police protest arrest minister president army border talks"
)
VOCABULARY = _WORDS.split()


def article(seed: int, words: int = 300) -> str:
    """A made-up article: paragraphs of words drawn from one small newsroom vocabulary."""
    rng = random.Random(seed)
    tokens = [rng.choice(VOCABULARY) for _ in range(words)]
    return "\n".join(" ".join(tokens[i : i + 40]) for i in range(0, words, 40))


def reworded(text: str, fraction: float, seed: int = 1) -> str:
    rng = random.Random(seed)
    return " ".join(
        f"x{rng.randrange(10**6)}" if rng.random() < fraction else w for w in text.split()
    )


def copy(
    item_id: int,
    *,
    text: str | None = None,
    title: str = "Libya government reaches accord with armed group",
    summary: str | None = None,
    url: str | None = None,
    declared: str | None = None,
    seen: str = NOW,
    feed: str = "wire",
) -> Copy:
    return Copy(
        item_id=item_id,
        first_seen_at=seen,
        url=url or f"https://news{item_id}.example/story",
        declared=dedup.declared_canonical(declared, url),
        title_key=dedup.title_key(title),
        fingerprint=dedup.fingerprint(title, text, summary),
        story_id=item_id,
        feeds=frozenset({feed}),
    )


# -- normalising ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "key"),
    [
        ("Oil prices rise on supply fears", "oil prices rise on supply fears"),
        ("UPDATE 2-Oil prices rise on supply fears", "oil prices rise on supply fears"),
        ("EXCLUSIVE: Oil prices rise on supply fears | Reuters", "oil prices rise on supply fears"),
        ("REFILE-UPDATE 1-Oil prices rise on supply fears", "oil prices rise on supply fears"),
        (
            "\u201cOil prices\u201d rise on \u2018supply\u2019 fears \u2013 Reuters",
            "oil prices rise on supply fears",
        ),
        ("BREAKING NEWS: Quake hits Tokyo (AP)", "quake hits tokyo"),
        ("Trump\u2019s valet tests positive", "trumps valet tests positive"),
        ("Trump's valet tests positive", "trumps valet tests positive"),
        ("Dismaya sa tigil-ere ng ABS-CBN | TV Patrol", "dismaya sa tigil ere ng abs cbn"),
        ("Biden - the interview", "biden the interview"),  # a dash is not always a source
        ("Live: Trump speaks in Arizona", "trump speaks in arizona"),
        ("Live updates", "live updates"),  # a kicker needs its colon or dash
        ("ÉLECTIONS : le second tour", "élections le second tour"),
        ("", None),
        ("  !!! ", None),
        (None, None),
    ],
)
def test_title_key(title: str | None, key: str | None) -> None:
    assert dedup.title_key(title) == key


def test_shingles_are_runs_of_words() -> None:
    assert dedup.shingles("The cat sat on the mat.") == {
        "the cat sat",
        "cat sat on",
        "sat on the",
        "on the mat",
    }
    assert dedup.shingles("Short one") == {"short one"}
    assert dedup.shingles(" ... ") == set()
    # Scripts written without spaces: each character is a word.
    assert dedup.words("東京で地震 Tokyo") == ["東", "京", "で", "地", "震", "tokyo"]


def test_declared_canonical_ignores_the_page_itself_and_home_pages() -> None:
    url = "https://partner.example/news/1"
    assert dedup.declared_canonical("https://wire.example/a?utm_source=x", url) == (
        "https://wire.example/a"
    )
    assert dedup.declared_canonical(url, url) is None
    assert dedup.declared_canonical("https://partner.example/", url) is None
    assert dedup.declared_canonical(None, url) is None


# -- fingerprints -------------------------------------------------------------------------------


def test_signature_is_stable_across_processes_and_releases() -> None:
    text = "The quick brown fox jumps over the lazy dog"
    here = dedup.signature(dedup.shingles(text))
    elsewhere = subprocess.run(
        [
            sys.executable,
            "-c",
            "from aggregator.stories import dedup;"
            f"print(dedup.signature(dedup.shingles({text!r})).hex())",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert here.hex() == elsewhere
    assert len(here) == dedup.NUM_PERM * 4
    # Pinned: a change of seed, permutations or hashing would orphan every stored signature.
    assert here[:16].hex() == "37409c10aee8631a06e7e643a1756624"


@settings(max_examples=300, deadline=None)
@given(st.sets(st.text(max_size=30), max_size=60))
def test_signature_is_datasketchs_affine32_minhash(shingle_set: set[str]) -> None:
    """dedup.signature computes what datasketch's MinHash gave the signatures stored before
    it (affine32 scheme, SHA-1 hashes, our seed), without importing scipy."""
    from datasketch import MinHash

    theirs = MinHash(num_perm=dedup.NUM_PERM, seed=dedup.SEED, scheme="affine32")
    theirs.update_batch([s.encode("utf-8") for s in shingle_set])
    assert dedup.signature(shingle_set) == theirs.hashvalues.astype("<u4").tobytes()


def test_band_keys_follow_the_signature_band_by_band() -> None:
    sig = dedup.signature(dedup.shingles(article(1)))
    keys = dedup.band_keys(sig)
    assert len(keys) == dedup.BANDS
    assert all(-(2**63) <= k < 2**63 for k in keys)
    assert dedup.band_keys(sig) == keys
    width = dedup.ROWS * 4
    changed = bytes(b ^ 0xFF for b in sig[:width]) + sig[width:]
    other = dedup.band_keys(changed)
    assert other[0] != keys[0]
    assert other[1:] == keys[1:]


def test_jaccard_estimate_is_close_to_the_real_one() -> None:
    a, b = article(1), reworded(article(1), 0.1)
    sa, sb = dedup.shingles(a), dedup.shingles(b)
    exact = len(sa & sb) / len(sa | sb)
    estimate = dedup.jaccard(dedup.signature(sa), dedup.signature(sb))
    assert abs(estimate - exact) < 0.15
    assert dedup.jaccard(dedup.signature(sa), dedup.signature(sa)) == 1.0
    assert (
        dedup.jaccard(
            dedup.signature(sa),
            dedup.signature(dedup.shingles(article(2))),
        )
        < 0.1
    )


def test_fingerprint_falls_back_to_title_and_summary() -> None:
    text = dedup.fingerprint("Title", article(1), "A summary")
    assert text is not None
    assert text.source == "text"
    summary = dedup.fingerprint("Quake hits Tokyo", None, article(1, words=30))
    assert summary is not None
    assert summary.source == "summary"
    assert text.version == summary.version == dedup.FINGERPRINT_VERSION
    # A headline alone, or a summary repeating it, or a stub: nothing to compare.
    assert dedup.fingerprint("Quake hits Tokyo", None, "") is None
    assert dedup.fingerprint("Quake hits Tokyo", None, "Quake hits Tokyo.") is None
    assert dedup.fingerprint("Watch", "Watch the video now", None) is None


# -- decisions ----------------------------------------------------------------------------------


def test_canonical_url_names_the_other_copy_at_any_age() -> None:
    wire = copy(1, text=article(1), url="https://wire.example/a", seen="2026-10-01T00:00:00Z")
    partner = copy(
        2,
        text=reworded(article(1), 0.3),
        url="https://partner.example/x",
        declared="https://wire.example/a",
    )
    assert dedup.decide_canonical(partner, wire) == Match("canonical_url", 1.0)
    assert dedup.decide_canonical(wire, partner) == Match("canonical_url", 1.0)
    both = copy(3, text=article(1), declared="https://wire.example/a", url="https://o.example/y")
    assert dedup.decide_canonical(both, partner) == Match("canonical_url", 1.0)
    stranger = copy(4, text=article(9), url="https://wire.example/b")
    assert dedup.decide_canonical(partner, stranger) is None


def test_a_canonical_url_on_unrelated_text_is_a_misconfigured_cms() -> None:
    section = "https://partner.example/world/"
    one = copy(1, text=article(1), url="https://partner.example/1", declared=section)
    two = copy(2, text=article(2), url="https://partner.example/2", declared=section)
    assert dedup.decide_canonical(two, one) is None


@pytest.mark.parametrize("title", ["Live updates", "Morning briefing", "Coronavirus: latest"])
def test_a_repeated_headline_over_different_stories_does_not_merge(title: str) -> None:
    monday = copy(1, title=title, text=article(1), seen=NOW)
    tuesday = copy(2, title=title, text=article(2), seen=LATER)
    assert dedup.decide_title(tuesday, monday, POLICY) is None
    assert dedup.best_match(tuesday, [monday], POLICY) is None


def test_the_same_headline_confirmed_by_the_text() -> None:
    wire = copy(1, title="UPDATE 1-Libya accord reached | Reuters", text=article(1, words=480))
    trimmed = "\n".join(article(1, words=480).split("\n")[:4])  # it ran the first paragraphs
    partner = copy(2, title="Libya accord reached", text=trimmed, seen=LATER)
    match = dedup.decide_title(partner, wire, POLICY)
    assert match is not None
    assert match.signal == "title"
    assert POLICY.title_confirm_threshold <= match.score < POLICY.threshold
    assert dedup.decide_minhash(partner, wire, POLICY) is None  # text alone is not enough
    far = replace(partner, first_seen_at="2026-12-05T10:00:00Z")
    assert dedup.decide_title(far, wire, POLICY) is None  # outside the window


@pytest.mark.parametrize(
    ("fraction", "merges"), [(0.0, True), (0.05, True), (0.1, True), (0.5, False)]
)
def test_minhash_over_the_text(fraction: float, merges: bool) -> None:
    wire = copy(1, title="Wire headline", text=article(1))
    partner = copy(2, title="Partner headline", text=reworded(article(1), fraction), seen=LATER)
    match = dedup.decide_minhash(partner, wire, POLICY)
    assert (match is not None) is merges
    if match is not None:
        assert match.signal == "minhash"
        assert match.score >= POLICY.threshold


def test_summaries_need_the_stricter_threshold() -> None:
    summary = article(1, words=40)
    edited = reworded(summary, 0.06, seed=3)
    a = copy(1, title="Quake hits Tokyo", summary=summary, feed="one")
    b = copy(2, title="Quake hits Tokyo", summary=edited, feed="two", seen=LATER)
    score = dedup.similarity(a.fingerprint, b.fingerprint)
    assert score is not None
    lenient = DedupPolicy(threshold=0.3, summary_threshold=score + 0.05)
    strict = DedupPolicy(threshold=0.3, summary_threshold=score - 0.05)
    assert dedup.decide_minhash(b, a, lenient) is None
    assert dedup.decide_minhash(b, a, strict) == Match("minhash", score)
    # The same score between texts clears the text threshold.
    as_text = [replace(c, fingerprint=replace(c.fingerprint, source="text")) for c in (a, b)]  # type: ignore[type-var]
    assert dedup.decide_minhash(as_text[1], as_text[0], lenient) == Match("minhash", score)


def test_a_feeds_own_summaries_never_merge_by_resemblance() -> None:
    """'TV Patrol Negros - March 11' and '... - March 16' share their boilerplate summary."""
    boilerplate = (
        "To watch more breaking news videos, click the link below. Check out what is trending"
        " on the internet. For more videos subscribe to our channel and visit our website for"
        " the latest updates on the lockdown and the pandemic in the regions."
    )
    monday = copy(1, title="TV Patrol Negros - March 11", summary=boilerplate, feed="abs-cbn")
    tuesday = copy(2, title="TV Patrol Negros - March 12", summary=boilerplate, feed="abs-cbn")
    score = dedup.similarity(monday.fingerprint, tuesday.fingerprint)
    assert score is not None
    assert score > POLICY.summary_threshold
    assert dedup.best_match(tuesday, [monday], POLICY) is None
    elsewhere = replace(tuesday, feeds=frozenset({"relay"}))
    assert dedup.best_match(elsewhere, [monday], POLICY) is not None


def test_text_and_summary_fingerprints_are_not_compared() -> None:
    text = copy(1, text=article(1))
    summary = copy(2, summary=article(1, words=60), seen=LATER)
    assert dedup.similarity(text.fingerprint, summary.fingerprint) is None
    assert dedup.best_match(summary, [text], POLICY) is None


def test_best_match_tries_the_cheapest_signal_first_and_honours_splits() -> None:
    wire = copy(1, text=article(1), url="https://wire.example/a")
    twin = copy(2, title="Another headline", text=article(1), seen=LATER)
    partner = copy(
        3,
        title="Partner headline",
        text=reworded(article(1), 0.3),
        url="https://partner.example/x",
        declared="https://wire.example/a",
        seen=LATER,
    )
    found = dedup.best_match(partner, [twin, wire], POLICY)
    assert found is not None
    assert (found[0].item_id, found[1].signal) == (1, "canonical_url")
    new = copy(4, title="Yet another headline", text=article(1), seen=LATER)
    found = dedup.best_match(new, [twin, wire], POLICY)
    assert found is not None
    assert found[1].signal == "minhash"
    assert found[0].item_id == 1  # equal scores: the earliest copy
    assert dedup.best_match(new, [twin, wire], POLICY, apart_from=frozenset({1, 2})) is None


@pytest.mark.parametrize(
    ("members", "lead"),
    [
        ([(1, 1, NOW), (2, 10, LATER)], 2),  # the wire copy leads though it came later
        ([(1, 5, LATER), (2, 5, NOW)], 2),  # equal priority: the earliest
        ([(3, 5, NOW), (2, 5, NOW)], 2),  # and then the lowest id
        ([(1, None, NOW), (2, -1, LATER)], 2),  # a feed no longer configured counts least
    ],
)
def test_choose_lead(members: list[tuple[int, int | None, str]], lead: int) -> None:
    assert choose_lead(members) == lead


def test_fingerprints_pickle_for_the_worker_processes() -> None:
    import pickle

    fingerprint = dedup.fingerprint("Title", article(1), None)
    assert isinstance(fingerprint, Fingerprint)
    assert pickle.loads(pickle.dumps(fingerprint)) == fingerprint


def test_the_policy_comes_from_feeds_yaml() -> None:
    from aggregator.config.loader import parse_config
    from aggregator.errors import InvalidConfig

    config = parse_config(
        "settings:\n  dedup_threshold: 0.5\n  dedup_summary_threshold: 0.9\n"
        "  title_confirm_threshold: 0.25\n  dedup_window: 2d\nfeeds: []\n"
    )
    assert DedupPolicy.from_settings(config.settings) == DedupPolicy(0.5, 0.9, 0.25, 2 * 86400)
    assert DedupPolicy.from_settings(parse_config("feeds: []\n").settings) == DedupPolicy()
    with pytest.raises(InvalidConfig, match=r"dedup_threshold: 1\.5 is not a number between 0"):
        parse_config("settings:\n  dedup_threshold: 1.5\nfeeds: []\n")


# Nothing, only blanks, or up to 60 words: enough for a summary's or a text's fingerprint.
WORDY = st.one_of(
    st.sampled_from(["", " \n "]),
    st.lists(st.sampled_from(VOCABULARY), max_size=60).map(" ".join),
)


@settings(max_examples=200, deadline=None)
@given(st.tuples(WORDY, WORDY, WORDY), st.tuples(WORDY, WORDY, WORDY))
def test_texts_that_fingerprint_alike_give_one_fingerprint(
    one: tuple[str, str, str], other: tuple[str, str, str]
) -> None:
    """dedup.made_of names what a fingerprint depends on: the pipeline reuses a page's
    fingerprint for any item whose made_of is the same."""
    for a, b in ((one, other), (one, (other[0], one[1], other[2]))):
        if dedup.made_of(*a) == dedup.made_of(*b):
            assert dedup.fingerprint(*a) == dedup.fingerprint(*b)
