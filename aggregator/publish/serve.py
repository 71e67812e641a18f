"""`aggregator serve`: the store, read-only, in Datasette, and live feeds for republishing
on the same server: `/feeds/stories.atom`, `.rss` and `.json`.

The feeds are a Datasette plugin (`register_routes`) registered by this module, not a second
ASGI app in front of Datasette. One app means one router, one server and one set of headers
(Datasette's `Vary`, its 404 page, its `base_url`), and the plugin is listed at `/-/plugins`
like any other. Datasette's `Request` already gives the URL as requested (scheme, host, path,
query) for the feed's self link, and its `Response` is all a feed needs. What a separate app
would have bought, independence from Datasette's internals, is small here: the plugin uses only
the documented `register_routes` hook, `Request` and `Response`, and everything about a feed
(parsing the filter, rendering, validators) is plain code below that never touches Datasette.

Nothing here writes to the store. Datasette opens the file with `mode=ro` connections (not
`immutable=1`: the daemon keeps writing, and an immutable open would neither see the WAL's
commits nor be safe against pages changing under it) and no canned query writes. The feeds
read through `aggregator.store.open_reader`, one read-only connection per worker thread, so
rendering never blocks the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import socket
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import parse_qs

from aggregator.enums import Order
from aggregator.errors import StoreError, UsageError
from aggregator.models import Publishing, StoryFilter
from aggregator.publish.serve_metadata import DATABASE, FEED_FORMATS, metadata
from aggregator.publish.story_feed import StoryFeed, publish_link, story_feed
from aggregator.store import Reader, harden_reader, open_reader
from aggregator.times import parse_iso, since_to_iso, utc_now

FEED_ROUTE = r"^/feeds/stories\.(?P<format>" + "|".join(FEED_FORMATS) + r")$"
FILTERS = ("tag", "feed", "since", "until", "sort", "min_sources", "limit")
# What ?sort= orders a feed by, latest first, as `export --sort` does.
SORTS = (Order.LAST_SEEN, Order.FIRST_SEEN, Order.PUBLISHED)
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_SOURCES = 1000
CACHED_FEEDS = 16  # per worker thread
PLUGIN_NAME = "aggregator-feeds"
# Datasette settings: facet suggestions run a query per column on every table page, which a
# store of a million items cannot afford; an editor can still ask for a facet.
DATASETTE_SETTINGS = {"suggest_facets": False}

_F = TypeVar("_F", bound=Callable[..., Any])


class BadFeedRequest(UsageError):
    """A served feed's query string asks for something that cannot be answered (400)."""


# -- the request: a filter from the query string ---------------------------------------------


def story_filter(query_string: str, *, now: datetime) -> StoryFilter:
    """`?tag=&feed=&since=&until=&sort=&min_sources=&limit=` as a StoryFilter. Anything
    unknown, repeated, empty or out of range is a BadFeedRequest naming it: never a feed of
    something else, nor an empty one for a window that holds nothing."""
    given = parse_qs(query_string, keep_blank_values=True)
    unknown = sorted(set(given) - set(FILTERS))
    if unknown:
        raise BadFeedRequest(
            f"unknown parameter {', '.join(f'?{name}=' for name in unknown)}; a feed takes"
            f" {', '.join(f'?{name}=' for name in FILTERS)}"
        )
    values: dict[str, str] = {}
    for name, found in given.items():
        if len(found) > 1:
            raise BadFeedRequest(f"?{name}= is given {len(found)} times; give it once")
        if not found[0].strip():
            raise BadFeedRequest(f"?{name}= is empty; leave it out to not filter by it")
        values[name] = found[0].strip()
    since, until = _time("since", values, now), _time("until", values, now)
    if since is not None and until is not None and until <= since:
        raise BadFeedRequest(
            f"?until={values['until']} ({until}) is not after ?since={values['since']} ({since}):"
            " nothing can be in between"
        )
    sort = values.get("sort", str(Order.LAST_SEEN))
    if sort not in SORTS:
        raise BadFeedRequest(f"?sort= must be one of {', '.join(SORTS)}, not {sort!r}")
    return StoryFilter(
        since=since,
        until=until,
        sort=Order(sort),
        feed=values.get("feed"),
        tag=values.get("tag"),
        min_sources=_whole("min_sources", values.get("min_sources"), 1, MAX_SOURCES, 1),
        limit=_whole("limit", values.get("limit"), 1, MAX_LIMIT, DEFAULT_LIMIT),
    )


# A query string's "+" reads as a space: "T09:00+02:00" arrives as "T09:00 02:00".
_OFFSET_AS_SPACE = re.compile(r"(T\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d(?::?\d\d)?)$")


def _time(name: str, values: Mapping[str, str], now: datetime) -> str | None:
    if name not in values:
        return None
    text = _OFFSET_AS_SPACE.sub(r"\1+\2", values[name])
    try:
        return since_to_iso(text, now=now)
    except ValueError as exc:
        raise BadFeedRequest(f"?{name}=: {exc}") from None


