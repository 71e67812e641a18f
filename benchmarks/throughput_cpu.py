"""CPU and wall-clock accounting for the throughput benchmark (Linux /proc, getrusage).

The pool's workers are forked by multiprocessing's forkserver, which outlives the run, so
`getrusage(RUSAGE_CHILDREN)` never sees them: `cpu_seconds` reads their time from /proc while
they are still alive. `measured` also reports what other programs on the machine used meanwhile
(from /proc/stat), which on a shared machine can decide a wall time.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class ServerClock:
    """CPU seconds the test server's request handlers used: they run on threads of this
    process, so without this their work is in our main process's figure."""

    def __init__(self) -> None:
        self.total = 0.0
        self._lock = threading.Lock()

    def install(self, handler: Any) -> None:
        """Time every connection `handler` (a BaseHTTPRequestHandler class) serves."""
        serve = handler.handle
        clock = self

        def handle(self: Any) -> None:
            start = time.thread_time()  # this thread's CPU: user and system
            try:
                serve(self)
            finally:
                with clock._lock:
                    clock.total += time.thread_time() - start

        handler.handle = handle


SERVER = ServerClock()


def _processes() -> dict[int, tuple[int, int, int]]:
    """{pid: (parent pid, own CPU ticks, reaped children's ticks)} of every process (/proc)."""
    proc = Path("/proc")
    table: dict[int, tuple[int, int, int]] = {}
    if not proc.is_dir():
        return table
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        own = int(fields[11]) + int(fields[12])  # utime stime
        reaped = int(fields[13]) + int(fields[14])  # cutime cstime
        table[int(entry.name)] = (int(fields[1]), own, reaped)
    return table


def _below(table: dict[int, tuple[int, int, int]], root: int) -> set[int]:
    """The processes under `root` (not root itself)."""
    wanted: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, row in table.items() if row[0] in frontier} - wanted
        wanted |= frontier
    return wanted


def _descendants_cpu() -> float:
    """CPU seconds of the live processes below this one, with what they reaped (Linux /proc)."""
    table = _processes()
    ticks = sum(table[pid][1] + table[pid][2] for pid in _below(table, os.getpid()))
    return ticks / os.sysconf("SC_CLK_TCK")


class TreeCPU:
    """The CPU a process and everything under it use, sampled from /proc every `every`
    seconds while it runs: a process that exits takes its time with it unless its parent
    waits for it, and a CLI's forkserver is never waited for. Up to `every` seconds of each
    process's last moments are missed. With `from_now`, what the processes already there had
    used when the block began is left out (long-lived workers measured over one run)."""

    def __init__(self, root: int, every: float = 0.1, *, from_now: bool = False) -> None:
        self.root = root
        self.every = every
        self.from_now = from_now
        self._first: dict[int, int] = {}  # pid: own ticks when the block began (from_now)
        self._last: dict[int, int] = {}  # pid: own ticks when last seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="tree-cpu", daemon=True)

    def __enter__(self) -> TreeCPU:
        if self.from_now:
            table = _processes()
            self._first = {
                p: table[p][1] for p in {self.root} | _below(table, self.root) if p in table
            }
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        while True:
            table = _processes()
            for pid in {self.root} | _below(table, self.root):
                if pid in table:
                    self._last[pid] = table[pid][1]
            if self._stop.wait(self.every):
                return

    @property
    def seconds(self) -> float:
        used = sum(ticks - self._first.get(pid, 0) for pid, ticks in self._last.items())
        return used / os.sysconf("SC_CLK_TCK")

    @property
    def processes(self) -> int:
        return len(self._last)


def cpu_seconds() -> float:
    """This process, its reaped children, and its live descendants (forkserver and workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + reaped.ru_utime + reaped.ru_stime + _descendants_cpu()


@contextmanager
def measured() -> Iterator[dict[str, float]]:
    """Wall and CPU seconds of the block, in the dict it yields (filled in on exit)."""
    out: dict[str, float] = {}
    busy0, cpu0, own0, t0 = machine_busy(), cpu_seconds(), _own_cpu(), time.perf_counter()
    served0 = SERVER.total
    try:
        yield out
    finally:
        out["wall"] = time.perf_counter() - t0
        out["cpu"] = cpu_seconds() - cpu0
        out["own_cpu"] = _own_cpu() - own0
        out["server_cpu"] = SERVER.total - served0  # a part of own_cpu
        # what everything else on the machine used meanwhile: the wall times are only
        # comparable between runs when this stays near zero
        out["others"] = max(0.0, machine_busy() - busy0 - out["cpu"])


def machine_busy() -> float:
    """CPU seconds all processes on the machine have used since boot (/proc/stat)."""
    try:
        line = Path("/proc/stat").read_text().split("\n", 1)[0]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, line.split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    """This process alone: the event loop, httpx, SQLite, and the test server's threads."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def cpu_split(m: dict[str, float]) -> str:
    return (
        f"CPU {m['cpu']:.1f} s = {m['own_cpu']:.1f} s in this process (of it"
        f" {m.get('server_cpu', 0.0):.1f} s in the server's request handlers)"
        f" + {max(0.0, m['cpu'] - m['own_cpu']):.1f} s in worker processes;"
        f" meanwhile other programs on the machine used {m['others']:.1f} CPU s"
        f" ({m['others'] / m['wall'] if m['wall'] else 0:.2f} cores)"
    )
