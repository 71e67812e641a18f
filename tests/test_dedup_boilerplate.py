"""Boilerplate and bounded placement: feeds whose summaries share a teaser under every headline,
in a real SQLite store. The work per new entry is counted (dedup.Tally), never timed."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest
from store_helpers import ok_record, ok_update, save_refresh

from aggregator.models import Entry, FeedConfig, ItemDraft, Signal
from aggregator.store import Store
from aggregator.store.story_rows import MAX_CANDIDATES
from aggregator.stories import dedup
from aggregator.stories.boilerplate import BOILERPLATE_STORIES, Boilerplate, boilerplate_rows
from aggregator.stories.dedup import DedupPolicy, Tally
from aggregator.stories.identity import draft_for
from aggregator.stories.placement import place_item

NOW = "2026-11-27T10:00:00Z"
# What regional editions and press-release feeds put under every headline.
TEASER = (
    "Get the latest news, weather and sport from your region every morning, and the stories"
    " people are talking about. Sign up for our free newsletter, follow us on social media and"
    " continue reading the full story on our website, where subscribers get every article first."
)
# Made-up words for headlines: each entry its own, now and then a word in common.
SYLLABLES = ("ka", "to", "ri", "mel", "san", "do", "ve", "lin", "por", "gu", "na", "tesh")
WORDS = sorted({a + b + c for a in SYLLABLES for b in SYLLABLES for c in SYLLABLES[:6]})
LEDE = (
    "Dockworkers kept the main container port closed for a third day on Wednesday, as talks"
    " between their union and the ports authority broke up without an agreement on wages,"
    " according to officials on both sides, while more than forty ships waited at anchor."
)


def headline(rng: random.Random) -> str:
    """Six words: different stories, now and then a word in common."""
    return " ".join(rng.choice(WORDS) for _ in range(6)).capitalize()


def entry_draft(feed: str, n: int, title: str, summary: str) -> ItemDraft:
    link = f"https://{feed}.example/news/{n}"
    entry = Entry(link, link, title, summary, None, None, None, None)
    return replace(draft_for(entry), fingerprint=dedup.fingerprint(title, None, summary))


def editions(feeds: int, entries: int, seed: int = 7) -> dict[str, list[ItemDraft]]:
    """Regional editions: every entry its own story, its own headline and link, the teaser
    for a summary."""
    rng = random.Random(seed)
    return {
        f"edition-{f}": [
            entry_draft(f"edition-{f}", n, headline(rng), TEASER) for n in range(entries)
        ]
        for f in range(feeds)
    }


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(str(tmp_path / "boilerplate.db"))


def save_all(
    store: Store, feeds: dict[str, list[ItemDraft]], *, tally: Tally | None = None
) -> None:
    """Each feed's entries in one transaction, as a refresh commits them, placed one by one."""
    store.sync_feeds([FeedConfig(name, f"https://{name}.example/rss") for name in feeds], now=NOW)
    policy = DedupPolicy()
    for name, drafts in feeds.items():
        if tally is None:
            save_refresh(store, name, drafts, ok_record(name, NOW), ok_update(NOW))
            continue
        with store.transaction() as tx:
            for draft in drafts:
                _, item_id = tx.apply_entry(name, draft, now=NOW)
                place_item(tx, item_id, draft.fingerprint, policy, now=NOW, tally=tally)


def stories(store: Store) -> tuple[int, int]:
    """(items, stories they are in)."""
    ((items, distinct),) = store.execute("SELECT count(*), count(DISTINCT story_id) FROM items")
    return int(items), int(distinct)


def test_the_teaser_alone_makes_copies_alike() -> None:
    """The premise of the tests below: by MinHash alone, two editions' different stories
    would be one (their estimated similarity clears the summary threshold)."""
    feeds = editions(2, 20)
    first, second = feeds["edition-0"], feeds["edition-1"]
    scores = [dedup.similarity(a.fingerprint, b.fingerprint) or 0.0 for a in first for b in second]
    assert max(scores) >= DedupPolicy().summary_threshold
    assert sum(s >= DedupPolicy().summary_threshold for s in scores) > 20


def test_boilerplate_alone_never_merges(store: Store) -> None:
    """Different headlines, different links, one teaser: every entry stays its own story,
    through the engine's own commit path."""
    save_all(store, editions(6, 25))
    assert stories(store) == (150, 150)
    assert not store.execute("SELECT 1 FROM story_links")


def test_scored_candidates_per_entry_stay_bounded(store: Store) -> None:
    """However many stored entries share the teaser, each new one is scored against a
    bounded number of them."""
    tally = Tally()
    save_all(store, editions(10, 40), tally=tally)
    assert tally.copies == 400
    # Without the bound the last entries would be compared with hundreds: every entry of
    # the other editions shares the teaser's LSH bands.
    ((sharing,),) = store.execute(
        "SELECT count(DISTINCT b.item_id) FROM lsh_bands a JOIN lsh_bands b"
        " ON b.week = a.week AND b.band = a.band AND b.key = a.key AND b.item_id != a.item_id"
        " WHERE a.item_id = (SELECT max(id) FROM items)"
    )
    assert sharing > 300
    assert max(tally.per_copy) <= dedup.BAND_CANDIDATES + 2 * MAX_CANDIDATES
    assert max(tally.per_copy[100:]) <= dedup.BAND_CANDIDATES
    assert stories(store) == (400, 400)


