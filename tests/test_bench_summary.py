"""The benchmarks' summary table: the rows each benchmark writes, and the README rewritten
between its two markers with every other byte kept.

The README tests work on a copy of benchmarks/README.md in a temporary folder. The benchmarks'
own row builders get figures made up here (the benchmarks take minutes and some need
../shared/corpora): what is checked is which rows come out, their ratios and their verdicts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))  # the benchmarks are a folder of the checkout, not installed

from benchmarks import summary  # noqa: E402

RUN = summary.Run(datetime(2026, 12, 1, 9, 30, tzinfo=UTC), 2, 0.7, quick=False)
QUICK = summary.Run(datetime(2026, 12, 2, 10, 0, tzinfo=UTC), 2, 1.4, quick=True)
ORDER = ["throughput", "feed_only", "dedup", "store_scale"]


def rows(benchmark: str, figure: str, run: summary.Run = RUN) -> list[str]:
    return summary.table_rows(benchmark, [summary.Row("work", figure, command="cmd")], run)


@pytest.fixture
def readme(tmp_path: Path) -> Path:
    copy = tmp_path / "README.md"
    shutil.copyfile(PROJECT / "benchmarks" / "README.md", copy)
    return copy


def section(text: str) -> tuple[str, str, str]:
    """(before, the section from START to END inclusive, after)."""
    begin, end = text.index(summary.START), text.index(summary.END) + len(summary.END)
    return text[:begin], text[begin:end], text[end:]


def without_section(text: str) -> str:
    """The README as it was before a section was inserted after its first heading."""
    lines = text.splitlines(keepends=True)
    begin = next(n for n, line in enumerate(lines) if line.startswith(summary.START))
    end = next(n for n, line in enumerate(lines) if line.startswith(summary.END))
    return "".join(lines[: begin - 1] + lines[end + 1 :])


# -- the README ---------------------------------------------------------------------------------


def test_missing_markers_are_inserted_once_after_the_first_heading(readme: Path) -> None:
    original = readme.read_text()
    plain = original if summary.START not in original else without_section(original)

    first = summary.rewrite_readme(plain, {"dedup": rows("dedup", "first figure")}, ORDER)
    second = summary.rewrite_readme(first, {"dedup": rows("dedup", "second figure")}, ORDER)

    heading = plain.splitlines(keepends=True)[0]
    assert heading.startswith("# ")
    before, _, after = section(first)
    assert before == heading + "\n"
    assert after == "\n" + plain[len(heading) :]
    assert without_section(first) == plain
    for text in (first, second):
        assert text.count(summary.START) == text.count(summary.END) == 1
    assert "| first figure |" in section(first)[1]
    assert "| second figure |" in section(second)[1]
    assert "| first figure |" not in second


def test_rewriting_keeps_every_byte_outside_the_markers(readme: Path) -> None:
    text = summary.rewrite_readme(readme.read_text(), {"dedup": rows("dedup", "a")}, ORDER)
    readme.write_bytes(text.encode())
    before, old_section, after = section(readme.read_text())

    readme.write_text(
        summary.rewrite_readme(readme.read_text(), {"dedup": rows("dedup", "b")}, ORDER)
    )

    new_before, new_section, new_after = section(readme.read_text())
    assert (new_before.encode(), new_after.encode()) == (before.encode(), after.encode())
    assert new_section == old_section.replace("| a |", "| b |")


def test_rows_are_merged_by_benchmark_in_the_given_order() -> None:
    text = "# Benchmarks\n\nintro\n"
    text = summary.rewrite_readme(
        text,
        {
            "store_scale": rows("store_scale", "s1"),
            "dedup": rows("dedup", "d1") + rows("dedup", "d2"),
            "retired": rows("retired", "r1"),
        },
        ORDER,
    )
    # Only feed_only and dedup run now: the others' rows stay, with their own date.
    text = summary.rewrite_readme(
        text,
        {"dedup": rows("dedup", "d3", QUICK), "feed_only": rows("feed_only", "f1", QUICK)},
        ORDER,
    )

    table = [line for line in section(text)[1].splitlines() if line.startswith("|")]
    assert table[:2] == list(summary.HEADER)
    assert [line.split(" | ")[:3] for line in table[2:]] == [
        ["| feed_only", "work", "f1"],
        ["| dedup", "work", "d3"],
        ["| store_scale", "work", "s1"],
        ["| retired", "work", "r1"],
    ]
    assert "2026-12-01 09:30 UTC, 2 cores, load 0.7" in table[4]
    assert "2026-12-02 10:00 UTC, **quick**, 2 cores, load 1.4" in table[2]
    assert text.endswith(f"{summary.END}\n\nintro\n")


@pytest.mark.parametrize(
    "text",
    [
        f"# B\n{summary.START}\nno end\n",
        f"# B\n{summary.END}\n{summary.START}\n",
        f"# B\n{summary.START}\n{summary.END}\n{summary.START}\n{summary.END}\n",
    ],
)
def test_broken_markers_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="must hold"):
        summary.rewrite_readme(text, {"dedup": rows("dedup", "x")}, ORDER)


def test_a_readme_without_a_heading_gets_the_section_first() -> None:
    text = summary.rewrite_readme("no heading here\n", {"dedup": rows("dedup", "x")}, ORDER)
    assert text.startswith(summary.START)
    assert text.endswith(f"{summary.END}\n\nno heading here\n")


# -- rows ---------------------------------------------------------------------------------------


def test_a_row_cell_shows_ratio_target_verdict_and_escapes_pipes() -> None:
    row = summary.Row(
        "feed-only | intake",
        "155 entries/s",
        "reader 695 entries/s",
        155 / 695,
        *summary.against(155 / 695, at_least=3),
        command="python -m benchmarks.feed_only --quick",
    )
    (line,) = summary.table_rows("feed_only", [row], QUICK)
    assert line == (
        "| feed_only | feed-only \\| intake | 155 entries/s | reader 695 entries/s | 0.22x"
        " | >= 3x | **no** | 2026-12-02 10:00 UTC, **quick**, 2 cores, load 1.4"
        " | `python -m benchmarks.feed_only --quick` |"
    )
    small = summary.Row("re-run", "0.3 s", "8 s", 0.04, *summary.against(0.04, at_most=0.1))
    (line,) = summary.table_rows("feed_only", [small], dataclasses.replace(RUN, exit_code=1))
    assert "| 0.040x | <= 0.1x | yes |" in line
    assert line.endswith("load 0.7, exit 1 |  |")


def test_written_rows_carry_the_command_that_measured_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "out" / "dedup.json"
    monkeypatch.setenv(summary.ENV, str(path))
    written = [summary.Row("a", "1 ms"), summary.Row("b", "2 ms", command="by hand")]

    assert summary.write("dedup", written, ["--sizes", "10000"]) == path

    assert json.loads(path.read_text())["benchmark"] == "dedup"
    assert [r.command for r in summary.read(path)] == [
        ".venv/bin/python -m benchmarks.dedup --sizes 10000",
        "by hand",
    ]
    assert [r.ours for r in summary.read(path)] == ["1 ms", "2 ms"]


def test_against_reads_each_way() -> None:
    assert summary.against(2.0, at_least=1.9) == (">= 1.9x", True)
    assert summary.against(1.8, at_least=1.9) == (">= 1.9x", False)
    assert summary.against(151.0, at_most=150, unit=" ms") == ("<= 150 ms", False)
    assert summary.against(None, at_most=150, unit=" ms") == ("<= 150 ms", None)
    assert summary.against(3.0) == ("", None)


# -- each benchmark's headline rows ---------------------------------------------------------------


def verdicts(built: list[summary.Row]) -> list[tuple[str, bool | None]]:
    return [(r.target, r.met) for r in built]


def test_throughput_rows() -> None:
    from benchmarks.throughput import Result, summary_rows

    # 5 s in this process, 1.5 s of it the test server's handlers: 3.5 ms an article.
    ours = Result("ours", "", 1000, 1000, 20.0, 33.0, 997, 1021, 0, own_cpu_s=5.0, server_cpu_s=1.5)
    second = Result("ours, 2nd pass (304s)", "", 0, 0, 0.4, 0.6, 997, 24, 0)
    # The target's naive loop shares one httpx client; the loop without one is not the bar.
    slower = Result("baseline", "", 1000, 1000, 90.0, 88.0, 1000, 1020, 0)
    base = Result("baseline, one client", "", 1000, 1000, 50.0, 46.0, 1000, 1020, 0)
    built = summary_rows([ours, second, slower, base], argparse.Namespace(feeds=20))
    assert [r.ratio for r in built] == pytest.approx([2.5, 3.5 / 46])
    assert "one client" in built[0].reference
    assert verdicts(built) == [(">= 1.9x", True), ("<= 4 ms", True)]
    assert built[1].ours == "3.5 ms"


def test_throughput_rows_of_the_cli_in_its_own_process() -> None:
    """`aggregator fetch` on every core is held to the same 1.9x, on one core it is only
    reported; the main process's peak RSS to at most 150 MB."""
    from benchmarks.throughput import CLI, CLI_ONE_CORE, Result, summary_rows

    ours = Result("ours", "", 1000, 1000, 20.0, 33.0, 997, 1021, 0, own_cpu_s=5.0)
    base = Result("baseline, one client", "", 1000, 1000, 50.0, 46.0, 1000, 1020, 0)
    every = Result(CLI, "", 1000, 1000, 25.0, 40.0, 997, 1021, 0, main_rss_mb=120.0)
    one = Result(CLI_ONE_CORE, "", 1000, 1000, 40.0, 38.0, 997, 1021, 0, main_rss_mb=160.0)
    built = summary_rows([ours, base, every, one], argparse.Namespace(feeds=20))[2:]
    assert [r.ratio for r in built] == pytest.approx([2.0, None, 1.25, None])
    assert [r.ours for r in built] == ["40.0 articles/s", "120 MB", "25.0 articles/s", "160 MB"]
    assert verdicts(built) == [
        (">= 1.9x", True),
        ("<= 150 MB", True),
        ("", None),
        ("<= 150 MB", False),
    ]


