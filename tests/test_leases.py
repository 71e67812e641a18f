"""Leases on a real store: one refresher per feed, and crashed holders do not block anyone."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aggregator.models import FeedConfig
from aggregator.schedule.leases import HOST, Leases, is_dead
from aggregator.store import Store

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store.open(str(tmp_path / "news.db"))
    store.sync_feeds([FeedConfig("wire", "https://wire.example/rss")], now="2026-11-27T11:00:00Z")
    return store


def dead_pid() -> int:
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(child.stdout)


def holder_of(store: Store) -> object:
    return store.execute("SELECT lease_holder FROM feeds WHERE name = 'wire'")[0][0]


def test_one_holder_at_a_time_until_released(store: Store) -> None:
    daemon = Leases(store, role="daemon", clock=lambda: NOW)
    fetch = Leases(store, role="fetch", clock=lambda: NOW)
    assert daemon.take("wire")
    assert daemon.take("wire")  # taking it again is renewing it
    assert not fetch.take("wire")
    assert store.due_feeds(now="2026-11-27T12:00:00Z", limit=10) == []
    daemon.release("wire")
    assert fetch.take("wire")
    assert holder_of(store) == fetch.holder


def test_an_expired_lease_can_be_taken_over(store: Store) -> None:
    elsewhere = "other-host:4242:daemon:abc"  # not this host: it cannot be checked for life
    store.take_lease(
        "wire", holder=elsewhere, now="2026-11-27T11:00:00Z", until="2026-11-27T11:10:00Z"
    )
    late = Leases(store, role="daemon", clock=lambda: NOW)
    assert not is_dead(elsewhere)
    assert late.take("wire")


def test_the_leases_of_a_crashed_process_are_broken_at_once(store: Store) -> None:
    crashed = f"{HOST}:{dead_pid()}:daemon:abc"
    store.take_lease(
        "wire", holder=crashed, now="2026-11-27T12:00:00Z", until="2026-11-27T13:00:00Z"
    )
    restarted = Leases(store, role="daemon", clock=lambda: NOW)
    assert not restarted.take("wire")
    assert restarted.break_dead() == [crashed]
    assert restarted.take("wire")


def test_a_lease_only_if_still_due(store: Store) -> None:
    leases = Leases(store, role="daemon", clock=lambda: NOW)
    store.execute("UPDATE feeds SET next_fetch_at = '2026-11-27T12:05:00Z'")
    assert not leases.take("wire", only_if_due=True)  # someone refreshed it a moment ago
    assert leases.take("wire")


def test_leases_are_renewed_while_kept_and_freed_after(store: Store) -> None:
    clock = [NOW]
    leases = Leases(store, role="fetch", clock=lambda: clock[0], duration_s=0.03)

    async def work() -> object:
        async with leases.kept():
            assert leases.take("wire")
            clock[0] = NOW + timedelta(hours=1)
            for _ in range(200):
                await asyncio.sleep(0.01)
                until = store.execute("SELECT lease_until FROM feeds")[0][0]
                if until == "2026-11-27T13:00:00Z":
                    return until
        return None

    assert asyncio.run(work()) == "2026-11-27T13:00:00Z"
    assert holder_of(store) is None
