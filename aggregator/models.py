"""Plain, frozen data passed between the pipeline's stages.

Everything here is picklable so the CPU-heavy stages (parse, extract) can run in worker
processes and hand their results back unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from aggregator import enums

# The StrEnums are defined in enums.py, which imports without building the dataclasses
# below; models names them too.
ExtractStatus = enums.ExtractStatus
Fate = enums.Fate
FeedStatus = enums.FeedStatus
Order = enums.Order
Outcome = enums.Outcome
Signal = enums.Signal


@dataclass(frozen=True, slots=True)
class Publishing:
    """`settings.publish`: how exported and served feeds present themselves."""

    link: str | None = None  # the address the feed is published at (Atom rel="self")
    title: str = "aggregator: latest stories"


@dataclass(frozen=True, slots=True)
class Settings:
    """The `settings:` block of feeds.yaml, with defaults filled in."""

    database: str = "data/aggregator.db"
    interval_s: int = 15 * 60
    extract: bool = True
    user_agent: str = "aggregator/0.1 (+https://example.org/contact)"
    # Non-public networks feeds may live on (fetch/address_guard.py): CIDRs as config
    # normalised them ("10.0.0.0/8", "192.168.1.20/32"); allow_private_networks adds every
    # private range. Link-local and metadata addresses only by their exact /32 or /128.
    allow_private_networks: bool = False
    allow_networks: tuple[str, ...] = ()
    timeout_s: float = 30.0  # total deadline for one request, body included
    connect_timeout_s: float = 10.0
    max_feed_bytes: int = 20 * 1024 * 1024  # counted after decompression
    # An article page, counted after decompression: no more is downloaded, and no more is
    # handed to extraction (trafilatura needs ~25 to 110 times a page's size in memory).
    max_page_bytes: int = 4 * 1024 * 1024
    max_redirects: int = 5
    max_entries: int = 500  # per feed and fetch; wire feeds rarely carry more than 100
    concurrency: int = 16  # requests in flight across all hosts
    per_host: int = 2  # requests in flight to one host
    host_gap_s: float = 0.5  # least time between the starts of two requests to one host
    # Near-duplicates (dedup.py); measured in benchmarks/dedup, see benchmarks/README.md.
    dedup_threshold: float = 0.4  # MinHash Jaccard estimate between extracted texts
    dedup_summary_threshold: float = 0.6  # between title + summary when a text is missing
    title_confirm_threshold: float = 0.3  # text similarity that confirms a headline match
    dedup_window_s: int = 3 * 86400  # copies first seen further apart are never compared
    # The daemon's schedule (see schedule.py); `interval_s` is where a new feed starts.
    min_interval_s: int = 5 * 60
    max_interval_s: int = 24 * 60 * 60
    max_backoff_s: int = 24 * 60 * 60  # failing feeds are retried at least this often
    retention_s: int | None = None  # None: keep every item forever
    tick_s: float = 5.0  # how often the daemon looks for due feeds
    batch: int = 32  # feeds the daemon refreshes at once, the most overdue first
    stop_timeout_s: float = 10.0  # on SIGTERM, how long in-flight feeds may take to finish
    # A worker process holding more after a job is replaced (engine/pool.py); ~65 MB at rest.
    worker_memory_limit_bytes: int = 400 * 1024 * 1024
    # A whole refresh of one feed, its article pages included: past it the entries are
    # committed and the pages left for the next run, so one slow site cannot hold a feed.
    feed_deadline_s: float = 300.0
    # The distributed mode (engine/distributed.py): Dramatiq over this Redis, e.g.
    # "redis://queue.example:6379/0"; None runs everything in this process.
    broker: str | None = None
    publish: Publishing = Publishing()


@dataclass(frozen=True, slots=True)
class FeedConfig:
    """One feed as the user configured it."""

    name: str
    url: str
    interval_s: int | None = None  # None: the settings' default
    priority: int = 0
    tags: tuple[str, ...] = ()
    extract: bool | None = None  # None: the settings' default
    line: int = 0  # where in feeds.yaml it was defined, for messages
    paused: bool = False  # `paused: true`: configured, but neither scheduled nor fetched


@dataclass(frozen=True, slots=True)
class Config:
    settings: Settings
    feeds: tuple[FeedConfig, ...]
    path: str = "feeds.yaml"

    def feed(self, name: str) -> FeedConfig | None:
        return next((f for f in self.feeds if f.name == name), None)


@dataclass(frozen=True, slots=True)
class Validators:
    """What a conditional GET sends back to the server."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True, slots=True)