def test_tree_cpu_counts_the_processes_under_the_one_it_watches() -> None:
    """A CLI's forkserver and workers are never waited for by the benchmark, so getrusage
    misses them: TreeCPU samples every process under the CLI from /proc while they run."""
    import subprocess
    import sys

    from benchmarks.throughput_cpu import TreeCPU

    if not Path("/proc/self/stat").is_file():
        pytest.skip("no /proc here")
    # A parent that starts a child of its own burning 0.5 s of CPU.
    burn = "import time; end = time.process_time() + 0.5\nwhile time.process_time() < end: pass"
    start = (
        "import subprocess, sys; "
        f"p = subprocess.Popen([sys.executable, '-c', {burn!r}]); "
        "sys.stdin.read(); p.wait()"
    )
    parent = subprocess.Popen([sys.executable, "-c", start], stdin=subprocess.PIPE)
    with TreeCPU(parent.pid, every=0.02) as tree:
        parent.communicate(b"")
    assert tree.processes == 2
    assert 0.4 <= tree.seconds < 5


def test_the_server_clock_counts_what_the_handlers_spent() -> None:
    """The throughput benchmark takes its server's request handling out of our main
    process's CPU: the clock must see a handler's work, on the handler's own thread."""
    import http.server
    import threading
    import time
    import urllib.request

    from benchmarks.throughput_cpu import ServerClock

    class Busy(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            deadline = time.thread_time() + 0.05  # 50 ms of this thread's CPU
            while time.thread_time() < deadline:
                pass
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    clock = ServerClock()
    clock.install(Busy)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for _ in range(2):
            with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/") as answer:
                assert answer.status == 204
    finally:
        server.shutdown()
        server.server_close()
    assert 0.1 <= clock.total < 1.0


def test_feed_only_rows() -> None:
    from benchmarks.feed_only import Row, summary_rows

    measured = [
        Row("ours", 10.0, 5000, 9.0, 1.0, 0.0),
        Row("ours, again (304s)", 0.5, 0, 0.4, 0.1, 0.0),
        Row("reader update_feeds", 2.0, 5000, 2.0, 1.0, 0.0),
    ]
    args = argparse.Namespace(feeds=100, items=50, summaries="boilerplate")
    built = summary_rows(args, measured)
    assert [r.ratio for r in built] == pytest.approx([0.2, 0.05])
    assert verdicts(built) == [(">= 3x", False), ("<= 0.1x", True)]
    assert summary_rows(args, measured[:2])[0].work.endswith(
        "the unchanged re-run (every feed 304)"
    )


def test_dedup_rows() -> None:
    from benchmarks.dedup.__main__ import summary_rows
    from benchmarks.dedup.cost import Cost
    from benchmarks.dedup.quality import Score

    costs = [
        Cost("10,000", 1.0, 1.2, "10,000", 1.0),
        Cost("1,000,000", 1.6, 2.0, "10,000", 1.0),
        Cost("10,000 (teasers)", 2.0, 2.1, "10,000 (teasers)", 2.0),
    ]
    built = summary_rows(Score(tp=90, fp=0, fn=10, tn=100), costs)
    assert built[0].ours == "precision 1.000, recall 0.900"
    assert built[0].work.startswith("near-duplicates: 200 labelled pairs")
    # the 10,000 row is the 1,000,000 one's reference; the teasers' has no other, so it stands
    assert [r.work for r in built[1:]] == [
        "cost per new entry, 1,000,000 stored items",
        "cost per new entry, 10,000 (teasers) stored items",
    ]
    assert verdicts(built[1:]) == [("<= 1.5x", False), ("", None)]


def test_store_scale_rows() -> None:
    from benchmarks.store_scale import Figure, Report, summary_rows

    report = Report()
    for label, ms, limit, note in [
        ("`aggregator --help` (start-up)", 320.0, 150.0, "(CPU 300 ms)"),
        ("`aggregator items --limit 20`, beyond start-up", 12.0, 150.0, "(process 332 ms)"),
        ("`items --limit 20` in-process (CliRunner)", 8.0, None, ""),
        ("`/feeds/stories.atom?limit=N`", 40.0, 150.0, ""),
        ("`/aggregator/latest_stories.json`", 160.0, 150.0, ""),
        ("`/aggregator/items.json?_size=50` (a table page)", 900.0, None, ""),
    ]:
        report.figures.append(Figure(label, ms, limit, note))
    built = summary_rows(report, 1_000_000)
    assert [r.ours for r in built] == [
        "320 ms, a new process (CPU 300 ms)",
        "12 ms",
        "160 ms, `/aggregator/latest_stories.json`",
    ]
    assert built[1].reference == "process 332 ms"
    assert verdicts(built) == [("<= 150 ms", False), ("<= 150 ms", True), ("<= 150 ms", False)]
    assert "the slowest of 2 requests" in built[2].work


def test_distributed_rows() -> None:
    from benchmarks.distributed import Row, summary_rows

    measured = [
        Row("embedded (`fetch --workers 2`)", 20.0, 1000, 1000),
        Row("distributed, 1 worker process", 40.0, 1000, 1000),
        Row("distributed, 2 worker processes", 25.0, 1000, 1000),
    ]
    built = summary_rows(measured, [("a page", 50_000, 1.25)], 1000)
    assert [r.ratio for r in built[:2]] == pytest.approx([1.6, 0.8])
    assert verdicts(built) == [(">= 1.7x", False), (">= 0.9x", False), ("", None)]
    assert built[2].ours == "1.25 ms (50,000 bytes)"
    assert summary_rows(measured[:1], [], 1000) == []


def test_serve_hostile_and_extraction_rows() -> None:
    from benchmarks import extraction_f1, hostile, serve

    timed = [("live", 17.4, 24.8), ("desk", 12.6, 24.9), ("again", 2.2, 2.4), ("304", 1.7, 2.2)]
    built = serve.summary_rows(timed, 100_000)
    assert [r.reference for r in built] == ["again: 2.2 ms", "again: 2.2 ms"]
    assert built[1].ours == "12.6 ms median, p95 24.9 ms"

    from hostile import CASES  # tests/hostile.py: the cases benchmarks/hostile.py runs

    cases = len(CASES)
    built = hostile.summary_rows(cases - 1, 8.1, 160.0, 410.0)
    assert verdicts(built) == [
        (f">= {cases}", False),
        ("<= 60 s", True),
        ("<= 200 MB", True),
        ("<= 400 MB", False),
    ]

    mine = extraction_f1.Score(tp=90, fp=10, fn=10)
    base = extraction_f1.Score(tp=80, fp=20, fn=20)
    built = extraction_f1.summary_rows(990, [("ours", mine, 17.3), ("base", base, 10.5)])
    assert built[0].ratio == pytest.approx(0.9 / 0.8)