def sql_steps_to_place(store: Store, draft: ItemDraft) -> int:
    """SQLite's virtual machine steps (in thousands) that storing the entry and placing it
    take: the work, counted, whatever the machine's speed."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    store.sync_feeds([FeedConfig("late", "https://late.example/rss")], now=NOW)
    with store.transaction() as tx:
        _, item_id = tx.apply_entry("late", draft, now=NOW)
        store.db.conn.set_progress_handler(count, 1000)
        try:
            place_item(tx, item_id, draft.fingerprint, DedupPolicy(), now=NOW)
        finally:
            store.db.conn.set_progress_handler(None, 0)
    return steps[0]


def test_sql_work_per_entry_does_not_grow_with_the_teasers_buckets(tmp_path: Path) -> None:
    """The teaser's LSH buckets hold 100 entries in one store and 600 in the other: placing
    the same new entry takes as much SQL work in both (each bucket is read from its newest
    row, a bounded number of rows)."""
    late = entry_draft("late", 1, "Harbour ferry timetable changes from Monday", TEASER)
    work = []
    for feeds in (editions(4, 25, seed=1), editions(12, 50, seed=1)):
        store = Store.open(str(tmp_path / f"{len(feeds)}.db"))
        save_all(store, feeds)
        work.append(sql_steps_to_place(store, late))
    small, large = work
    assert large <= small * 1.2


def test_a_lightly_edited_wire_copy_still_merges(store: Store) -> None:
    """In a store full of the teaser, a partner's copy of a wire story under a new headline
    (two words changed in the lede, the teaser kept) joins the wire story by MinHash, its own
    words confirming it."""
    feeds = editions(4, 30)
    feeds["wire"] = [entry_draft("wire", 1, "Port strike enters third day", f"{LEDE} {TEASER}")]
    save_all(store, feeds)
    edited = LEDE.replace("Wednesday", "Thursday").replace("forty", "fifty")
    partner = entry_draft(
        "partner", 1, "No deal as ships pile up at the port", f"{edited} {TEASER}"
    )
    store.sync_feeds([FeedConfig("partner", "https://partner.example/rss")], now=NOW)
    tally = Tally()
    with store.transaction() as tx:
        _, item_id = tx.apply_entry("partner", partner, now=NOW)
        placed = place_item(tx, item_id, partner.fingerprint, DedupPolicy(), now=NOW, tally=tally)
    assert placed.match is not None
    assert placed.match.signal is Signal.MINHASH
    ((wire_story,),) = store.execute(
        "SELECT story_id FROM items WHERE url = 'https://wire.example/news/1'"
    )
    assert placed.story_id == wire_story
    assert tally.confirmed >= 1  # the teaser was recognised, and the lede confirmed it


def test_a_story_many_feeds_carry_is_not_boilerplate(store: Store) -> None:
    """A wire story relayed unchanged by more feeds than BOILERPLATE_STORIES fills its LSH
    buckets with copies of one story: a later copy under a new headline still joins it."""
    relays = BOILERPLATE_STORIES + 4
    summary = f"{LEDE} The union said it would meet again on Friday."
    feeds = {
        f"relay-{r}": [entry_draft(f"relay-{r}", 1, "Port strike enters third day", summary)]
        for r in range(relays)
    }
    save_all(store, feeds)
    assert stories(store) == (relays, 1)  # joined by their headline
    late = {"late": [entry_draft("late", 1, "Ships pile up as dock strike goes on", summary)]}
    save_all(store, late)
    assert stories(store) == (relays + 1, 1)


# -- the pure parts ---------------------------------------------------------------------------


def test_similarities_are_similarity_for_each_at_once() -> None:
    new = dedup.fingerprint("Port strike", None, f"{LEDE} {TEASER}")
    others = [
        dedup.fingerprint("Port strike", None, f"{LEDE} {TEASER}"),
        dedup.fingerprint("Council budget", None, TEASER),
        dedup.fingerprint("Port strike", LEDE * 3, None),  # a text: not comparable
        None,
    ]
    assert new is not None
    assert others[0] is not None
    short = replace(others[0], signature=others[0].signature[:64])
    assert dedup.similarities(new, [*others, short]) == [
        *(dedup.similarity(new, other) for other in others),
        0.0,
    ]
    assert dedup.similarities(None, others) == [None] * 4


def test_boilerplate_is_what_stories_share() -> None:
    rng = random.Random(3)
    background = [f"{headline(rng)}\n{TEASER}" for _ in range(6)]
    shared = Boilerplate.of(background)
    assert dedup.shingles(TEASER) <= shared.shingles
    assert not dedup.shingles("Easton council approves budget") & shared.shingles
    first = f"Port strike enters third day\n{LEDE} {TEASER}"
    copy = f"No deal as ships pile up\n{LEDE.replace('Wednesday', 'Thursday')} {TEASER}"
    other = f"Northfield police review bus routes\n{TEASER}"
    assert shared.own_similarity(first, copy) > 0.5
    assert shared.own_similarity(first, other) == 0.0
    assert shared.confirms(first, copy)
    assert not shared.confirms(first, other)


def test_boilerplate_rows_are_those_other_stories_share() -> None:
    rng = random.Random(5)
    teasing = dedup.fingerprint(headline(rng), None, TEASER)
    background = [dedup.fingerprint(headline(rng), None, TEASER) for _ in range(8)]
    plain = dedup.fingerprint("Port strike enters third day", None, LEDE)
    assert teasing is not None
    assert plain is not None
    known = [fp for fp in background if fp is not None]
    assert boilerplate_rows(teasing, known) > dedup.NUM_PERM // 2
    assert boilerplate_rows(plain, known) == 0
    assert boilerplate_rows(teasing, known[:1]) == 0  # one story is not boilerplate
    assert boilerplate_rows(None, known) == 0
