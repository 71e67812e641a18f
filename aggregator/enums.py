"""The fixed words the store records and the commands accept, as StrEnums: a feed's state,
a fetch's outcome, an item's extraction status, what joined a story, how a listing is sorted,
an entry's fate. Apart from `models` so that what needs only these words (the errors, the
store's reads, the listing commands) does not pay for building every dataclass.
"""

from __future__ import annotations

from enum import StrEnum


class FeedStatus(StrEnum):
    """`feeds.state`: whether the feed is polled, and how it is doing."""

    OK = "ok"
    FAILING = "failing"  # failed lately; retried with backoff
    GONE = "gone"  # the server said 410: never polled again until its URL changes
    DISABLED = "disabled"  # no longer in feeds.yaml; its items are kept
    PAUSED = "paused"  # `paused: true` in feeds.yaml: kept, but not polled until resumed


class Outcome(StrEnum):
    """`fetches.outcome` and what `aggregator fetch` reports for a feed."""

    OK = "ok"
    NOT_MODIFIED = "not_modified"
    LEASED = "leased"  # another process was refreshing it: skipped, no failure
    ERROR = "error"
    CONFIG_ERROR = "config_error"
    NETWORK_ERROR = "network_error"
    TIMEOUT = "timeout"
    TOO_LARGE = "too_large"
    FRAGMENTED = (
        "fragmented"  # a body cut into pieces of a few bytes: costlier to read than it says
    )
    ADDRESS_REFUSED = "address_refused"
    REDIRECT_ERROR = "redirect_error"
    ROBOTS_DISALLOWED = "robots_disallowed"
    GONE = "gone"
    RATE_LIMITED = "rate_limited"
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not_found"
    SERVER_ERROR = "server_error"
    HTTP_ERROR = "http_error"
    PARSE_ERROR = "parse_error"
    NOT_A_FEED = "not_a_feed"
    EXTRACT_FAILED = "extract_failed"
    STORE_ERROR = "store_error"
    INTERNAL_ERROR = "internal_error"


class ExtractStatus(StrEnum):
    """`items.extract_status`: where the item's text came from, or why it has none."""

    OK = "ok"  # extracted from the article page
    FEED = "feed"  # the feed carried the full text
    FAILED = "failed"  # the page could not be fetched or read (retried a few times)
    PENDING = "pending"  # not tried yet (--no-extract)
    SKIPPED = "skipped"  # extraction is off for the feed, or the entry has no link


class Signal(StrEnum):
    """`story_links.signal`: what joined an item to its story."""

    CANONICAL_URL = "canonical_url"
    TITLE = "title"
    MINHASH = "minhash"
    EDITOR = "editor"  # `aggregator stories merge` put it there


class Order(StrEnum):
    """How a listing is sorted, newest first (`--sort`); the time it sorts by is also the
    one `--since` and `--until` bound."""

    FIRST_SEEN = "first_seen"  # when this store first saw it
    LAST_SEEN = "last_seen"  # a story: when a feed last carried it
    PUBLISHED = "published"  # the feed's own date (a story: its lead item's); undated last
    RELEVANCE = "relevance"  # search: best match first


class Fate(StrEnum):
    """What becomes of a feed entry, decided once (stories.identity.fate_of) and applied by
    the store."""

    NEW = "new"  # no item has its URL: a new item, which then joins or founds a story
    SEEN_ELSEWHERE = "seen_elsewhere"  # its item exists (another feed carried it): a sighting
    EDITED = "edited"  # this feed's entry, changed since: its item is updated
    UNCHANGED = "unchanged"  # nothing to do
