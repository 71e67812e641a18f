"""The hostile-web matrix: each case beside a good feed, then every case in one pass.

    python -m benchmarks.hostile

The cases are the ones tests/test_hostile.py asserts on (tests/hostile.py). Extraction runs in
real worker processes, as in production. Per case: the outcome, wall time, tracemalloc's
peak of Python allocations during the run (above what was allocated before it), and the most
any extraction worker held (its ru_maxrss). Then the whole matrix in one pass, as the daemon
would meet it, against the targets: every good feed intact, within 60 s, main-process peak
RSS at most 200 MB, any extraction worker at most 400 MB.
"""

from __future__ import annotations

import asyncio
import ipaddress
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))

from hostile import CASES, GOOD_ITEMS, config_text, install_all  # noqa: E402
from localserver import LocalServer  # noqa: E402

from aggregator.config.loader import parse_config  # noqa: E402
from aggregator.engine.pool import Workers  # noqa: E402
from aggregator.engine.run import fetch_feeds  # noqa: E402
from aggregator.fetch import address_guard  # noqa: E402
from aggregator.store import Store  # noqa: E402
from benchmarks import summary  # noqa: E402


def _treat_server_as_public() -> None:
    """As in the tests: 127.0.0.1 stands for a public host; every other private target,
    127.0.0.2 included, is still refused."""
    real = address_guard.is_public_address
    server_ip = ipaddress.ip_address("127.0.0.1")
    address_guard.is_public_address = lambda ip: ip == server_ip or real(ip)  # type: ignore[assignment]


def main() -> int:
    _treat_server_as_public()
    print("| case | outcome | seconds | peak MB | worker MB | good feed stored | message |")
    print("|---|---|---:|---:|---:|---|---|")
    worst, worst_case = 0.0, ""
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            workers = Workers()  # fresh workers: their peak memory is this case's
            server = LocalServer().start()
            try:
                case.install(server, "/case")
                server.add("/good.xml", _good_feed())
                config = parse_config(
                    config_text(server, {case.name: "/case", "good": "/good.xml"})
                )
                store = Store.open(f"{tmp}/{case.name}.db")
                workers.peak_worker_bytes = 0
                tracemalloc.start()
                started = time.monotonic()
                outcomes = asyncio.run(fetch_feeds(config, store, config.feeds, workers=workers))
                seconds = time.monotonic() - started
                _, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                result = {o.feed: o for o in outcomes}
                good = result["good"].new_items == 5
                message = (result[case.name].error or result[case.name].warning or "")[:90]
                print(
                    f"| {case.name} | {result[case.name].outcome} | {seconds:.2f} | "
                    f"{peak / 2**20:.1f} | {workers.peak_worker_bytes / 2**20:.0f} | "
                    f"{'yes' if good else 'NO'} | {message} |",
                    flush=True,
                )
                if peak > worst:
                    worst, worst_case = peak, case.name
                store.close()
            finally:
                server.stop()
                workers.close()
        print(f"\nworst peak: {worst / 2**20:.1f} MB ({worst_case})")
        workers = Workers()
        try:
            return _one_pass(tmp, workers)
        finally:
            workers.close()


def _one_pass(tmp: str, workers: Workers) -> int:
    """Every case and a good feed in one run; the targets."""
    server = LocalServer().start()
    try:
        paths = install_all(server)
        config = parse_config(config_text(server, paths))
        store = Store.open(f"{tmp}/all.db")
        workers.peak_worker_bytes = 0
        started = time.monotonic()
        outcomes = {
            o.feed: o
            for o in asyncio.run(fetch_feeds(config, store, config.feeds, workers=workers))
        }
        seconds = time.monotonic() - started
        stored = store.execute("SELECT count(*) FROM sightings WHERE feed = 'good'")[0][0]
        store.close()
    finally:
        server.stop()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    worker_mb = workers.peak_worker_bytes / 2**20
    wrong = [
        name for name, case in ((c.name, c) for c in CASES)
        if outcomes[name].outcome != case.outcome
    ]  # fmt: skip
    checks = [
        (f"good feed intact ({stored} of {GOOD_ITEMS} entries)", stored == GOOD_ITEMS),
        (
            f"every case as expected ({len(CASES) - len(wrong)} of {len(CASES)}"
            + "".join(f"; {n}: {outcomes[n].outcome} {outcomes[n].error or ''}" for n in wrong)
            + ")",
            not wrong,
        ),
        (f"whole pass {seconds:.1f} s (target 60 s)", seconds <= 60),
        (f"main-process peak RSS {rss_mb:.0f} MB (target 200 MB)", rss_mb <= 200),
        (f"largest extraction worker {worker_mb:.0f} MB (target 400 MB)", worker_mb <= 400),
    ]
    print(f"\nThe whole matrix in one pass ({len(CASES)} cases and a good feed):")
    for case in CASES:
        if case.extract:
            said = outcomes[case.name].warning or "every page extracted or refused by its cap"
            print(f"- {case.name}: {outcomes[case.name].outcome}, {said[:100]}")
    for what, ok in checks:
        print(f"- {'ok' if ok else 'MISSED'}: {what}")
    summary.write("hostile", summary_rows(len(CASES) - len(wrong), seconds, rss_mb, worker_mb))
    return 0 if all(ok for _, ok in checks) else 1


def summary_rows(
    as_expected: int, seconds: float, rss_mb: float, worker_mb: float
) -> list[summary.Row]:
    """The one pass over every case and a good feed, against its targets."""
    work = f"hostile web: {len(CASES)} cases and a good feed in one pass"
    count = len(CASES)
    return [
        summary.Row(
            f"{work}, cases as expected",
            f"{as_expected} of {count}",
            "",
            None,
            *summary.against(as_expected, at_least=count, unit=""),
        ),
        *(
            summary.Row(
                f"{work}, {what}",
                f"{value:.1f}{unit}",
                "",
                None,
                *summary.against(value, at_most=limit, unit=unit),
            )
            for what, value, limit, unit in (
                ("wall time", seconds, 60, " s"),
                ("main-process peak RSS", rss_mb, 200, " MB"),
                ("largest extraction worker", worker_mb, 400, " MB"),
            )
        ),
    ]


def _good_feed() -> str:
    from feeds_builder import rss

    return rss([{"title": f"Good {n}", "link": f"https://example.org/g/{n}"} for n in range(5)])


if __name__ == "__main__":
    sys.exit(main())
