"""One route per way a source can misbehave, served beside a good feed in the same run.

Shared by tests/test_hostile.py (which asserts outcomes and bounds) and
benchmarks/hostile.py (which reports each case's outcome, time and peak memory).
"""

from __future__ import annotations

import functools
import gzip
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from feeds_builder import rss
from localserver import LocalServer, RecordedRequest, ResponseWriter

MB = 1024 * 1024
# The settings every hostile run uses: small caps so the bounds are quick to hit.
SETTINGS = (
    "settings:\n  extract: false\n  timeout: 3s\n  max_feed_size: 1MB\n  max_redirects: 3\n"
    "  allow_private_networks: false\n  host_gap: 0\n"
    # Every case is on the one test host; in the field they are on as many hosts.
    "  per_host: 8\n"
)
GOOD_ITEMS = 20


@dataclass(frozen=True)
class Case:
    name: str
    outcome: str
    words: str  # must appear in the message shown to the user ("" when it succeeds)
    install: Callable[[LocalServer, str], None]  # (server, path)
    extract: bool = False  # fetch the entries' article pages (the cases about pages)


def _headers(writer: ResponseWriter, content_type: str = "application/rss+xml") -> None:
    writer.send_status(200)
    writer.send_header("Content-Type", content_type)
    writer.end_headers()


def _slow_drip(server: LocalServer, path: str) -> None:
    def drip(request: RecordedRequest, writer: ResponseWriter) -> None:
        _headers(writer)
        while True:  # a byte at a time resets any read timeout; only a deadline stops it
            writer.write(b" ")
            writer.flush()
            time.sleep(0.1)

    server.add_handler(path, drip)


def _endless(server: LocalServer, path: str) -> None:
    def endless(request: RecordedRequest, writer: ResponseWriter) -> None:
        _headers(writer)
        writer.write(b'<?xml version="1.0"?><rss version="2.0"><channel>')
        while True:
            writer.write(b"<item><title>again</title></item>" * 2048)

    server.add_handler(path, endless)


@functools.cache
def _bomb() -> bytes:
    return gzip.compress(b"\0" * (64 * MB), compresslevel=9)  # ~64 KB on the wire


def _gzip_bomb(server: LocalServer, path: str) -> None:
    server.add(path, _bomb(), headers={"Content-Encoding": "gzip"})


ENTITY_BOMB = (
    '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa">'
    + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
    + ']><rss version="2.0"><channel><title>&j;</title><item><title>&j;</title>'
    "<link>https://example.org/x</link></item></channel></rss>"
)
EXTERNAL_ENTITY = (
    '<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    '<rss version="2.0"><channel><title>t</title><item><title>&x;</title>'
    "<link>https://example.org/y</link></item></channel></rss>"
)
RUSSIAN = "Новости ТАСС: переговоры продолжаются"  # noqa: RUF001  (Cyrillic on purpose)


def _static(body: bytes | str, **kwargs: object) -> Callable[[LocalServer, str], None]:
    def install(server: LocalServer, path: str) -> None:
        server.add(path, body, **kwargs)  # type: ignore[arg-type]

    return install


def _redirect_to(target: str, status: int = 302) -> Callable[[LocalServer, str], None]:
    return lambda server, path: server.redirect(path, target, status)


def _redirect_chain(server: LocalServer, path: str) -> None:
    server.redirect(path, path + "/1", 301)
    server.redirect(path + "/1", path + "/2", 301)
    server.add(path + "/2", rss([{"title": "moved", "link": "https://example.org/moved"}]))


def _redirect_loop(server: LocalServer, path: str) -> None:
    server.redirect(path, path + "/b", 302)
    server.redirect(path + "/b", path, 302)


