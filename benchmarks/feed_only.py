"""Feed-only intake: `aggregator fetch --no-extract` against lemon24/reader's `update_feeds`.

    .venv/bin/python -m benchmarks.feed_only [--feeds 1000] [--items 50] [--summaries boilerplate]
    .venv/bin/python -m benchmarks.feed_only --quick          # 100 feeds x 50 entries

A server process holds `--hosts` LocalServers (tests/localserver.py) on 127.0.0.1 ...
127.0.0.N with `--feeds` RSS feeds of `--items` entries each, every feed with an ETag so a
second pass is all 304s. Every entry has its own title and link; the summaries are
`--summaries`:

- boilerplate: most of their words shared (a feed's teaser sentence repeated under every
  entry, plus "Continue reading…"), as press-release feeds and regional editions write them;
- distinct: each its own words;
- empty: no summary at all.

Contenders, each on a fresh SQLite file, each the real program in its own process:

- ours: `aggregator fetch --no-extract` (settings: concurrency 16, per_host 8, host_gap 0),
  then the same command again on the same store (every feed answers 304);
- reader: lemon24/reader's `update_feeds(workers=16)` after `add_feed` for every URL, then
  again. reader is not a dependency of this project: it is installed on first use into
  benchmarks/.reader-venv (pip, from the package index), a virtualenv of its own.

CPU seconds are the contender's process and everything it started (sampled from /proc), the
server's separately; "other programs" is what the rest of the machine used meanwhile.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from html import escape
from multiprocessing.connection import Connection
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
sys.path.append(str(PROJECT / "tests"))

from benchmarks import summary  # noqa: E402
from benchmarks.distributed import proc_cpu, run_sampled  # noqa: E402
from benchmarks.throughput_cpu import machine_busy  # noqa: E402

READER_VENV = PROJECT / "benchmarks" / ".reader-venv"
READER_VERSION = "3.26"
SETTINGS = {
    "allow_private_networks": "true",
    "concurrency": "16",
    "per_host": "8",
    "host_gap": "0s",
    "timeout": "30s",
}
WORDS = [
    "minister",
    "talks",
    "border",
    "grain",
    "exports",
    "ceasefire",
    "parliament",
    "budget",
    "vote",
    "court",
    "ruling",
    "election",
    "campaign",
    "energy",
    "prices",
    "gas",
    "pipeline",
    "strike",
    "union",
    "wages",
    "inflation",
    "bank",
    "rate",
    "storm",
    "flood",
    "rescue",
    "wildfire",
    "drought",
    "harvest",
    "summit",
    "sanctions",
    "tariff",
    "trade",
    "deal",
    "port",
    "airline",
    "strike",
    "rail",
    "network",
    "hospital",
    "vaccine",
    "trial",
    "school",
    "reform",
    "police",
    "inquiry",
    "football",
    "final",
    "league",
    "coach",
    "transfer",
    "olympic",
    "record",
    "museum",
    "festival",
    "premiere",
    "award",
    "satellite",
    "launch",
    "rocket",
    "telescope",
    "climate",
    "emissions",
    "report",
    "council",
    "mayor",
    "housing",
    "plan",
]


def feed_xml(feed: int, host_url: str, items: int, summaries: str) -> str:
    rng = random.Random(feed)
    teaser = " ".join(rng.choice(WORDS) for _ in range(30)).capitalize() + "."
    start = datetime(2026, 11, 27, 8, tzinfo=UTC)
    entries = []
    for n in range(items):
        title = " ".join(rng.choice(WORDS) for _ in range(7)).capitalize() + f" ({feed}-{n})"
        if summaries == "boilerplate":
            own = " ".join(rng.choice(WORDS) for _ in range(4))
            summary = f"{teaser} {own.capitalize()}. Continue reading…"
        elif summaries == "distinct":
            summary = " ".join(rng.choice(WORDS) for _ in range(35)).capitalize() + "."
        else:
            summary = ""
        description = f"<description>{escape(summary)}</description>" if summary else ""
        entries.append(
            f"<item><title>{escape(title)}</title>"
            f"<link>{host_url}/f{feed:04d}/{n:03d}.html</link>"
            f'<guid isPermaLink="false">bench-{feed}-{n}</guid>'
            f"<pubDate>{format_datetime(start - timedelta(minutes=n))}</pubDate>"
            f"{description}</item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Desk {feed}</title><link>{host_url}/f{feed:04d}/</link>"
        f"<description>feed {feed}</description>{''.join(entries)}</channel></rss>"
    )


def serve(hosts: int, feeds: int, items: int, summaries: str, pipe: Connection) -> None:
    from localserver import LocalServer

    servers = [LocalServer(f"127.0.0.{h + 1}").start() for h in range(hosts)]
    urls = []
    for f in range(feeds):
        server = servers[f % hosts]
        path = f"/feeds/{f:04d}.xml"
        server.add(path, feed_xml(f, server.url("").rstrip("/"), items, summaries), etag=f'"{f}"')
        urls.append(server.url(path))
    pipe.send(urls)
    pipe.recv()
    for server in servers:
        server.stop()


@dataclass
class Row:
    name: str
    wall_s: float
    entries: int
    cpu_s: float
    server_s: float
    others_s: float
    notes: str = ""

    @property
    def per_s(self) -> float:
        return self.entries / self.wall_s if self.wall_s else 0.0


def timed(name: str, command: list[str], server_pid: int, count: object) -> Row:
    server0, busy0, t0 = proc_cpu(server_pid), machine_busy(), time.perf_counter()
    done, cpu = run_sampled(command)
    wall = time.perf_counter() - t0
    server = proc_cpu(server_pid) - server0
    others = max(0.0, machine_busy() - busy0 - cpu - server)
    if done.returncode not in (0,):
        print(done.stdout[-2000:], done.stderr[-3000:], file=sys.stderr)
    entries = count() if callable(count) else 0
    return Row(name, wall, int(entries), cpu, server, others, f"exit {done.returncode}")


def reader_python() -> Path:
    python = READER_VENV / "bin" / "python"
    if not python.exists():
        print(f"installing reader {READER_VERSION} into {READER_VENV.name} (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(READER_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        # reader's vendored feedparser imports sgmllib, which its requirements leave out.
        subprocess.run([*pip, f"reader=={READER_VERSION}", "sgmllib3k"], check=True)
    return python


READER_SCRIPT = """
import json, sys
from reader import make_reader
db, urls, workers, add = sys.argv[1], json.load(open(sys.argv[2])), int(sys.argv[3]), sys.argv[4]
reader = make_reader(db)
if add == "add":
    for url in urls:
        reader.add_feed(url, exist_ok=True)