def _whole(name: str, text: str | None, low: int, high: int, default: int) -> int:
    if text is None:
        return default
    number = int(text) if text.isascii() and text.isdigit() else None
    if number is None or not low <= number <= high:
        raise BadFeedRequest(f"?{name}= must be a whole number from {low} to {high}, not {text!r}")
    return number


# -- the answer: validators and conditional requests ----------------------------------------


def entity_tag(body: bytes) -> str:
    """A strong ETag: the body's hash (the same stories render the same bytes)."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def http_date(iso: str) -> str:
    """A stored ISO 8601 UTC time as an HTTP date (Last-Modified)."""
    return format_datetime(parse_iso(iso).astimezone(UTC), usegmt=True)


def not_modified(headers: Mapping[str, str], *, etag: str, updated: str) -> bool:
    """Whether a conditional GET can be answered 304 (RFC 9110 13.2.2): If-None-Match when
    given (weak comparison), else If-Modified-Since against the feed's latest change."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return "*" in tags or etag in tags
    if_modified_since = headers.get("if-modified-since")
    if not if_modified_since:
        return False
    try:
        since = parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError, IndexError):
        return False  # an unreadable date is ignored, as the RFC says
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return parse_iso(updated).replace(microsecond=0) <= since


# -- the feeds ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rendered:
    """A feed as served: its bytes and validators."""

    body: bytes
    etag: str
    updated: str  # ISO 8601 UTC (Last-Modified)
    media_type: str

    @classmethod
    def of(cls, feed: StoryFeed) -> Rendered:
        body = feed.body.encode("utf-8")
        return cls(body, entity_tag(body), feed.updated, feed.media_type)


class LiveFeeds:
    """Answers `/feeds/stories.{atom,rss,json}` from the store, through `open_reader`."""

    def __init__(self, db_path: str, publishing: Publishing, *, threads: int = 4) -> None:
        self.db_path = db_path
        self.publishing = publishing
        self._local = threading.local()
        self._readers: list[Reader] = []
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="aggregator-feeds")

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        with self._lock:
            for reader in self._readers:
                reader.close()
            self._readers.clear()

    def _reader(self) -> Reader:
        """This worker thread's own read-only connection, opened on first use."""
        reader: Reader | None = getattr(self._local, "reader", None)
        if reader is None:
            reader = open_reader(self.db_path)
            self._local.reader = reader
            with self._lock:
                self._readers.append(reader)
        return reader

    def render(self, wanted: StoryFilter, fmt: str, requested_url: str) -> Rendered:
        """The feed; its self link is settings.publish.link, else the URL as requested.

        The same feed is rendered again only when the store has changed since: each worker
        thread keeps its last few feeds with the store's `PRAGMA data_version` (which moves
        whenever another connection commits), so a poll of an unchanged feed, a 304 above
        all, costs a lookup instead of a rendering."""
        link = publish_link(self.publishing.link or requested_url, None)
        reader = self._reader()
        version = int(reader.query("PRAGMA data_version")[0]["data_version"])
        cache: OrderedDict[tuple[StoryFilter, str, str], tuple[int, Rendered]] = self._cache()
        key = (wanted, fmt, link)
        if (hit := cache.get(key)) is not None and hit[0] == version:
            cache.move_to_end(key)
            return hit[1]
        feed = story_feed(reader, wanted, fmt, link=link, title=self.publishing.title)
        rendered = Rendered.of(feed)
        cache[key] = (version, rendered)
        while len(cache) > CACHED_FEEDS:
            cache.popitem(last=False)
        return rendered

    def _cache(self) -> OrderedDict[tuple[StoryFilter, str, str], tuple[int, Rendered]]:
        cache = getattr(self._local, "cache", None)
        if cache is None:
            cache = self._local.cache = OrderedDict()
        return cast(OrderedDict[tuple[StoryFilter, str, str], tuple[int, Rendered]], cache)

    async def answer(
        self, method: str, fmt: str, url: str, query_string: str, headers: Mapping[str, str]
    ) -> tuple[int, dict[str, str], bytes, str]:
        """(status, headers, body, content type) for one request."""
        if method not in ("GET", "HEAD"):
            return 405, {"allow": "GET, HEAD"}, b"a feed is read with GET\n", _TEXT
        try:
            wanted = story_filter(query_string, now=utc_now())
            loop = asyncio.get_running_loop()
            feed = await loop.run_in_executor(self._executor, self.render, wanted, fmt, url)
        except UsageError as exc:  # unknown tag or feed (with suggestions), a bad filter
            return 400, {}, f"{exc}\n".encode(), _TEXT
        except StoreError as exc:
            return 503, {"retry-after": "10"}, f"{exc}\n".encode(), _TEXT
        validators = {
            "etag": feed.etag,
            "last-modified": http_date(feed.updated),
            # Caches may keep it but must ask again: a 304 costs the reader nothing.
            "cache-control": "no-cache",
        }
        if not_modified(headers, etag=feed.etag, updated=feed.updated):
            return 304, validators, b"", feed.media_type
        validators["content-length"] = str(len(feed.body))
        return 200, validators, b"" if method == "HEAD" else feed.body, feed.media_type


