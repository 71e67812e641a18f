"""Near-duplicates found in the shared corpora, read and confirmed by hand (skipped without
../shared/corpora)."""

from __future__ import annotations

import json
from pathlib import Path

from aggregator.extract.article import extract_article
from aggregator.models import Copy
from aggregator.parse.feed import parse_feed
from aggregator.stories import dedup
from aggregator.stories.dedup import DedupPolicy

EFE = "https://www.24horas.cl/politica/presidente-boric-inicia-gira-por-magallanes-este-miercoles-5287894"
PARTNER = (
    "https://www.cooperativa.cl/noticias/pais/presidente-boric/presidente-boric-vuelve-a-su-"
    "casa-magallanes-este-miercoles-realiza-su/2022-05-04/074527.html"
)
PRESS_RELEASE = (
    "https://djz.de/amoklauf-in-heidelberg-rufe-nach-schneller-aufklaerung/",
    "https://www.jagdverband.de/wir-sind-tief-erschuettert",
)


def _copy(item_id: int, corpora: Path, url: str, feed: str) -> Copy:
    folder = corpora / "extraction-eval"
    entry = json.loads((folder / "evaldata.json").read_text(encoding="utf-8"))[url]
    page = next(
        p
        for p in (folder / "eval" / entry["file"], folder / "cache" / entry["file"])
        if p.is_file()
    )
    article = extract_article(page.read_bytes(), url=url)
    return Copy(
        item_id,
        "2026-11-27T10:00:00Z",
        url,
        title_key=dedup.title_key(article.title),
        fingerprint=dedup.fingerprint(article.title, article.text, None),
        story_id=item_id,
        feeds=frozenset({feed}),
    )


def test_a_partners_edit_of_a_wire_story_is_the_same_story(corpora: Path) -> None:
    """EFE's story and Cooperativa's edit of it: a new headline and intro, four paragraphs
    cut, two local ones added. Exact Jaccard 0.44 over 3-word shingles."""
    wire, partner = _copy(1, corpora, EFE, "efe"), _copy(2, corpora, PARTNER, "cooperativa")
    found = dedup.best_match(partner, [wire], DedupPolicy())
    assert found is not None
    assert found[1].signal == "minhash"
    one, two = (_copy(3 + n, corpora, url, f"site{n}") for n, url in enumerate(PRESS_RELEASE))
    assert dedup.best_match(two, [one], DedupPolicy()) is not None


def test_a_feeds_recurring_show_is_not_one_story(corpora: Path) -> None:
    """ABS-CBN's 'TV Patrol' episodes: a new headline each day over the same boilerplate."""
    folder = corpora / "feed-snapshots" / "abscbnnews"
    entries = {}
    for path in sorted(folder.glob("*.xml"))[:6]:
        parsed = parse_feed(
            path.read_bytes(),
            url="https://abs-cbn.example/",
            content_type=None,
            charset=None,
            max_entries=100,
        )
        for e in parsed.entries:
            if e.title.startswith("TV Patrol") and e.link:
                entries.setdefault(e.link, e)
    episodes = [
        Copy(
            n,
            "2026-11-27T10:00:00Z",
            link,
            title_key=dedup.title_key(e.title),
            fingerprint=dedup.fingerprint(e.title, None, e.summary),
            story_id=n,
            feeds=frozenset({"abscbnnews"}),
        )
        for n, (link, e) in enumerate(sorted(entries.items()))
    ]
    assert len(episodes) >= 3
    alike = [
        dedup.similarity(a.fingerprint, b.fingerprint)
        for a in episodes
        for b in episodes
        if a.item_id < b.item_id
    ]
    assert max(s or 0 for s in alike) > DedupPolicy().summary_threshold  # boilerplate alike
    for n, episode in enumerate(episodes):
        assert dedup.best_match(episode, episodes[:n], DedupPolicy()) is None
