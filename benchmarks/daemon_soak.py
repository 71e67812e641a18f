"""Soak: `aggregator run` against many local feeds for many ticks; its CPU time and memory.

    python -m benchmarks.daemon_soak [--feeds 200] [--ticks 100] [--tick 0.2] [--workers N]

A real daemon subprocess (the default worker pool unless --workers) polls feeds served by the
tests' LocalServer on 127.0.0.1. Every feed is due every 1-2 s; a publisher thread adds a new
entry (and its article page, extracted by the daemon) to 10 random feeds every half second,
so the daemon sees a steady mix of 304s and 200s with new items. Ticks are counted from the
daemon's own /metrics; CPU (user + system) and RSS are read from /proc for the daemon and
its worker processes at tick 1 and every quarter of the run. Memory should stay flat.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "tests"))

from feeds_builder import article_page, rss  # noqa: E402
from localserver import LocalServer  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
VOCABULARY = (
    "council budget harbour minister storm election court bank rates coach museum strike"
    " talks treaty border festival vaccine school bridge river mayor police report market"
    " energy prices summit drought harvest airport railway union parliament protest"
)
WORDS = VOCABULARY.split()


class Newsroom:
    """The feeds' contents, changing while the daemon runs."""

    def __init__(self, server: LocalServer, feeds: int) -> None:
        self.server = server
        self.entries: list[list[dict[str, str]]] = [[] for _ in range(feeds)]
        self.published = 0
        self.rng = random.Random(11)
        for feed in range(feeds):
            for _ in range(5):
                self.publish(feed)

    def publish(self, feed: int) -> None:
        self.published += 1
        n = self.published
        path = f"/story/{n}"
        # Distinct texts: the daemon's near-duplicate detection sees real, unrelated stories.
        paragraphs = [" ".join(self.rng.choices(WORDS, k=25)) + "." for _ in range(6)]
        page = article_page(f"Story {n}", paragraphs)
        self.server.add(path, page, content_type="text/html")
        entry = {"title": f"Story {n}", "link": self.server.url(path), "guid": f"urn:soak:{n}"}
        self.entries[feed] = [entry, *self.entries[feed]][:20]
        self.server.add(f"/f{feed}.xml", rss(self.entries[feed]), etag=f'"{n}"')

    def run(self, stop: threading.Event) -> None:
        rng = random.Random(7)
        while not stop.wait(0.5):
            for feed in rng.sample(range(len(self.entries)), 10):
                self.publish(feed)


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def rss_mb(pid: int) -> float:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) / 1024 if match else 0.0


def sample(pid: int) -> tuple[float, float, float, float]:
    """(daemon CPU s, workers CPU s, daemon RSS MB, workers RSS MB)."""
    workers_cpu = workers_rss = 0.0
    for child in descendants(pid):
        try:
            workers_cpu += cpu_s(child)
            workers_rss += rss_mb(child)
        except OSError:
            pass  # a worker that just exited
    return cpu_s(pid), workers_cpu, rss_mb(pid), workers_rss


def ticks(port: int) -> int:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
    except OSError:
        return 0
    match = re.search(rb"^aggregator_ticks_total ([0-9.e+]+)$", text, re.MULTILINE)
    return int(float(match.group(1))) if match else 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def config_text(server: LocalServer, feeds: int, tick: float) -> str:
    lines = [
        "settings:",
        "  allow_private_networks: true",
        "  interval: 1s",
        "  min_interval: 1s",
        "  max_interval: 2s",
        f"  tick: {tick}s",  # a unit, always: a bare number is refused
        "  host_gap: 0",
        "  per_host: 32",
        "  concurrency: 32",
        "  batch: 64",
        "feeds:",
    ]
    for n in range(feeds):
        lines += [f"  - name: f{n}", f"    url: {server.url(f'/f{n}.xml')}"]
    return "\n".join(lines) + "\n"


def soak(args: argparse.Namespace, workdir: Path) -> int:
    server = LocalServer().start()
    newsroom = Newsroom(server, args.feeds)
    config, db = workdir / "feeds.yaml", workdir / "soak.db"
    config.write_text(config_text(server, args.feeds, args.tick))
    port = free_port()
    command = [sys.executable, "-m", "aggregator", "--config", str(config), "--db", str(db)]
    command += ["run", "--metrics-port", str(port)]
    if args.workers is not None:
        command += ["--workers", str(args.workers)]
    stop = threading.Event()
    publisher = threading.Thread(target=newsroom.run, args=(stop,), daemon=True)
    with open(workdir / "daemon.log", "wb") as log:
        daemon = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT)
    marks = sorted({1, *(max(1, args.ticks * q // 4) for q in (1, 2, 3, 4))})
    started = time.monotonic()
    print(
        f"{'tick':>5} {'seconds':>8} {'CPU s':>7} {'workers CPU s':>14} {'RSS MB':>7}"
        f" {'workers RSS MB':>15}"
    )
    try:
        publisher.start()
        for mark in marks:
            while (seen := ticks(port)) < mark:
                if daemon.poll() is not None:
                    print(f"the daemon exited with {daemon.returncode}; see {workdir}/daemon.log")
                    return 1
                time.sleep(0.02)
            cpu, workers_cpu, rss, workers_rss = sample(daemon.pid)
            print(
                f"{seen:>5} {time.monotonic() - started:>8.1f} {cpu:>7.2f} {workers_cpu:>14.2f}"
                f" {rss:>7.1f} {workers_rss:>15.1f}"
            )
    finally:
        stop.set()
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(30)
        server.stop()
    conn = sqlite3.connect(db)
    outcomes = dict(conn.execute("SELECT outcome, count(*) FROM fetches GROUP BY 1").fetchall())
    items = conn.execute("SELECT count(*) FROM items").fetchone()[0]
    extracted = conn.execute("SELECT count(*) FROM items WHERE extract_status = 'ok'").fetchone()[0]
    conn.close()
    print(
        f"refreshes by outcome: {outcomes}; items {items} ({extracted} extracted),"
        f" published {newsroom.published}; SIGTERM -> exit {code}"
    )
    return 0 if code == 0 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.daemon_soak", description=__doc__)
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--ticks", type=int, default=100)
    parser.add_argument("--tick", type=float, default=0.2, help="seconds between ticks")
    parser.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="soak-") as workdir:
        return soak(args, Path(workdir))


if __name__ == "__main__":
    sys.exit(main())
