"""Every benchmark, one after the other: `python -m benchmarks [--quick]` (`make bench`).

1. throughput.py: items/s of a one-off fetch, ours against a naive sequential loop;
2. extraction_f1.py: extraction quality on the extraction-eval corpus (a few minutes).

`--quick` runs the throughput smoke size and leaves out extraction_f1, which has no small size.
Both need ../shared/corpora/ beside the project and are skipped with a message without it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small throughput run, no F1")
    args = parser.parse_args(argv)

    from benchmarks import throughput

    print("== throughput", flush=True)
    failed = throughput.main(["--quick"] if args.quick else []) != 0

    print("\n== extraction_f1", flush=True)
    if args.quick:
        print("extraction_f1: skipped (--quick)")
    elif not (throughput.EVAL_CORPUS / "evaldata.json").is_file():
        print(f"extraction_f1: skipped, no corpus at {throughput.EVAL_CORPUS}")
    else:
        # Its own process: it parses sys.argv and starts its own multiprocessing pool.
        done = subprocess.run([sys.executable, str(HERE / "extraction_f1.py")], check=False)
        failed = failed or done.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
