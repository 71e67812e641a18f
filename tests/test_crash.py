"""kill -9 the daemon at different moments, restart it, and check that nothing was lost,
nothing was stored twice and the file is sound.

30 feeds, 40 entries each, served in 5 rounds: round r shows the entries of rounds r-1 and
r under the ETag "r<r>", so an entry drops out of its feed two rounds after it appeared.
A round advances only once every feed's stored ETag is the round's: if a killed daemon had
ever saved a validator without its entries, those entries would be gone for good and the
final count would miss them. Four of the 40 entries in every feed link the same four
stories, so items and sightings differ (1084 items, 1200 sightings).
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from daemon_helpers import config_text, scalar, spawn, terminate, wait_for
from feeds_builder import rss
from localserver import LocalServer

from aggregator.cli import cli

pytestmark = pytest.mark.slow

FEEDS, ROUNDS, PER_ROUND = 30, 5, 8
# When each kill lands: after this many refreshes were committed since the daemon started
# (0: as soon as it holds the lock, maybe mid-migration). The last one kills a daemon that
# is only getting 304s.
KILL_AFTER = (0, 1, 7, 15, 23)
KILL_AMONG_304S = 12


def link(server: LocalServer, feed: int, n: int) -> str:
    shared = n % 10 == 0  # the same story in every feed
    return server.url(f"/story/common/{n}" if shared else f"/story/f{feed}/{n}")


def guid(feed: int | str, n: int) -> str:
    return f"urn:crash:f{feed}-{n}"  # absolute: feedparser resolves a relative GUID


def window(round_: int) -> range:
    return range(max(0, round_ - 1) * PER_ROUND, (round_ + 1) * PER_ROUND)


def serve_round(server: LocalServer, round_: int) -> None:
    for feed in range(FEEDS):
        entries = [
            {
                "title": f"Feed {feed} story {n}",
                "link": link(server, feed, n),
                "guid": guid(feed, n),
            }
            for n in reversed(window(round_))
        ]
        server.add(f"/f{feed}.xml", rss(entries, title=f"Feed {feed}"), etag=f'"r{round_}"')


def connect(db: Path) -> sqlite3.Connection:
    # Read-write, as the next daemon would open it (and as WAL recovery needs).
    return sqlite3.connect(db, timeout=10)


def stored(db: Path) -> dict[str, set[str]]:
    conn = connect(db)
    try:
        rows = conn.execute("SELECT feed, guid FROM sightings").fetchall()
    except sqlite3.OperationalError:
        rows = []  # killed before the first migration committed
    finally:
        conn.close()
    by_feed: dict[str, set[str]] = {}
    for feed, guid in rows:
        by_feed.setdefault(feed, set()).add(guid)
    return by_feed


def check_after_kill(db: Path, committed_before: dict[str, set[str]]) -> dict[str, set[str]]:
    """The file is sound, nothing committed was lost, and no validator points past
    entries that were not stored."""
    conn = connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        etags = dict(conn.execute("SELECT name, etag FROM feeds").fetchall())
    except sqlite3.OperationalError:
        etags = {}
    finally:
        conn.close()
    now = stored(db)
    for feed, guids in committed_before.items():
        assert guids <= now.get(feed, set()), f"{feed} lost committed entries"
    for name, etag in etags.items():
        if etag:
            round_ = int(etag.strip('"r'))
            number = name.removeprefix("f")
            expected = {guid(number, n) for n in window(round_)}
            assert expected <= now.get(name, set()), f"{name}'s ETag {etag} is ahead of its items"
    return now


def refreshes(db: Path) -> int:
    return int(scalar(db, "SELECT count(*) FROM fetches") or 0)


def all_at_round(db: Path, round_: int) -> bool:
    done = scalar(db, "SELECT count(*) FROM feeds WHERE etag = ?", f'"r{round_}"')
    return done == FEEDS


def kill(daemon: subprocess.Popen[bytes], db: Path) -> int:
    """kill -9; returns how many feeds it was refreshing at that moment (leases it held)."""
    daemon.send_signal(signal.SIGKILL)
    assert daemon.wait(10) == -signal.SIGKILL
    return int(scalar(db, "SELECT count(*) FROM feeds WHERE lease_holder IS NOT NULL") or 0)


def kill_after(config: Path, db: Path, lock: Path, commits: int) -> int:
    """Start a daemon and kill -9 it once `commits` refreshes were committed."""
    target = refreshes(db) + commits
    daemon = spawn(config, db)
    try:
        if commits == 0:
            wait_for(
                lambda: lock.exists() and lock.read_text().strip() == str(daemon.pid), timeout=60
            )
        else:
            wait_for(lambda: refreshes(db) >= target, timeout=60, what=f"{commits} refreshes")
    finally:
        in_flight = kill(daemon, db)
    return in_flight


def finish_round(config: Path, db: Path, round_: int) -> subprocess.Popen[bytes]:
    daemon = spawn(config, db)
    try:
        # Bounded generously: a busy machine (CI) can take long to start a daemon.
        wait_for(lambda: all_at_round(db, round_), timeout=60, what=f"round {round_} stored")
    except BaseException:
        daemon.kill()
        daemon.wait(10)
        raise
    return daemon


def test_kill_9_at_any_moment_loses_nothing_and_stores_nothing_twice(
    server: LocalServer, tmp_path: Path
) -> None:
    config, db = tmp_path / "feeds.yaml", tmp_path / "news.db"
    lock = Path(f"{db}.lock")
    config.write_text(config_text((f"f{n}", server.url(f"/f{n}.xml")) for n in range(FEEDS)))
    committed: dict[str, set[str]] = {}
    in_flight: list[int] = []  # feeds being refreshed at each kill
    for round_, commits in enumerate(KILL_AFTER):
        serve_round(server, round_)
        in_flight.append(kill_after(config, db, lock, commits))
        committed = check_after_kill(db, committed)
        daemon = finish_round(config, db, round_)
        if round_ < ROUNDS - 1:
            assert terminate(daemon) == 0
    # The last daemon is killed while it only gets 304s.
    target = refreshes(db) + KILL_AMONG_304S
    wait_for(lambda: refreshes(db) >= target, what="304 rounds")
    in_flight.append(kill(daemon, db))
    committed = check_after_kill(db, committed)
    kills = len(in_flight)

    # A clean pass: every feed answers 304, nothing is added.
    result = CliRunner().invoke(
        cli, ["--config", str(config), "--db", str(db), "fetch", "--workers", "0"]
    )
    assert result.exit_code == 0, result.output
    assert f"{FEEDS} feeds, 0 new items, 0 failed" in result.stdout

    expected_sightings = {(f"f{f}", guid(f, n)) for f in range(FEEDS) for n in range(40)}
    expected_links = {link(server, f, n) for f in range(FEEDS) for n in range(40)}
    conn = connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        sightings = conn.execute("SELECT feed, guid FROM sightings").fetchall()
        links = [url for (url,) in conn.execute("SELECT url FROM items")]
        fts = conn.execute("SELECT count(*) FROM items_fts").fetchone()[0]
        orphans = conn.execute(
            "SELECT count(*) FROM items WHERE id NOT IN (SELECT item_id FROM sightings)"
        ).fetchone()[0]
    finally:
        conn.close()
    assert kills >= 5
    assert len(sightings) == len(set(sightings)) == len(expected_sightings) == 1200
    assert set(sightings) == expected_sightings
    assert len(links) == len(set(links)) == len(expected_links) == 1084
    assert set(links) == expected_links
    assert fts == len(links)
    assert orphans == 0
    duplicates = len(sightings) - len(set(sightings)) + len(links) - len(set(links))
    print(
        f"crash test: {kills} kills (feeds in flight at each: {in_flight});"
        f" items expected {len(expected_links)}, stored {len(links)};"
        f" sightings expected {len(expected_sightings)}, stored {len(sightings)};"
        f" duplicates {duplicates}"
    )
