"""Every benchmark, one after the other: `python -m benchmarks [--quick] [--only NAME,...]`
(`make bench`). Each runs in a process of its own (several start pools and servers of their
own), prints its tables with the command that reproduces them, and compares against its
reference in the same run:

- throughput:     items/s of a one-off fetch, ours against a naive sequential loop;
- feed_only:      feed-only intake, ours against lemon24/reader's update_feeds (installed
                  into a virtualenv of its own on first use), and the unchanged re-run;
- dedup:          near-duplicate quality, and the cost per entry at 10k .. 1M stored items;
- store_scale:    the CLI, the served feeds and Datasette on a 1,000,000-item store;
- distributed:    the distributed mode against the embedded one (needs a Redis binary);
- serve:          `aggregator serve` on a large store;
- hostile:        the hostile-web matrix;
- extraction_f1:  extraction quality on the extraction-eval corpus.

Those that need ../shared/corpora/ say so and are skipped without it. `--quick` runs the
small size of each and leaves out the ones that have none.

Each benchmark also writes its headline figures (benchmarks/summary.py); afterwards the summary
table at the top of benchmarks/README.md is rewritten with the rows of those that ran, the
others' rows kept as they were (`--no-readme` leaves the README alone).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import summary

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"

# name -> (full-size arguments, quick arguments or None to leave it out of --quick)
BENCHMARKS: dict[str, tuple[list[str], list[str] | None]] = {
    # Two interleaved rounds, each contender's faster kept: one round's contenders differed
    # by a quarter with the same code (the machine's speed drifts over minutes).
    "throughput": (["--repeat", "2"], ["--quick"]),
    "feed_only": ([], ["--quick"]),
    "dedup": ([], ["--sizes", "10000"]),
    "store_scale": ([], ["--quick"]),
    "distributed": (["--repeat", "2"], ["--quick"]),  # the same, for the same reason
    "serve": ([], ["--items", "10000", "--repeat", "5"]),
    "hostile": ([], None),
    "extraction_f1": ([], None),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="the small size of each")
    parser.add_argument("--only", help=f"comma-separated, of: {', '.join(BENCHMARKS)}")
    parser.add_argument("--no-readme", action="store_true", help="leave the README's table alone")
    args = parser.parse_args(argv)
    names = list(BENCHMARKS)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(names) - set(BENCHMARKS))
        if unknown:
            parser.error(f"no benchmark {', '.join(unknown)}; there are {', '.join(BENCHMARKS)}")
    failed: list[str] = []
    fresh: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-summary-") as folder:
        for name in names:
            full, quick = BENCHMARKS[name]
            extra = quick if args.quick else full
            if extra is None:
                print(f"\n== {name}: left out of --quick (it has no small size)", flush=True)
                continue
            code, rows = run_one(name, extra, Path(folder), args.quick)
            if code != 0:
                failed.append(name)
            if rows is None:
                print(f"== {name}: no headline figures; its earlier rows in the table stay")
            else:
                fresh[name] = rows
    if fresh:
        print("\n" + "\n".join([*summary.HEADER, *(r for rows in fresh.values() for r in rows)]))
        if not args.no_readme:
            try:
                text = summary.rewrite_readme(README.read_text(), fresh, list(BENCHMARKS))
            except ValueError as error:
                print(f"\n{README.relative_to(HERE.parent)} left as it was: {error}")
                return 2
            README.write_text(text)
            print(f"\nthe summary table in {README.relative_to(HERE.parent)} has these rows")
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


def run_one(name: str, extra: list[str], folder: Path, quick: bool) -> tuple[int, list[str] | None]:
    """Run one benchmark in a process of its own: its exit code and its summary table rows
    (None when it wrote none: skipped, or failed before the end)."""
    print(f"\n== {name}: python -m benchmarks.{name} {' '.join(extra)}", flush=True)
    rows_file = folder / f"{name}.json"
    started, load, clock = datetime.now(UTC), os.getloadavg()[0], time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", *extra],
        env=os.environ | {summary.ENV: str(rows_file)},
        check=False,
    )
    print(f"== {name}: exit {done.returncode} after {time.monotonic() - clock:.0f} s")
    if not rows_file.exists():
        return done.returncode, None
    run = summary.Run(started, os.cpu_count() or 1, load, quick, done.returncode)
    return done.returncode, summary.table_rows(name, summary.read(rows_file), run)


if __name__ == "__main__":
    sys.exit(main())