class FetchResult:
    """A completed HTTP exchange (any status the server gave, after redirects)."""

    final_url: str  # after redirects
    status: int
    body: bytes  # decompressed; empty on 304
    content_type: str | None  # media type without parameters, lower-case
    charset: str | None  # from the Content-Type header, if declared
    etag: str | None
    last_modified: str | None
    # 301/308 hops seen on the way: the last permanent target, for telling the user
    permanent_redirect: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    elapsed_ms: int = 0

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True, slots=True)
class Entry:
    """One entry of a feed, normalised across RSS, Atom and JSON Feed."""

    guid: str | None  # as the feed gave it
    link: str | None  # absolute, resolved against the feed's URL
    title: str
    summary: str  # plain text, no tag markup (escaped HTML decoded: text.markup_free_text)
    content_html: str | None  # the feed's full content, if it carries one (unsanitised)
    author: str | None
    published_at: str | None  # ISO 8601 UTC
    updated_at: str | None  # ISO 8601 UTC
    tags: tuple[str, ...] = ()
    image: str | None = None
    # The summary as the feed gave it, when that was HTML: sanitize.safe_html of it, relative
    # URLs resolved against the entry's link (else the feed's URL). None for plain summaries.
    summary_html: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    title: str | None
    site_url: str | None
    entries: tuple[Entry, ...]
    warning: str | None = None  # a recoverable problem (ill-formed XML, mislabelled charset)
    version: str = ""  # rss20, atom10, json11, ...
    ttl_minutes: int | None = None  # RSS <ttl>: a hint for the scheduler
    total_entries: int = 0  # before the max_entries cap
    # sy:updatePeriod / sy:updateFrequency as seconds between updates
    update_period_s: int | None = None
    skip_hours: tuple[int, ...] = ()  # RSS <skipHours>: UTC hours not to poll
    skip_days: tuple[str, ...] = ()  # RSS <skipDays>: "Monday", ...


@dataclass(frozen=True, slots=True)
class Article:
    """What extraction found on an article page."""

    text: str
    html: str  # sanitised rendering of the body, safe to republish
    title: str | None = None
    author: str | None = None
    published_at: str | None = None  # ISO 8601 UTC (date only pages give midnight)
    site_name: str | None = None
    language: str | None = None
    image: str | None = None
    canonical_url: str | None = None  # as the page declares it


@dataclass(frozen=True, slots=True)
class FeedOutcome:
    """What one refresh of one feed did, for the CLI's summary and the daemon's logs."""

    feed: str
    outcome: str  # see errors.Outcome
    http_status: int | None = None
    entries: int = 0
    new_items: int = 0
    updated_items: int = 0
    pages_fetched: int = 0
    pages_failed: int = 0  # of pages_fetched: no article (the item keeps the feed's summary)
    error: str | None = None
    warning: str | None = None
    duration_ms: int = 0
    fetch_ms: int = 0  # the feed request alone, of duration_ms

    @property
    def failed(self) -> bool:
        return self.error is not None


@dataclass(frozen=True, slots=True)
class FeedState:
    """What the store remembers about a feed between fetches."""

    name: str
    url: str
    state: FeedStatus = FeedStatus.OK
    etag: str | None = None
    last_modified: str | None = None
    error_count: int = 0
    permanent_url: str | None = None
    hints: FeedHints | None = None  # as recorded by the last 200


@dataclass(frozen=True, slots=True)
class FeedHistory:
    """What the store has seen of a feed: the inputs of `schedule.next_due` and `is_stale`."""

    state: FeedStatus = FeedStatus.OK  # after the refresh being scheduled
    error_count: int = 0  # failures in a row, that refresh included
    interval_s: int | None = None  # the user's per-feed override from feeds.yaml
    added_at: datetime | None = None
    # The entries of a feed's first fetch are its backlog, not its rhythm: the rate of new
    # entries is measured from then on.
    first_seen_at: datetime | None = None
    last_new_at: datetime | None = None  # the latest entry seen for the first time
    new_entries: int = 0  # entries first seen after the first fetch
    recent_entries: int = 0  # of those, within the policy's rate window
    retry_after_until: datetime | None = None  # the server asked us not to come back before


@dataclass(frozen=True, slots=True)
class KnownEntries:
    """What the store already has of a feed's entries: the inputs of `fate_of`."""

    hashes: dict[str, str] = field(default_factory=dict)  # this feed's entry key -> entry_hash
    urls: frozenset[str] = frozenset()  # canonical URLs already stored as items


