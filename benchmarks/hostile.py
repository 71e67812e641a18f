"""Each hostile-web case on its own beside a good feed: outcome, wall time, peak memory.

    python -m benchmarks.hostile

The cases are the ones tests/test_hostile.py asserts on (tests/hostile.py). Peak memory is
tracemalloc's peak of Python allocations during the run, above what was allocated before it.
"""

from __future__ import annotations

import asyncio
import ipaddress
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))

from hostile import CASES, config_text  # noqa: E402
from localserver import LocalServer  # noqa: E402

from aggregator.config.loader import parse_config  # noqa: E402
from aggregator.engine.pool import Workers  # noqa: E402
from aggregator.engine.run import fetch_feeds  # noqa: E402
from aggregator.fetch import address_guard  # noqa: E402
from aggregator.store import Store  # noqa: E402


def _treat_server_as_public() -> None:
    """As in the tests: 127.0.0.1 stands for a public host; every other private target,
    127.0.0.2 included, is still refused."""
    real = address_guard.is_public_address
    server_ip = ipaddress.ip_address("127.0.0.1")
    address_guard.is_public_address = lambda ip: ip == server_ip or real(ip)  # type: ignore[assignment]


def main() -> int:
    _treat_server_as_public()
    print("| case | outcome | seconds | peak MB | good feed stored | message |")
    print("|---|---|---:|---:|---|---|")
    worst, worst_case = 0.0, ""
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            server = LocalServer().start()
            try:
                case.install(server, "/case")
                server.add("/good.xml", _good_feed())
                config = parse_config(
                    config_text(server, {case.name: "/case", "good": "/good.xml"})
                )
                store = Store.open(f"{tmp}/{case.name}.db")
                tracemalloc.start()
                started = time.monotonic()
                outcomes = asyncio.run(fetch_feeds(config, store, config.feeds, workers=Workers(0)))
                seconds = time.monotonic() - started
                _, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                result = {o.feed: o for o in outcomes}
                good = result["good"].new_items == 5
                message = (result[case.name].error or result[case.name].warning or "")[:90]
                print(
                    f"| {case.name} | {result[case.name].outcome} | {seconds:.2f} | "
                    f"{peak / 2**20:.1f} | {'yes' if good else 'NO'} | {message} |"
                )
                if peak > worst:
                    worst, worst_case = peak, case.name
                store.close()
            finally:
                server.stop()
    print(f"\nworst peak: {worst / 2**20:.1f} MB ({worst_case}); the gzip bomb inflates to 64 MB")
    return 0


def _good_feed() -> str:
    from feeds_builder import rss

    return rss([{"title": f"Good {n}", "link": f"https://example.org/g/{n}"} for n in range(5)])


if __name__ == "__main__":
    sys.exit(main())
