"""Leases: a feed is refreshed by one process at a time, daemon or `aggregator fetch`.

A lease is a holder name and an expiry on the feed's row. The holder's name says which
host, process and command hold it, so that a process that finds a feed taken can say by
whom. The holder renews its leases while it works and releases each when the feed is done.
A holder that died (kill -9) cannot release anything: on this host its leases are broken at
once, since its process is gone; elsewhere they expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from aggregator.times import iso_utc, utc_now


class LeaseBook(Protocol):
    """Where leases are kept: the store's writer."""

    def lease_holders(self) -> list[str]: ...

    def lease_holder(self, feed: str, *, now: str) -> str | None: ...

    def release_leases(self, holders: Sequence[str]) -> None: ...

    def take_lease(
        self, feed: str, *, holder: str, now: str, until: str, due_by: str | None = None
    ) -> bool: ...

    def release_lease(self, feed: str, *, holder: str) -> None: ...

    def renew_leases(self, *, holder: str, until: str) -> None: ...


LEASE_S = 600  # renewed every third of it while the holder lives
HOST = socket.gethostname()


# The command behind each role, as a person would type it (the daemon's role is older than
# its command's name); a role not listed is its own command: `aggregator retry`.
COMMANDS = {"daemon": "run"}


def new_holder(role: str) -> str:
    """host:pid:role:token, so a lease names who holds it (the role is the command: fetch,
    daemon for `run`, retry) and can be checked for life."""
    return f"{HOST}:{os.getpid()}:{role}:{secrets.token_hex(3)}"


def describe(holder: str) -> str:
    """Who a holder is, for messages: "`aggregator fetch` (pid 4242)", with the host when
    it is another machine's."""
    host, pid, role, token = [*holder.split(":", 3), "", "", ""][:4]
    if not (pid.isdecimal() and role and token):
        return f"another aggregator process ({holder})"
    where = "" if host == HOST else f" on {host}"
    return f"`aggregator {COMMANDS.get(role, role)}` (pid {pid}{where})"


def holder_pid(holder: str) -> int | None:
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    return int(pid) if host == HOST and pid.isdecimal() else None


def is_dead(holder: str) -> bool:
    """True when the holder is a process on this host that no longer exists."""
    pid = holder_pid(holder)
    if pid is None or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, owned by another user
    return False


class Leases:
    def __init__(
        self,
        store: LeaseBook,
        *,
        role: str,
        clock: Callable[[], datetime] = utc_now,
        duration_s: float = LEASE_S,
    ) -> None:
        self.store = store
        self.holder = new_holder(role)
        self.clock = clock
        self.duration_s = duration_s

    def _until(self) -> str:
        return iso_utc(self.clock() + timedelta(seconds=self.duration_s))

    def break_dead(self) -> list[str]:
        """Free the leases of crashed holders on this host; returns who they were."""
        dead = [h for h in self.store.lease_holders() if is_dead(h)]
        if dead:
            self.store.release_leases(dead)
        return dead

    def take(self, feed: str, *, only_if_due: bool = False) -> bool:
        now = iso_utc(self.clock())
        return self.store.take_lease(
            feed,
            holder=self.holder,
            now=now,
            until=self._until(),
            due_by=now if only_if_due else None,
        )

    def release(self, feed: str) -> None:
        self.store.release_lease(feed, holder=self.holder)

    def holder_of(self, feed: str) -> str | None:
        """Who holds `feed` now, described (`describe`); None when nobody does."""
        holder = self.store.lease_holder(feed, now=iso_utc(self.clock()))
        return None if holder is None else describe(holder)

    def skipped(self, feed: str) -> str:
        """Why `feed` was skipped after `take` failed: who is refreshing it instead."""
        who = self.holder_of(feed) or "another aggregator process"
        return f"skipped: {who} is refreshing it right now; it is left to that one"

    def release_all(self) -> None:
        self.store.release_leases([self.holder])

    def renew(self) -> None:
        self.store.renew_leases(holder=self.holder, until=self._until())

    @contextlib.asynccontextmanager
    async def kept(self) -> AsyncIterator[Leases]:
        """Renew our leases in the background while the block runs; free them all after."""

        async def renew_forever() -> None:
            while True:
                await asyncio.sleep(self.duration_s / 3)
                self.renew()

        renewer = asyncio.create_task(renew_forever())
        try:
            yield self
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer
            self.release_all()
