"""`aggregator feeds`: gone, failing and stale feeds first, with last success and next due."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from click.testing import CliRunner
from store_helpers import save_refresh

from aggregator.cli import cli
from aggregator.models import Entry, FeedConfig, FeedUpdate, FetchRecord
from aggregator.store import Store
from aggregator.stories.identity import drafts_for
from aggregator.times import iso_utc, utc_now


def entry(feed: str, n: int) -> Entry:
    return Entry(
        guid=f"{feed}-{n}",
        link=f"https://{feed}.example/{n}",
        title=f"{feed} story {n} about the harbour and the budget number {n}",
        summary="",
        content_html=None,
        author=None,
        published_at=None,
        updated_at=None,
    )


def refresh(store: Store, feed: str, numbers: range, when: str, state: str = "ok") -> None:
    update = FeedUpdate(
        state=state,
        etag=None,
        last_modified=None,
        last_fetched_at=when,
        next_fetch_at=None if state == "gone" else when,
        error_count=0 if state == "ok" else 3,
        last_error=None if state == "ok" else "the server failed (500); it will be retried",
        last_outcome="ok" if state == "ok" else "server_error",
        last_success_at=when if state == "ok" else None,
    )
    record = FetchRecord(feed=feed, started_at=when, url="https://x", outcome="ok")
    drafts = drafts_for([entry(feed, n) for n in numbers])
    save_refresh(store, feed, drafts, record, update)


def test_stale_and_failing_feeds_come_first(tmp_path: Path) -> None:
    db = tmp_path / "news.db"
    names = ("broken", "fresh", "gone", "quiet")
    store = Store.open(str(db))
    now = utc_now()
    store.sync_feeds([FeedConfig(n, f"https://{n}.example/rss") for n in names], now=iso_utc(now))
    # Both post every 6 hours for 20 days; "quiet" stopped 5 days ago (20 usual gaps).
    for feed, stop in (("fresh", timedelta(hours=1)), ("quiet", timedelta(days=5))):
        last = now - stop
        first = last - timedelta(hours=6 * 79)
        refresh(store, feed, range(3), iso_utc(first))  # the first fetch: a backlog of 3
        for step in range(1, 80):  # then one new entry a fetch
            refresh(
                store, feed, range(step + 2, step + 3), iso_utc(first + timedelta(hours=6 * step))
            )
    refresh(store, "broken", range(0), iso_utc(now), state="failing")
    refresh(store, "gone", range(0), iso_utc(now), state="gone")
    store.close()
    config = tmp_path / "feeds.yaml"
    config.write_text(
        "feeds:\n" + "".join(f"  - name: {n}\n    url: https://{n}.example/rss\n" for n in names)
    )
    base = ["--config", str(config), "--db", str(db), "feeds"]

    rows = json.loads(CliRunner().invoke(cli, [*base, "--json"]).stdout)
    assert [r["name"] for r in rows] == ["gone", "broken", "quiet", "fresh"]
    stale = {r["name"]: r["stale"] for r in rows}
    assert stale == {"gone": False, "broken": False, "quiet": True, "fresh": False}
    quiet = rows[2]
    assert quiet["advice"].startswith("Stale: it answers, but no new entry since ")
    assert quiet["last_new_at"] == iso_utc(now - timedelta(days=5))
    table = CliRunner().invoke(cli, base, env={"COLUMNS": "160"}).stdout
    assert "last success" in table
    assert "next due" in table
    lines = [line for line in table.splitlines() if line.startswith("│ ") and "│ 8" in line]
    assert [line.split("│")[2].strip() for line in lines] == ["stale", "ok"]
    assert "5d ago" in lines[0]
