"""A small, realistic store for `aggregator serve`: four feeds on three desks, six stories,
some carried by several feeds (the same link), one joined by its headline (a wire's copy
under another URL), one failing feed. Also used for the screenshot in docs/."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from store_helpers import ok_record, ok_update, save_refresh

from aggregator.models import Article, Entry, FeedConfig, FeedUpdate, FetchRecord
from aggregator.store import Store
from aggregator.stories import dedup
from aggregator.stories.identity import drafts_for

FEEDS = [
    FeedConfig("tass-en", "https://tass.example/rss/v2.xml", priority=10, tags=("wire", "world")),
    FeedConfig("reuters-world", "https://wire.example/world.xml", priority=10, tags=("wire",)),
    FeedConfig("partner-daily", "https://partner.example/feed.xml", tags=("world", "europe")),
    FeedConfig("city-desk", "https://city.example/news.atom", tags=("local",)),
]

# (key, title, text): the articles behind the stories.
ARTICLES = {
    "csto": (
        "CSTO suspends Armenia's participation in joint military exercises",
        "The Collective Security Treaty Organization said on Monday that Armenia would not"
        " take part in the joint exercises planned for December, after Yerevan froze its"
        " participation in the bloc's governing bodies. The secretary general told reporters"
        " in Moscow that the door remained open and that consultations would continue at the"
        " level of deputy foreign ministers before the end of the year.",
    ),
    "libya": (
        "Libya government reaches preliminary accord with powerful armed group",
        "Libya's UN-recognised government has reached a preliminary agreement with one of the"
        " most powerful armed groups in Tripoli, officials said, easing fears of renewed"
        " clashes in the capital. Under the deal the group will hand over two checkpoints near"
        " the airport and its fighters will be folded into the interior ministry's forces.",
    ),
    "grain": (
        "Grain exports through Black Sea corridor reach record in November",
        "Ships carrying grain through the Black Sea corridor loaded a record volume in"
        " November, port authorities said, as traders rushed cargoes out before winter storms."
        " Wheat made up more than half of the shipments, followed by corn and sunflower meal,"
        " and most of the vessels sailed for Egypt, Spain and Turkey.",
    ),
    "rate": (
        "Central bank holds key rate at 16% as inflation slows",
        "The central bank kept its key interest rate at 16% on Friday, saying consumer"
        " inflation had slowed for a third month and that the labour market was cooling."
        " The governor said further cuts were possible next year if price growth kept easing"
        " and the budget deficit stayed within the government's targets.",
    ),
    "storm": (
        "Storm Bert: ferry services cancelled across the Baltic",
        "Ferry operators cancelled crossings between Tallinn, Helsinki and Stockholm on"
        " Saturday as Storm Bert brought gusts of up to 30 metres per second to the northern"
        " Baltic. Port officials advised passengers to check with operators before travelling"
        " and said services would resume once the wind dropped on Sunday morning.",
    ),
    "tram": (
        "City council approves new tram line to the airport",
        "The city council approved the long-debated tram line to the airport on Thursday, with"
        " construction due to start next spring. The eight-kilometre line will have eleven"
        " stops and is expected to carry twenty thousand passengers a day once it opens in"
        " three years, the transport department said.",
    ),
}


def _entry(guid: str, link: str, key: str, when: str, *, title: str | None = None) -> Entry:
    headline, text = ARTICLES[key]
    return Entry(
        guid=guid,
        link=link,
        title=title or headline,
        summary=text.split(". ")[0] + ".",
        content_html=None,
        author=None,
        published_at=when,
        updated_at=None,
    )


def _save(store: Store, feed: str, when: str, entries: list[tuple[Entry, str]]) -> None:
    """One refresh of `feed` at `when`; each entry with the article text it links to."""
    drafts = []
    for draft, (entry, key) in zip(drafts_for([e for e, _ in entries]), entries, strict=True):
        text = ARTICLES[key][1]
        article = Article(text=text, html=f"<p>{text}</p>", title=entry.title)
        drafts.append(
            replace(
                draft,
                article=article,
                extract_status="ok",
                fingerprint=dedup.fingerprint(entry.title, text, None),
            )
        )
    save_refresh(store, feed, drafts, ok_record(feed, when), ok_update(when))


def build_newsroom_store(path: Path) -> Path:
    """The demo store at `path` (made, migrated and filled); returns `path`."""
    store = Store.open(str(path))
    store.sync_feeds(FEEDS, now="2026-11-27T06:00:00Z")
    tass, wire = "https://tass.example/", "https://wire.example/world/"
    partner, city = "https://partner.example/", "https://city.example/"
    _save(
        store,
        "tass-en",
        "2026-11-28T07:10:00Z",
        [
            (_entry("t1", tass + "world/csto", "csto", "2026-11-28T07:00:00Z"), "csto"),
            (_entry("t2", tass + "economy/rate", "rate", "2026-11-28T07:05:00Z"), "rate"),
            (_entry("t3", tass + "economy/grain", "grain", "2026-11-28T07:08:00Z"), "grain"),
        ],
    )
    _save(
        store,
        "reuters-world",
        "2026-11-28T08:20:00Z",
        [
            # Its own copy of the CSTO story under its own URL: joined by the headline.
            (_entry("r1", wire + "csto-armenia", "csto", "2026-11-28T08:15:00Z"), "csto"),
            (_entry("r2", wire + "libya-accord", "libya", "2026-11-28T08:18:00Z"), "libya"),
            (_entry("r3", tass + "economy/grain", "grain", "2026-11-28T08:19:00Z"), "grain"),
        ],
    )
    _save(
        store,
        "partner-daily",
        "2026-11-28T09:30:00Z",
        [
            (_entry("p1", wire + "libya-accord?utm_source=rss", "libya", "2026-11-28T09:00:00Z"),
             "libya"),
            (_entry("p2", tass + "economy/grain", "grain", "2026-11-28T09:10:00Z"), "grain"),
            (_entry("p3", partner + "baltic/storm-bert", "storm", "2026-11-28T09:20:00Z"),
             "storm"),
        ],
    )  # fmt: skip
    _save(
        store,
        "city-desk",
        "2026-11-28T10:00:00Z",
        [
            (_entry("c1", city + "tram-airport", "tram", "2026-11-28T09:45:00Z"), "tram"),
            (_entry("c2", partner + "baltic/storm-bert", "storm", "2026-11-28T09:50:00Z"),
             "storm"),
        ],
    )  # fmt: skip
    failed = "2026-11-28T10:05:00Z"
    save_refresh(
        store,
        "city-desk",
        [],
        FetchRecord(
            feed="city-desk",
            started_at=failed,
            url="https://city.example/news.atom",
            outcome="server_error",
            http_status=503,
            error="HTTP 503 Service Unavailable",
        ),
        FeedUpdate(
            state="failing",
            etag=None,
            last_modified=None,
            last_fetched_at=failed,
            next_fetch_at="2026-11-28T10:35:00Z",
            error_count=1,
            last_error="HTTP 503 Service Unavailable",
            last_outcome="server_error",
        ),
    )
    store.close()
    return path
