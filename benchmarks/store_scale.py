"""The store at a million items: the everyday commands, the served feeds and Datasette's
canned queries, timed, with their query plans checked.

`.venv/bin/python -m benchmarks.store_scale [--items 1000000] [--repeat 10] [--quick]`

Builds the store once per set of parameters (`store_scale_build.py`: seeded, in bulk, through
the store's own migrations and the writer's SQL) and keeps it in `--cache-dir` (default: the
system's temporary folder) for the next run; a cached store built by an older version gets
this version's migrations first, timed, as an upgrade would. Then, each figure the median of
`--repeat` runs after warm-up ones:

- `aggregator --help` as a new process: the start-up every command pays (limit 150 ms);
- `items --limit 20`, `stories --limit 20`, `search WORD`, `export --limit 50`, `feeds`, each
  as a new process (its time beyond the start-up: limit 150 ms), and in this process through
  click's CliRunner (imports done: the queries and the rendering alone);
- every SQL statement those commands ran (captured by a trace on their connections) and
  Datasette's canned queries under EXPLAIN QUERY PLAN, printed, and checked: no big table
  (items, sightings, stories, story_links, fetches) read whole, with or without an index,
  and no temporary B-tree to sort what such a read returns;
- `aggregator serve` on the store, over HTTP from one keep-alive client: the live feed
  (rendered every time), by desk (`?tag=`) and by feed (`?feed=`), and the canned queries
  as JSON (limit 150 ms each).

Exits 1 when a figure is over its limit or a plan reads a big table whole.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import resource
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import summary
from benchmarks.store_scale_build import Spec, cached, counts

sys.path.append(str(Path(__file__).resolve().parents[1] / "tests"))
import query_plans  # tests/query_plans.py: what a plan reads whole

LIMIT_MS = 150.0
LINK = "https://desk.example/feeds/stories.atom"
# Modules a listing has no use for; `aggregator --help` must not import them.
HEAVY = (
    "trafilatura", "datasketch", "numpy", "scipy", "httpx", "httpcore", "dramatiq", "redis",
    "datasette", "feedparser", "lxml", "apscheduler", "prometheus_client", "ruamel",
)  # fmt: skip


@dataclass
class Figure:
    label: str
    median_ms: float
    limit_ms: float | None = None
    note: str = ""

    @property
    def over(self) -> bool:
        return self.limit_ms is not None and self.median_ms > self.limit_ms


@dataclass
class Report:
    figures: list[Figure] = field(default_factory=list)
    plan_problems: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add(
        self, label: str, median_ms: float, limit_ms: float | None = None, note: str = ""
    ) -> None:
        figure = Figure(label, median_ms, limit_ms, note)
        self.figures.append(figure)
        mark = "" if limit_ms is None else (" OVER" if figure.over else " ok")
        limit = "" if limit_ms is None else f" (limit {limit_ms:.0f})"
        print(f"  {label}: {median_ms:.1f} ms{limit}{mark}{' ' + note if note else ''}", flush=True)


# A run slower than this is not repeated: its one time is the figure (a store before the
# fixes took seconds per request, and a median of those says nothing more).
TOO_SLOW_S = 3.0


def median_ms(run: Callable[[], object], *, repeat: int, warmup: int = 2) -> float:
    """The median of `repeat` runs after `warmup` ones, in ms; a first run over TOO_SLOW_S
    is the figure alone."""
    t0 = time.perf_counter()
    run()
    first = time.perf_counter() - t0
    if first > TOO_SLOW_S:
        return first * 1000
    for _ in range(warmup - 1):
        run()
    seconds = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - t0)
    return statistics.median(seconds) * 1000


# -- the command as a person runs it --------------------------------------------------------------


def command() -> list[str]:
    """The `aggregator` script installed beside this Python, else `python -m aggregator`."""
    script = Path(sys.executable).with_name("aggregator")
    return [str(script)] if script.exists() else [sys.executable, "-m", "aggregator"]


def run_process(args: Sequence[str], cwd: Path) -> tuple[float, float]:
    """Run `aggregator ARGS` to the end: (wall, CPU) seconds. The CPU time (user + system,
    from the process's own rusage) moves much less than the wall time when other programs
    share the cores."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run([*command(), *args], cwd=cwd, capture_output=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"aggregator {' '.join(args)} exited {done.returncode}:\n{done.stderr!r}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


@dataclass
class Paired:
    """A command against `aggregator --help`, run in turns so that both see the same load:
    medians in ms of wall and CPU time."""

    wall: float
    cpu: float
    help_wall: float
    help_cpu: float


def paired(args: Sequence[str], cwd: Path, repeat: int) -> Paired:
    run_process(["--help"], cwd)
    first, first_cpu = run_process(args, cwd)
    if first > TOO_SLOW_S:
        help_wall, help_cpu = run_process(["--help"], cwd)
        return Paired(first * 1000, first_cpu * 1000, help_wall * 1000, help_cpu * 1000)
    runs: list[tuple[float, float, float, float]] = []
    for _ in range(repeat):
        runs.append((*run_process(args, cwd), *run_process(["--help"], cwd)))
    wall, cpu, help_wall, help_cpu = (
        statistics.median(r[n] for r in runs) * 1000 for n in range(4)
    )
    return Paired(wall, cpu, help_wall, help_cpu)


def heavy_imports(args: Sequence[str], cwd: Path) -> list[str]:
    """Which of HEAVY a new process running `aggregator ARGS` imported."""
    code = (
        "import sys\nfrom aggregator.cli import main\nsys.argv = ['aggregator', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, check=False
    )
    return done.stderr.strip().splitlines()[-1].split() if done.stderr.strip() else []


# -- query plans ----------------------------------------------------------------------------------


@contextlib.contextmanager
def traced_statements() -> Iterator[list[str]]:
    """Every statement run on the SQLite connections this process opens meanwhile (the
    command's own, whatever opens them)."""
    statements: list[str] = []
    original = sqlite3.connect

    def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = original(*args, **kwargs)
        conn.set_trace_callback(statements.append)
        return conn

    sqlite3.connect = connect  # type: ignore[assignment]
    try:
        yield statements
    finally:
        sqlite3.connect = original


def show_plans(
    report: Report, label: str, conn: sqlite3.Connection, statements: Sequence[tuple[str, Any]]
) -> None:
    """Print each statement's plan and record what reads a big table whole."""
    print(f"\n-- {label}", flush=True)
    for sql, params in statements:
        rows = query_plans.explain(conn, sql, params)
        print("   " + " ".join(sql.split())[:300])
        for node, _, detail in rows:
            print(f"     {'  ' * query_plans.depth(rows, node)}{detail}")
        for problem in query_plans.whole_reads(sql, rows):
            report.plan_problems.append(f"{label}: {problem}")
            print(f"     !! {problem}")


# -- the commands ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subjects:
    """What the measured commands ask for, chosen from the store itself."""

    word: str  # a name in about one item in a hundred
    common: str  # a word in most items
    tag: str  # the desk with the median number of feeds
    feed: str  # the feed with the median number of items
    busiest: str  # the feed with the most
    story: int  # the latest story with several items


def subjects(path: Path) -> Subjects:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        tags = [
            r[0]
            for r in conn.execute("SELECT tag FROM feed_tags GROUP BY tag ORDER BY count(*), tag")
        ]
        feeds = [
            r[0]
            for r in conn.execute(
                "SELECT feed FROM sightings GROUP BY feed ORDER BY count(*), feed"
            )
        ]
        story = conn.execute(
            "SELECT id FROM stories WHERE item_count > 2 ORDER BY last_seen_at DESC LIMIT 1"
        ).fetchone()[0]
    finally:
        conn.close()
    tag, feed = tags[len(tags) // 2], feeds[len(feeds) // 2]
    return Subjects("Libya", "government", tag, feed, feeds[-1], int(story))


def commands(s: Subjects) -> list[tuple[str, list[str]]]:
    return [
        ("items --limit 20", ["items", "--limit", "20"]),
        ("stories --limit 20", ["stories", "--limit", "20"]),
        (f"search {s.word}", ["search", s.word]),
        (f"search {s.common}", ["search", s.common]),
        # Newest first: the matches sorted, or the time's index walked (queries._matches_many).
        (f"search {s.word} --sort first_seen", ["search", s.word, "--sort", "first_seen"]),
        (f"search {s.common} --sort published", ["search", s.common, "--sort", "published"]),
        ("export --limit 50", ["export", "--limit", "50", "--link", LINK]),
        ("feeds", ["feeds"]),
        # Beyond the everyday five: a feed's and a desk's items, and a feed's stories.
        (f"items --feed {s.busiest} --limit 20", ["items", "--feed", s.busiest, "--limit", "20"]),
        (f"items --tag {s.tag} --limit 20", ["items", "--tag", s.tag, "--limit", "20"]),
        (f"stories --feed {s.feed} --limit 20", ["stories", "--feed", s.feed, "--limit", "20"]),
    ]


def measure_commands(report: Report, path: Path, s: Subjects, repeat: int, cwd: Path) -> None:
    from click.testing import CliRunner

    from aggregator.cli import cli

    print("\nstart-up and commands, each a new process:", flush=True)
    startup = paired(["--help"], cwd, repeat)
    report.add(
        "`aggregator --help` (start-up)", startup.wall, LIMIT_MS, f"(CPU {startup.cpu:.0f} ms)"
    )
    print(f"  heavy modules `--help` imports: {heavy_imports(['--help'], cwd) or 'none'}")
    print(
        "  heavy modules `items` imports:"
        f" {heavy_imports(['--db', str(path), 'items', '--limit', '1'], cwd) or 'none'}"
    )
    runner = CliRunner()
    base = ["--db", str(path)]
    with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as conn:
        for label, args in commands(s):
            run = paired([*base, *args], cwd, repeat)
            report.add(
                f"`aggregator {label}`, beyond start-up", run.wall - run.help_wall, LIMIT_MS,
                f"(process {run.wall:.0f} ms, `--help` beside it {run.help_wall:.0f} ms;"
                f" CPU {run.cpu:.0f} ms, beyond `--help`'s {run.cpu - run.help_cpu:.0f} ms)",
            )  # fmt: skip

            def invoke(args: list[str] = args) -> None:
                result = runner.invoke(cli, [*base, *args], catch_exceptions=False)
                if result.exit_code != 0:
                    raise SystemExit(f"{args}: exit {result.exit_code}: {result.output}")

            with contextlib.chdir(cwd):
                report.add(f"`{label}` in-process (CliRunner)", median_ms(invoke, repeat=repeat))
                with traced_statements() as statements:
                    invoke()
            show_plans(report, label, conn, [(sql, ()) for sql in query_plans.reads(statements)])


# -- aggregator serve -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving(path: Path, cwd: Path) -> Iterator[str]:
    """`aggregator serve` on the store, as an operator starts it; yields its base URL."""
    import httpx

    port = _free_port()
    log = cwd / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*command(), "--db", str(path), "serve", "--port", str(port)],
            cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"aggregator serve did not start:\n{log.read_text()}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(base + "/-/versions.json", timeout=5).status_code == 200:
                    break
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def measure_serve(report: Report, path: Path, s: Subjects, repeat: int, cwd: Path) -> None:
    import httpx

    from aggregator.publish.serve_metadata import CANNED_QUERIES, DATABASE

    given = {"q": s.word, "story": str(s.story)}
    canned = {
        name: {p: given.get(p, "") for p in query.get("params", [])}
        for name, query in CANNED_QUERIES.items()
    }
    with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as conn:
        for name, params in canned.items():
            show_plans(
                report, f"canned query {name}", conn, [(CANNED_QUERIES[name]["sql"], params)]
            )
    feeds = {
        f"`/feeds/stories.atom{query}limit=N`": f"/feeds/stories.atom{query}limit={{n}}"
        for query in ("?", f"?tag={s.tag}&", f"?feed={s.feed}&")
    }
    print("\naggregator serve, over HTTP (feeds rendered every time: N = 50, 49, ...):", flush=True)
    with serving(path, cwd) as base, httpx.Client(base_url=base, timeout=120) as client:
        for label, url in feeds.items():
            _http(report, label, client, url, repeat=repeat, limit=LIMIT_MS)
        for name, params in canned.items():
            query = "&".join(f"{k}={v}" for k, v in params.items() if v)
            url = f"/{DATABASE}/{name}.json" + (f"?{query}" if query else "")
            _http(report, f"`{url}`", client, url, repeat=repeat, limit=LIMIT_MS)
        # Table pages, each sorted as serve_metadata says (latest first): for reference.
        for table in ("items", "stories", "sightings", "fetches"):
            url = f"/{DATABASE}/{table}.json?_size=50"
            _http(report, f"`{url}` (a table page)", client, url, repeat=repeat, limit=None)


def _http(
    report: Report, label: str, client: Any, url: str, *, repeat: int, limit: float | None
) -> None:
    """Time `url` (a `{n}` in it: 50, 49, ... so that nothing comes from the feeds' cache);
    an answer other than 200 (Datasette's time limit: 400) is a failure, recorded with the
    time it took."""
    count = iter(range(10_000))
    refused: list[str] = []

    def get() -> None:
        response = client.get(url.format(n=50 - next(count) % 40))
        if response.status_code != 200:
            refused.append(f"HTTP {response.status_code}")
            raise _Refused

    try:
        report.add(label, median_ms(get, repeat=repeat, warmup=3), limit)
    except _Refused:
        report.add(label, float("inf"), limit, refused[0])
        report.errors.append(f"{url}: {refused[0]}")


class _Refused(Exception):
    pass


# -- the run --------------------------------------------------------------------------------------


def migrate(path: Path) -> None:
    """This version's migrations on a store built by an older one, timed (an upgrade)."""
    from aggregator.store import Store
    from aggregator.store.migrations import KNOWN

    conn = sqlite3.connect(path)
    try:
        applied = {r[0] for r in conn.execute("SELECT name FROM _sqlite_migrations")}
    finally:
        conn.close()
    pending = [name for name in KNOWN if name not in applied]
    if not pending:
        return
    t0 = time.monotonic()
    Store.open(str(path)).close()
    print(f"migrated: {', '.join(pending)} in {time.monotonic() - t0:.1f} s", flush=True)


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()},"
        f" SQLite {sqlite3.sqlite_version}; 1-minute load average {load:.1f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.store_scale", description=__doc__)
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="20,000 items, 3 runs of each")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "aggregator-benchmarks",
        help="where built stores are kept between runs",
    )
    parser.add_argument("--no-serve", action="store_true", help="leave out `aggregator serve`")
    args = parser.parse_args(argv)
    items, repeat = (20_000, 3) if args.quick else (args.items, args.repeat)

    import aggregator

    print(f"store of {items:,} items ({machine()})", flush=True)
    print(f"aggregator from {Path(aggregator.__file__).parent}", flush=True)
    path, built = cached(Spec(items=items), args.cache_dir)
    print(f"{path}: {'built in ' + format(built, '.0f') + ' s' if built else 'cached'}")
    migrate(path)
    size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 2**20
    print(", ".join(f"{n:,} {table}" for table, n in counts(path).items()) + f"; {size:,.0f} MB")
    s = subjects(path)
    print(f"subjects: {s}", flush=True)
    report = Report()
    with tempfile.TemporaryDirectory() as folder:  # no feeds.yaml here: the defaults
        measure_commands(report, path, s, repeat, Path(folder))
        if not args.no_serve:
            measure_serve(report, path, s, max(repeat, 10), Path(folder))
    print(f"\n{machine()}\n\n| measured | median ms | limit ms |\n|---|---:|---:|")
    for f in report.figures:
        limit = "" if f.limit_ms is None else f"{f.limit_ms:.0f}"
        print(
            f"| {f.label} {f.note} | {f.median_ms:.1f}{' **over**' if f.over else ''} | {limit} |"
        )
    for problem in report.plan_problems:
        print(f"plan: {problem}")
    for error in report.errors:
        print(f"refused: {error}")
    failed = any(f.over for f in report.figures) or bool(report.plan_problems or report.errors)
    print(
        "\nFAILED: over a limit, a plan reads a big table whole, or a request was refused"
        if failed
        else "\nall within limits"
    )
    summary.write("store_scale", summary_rows(report, items), argv)
    return 1 if failed else 0