_TEXT = "text/plain; charset=utf-8"
_STORED_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def _hookimpl(func: _F) -> _F:
    """datasette.hookimpl, typed (Datasette has no type hints)."""
    from datasette import hookimpl

    return cast(_F, hookimpl(func))


class FeedsPlugin:
    """The Datasette plugin: the feed routes on Datasette's router."""

    def __init__(self, feeds: LiveFeeds) -> None:
        self.__name__ = PLUGIN_NAME  # how Datasette lists a plugin (/-/plugins)
        self.feeds = feeds

    @_hookimpl
    def register_routes(self) -> list[tuple[str, Callable[..., Any]]]:
        return [(FEED_ROUTE, self.feed_view)]

    @_hookimpl
    def prepare_connection(self, conn: Any, database: str) -> None:
        """The SQL box runs anyone's SQL: the same refusals as `aggregator query`."""
        if database == DATABASE:
            harden_reader(conn)

    @_hookimpl
    def render_cell(self, value: Any, column: str, table: str | None, database: str) -> Any:
        """In query results, a story's number links to the story query, an item's to its row
        (table pages link their foreign keys already), and times read as the CLI shows them.
        Only the HTML changes: .json and .csv keep the stored values."""
        from markupsafe import Markup  # Jinja's, which Datasette renders with

        if database != DATABASE or table is not None:
            return None
        if column.endswith("_at") and isinstance(value, str) and _STORED_TIME.match(value):
            # Checked by the pattern: digits, dashes and a colon only.
            return Markup(f'<span style="white-space: nowrap">{value[:10]} {value[11:16]}</span>')
        if type(value) is not int:
            return None
        if column == "story":
            return Markup(f'<a href="/{DATABASE}/story?story={value}">{value}</a>')
        if column in ("item", "matched_item"):
            return Markup(f'<a href="/{DATABASE}/items/{value}">{value}</a>')
        return None

    async def feed_view(self, request: Any) -> Any:
        from datasette.utils.asgi import Response

        status, headers, body, content_type = await self.feeds.answer(
            request.method,
            request.url_vars["format"],
            request.url,
            request.query_string,
            request.headers,
        )
        return Response(body, status=status, headers=headers, content_type=content_type)


# -- the server ---------------------------------------------------------------------------------


def check_store(db_path: str) -> None:
    """A clear error now, rather than on the first request, when the file is no store."""
    reader = open_reader(db_path)  # a missing file: StoreError saying what to do
    try:
        reader.query("SELECT 1 FROM stories, feed_tags LIMIT 1")
    except StoreError as exc:
        raise StoreError(
            f"{db_path} is not a store this version of aggregator can serve ({exc});"
            " run `aggregator fetch` on it first"
        ) from None
    finally:
        reader.close()


def build_datasette(db_path: str, feeds: LiveFeeds) -> Any:
    """Datasette over the store (read-only, under the name `aggregator`) with the project's
    metadata, canned queries and the feed routes."""
    from datasette.app import Datasette
    from datasette.database import Database
    from datasette.plugins import pm

    if pm.has_plugin(PLUGIN_NAME):
        pm.unregister(name=PLUGIN_NAME)
    pm.register(FeedsPlugin(feeds), name=PLUGIN_NAME)
    datasette = Datasette(files=[], metadata=metadata(), settings=DATASETTE_SETTINGS)
    datasette.remove_database("_memory")
    path = str(Path(db_path).resolve())
    datasette.add_database(Database(datasette, path=path, is_mutable=True), name=DATABASE)
    return datasette


def listen(host: str, port: int) -> socket.socket:
    """The listening socket; a refusal (port taken, no such address) is a UsageError."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.create_server((host, port), family=family)
        # Inherited by every accepted connection (Linux). Without it a chunked answer on a
        # kept-alive connection (all of Datasette's pages) waits for the client's delayed ACK
        # before its last chunk leaves: +40 ms (benchmarks/serve.py).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def serve(db_path: str, *, host: str, port: int, publishing: Publishing) -> None:
    """Serve until SIGINT or SIGTERM."""
    import uvicorn

    check_store(db_path)
    if publishing.link is not None:
        publish_link(publishing.link, None)  # a bad settings.publish.link fails now
    sock = listen(host, port)
    feeds = LiveFeeds(db_path, publishing)
    try:
        datasette = build_datasette(db_path, feeds)
        bound = sock.getsockname()
        where = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
        print(
            f"aggregator: serving {db_path} read-only at http://{where}:{bound[1]}/"
            f" (live feeds: /feeds/stories.atom, .rss, .json)",
            file=sys.stderr,
            flush=True,
        )

        async def run() -> None:
            await datasette.invoke_startup()
            config = uvicorn.Config(datasette.app(), log_level="warning", lifespan="on")
            await uvicorn.Server(config).serve(sockets=[sock])

        asyncio.run(run())
    finally:
        sock.close()
        feeds.close()
