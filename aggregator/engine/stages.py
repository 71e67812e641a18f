"""The stages as calls on plain values: each network or CPU stage takes one serialisable
input and returns one serialisable output (`engine.messages` turns them into JSON and back),
so a stage runs in-process, in the local worker pool or, unchanged, behind a queue.

What a stage needs to do its work (the fetcher's connections, the worker pool, the store's
writer) is the executor's, passed beside the message, never inside it.

    poll a feed          FeedPoll       -> PolledFeed       fetch + parse (network, then CPU)
    fetch a page         PageFetch      -> PageBody         network
    extract an article   PageBody + ArticleText -> ExtractedPage   CPU (worker pool), with
                                                            the item's fingerprint
    fingerprint an item  ArticleText    -> Fingerprint|None CPU (worker pool): no page
    commit a batch       RefreshBatch   -> SaveCounts       the one writer
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from aggregator.engine.commit import commit_refresh
from aggregator.engine.pool import Workers
from aggregator.errors import AggregatorError, BodyTooLarge, FetchError
from aggregator.fetch.client import Fetcher
from aggregator.models import (
    Article,
    FeedUpdate,
    FetchRecord,
    FetchResult,
    Fingerprint,
    ItemDraft,
    ParsedFeed,
    SaveCounts,
    Validators,
)
from aggregator.store import Store
from aggregator.stories.dedup import DedupPolicy

log = logging.getLogger(__name__)

HTML_TYPES = ("text/html", "application/xhtml+xml")
PAGE_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.5"
FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9,"
    " text/xml;q=0.9, application/json;q=0.8, */*;q=0.5"
)


@dataclass(frozen=True, slots=True)
class FeedPoll:
    """Poll one feed: where, with what the server said last time."""

    feed: str
    url: str
    validators: Validators
    max_bytes: int
    max_entries: int
    # Distributed mode: the writer's name for this request, which the answer carries back.
    ask_id: str = ""


@dataclass(frozen=True, slots=True)
class PolledFeed:
    """The server's answer (its body dropped once parsed) and the entries it carried."""

    feed: str
    response: FetchResult  # body empty: `size` says how large it was
    size: int
    parsed: ParsedFeed | None  # None: 304 Not Modified


@dataclass(frozen=True, slots=True)
class PageFetch:
    url: str  # canonical: the key two feeds share
    link: str  # as the feed gave it: what is fetched
    max_bytes: int


@dataclass(frozen=True, slots=True)
class PageBody:
    """An article page as fetched: the input of extraction."""

    url: str  # after redirects
    body: bytes
    charset: str | None


@dataclass(frozen=True, slots=True)
class ArticleText:
    """What a fingerprint is made of."""

    title: str | None
    text: str | None
    summary: str | None


@dataclass(frozen=True, slots=True)
class ExtractedPage:
    """A page's article, and the fingerprint of `made_of` with the article's text."""

    article: Article
    fingerprint: Fingerprint | None
    made_of: ArticleText  # title (the article's when the entry had none) and summary


@dataclass(frozen=True, slots=True)
class RefreshBatch:
    """Everything one refresh of one feed commits, in one transaction."""

    feed: str
    drafts: tuple[ItemDraft, ...]
    fetch: FetchRecord
    update: FeedUpdate


async def poll_feed(request: FeedPoll, *, fetcher: Fetcher, workers: Workers) -> PolledFeed:
    response = await fetcher.get(
        request.url,
        validators=request.validators,
        max_bytes=request.max_bytes,
        accept=FEED_ACCEPT,
    )
    parsed = None
    if not response.not_modified:
        parsed = await workers.parse(
            response.body,
            response.final_url,
            response.content_type,
            response.charset,
            request.max_entries,
        )
    return PolledFeed(request.feed, replace(response, body=b""), len(response.body), parsed)


async def fetch_page(request: PageFetch, *, fetcher: Fetcher) -> PageBody:
    """The page, at most `max_bytes` after decompression: the cap on what extraction is handed
    too, as trafilatura needs tens of times a page's size in memory."""
    try:
        page = await fetcher.get_page(request.link, max_bytes=request.max_bytes, accept=PAGE_ACCEPT)
    except BodyTooLarge as exc:
        raise BodyTooLarge(
            f"the page is larger than max_page_size ({_size(request.max_bytes)}) after "
            "decompression, so it was not extracted and the feed's summary is kept; raise "
            "settings.max_page_size to extract pages this large",
            url=exc.url,
        ) from exc
    if page.content_type and page.content_type not in HTML_TYPES:
        raise FetchError(
            f"the link serves {page.content_type}, not an HTML article page", url=page.final_url
        )
    return PageBody(page.final_url, page.body, page.charset)


def _size(n: int) -> str:
    """4 MB, 512 KB, 900 bytes."""
    for unit, size in (("MB", 2**20), ("KB", 2**10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} bytes"


async def extract_fingerprinted(
    page: PageBody, about: ArticleText, *, workers: Workers
) -> ExtractedPage:
    """Extract the page and fingerprint the item with its text, in one job. A fingerprint
    that fails leaves the item a story of its own (logged), not the article lost."""
    article, found = await workers.extract_fingerprinted(
        page.body, page.url, page.charset, about.title, about.summary
    )
    if isinstance(found, AggregatorError):
        log.warning("fingerprinting an item failed: %s", found)
        found = None
    made_of = ArticleText(about.title or article.title, article.text, about.summary)
    return ExtractedPage(article, found, made_of)


async def fingerprint_article(text: ArticleText, *, workers: Workers) -> Fingerprint | None:
    return await workers.fingerprint(text.title, text.text, text.summary)


def commit_batch(batch: RefreshBatch, *, store: Store, dedup: DedupPolicy) -> SaveCounts:
    return commit_refresh(store, batch.feed, batch.drafts, batch.fetch, batch.update, dedup=dedup)