def summary_rows(report: Report, items: int) -> list[summary.Row]:
    """The start-up, each command's time beyond it (the `--help` run beside it is its
    reference), and the slowest request to `aggregator serve`: each against its limit."""
    store = f"store of {items:,} items"
    out = []
    served = []
    for f in report.figures:
        if f.limit_ms is None:
            continue
        limit = summary.against(f.median_ms, at_most=f.limit_ms, unit=" ms")
        if f.label.startswith("`aggregator --help`"):
            ours = f"{f.median_ms:.0f} ms, a new process ({f.note.strip('()')})"
            out.append(summary.Row(f"{store}: {f.label}", ours, "", None, *limit))
        elif f.label.endswith("beyond start-up"):
            reference = f.note.strip("()")
            out.append(
                summary.Row(f"{store}: {f.label}", f"{f.median_ms:.0f} ms", reference, None, *limit)
            )
        elif f.label.startswith("`/"):
            served.append(f)
    if served:
        slowest = max(served, key=lambda f: f.median_ms)
        out.append(
            summary.Row(
                f"{store}: the slowest of {len(served)} requests to `aggregator serve`",
                f"{slowest.median_ms:.0f} ms, {slowest.label}",
                "",
                None,
                *summary.against(slowest.median_ms, at_most=slowest.limit_ms, unit=" ms"),
            )
        )
    return out


if __name__ == "__main__":
    sys.exit(main())