@dataclass(frozen=True, slots=True)
class ItemDraft:
    """One feed entry on its way into the store, with whatever extraction found."""

    entry: Entry
    key: str  # the entry's identity in its feed: GUID, else canonical link, else content hash
    url: str | None  # canonical URL of the article, if the entry has a link
    entry_hash: str  # changes when the feed edits the entry
    article: Article | None = None
    extract_status: ExtractStatus = ExtractStatus.PENDING
    extract_error: str | None = None
    fingerprint: Fingerprint | None = None  # for near-duplicate detection, made by a worker
    fate: Fate = Fate.NEW

    def with_fate(self, fate: Fate) -> ItemDraft:
        return replace(self, fate=fate)


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What near-duplicate detection compares (dedup.py): a MinHash signature of the words."""

    source: str  # 'text': the extracted article; 'summary': title + summary, no text known
    signature: bytes  # dedup.NUM_PERM little-endian uint32
    bands: tuple[int, ...]  # LSH band keys, signed 64-bit
    shingles: int  # distinct word shingles summarised
    version: int  # dedup.FINGERPRINT_VERSION that made it


@dataclass(frozen=True, slots=True)
class Copy:
    """One item as near-duplicate detection sees it."""

    item_id: int
    first_seen_at: str
    url: str | None = None  # canonical URL of the item
    declared: str | None = None  # the canonical URL its page declares (dedup.declared_canonical)
    title_key: str | None = None
    fingerprint: Fingerprint | None = None
    story_id: int | None = None
    feeds: frozenset[str] = frozenset()  # the feeds that carried it (stored: its story)


@dataclass(frozen=True, slots=True)
class Match:
    """Why a copy joins a story: the signal that matched and its score (1.0 for URLs)."""

    signal: Signal
    score: float


@dataclass(frozen=True, slots=True)
class FetchRecord:
    """One row of `fetches`: what a refresh attempt did."""

    feed: str
    started_at: str
    url: str
    outcome: str
    http_status: int | None = None
    duration_ms: int = 0
    bytes: int = 0
    entries: int = 0
    error: str | None = None
    warning: str | None = None


@dataclass(frozen=True, slots=True)
class FeedHints:
    """What the server and the feed say about how often to come back (for the scheduler)."""

    max_age_s: int | None = None  # Cache-Control max-age, else Expires - now
    ttl_minutes: int | None = None
    update_period_s: int | None = None
    skip_hours: tuple[int, ...] = ()
    skip_days: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FeedUpdate:
    """The feed's row after a refresh; written in the same transaction as its items."""

    state: str
    etag: str | None
    last_modified: str | None
    last_fetched_at: str
    next_fetch_at: str | None  # None: never again on its own (gone)
    error_count: int
    last_error: str | None
    last_outcome: str
    last_warning: str | None = None
    last_success_at: str | None = None
    permanent_url: str | None = None
    title: str | None = None
    site_url: str | None = None
    hints: FeedHints | None = None  # None: keep what was recorded before
    retry_after_until: str | None = None  # the server asked us not to come back before this


@dataclass(frozen=True, slots=True)
class SaveCounts:
    new_items: int = 0
    updated_items: int = 0


@dataclass(frozen=True, slots=True)
class StoryFilter:
    """Which stories (or items) a listing, an export or a served feed shows."""

    since: str | None = None  # ISO 8601 UTC: carried at or after
    feed: str | None = None  # carried by this feed
    tag: str | None = None  # carried by a feed with this tag
    min_sources: int = 1  # carried by at least this many feeds
    limit: int = 50
    until: str | None = None  # ISO 8601 UTC: before
    sort: Order = Order.LAST_SEEN  # the time `since` and `until` bound, latest first


@dataclass(frozen=True, slots=True)
class Source:
    """One feed's copy of a story: who carried it, where it links, when we first saw it."""

    feed: str
    link: str | None
    seen_at: str


@dataclass(frozen=True, slots=True)
class StoryEntry:
    """A story as republished: its lead item's fields, its sources earliest first, and the
    tags of the feeds that carried it. Fields are as stored: publishing sanitises them."""

    story_id: int
    title: str
    url: str | None
    summary: str | None  # plain text
    summary_html: str | None
    text: str | None  # the lead item's extracted text
    html: str | None  # the lead item's extracted body (sanitised when stored)
    author: str | None
    published_at: str | None
    first_seen_at: str
    last_seen_at: str
    sources: tuple[Source, ...] = ()
    tags: tuple[str, ...] = ()
    image: str | None = None