def _surrogate_entry(server: LocalServer, path: str) -> None:
    """A JSON Feed whose one item names half a character (valid JSON, no valid UTF-8)."""
    items = [
        {"id": f"s{n}", "title": "bad \ud800 title" if n == 2 else f"Fine {n}",
         "url": f"https://example.org/s/{n}"}
        for n in range(5)
    ]  # fmt: skip
    body = json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": items})
    server.add(path, body, content_type="application/feed+json")


def _megabyte_author(server: LocalServer, path: str) -> None:
    """An author 300 KB long: feedparser's e-mail search in it takes time squared."""
    body = rss([{"title": "Long author", "link": "https://example.org/a"}]).replace(
        "<title>Long author</title>", f"<title>Long author</title><author>{'x' * 300_000}</author>"
    )
    server.add(path, body)


def _one_byte_chunks(server: LocalServer, path: str) -> None:
    """More than max_feed_size in one-byte chunks: memory must follow the bytes."""

    def chunks(request: RecordedRequest, writer: ResponseWriter) -> None:
        writer.send_status(200)
        writer.send_header("Content-Type", "application/rss+xml")
        writer.send_header("Transfer-Encoding", "chunked")
        writer.end_headers()
        # Many chunks to a write: the client still gets one-byte chunks, and this thread
        # does not starve the other cases' (and the client's) threads.
        for _ in range(2 * MB // 4096):
            writer.write(b"1\r\nx\r\n" * 4096)
        writer.write(b"0\r\n\r\n")

    server.add_handler(path, chunks)


def _silent_page(request: RecordedRequest, writer: ResponseWriter) -> None:
    """Accepts, reads the request and never answers (until the server stops). It sleeps
    until then: forty threads polling would take the GIL from the client under test."""
    writer.wait_for_stop()


def _silent_pages(server: LocalServer, path: str) -> None:
    """Forty article pages on a host that never answers: `per_host` at a time, each until
    `timeout`, they would hold the feed for 15 s; feed_deadline ends the wait sooner. The
    pages are on "localhost", which the guard resolves to the test server, so that they
    queue for their own host's slots, not the ones every other case uses."""
    for n in range(40):
        server.add_handler(f"{path}/page/{n}", _silent_page)
    items = [
        {"title": f"Silent {n}", "guid": f"p{n}", "description": f"The feed's summary of {n}.",
         "link": server.url(f"{path}/page/{n}").replace("//127.0.0.1:", "//localhost:")}
        for n in range(40)
    ]  # fmt: skip
    server.add(path, rss(items))


def _huge_page(server: LocalServer, path: str) -> None:
    """An article page of 9 MB: over max_page_size, so it is never handed to extraction."""
    paragraph = "<p>" + "The council debated the budget late into the night. " * 40 + "</p>"
    page = f"<html><body><article>{paragraph * 1000}</article></body></html>".encode()
    server.add(f"{path}/page", page, content_type="text/html")
    server.add(path, rss([{"title": "Huge page", "link": server.url(f"{path}/page"),
                           "guid": "h", "description": "The feed's own summary."}]))  # fmt: skip


def _large_page(server: LocalServer, path: str) -> None:
    """An article page of 2.5 MB, under max_page_size: extracted in a worker."""
    paragraphs = "".join(
        f"<p>Paragraph {n}: the council debated the budget and the new tram line late into"
        f" the night, and the vote was postponed to next week (item {n}).</p>"
        for n in range(14_000)
    )
    page = f"<html><body><article>{paragraphs}</article></body></html>".encode()
    server.add(f"{path}/page", page, content_type="text/html")
    server.add(path, rss([{"title": "Large page", "link": server.url(f"{path}/page"),
                           "guid": "l", "description": "The feed's own summary."}]))  # fmt: skip


# The 429 case's Retry-After: an HTTP date one hour after the test module was loaded.
RETRY_AT = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
CASES = [
    Case("slow-drip", "timeout", "no complete response within 3 s", _slow_drip),
    Case("endless-body", "too_large", "larger than", _endless),
    Case("gzip-bomb", "too_large", "larger than", _gzip_bomb),
    Case("entity-bomb", "parse_error", "entities", _static(ENTITY_BOMB)),
    Case("external-entity", "parse_error", "entities", _static(EXTERNAL_ENTITY)),
    Case("moved-301", "ok", "", _redirect_chain),
    Case("redirect-loop", "redirect_error", "redirected", _redirect_loop),
    Case(
        "to-loopback",
        "address_refused",
        "allow_private_networks",
        _redirect_to("http://127.0.0.2/feed"),
    ),
    Case(
        "to-metadata",
        "address_refused",
        "169.254.169.254",
        _redirect_to("http://169.254.169.254/latest/meta-data/"),
    ),
    Case("to-file", "address_refused", "'file:' is refused", _redirect_to("file:///etc/passwd")),
    Case("gone-410", "gone", "410", _static("", status=410)),
    Case(
        "rate-limited-429",
        "rate_limited",
        "429",
        _static(
            "",
            status=429,
            headers={"Retry-After": format_datetime(RETRY_AT, usegmt=True)},
        ),
    ),
    Case(
        "unavailable-503",
        "server_error",
        "503",
        _static("", status=503, headers={"Retry-After": "120"}),
    ),
    Case(
        "windows-1251",
        "ok",
        "",
        _static(
            rss([{"title": RUSSIAN, "link": "https://example.org/ru"}])
            .replace('encoding="utf-8"', 'encoding="windows-1251"')
            .encode("cp1251"),
            content_type="application/rss+xml",
        ),
    ),
    Case(
        "koi8-r",
        "ok",
        "",
        _static(
            rss([{"title": RUSSIAN, "link": "https://example.org/koi"}]).encode("koi8-r"),
            content_type="application/rss+xml; charset=koi8-r",
        ),
    ),
    Case(
        "html-as-feed",
        "not_a_feed",
        "HTML page",
        _static(
            "<!DOCTYPE html><html><head><title>Error</title></head>"
            "<body><h1>Oops</h1></body></html>",
            content_type="text/html",
        ),
    ),
    Case("empty", "not_a_feed", "empty", _static("")),
    Case("surrogate-entry", "ok", "", _surrogate_entry),
    Case("megabyte-author", "ok", "", _megabyte_author),
    Case("one-byte-chunks", "fragmented", "pieces", _one_byte_chunks),
    # The pages first: on the one test host they would queue behind the silent ones.
    Case("huge-page", "ok", "", _huge_page, extract=True),
    Case("large-page", "ok", "", _large_page, extract=True),
    Case("silent-pages", "ok", "", _silent_pages, extract=True),
    Case(
        "truncated",
        "ok",
        "",
        _static(
            rss([{"title": f"t{n}", "link": f"https://example.org/t{n}"} for n in range(5)])[:-60]
        ),
    ),
]


def install_all(server: LocalServer) -> dict[str, str]:
    """Every case plus a good feed; returns {feed name: path}."""
    paths = {case.name: f"/hostile/{case.name}" for case in CASES}
    for case in CASES:
        case.install(server, paths[case.name])
    good = [
        {
            "title": f"Good story {n}",
            "link": f"https://example.org/good/{n}",
            "guid": f"g{n}",
            "description": f"Summary {n}",
        }
        for n in range(GOOD_ITEMS)
    ]
    server.add("/good.xml", rss(good))
    paths["good"] = "/good.xml"
    return paths


def config_text(server: LocalServer, paths: dict[str, str], *, feed_deadline: str = "8s") -> str:
    """feeds.yaml for the cases in `paths`; `feed_deadline` under the silent pages' 15 s."""
    extracting = {case.name for case in CASES if case.extract}
    feeds = "".join(
        f"  - name: {name}\n    url: {server.url(path)}\n"
        + ("    extract: true\n" if name in extracting else "")
        for name, path in paths.items()
    )
    return SETTINGS + f"  feed_deadline: {feed_deadline}\nfeeds:\n" + feeds
