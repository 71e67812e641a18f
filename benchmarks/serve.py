"""What `aggregator serve` costs on a large store: the live feeds and the latest-stories page.

`.venv/bin/python -m benchmarks.serve [--items 100000] [--repeat 20] [--store PATH]`

Builds a store of synthetic items (through the store's own writer: `Store.transaction()`,
`apply_entry`, `new_story`, `move_item`, `link_item`, so the rows, the full-text index and the
stories' summaries are what the daemon would write), unless `--store` names one built before.
Forty feeds on six desks; items arrive at a steady rate over 30 days; one item in four is a
link another feed carries too (a second sighting), one in ten a copy under its own URL joined
to an earlier story (a story_links row). Texts are ~150 words drawn from a 5,000-word
vocabulary, with the HTML a sanitised article would have.

Then starts `aggregator serve` on it (a subprocess, as an operator would) and times, from one
keep-alive HTTP client, `--repeat` requests (after 3 warm-up ones) of each: the Atom feed
rendered each time (a new `limit` per request, so the server's per-thread cache of rendered
feeds never answers), the same for one desk (`?tag=`), the default feed asked again and again
(the cache answers while the store is unchanged), its revalidation by `If-None-Match` (304),
and Datasette's latest-stories canned query as HTML and as JSON.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx

from aggregator.models import Article, Entry, Fate, FeedConfig, Match, Signal
from aggregator.store import Store
from aggregator.stories.identity import drafts_for
from aggregator.times import iso_utc, parse_iso
from benchmarks import summary

NOW = "2026-11-27T12:00:00Z"
DAYS = 30
FEEDS = 40
DESKS = ("wire", "world", "europe", "business", "sport", "local")
BATCH = 500  # items per transaction: one feed refresh's worth


def _vocabulary(rng: random.Random, size: int = 5000) -> list[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = set()
    while len(words) < size:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(3, 10))))
    return sorted(words)


def build_store(path: Path, items: int, *, seed: int = 7) -> float:
    """The synthetic store at `path`; returns the seconds it took."""
    rng = random.Random(seed)
    words = _vocabulary(rng)
    t0 = time.monotonic()
    store = Store.open(str(path))
    feeds = [
        FeedConfig(
            f"feed-{n:02d}",
            f"https://feed{n}.example/rss",
            priority=10 if n < 4 else 0,
            tags=tuple(sorted({DESKS[n % len(DESKS)], DESKS[(n * 7 + 1) % len(DESKS)]})),
        )
        for n in range(FEEDS)
    ]
    store.sync_feeds(feeds, now=NOW)
    start = parse_iso(NOW) - timedelta(days=DAYS)
    step = DAYS * 86400 / (items * 4 / 3)  # a quarter of the entries are second sightings
    stored: list[tuple[int, str]] = []  # (item id, url) of earlier items
    story_of: dict[int, int] = {}
    made = 0  # entries
    while len(stored) < items:
        with store.transaction() as tx:
            for _ in range(BATCH):
                if len(stored) >= items:
                    break
                made += 1
                when = iso_utc(start + timedelta(seconds=made * step))
                feed = feeds[rng.randrange(FEEDS)].name
                roll = rng.random()
                if stored and roll < 0.25:  # another feed carries a recent item's link
                    earlier_id, url = stored[-rng.randint(1, min(len(stored), 300))]
                    title = f"seen again {earlier_id}"
                else:
                    url = f"https://news{rng.randrange(200)}.example/a/{made}"
                    title = " ".join(rng.choices(words, k=rng.randint(6, 12))).capitalize()
                text = " ".join(rng.choices(words, k=150))
                entry = Entry(
                    guid=f"{feed}-{made}",
                    link=url,
                    title=title,
                    summary=text[:200],
                    content_html=None,
                    author=None,
                    published_at=when,
                    updated_at=None,
                )
                (draft,) = drafts_for([entry])
                paragraphs = "".join(f"<p>{text[i : i + 300]}</p>" for i in range(0, 900, 300))
                draft = replace(
                    draft, article=Article(text=text, html=paragraphs), extract_status="ok"
                )
                fate, item_id = tx.apply_entry(feed, draft, now=when)
                if fate is not Fate.NEW:
                    continue
                if stored and roll > 0.9:  # a copy under its own URL joins an earlier story
                    matched = stored[-rng.randint(1, min(len(stored), 300))][0]
                    story = story_of[matched]
                    tx.move_item(item_id, story)
                    tx.link_item(item_id, story, matched, Match(Signal.MINHASH, 0.62), now=when)
                else:
                    story = tx.new_story(item_id)
                    tx.refresh_story(story)
                story_of[item_id] = story
                stored.append((item_id, url))
    store.optimize()
    store.close()
    return time.monotonic() - t0


def _counts(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return {
            table: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
            for table in ("items", "sightings", "stories", "story_links", "feeds")
        }
    finally:
        conn.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(path: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "aggregator", "--db", str(path), "serve", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"aggregator serve exited:\n{log.read_text()}")
        try:
            if httpx.get(base + "/-/versions.json", timeout=5).status_code == 200:
                return process, base
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit(f"aggregator serve did not answer in 60 s:\n{log.read_text()}")


def _time(
    client: httpx.Client, url: str, repeat: int, headers: dict[str, str], status: int
) -> tuple[float, float, int]:
    """Median and p95 (nearest rank) in ms, and the body size. A `{n}` in the URL is the
    request's number (a new URL each time: nothing served from the feeds' cache)."""
    for n in range(3):
        client.get(url.format(n=50 - n), headers=headers)
    seconds = []
    size = 0
    for n in range(repeat):
        t0 = time.perf_counter()
        response = client.get(url.format(n=47 - n % 47), headers=headers)
        seconds.append(time.perf_counter() - t0)
        if response.status_code != status:
            raise SystemExit(f"{url}: {response.status_code}, expected {status}")
        size = len(response.content)
    ranked = sorted(seconds)
    p95 = ranked[max(0, -(-len(ranked) * 95 // 100) - 1)]
    return statistics.median(seconds) * 1000, p95 * 1000, size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serve", description=__doc__)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--store", type=Path, help="an existing store to serve (built if absent)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as folder:
        path = args.store or Path(folder) / "serve.db"
        if not path.exists():
            print(f"building a store of {args.items:,} items at {path} ...", flush=True)
            built = build_store(path, args.items)
            print(f"built in {built:.0f} s", flush=True)
        counts = _counts(path)
        megabytes = (
            sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file()) / 2**20
        )
        print(
            ", ".join(f"{n:,} {table}" for table, n in counts.items()) + f"; {megabytes:,.0f} MB",
            flush=True,
        )
        process, base = _start(path, Path(folder) / "serve.log")
        try:
            with httpx.Client(base_url=base, timeout=60) as client:
                etag = client.get("/feeds/stories.atom").headers["etag"]
                cases = [
                    ("`/feeds/stories.atom?limit=N`, N = 47 down to 28: rendered each time",
                     "/feeds/stories.atom?limit={n}", {}, 200),
                    ("`/feeds/stories.atom?tag=europe&limit=N`: rendered each time",
                     "/feeds/stories.atom?tag=europe&limit={n}", {}, 200),
                    ("`/feeds/stories.atom` (50 stories), the same URL again",
                     "/feeds/stories.atom", {}, 200),
                    ("`/feeds/stories.atom`, revalidated (If-None-Match): 304",
                     "/feeds/stories.atom", {"If-None-Match": etag}, 304),
                    ("`/aggregator/latest_stories` (HTML, 100 rows)",
                     "/aggregator/latest_stories", {}, 200),
                    ("`/aggregator/latest_stories.json`", "/aggregator/latest_stories.json", {},
                     200),
                ]  # fmt: skip
                rows = []
                timed = []
                for label, url, headers, status in cases:
                    median, p95, size = _time(client, url, args.repeat, headers, status)
                    rows.append(f"| {label} | {median:.1f} | {p95:.1f} | {size / 1024:,.0f} KB |")
                    timed.append((label, median, p95))
        finally:
            process.terminate()
            process.wait(timeout=30)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"\n{args.repeat} requests each after 3 warm-up, one keep-alive client;"
        f" {os.cpu_count()} cores, Python {platform.python_version()},"
        f" SQLite {sqlite3.sqlite_version}; 1-minute load average {load:.1f}\n"
    )
    print("| request | median ms | p95 ms | body |\n|---|---:|---:|---:|\n" + "\n".join(rows))
    summary.write("serve", summary_rows(timed, counts.get("items", args.items)), argv)
    return 0


def summary_rows(timed: list[tuple[str, float, float]], items: int) -> list[summary.Row]:
    """The two feeds rendered on every request, beside the default feed answered from the
    cache (the same URL again). No target: the headline figures, for comparison over time."""
    cached, cached_ms, _ = timed[2]
    return [
        summary.Row(
            f"`aggregator serve`, {items:,} items: {label}",
            f"{median:.1f} ms median, p95 {p95:.1f} ms",
            f"{cached}: {cached_ms:.1f} ms",
        )
        for label, median, p95 in timed[:2]
    ]


if __name__ == "__main__":
    sys.exit(main())
