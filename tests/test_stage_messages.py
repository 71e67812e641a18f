"""Every stage's input and output goes over a queue as JSON and comes back equal."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from aggregator.engine.messages import decode, encode
from aggregator.engine.stages import (
    ArticleText,
    FeedPoll,
    PageBody,
    PageFetch,
    PolledFeed,
    RefreshBatch,
)
from aggregator.extract.article import extract_article
from aggregator.models import (
    FeedHints,
    FeedUpdate,
    FetchRecord,
    FetchResult,
    Fingerprint,
    Validators,
)
from aggregator.parse.feed import parse_feed
from aggregator.stories import dedup
from aggregator.stories.identity import drafts_for

FEED = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Wire — «новости»</title><link>https://wire.example/</link>
<ttl>15</ttl><skipHours><hour>3</hour></skipHours>
<item><title>Talks resume in Geneva</title><link>https://wire.example/a?id=1</link>
<guid>wire-1</guid><description>Delegations met on &lt;b&gt;Monday&lt;/b&gt;.</description>
<category>politics</category><pubDate>Mon, 30 Nov 2026 10:00:00 GMT</pubDate></item>
<item><title>Sans lien</title><description>No link at all.</description></item>
</channel></rss>""".encode()

PAGE = (
    "<html><head><meta charset='windows-1251'><title>Переговоры</title></head><body><article>"
    + "".join(
        f"<p>Делегации встретились в Женеве в понедельник, раунд {i}: стороны обсудили"
        f" прекращение огня, обмен пленными и гуманитарные коридоры для {i * 100} жителей.</p>"
        for i in range(12)
    )
    + "</article></body></html>"
).encode("cp1251")

TEXT = " ".join(f"word{i} of the wire copy about the talks in Geneva" for i in range(40))


def round_trip(value: object) -> object:
    text = encode(value)
    json.loads(text)  # plain JSON, nothing Python-specific
    return decode(type(value), text)


def test_poll_request_and_answer() -> None:
    poll = FeedPoll("wire", "https://wire.example/rss", Validators('"abc"', None), 2**20, 500)
    assert round_trip(poll) == poll
    parsed = parse_feed(
        FEED, url="https://wire.example/rss", content_type="application/rss+xml", charset=None
    )
    response = FetchResult(
        final_url="https://wire.example/rss",
        status=200,
        body=b"",
        content_type="application/rss+xml",
        charset="utf-8",
        etag='"abc"',
        last_modified=None,
        headers=(("cache-control", "max-age=60"),),
        elapsed_ms=12,
    )
    polled = PolledFeed("wire", response, len(FEED), parsed)
    assert round_trip(polled) == polled
    assert round_trip(replace(polled, parsed=None)) == replace(polled, parsed=None)


def test_page_extraction_and_fingerprint_messages() -> None:
    request = PageFetch("https://wire.example/a", "https://wire.example/a?utm=x", 10 * 2**20)
    assert round_trip(request) == request
    page = PageBody("https://wire.example/a", PAGE + bytes(range(256)), "windows-1251")
    assert round_trip(page) == page  # arbitrary bytes survive
    article = extract_article(PAGE, url=page.url, charset=page.charset)
    assert round_trip(article) == article
    text = ArticleText("Talks", TEXT, None)
    assert round_trip(text) == text
    fingerprint = dedup.fingerprint(text.title, text.text, text.summary)
    assert isinstance(fingerprint, Fingerprint)
    assert round_trip(fingerprint) == fingerprint


def test_a_commit_batch_with_drafts_fates_and_articles() -> None:
    parsed = parse_feed(FEED, url="https://wire.example/rss", content_type=None, charset=None)
    drafts = drafts_for(parsed.entries)
    article = extract_article(PAGE, url="https://wire.example/a", charset="windows-1251")
    drafts[0] = replace(
        drafts[0],
        article=article,
        extract_status="ok",
        fingerprint=dedup.fingerprint(None, TEXT, None),
    )
    record = FetchRecord("wire", "2026-11-30T10:00:00Z", "https://wire.example/rss", "ok", 200)
    update = FeedUpdate(
        "ok", '"abc"', None, "2026-11-30T10:00:00Z", None, 0, None, "ok",
        hints=FeedHints(ttl_minutes=15, skip_hours=(3,)),
    )  # fmt: skip
    batch = RefreshBatch("wire", tuple(drafts), record, update)
    assert round_trip(batch) == batch


def test_an_ambiguous_type_is_refused_not_guessed() -> None:
    from dataclasses import dataclass

    @dataclass
    class Odd:
        value: int | str

    with pytest.raises(TypeError, match="more than one type"):
        decode(Odd, '{"value": 1}')
