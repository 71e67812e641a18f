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
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (full-size arguments, quick arguments or None to leave it out of --quick)
BENCHMARKS: dict[str, tuple[list[str], list[str] | None]] = {
    "throughput": ([], ["--quick"]),
    "feed_only": ([], ["--quick"]),
    "dedup": ([], ["--sizes", "10000"]),
    "store_scale": ([], ["--quick"]),
    "distributed": ([], ["--quick"]),
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
    args = parser.parse_args(argv)
    names = list(BENCHMARKS)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(names) - set(BENCHMARKS))
        if unknown:
            parser.error(f"no benchmark {', '.join(unknown)}; there are {', '.join(BENCHMARKS)}")
    failed = []
    for name in names:
        full, quick = BENCHMARKS[name]
        if args.quick and quick is None:
            print(f"\n== {name}: left out of --quick (it has no small size)", flush=True)
            continue
        extra = quick if args.quick else full
        print(f"\n== {name}: python -m benchmarks.{name} {' '.join(extra)}", flush=True)
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", *extra], check=False)
        print(f"== {name}: exit {done.returncode} after {time.monotonic() - started:.0f} s")
        if done.returncode != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
