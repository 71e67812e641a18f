"""feed_deadline: one site that accepts and never answers cannot hold a feed's refresh."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from feeds_builder import article_page, rss
from localserver import LocalServer, RecordedRequest, ResponseWriter
from test_pipeline import make_config, rows, run

from aggregator.store import Store

TEXT = [
    "Delegations met in Geneva on Monday and agreed to resume talks on a ceasefire next week.",
    "The mediators said the sides would exchange prisoners before the next round began.",
    "Both delegations called the meeting constructive and promised to report back soon.",
]


def test_a_feed_refresh_ends_at_its_deadline_and_the_rest_waits_for_the_next_run(
    server: LocalServer, tmp_path: Path
) -> None:
    answer = threading.Event()

    def hanging(request: RecordedRequest, writer: ResponseWriter) -> None:
        answer.wait(30)  # accepts, reads the request, and says nothing until told to
        page = article_page("Slow story", TEXT).encode()
        writer.send_status(200)
        writer.send_header("Content-Type", "text/html")
        writer.send_header("Content-Length", str(len(page)))
        writer.end_headers()
        writer.write(page)
        writer.flush()

    server.add("/quick", article_page("Quick story", TEXT), content_type="text/html")
    for n in range(3):
        server.add_handler(f"/slow/{n}", hanging)
    links = [("Quick story", "/quick")] + [(f"Slow story {n}", f"/slow/{n}") for n in range(3)]
    server.add(
        "/feed.xml",
        rss(
            [
                {"title": t, "link": server.url(p), "guid": p, "description": f"{t}: teaser."}
                for t, p in links
            ]
        ),
    )
    extra = "  feed_deadline: 2s\n  per_host: 8"  # the quick page is not queued behind the rest
    config = make_config(server, {"wire": "/feed.xml"}, extra)
    store = Store.open(str(tmp_path / "news.db"))
    started = time.monotonic()
    try:
        outcome = run(config, store)["wire"]
    finally:
        answer.set()  # let the server's threads go
    took = time.monotonic() - started
    assert took < 8, took  # not the 10 s page timeout
    assert outcome.outcome == "ok"
    assert outcome.warning is not None
    assert "feed_deadline (2s) passed with 3 of 4 article pages unfinished" in outcome.warning
    stored = dict(rows(store, "SELECT title, extract_status FROM items"))  # type: ignore[arg-type]
    assert stored == {
        "Quick story": "ok",
        "Slow story 0": "pending",
        "Slow story 1": "pending",
        "Slow story 2": "pending",
    }
    # The feed's validators and state were committed with its entries.
    assert rows(store, "SELECT warning FROM fetches")[0][0] == outcome.warning
    # The next run (the site answers now) fetches the pages left pending.
    again = run(config, store)["wire"]
    assert again.warning is None
    assert {s for (s,) in rows(store, "SELECT extract_status FROM items")} == {"ok"}