reader.update_feeds(workers=workers)
print(json.dumps({"entries": reader.get_entry_counts().total}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.feed_only", description=__doc__)
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument(
        "--summaries", choices=("boilerplate", "distinct", "empty"), default="boilerplate"
    )
    parser.add_argument("--quick", action="store_true", help="100 feeds x 50 entries")
    parser.add_argument("--skip-reader", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.feeds = 100
    python = None if args.skip_reader else reader_python()
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(
        target=serve, args=(args.hosts, args.feeds, args.items, args.summaries, child)
    )
    server.start()
    urls: list[str] = parent.recv()
    assert server.pid is not None
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-feed-only-") as tmp:
        folder = Path(tmp)
        config = folder / "feeds.yaml"
        lines = ["settings:", *(f"  {k}: {v}" for k, v in SETTINGS.items()), "feeds:"]
        for n, url in enumerate(urls):
            lines += [f"  - name: desk-{n:04d}", f"    url: {url}"]
        config.write_text("\n".join(lines) + "\n")
        db = folder / "ours.db"
        ours = [sys.executable, "-m", "aggregator", "--config", str(config), "--db", str(db)]

        def our_entries() -> int:
            import sqlite3

            with sqlite3.connect(db) as conn:
                return int(conn.execute("SELECT count(*) FROM sightings").fetchone()[0])

        print(f"{args.feeds} feeds x {args.items} entries ({args.summaries} summaries)", flush=True)
        rows.append(timed("ours", [*ours, "fetch", "--no-extract"], server.pid, our_entries))
        print(rows[-1], flush=True)
        before = our_entries()
        rows.append(timed("ours, again (304s)", [*ours, "fetch", "--no-extract"], server.pid, 0))
        rows[-1].notes += f"; {our_entries() - before} new"
        print(rows[-1], flush=True)
        if python is not None:
            (folder / "urls.json").write_text(json.dumps(urls))
            reader_db = str(folder / "reader.sqlite")
            script = folder / "run_reader.py"
            script.write_text(READER_SCRIPT)
            proc_out = folder / "reader.out"

            def reader_entries() -> int:
                return int(json.loads(proc_out.read_text() or "{}").get("entries", 0))

            for name, add in (("reader update_feeds", "add"), ("reader, again (304s)", "again")):
                command = [
                    str(python),
                    str(script),
                    reader_db,
                    str(folder / "urls.json"),
                    "16",
                    add,
                ]
                shell = ["sh", "-c", f'"$0" "$@" > {proc_out}', *command]
                count = reader_entries if add == "add" else 0
                rows.append(timed(name, shell, server.pid, count))
                print(rows[-1], flush=True)
    parent.send("stop")
    server.join(30)
    report(args, rows)
    return 0


def report(args: argparse.Namespace, rows: list[Row]) -> None:
    print(
        f"\n{args.feeds} feeds x {args.items} entries, {args.summaries} summaries, "
        f"{args.hosts} hosts; python {platform.python_version()}, "
        f"{multiprocessing.cpu_count()} cores\n"
    )
    print("| contender | wall s | entries | entries/s | CPU s | server CPU s | other programs |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r.name} | {r.wall_s:.2f} | {r.entries} | {r.per_s:.0f} | {r.cpu_s:.1f} | "
            f"{r.server_s:.1f} | {r.others_s:.1f} |"
        )
    by = {r.name: r for r in rows}
    ours, reader = by.get("ours"), by.get("reader update_feeds")
    if ours and reader and reader.per_s:
        print(f"\nours / reader (entries/s): {ours.per_s / reader.per_s:.2f}x (target 3x)")
    again = by.get("ours, again (304s)")
    if ours and again:
        print(f"ours, unchanged re-run / first run (wall): {again.wall_s / ours.wall_s:.1%}")
    summary.write("feed_only", summary_rows(args, rows))


def summary_rows(args: argparse.Namespace, rows: list[Row]) -> list[summary.Row]:
    """Ours against reader in entries/s, and our unchanged re-run against our first run."""
    by = {r.name: r for r in rows}
    ours, reader = by.get("ours"), by.get("reader update_feeds")
    again = by.get("ours, again (304s)")
    intake = f"feed-only intake: {args.feeds:,} feeds x {args.items} entries"
    out = []
    if ours and reader and reader.per_s:
        ratio = ours.per_s / reader.per_s
        out.append(
            summary.Row(
                f"{intake}, {args.summaries} summaries",
                f"{ours.per_s:.0f} entries/s",
                f"reader {READER_VERSION} update_feeds {reader.per_s:.0f} entries/s",
                ratio,
                *summary.against(ratio, at_least=3),
            )
        )
    if ours and again and ours.wall_s:
        ratio = again.wall_s / ours.wall_s
        out.append(
            summary.Row(
                f"{intake}: the unchanged re-run (every feed 304)",
                f"{again.wall_s:.2f} s ({ratio:.1%} of the first run)",
                f"our first run {ours.wall_s:.2f} s",
                ratio,
                *summary.against(ratio, at_most=0.1),
            )
        )
    return out


if __name__ == "__main__":
    sys.exit(main())
