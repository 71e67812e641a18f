"""A real HTTP server on 127.0.0.1 for fetch tests: static routes, conditional GET, handlers.

Static routes answer with Content-Length and keep the connection alive; handler routes close
the connection when they return, so a handler may stream a body of any length.
"""

from __future__ import annotations

import contextlib
import gzip as gzip_module
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # with the query string
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names


class ServerStopped(ConnectionError):
    """Raised into handlers still writing when the server shuts down."""


class ResponseWriter:
    """What a handler route uses to answer; a thin layer over BaseHTTPRequestHandler."""

    def __init__(self, request: BaseHTTPRequestHandler, stopping: threading.Event) -> None:
        self._request = request
        self._stopping = stopping

    def send_status(self, status: int, reason: str | None = None) -> None:
        self._request.send_response(status, reason)

    def send_header(self, name: str, value: str) -> None:
        self._request.send_header(name, value)

    def end_headers(self) -> None:
        self._request.end_headers()

    def write(self, data: bytes) -> None:
        if self._stopping.is_set():
            raise ServerStopped("the test server is shutting down")
        self._request.wfile.write(data)

    def flush(self) -> None:
        self._request.wfile.flush()

    def wait_for_stop(self, timeout: float | None = None) -> bool:
        """Block until the server is shutting down (True) or `timeout` passes (False): how
        a handler holds a connection open without a thread waking up to poll."""
        return self._stopping.wait(timeout)


Handler = Callable[[RecordedRequest, ResponseWriter], object]  # return value ignored


@dataclass(frozen=True)
class _Static:
    body: bytes
    status: int
    headers: dict[str, str]
    etag: str | None
    last_modified: str | None

    def not_modified(self, request: RecordedRequest) -> bool:
        """RFC 9110 section 13.2.2: If-None-Match, when sent, decides alone."""
        if_none_match = request.headers.get("if-none-match")
        if if_none_match is not None:
            tags = {tag.strip() for tag in if_none_match.split(",")}
            return self.etag is not None and ("*" in tags or self.etag in tags)
        since = request.headers.get("if-modified-since")
        if since is None or self.last_modified is None:
            return False
        try:
            return parsedate_to_datetime(self.last_modified) <= parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False


_NOT_FOUND = _Static(b"not found", 404, {"Content-Type": "text/plain"}, None, None)


class LocalServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        """`host`: another loopback address (127.0.0.2) for tests of the address policy."""
        self._routes: dict[str, _Static | Handler] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.requests: list[RecordedRequest] = []
        self._httpd = _HTTPServer((host, 0), _RequestHandler)
        self._httpd.owner = self
        self.base_url = f"http://{host}:{self._httpd.server_address[1]}"
        # A short poll: shutdown waits for the next one, and every test shuts a server down.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def start(self) -> LocalServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def url(self, path: str) -> str:
        return self.base_url + path

    def add(
        self,
        path: str,
        body: bytes | str = b"",
        *,
        status: int = 200,
        content_type: str = "application/rss+xml; charset=utf-8",
        headers: dict[str, str] | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
        gzip: bool = False,
    ) -> None:
        """A static route; add again to change what it serves."""
        data = body.encode() if isinstance(body, str) else body
        all_headers = {"Content-Type": content_type} if content_type else {}
        if gzip:
            data = gzip_module.compress(data)
            all_headers["Content-Encoding"] = "gzip"
        all_headers |= headers or {}
        if etag is not None:
            all_headers["ETag"] = etag
        if last_modified is not None:
            all_headers["Last-Modified"] = last_modified
        with self._lock:
            self._routes[path] = _Static(data, status, all_headers, etag, last_modified)

    def add_handler(self, path: str, handler: Handler) -> None:
        """A route answered by `handler(request, writer)` in the server's thread."""
        with self._lock:
            self._routes[path] = handler

    def redirect(self, path: str, to: str, status: int = 301) -> None:
        self.add(path, status=status, content_type="", headers={"Location": to})

    def hits(self, path: str) -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.path == path or _bare(r.path) == path)

    def clear_log(self) -> None:
        with self._lock:
            self.requests.clear()

    def _record(self, request: RecordedRequest) -> _Static | Handler | None:
        with self._lock:
            self.requests.append(request)
            return self._routes.get(request.path) or self._routes.get(_bare(request.path))

    def _writer(self, request: BaseHTTPRequestHandler) -> ResponseWriter:
        return ResponseWriter(request, self._stopping)


def _bare(path: str) -> str:
    return path.partition("?")[0]


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a handler still streaming never holds up shutdown
    owner: LocalServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up mid-body is what these tests do on purpose


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like real servers
    # Headers and body go out in separate writes; without this, Nagle's algorithm holds the
    # body back until the client's delayed ACK (~40 ms per response).
    disable_nagle_algorithm = True
    timeout = 10  # idle keep-alive connections give up eventually
    server: _HTTPServer

    def do_GET(self) -> None:
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        request = RecordedRequest(self.command, self.path, headers)
        route = self.server.owner._record(request)
        if route is None:
            self._send_static(_NOT_FOUND)
        elif isinstance(route, _Static):
            self._send_static(route, not_modified=route.not_modified(request))
        else:
            self.close_connection = True  # the body ends when the handler closes the socket
            # OSError: the client hung up (as tests of limits make it), or the server stopped
            with contextlib.suppress(OSError):
                route(request, self.server.owner._writer(self))

    do_HEAD = do_GET

    def _send_static(self, route: _Static, *, not_modified: bool = False) -> None:
        body = b"" if not_modified or self.command == "HEAD" else route.body
        self.send_response(304 if not_modified else route.status)
        for name, value in route.headers.items():
            if not (not_modified and name.lower() in ("content-type", "content-encoding")):
                self.send_header(name, value)
        if not not_modified:
            self.send_header("Content-Length", str(len(route.body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet
