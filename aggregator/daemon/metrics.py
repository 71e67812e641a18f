"""What the daemon tells Prometheus, and its health check (`aggregator run --metrics-port`).

Each daemon has its own registry (no module-level globals), served with `/healthz` by a small
HTTP server on a background thread: healthy means the last tick finished recently.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from aggregator.errors import AggregatorError
from aggregator.models import FeedOutcome, FeedStatus, Outcome

# Seconds: a local 304 takes milliseconds, a slow partner tens of seconds.
_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
FEED_STATES = (*FeedStatus, "stale")  # stale: ok, but nothing new for too long


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.fetches = Counter(
            "aggregator_fetches", "Feed refreshes by outcome", ["outcome"], registry=r
        )
        self.new_items = Counter(
            "aggregator_new_items", "Items stored for the first time", registry=r
        )
        self.fetch_seconds = Histogram(
            "aggregator_fetch_seconds", "The feed request alone", buckets=_BUCKETS, registry=r
        )
        self.refresh_seconds = Histogram(
            "aggregator_refresh_seconds",
            "A whole refresh: fetch, parse, article pages, store",
            buckets=_BUCKETS,
            registry=r,
        )
        self.extract_seconds = Histogram(
            "aggregator_extract_seconds",
            "Extracting one article page",
            buckets=_BUCKETS,
            registry=r,
        )
        self.feeds = Gauge(
            "aggregator_feeds", "Feeds by state (stale counts ok feeds too)", ["state"], registry=r
        )
        self.due_lag = Gauge(
            "aggregator_due_lag_seconds", "How long the most overdue feed has waited", registry=r
        )
        self.in_flight = Gauge(
            "aggregator_refreshes_in_flight", "Feeds being refreshed", registry=r
        )
        self.last_tick = Gauge(
            "aggregator_last_tick_timestamp_seconds", "When the last tick finished", registry=r
        )
        self.ticks = Counter("aggregator_ticks", "Scheduler ticks finished", registry=r)

    def refreshed(self, outcome: FeedOutcome) -> None:
        self.fetches.labels(outcome.outcome).inc()
        self.new_items.inc(outcome.new_items)
        self.refresh_seconds.observe(outcome.duration_ms / 1000)
        if outcome.fetch_ms:
            self.fetch_seconds.observe(outcome.fetch_ms / 1000)

    def census(self, counts: Mapping[str, int]) -> None:
        for state in FEED_STATES:
            self.feeds.labels(state).set(counts.get(state, 0))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class MetricsUnavailable(AggregatorError):
    outcome = Outcome.CONFIG_ERROR


class MetricsServer:
    """`/metrics` and `/healthz` on host:port (port 0: any free port, see `.port`)."""

    def __init__(self, metrics: Metrics, healthy: Callable[[], bool], host: str, port: int) -> None:
        handler = type(
            "Handler", (_Handler,), {"metrics": metrics, "healthy": staticmethod(healthy)}
        )
        try:
            self._httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise MetricsUnavailable(
                f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}; "
                "choose another --metrics-port"
            ) from None
        self._httpd.daemon_threads = True
        self.host = host
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()


class _Handler(BaseHTTPRequestHandler):
    metrics: Metrics
    healthy: Callable[[], bool]

    def do_GET(self) -> None:
        path = self.path.partition("?")[0]
        if path == "/metrics":
            self._send(200, self.metrics.exposition(), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            ok = self.healthy()
            self._send(200 if ok else 503, b"ok\n" if ok else b"no recent tick\n", "text/plain")
        else:
            self._send(404, b"try /metrics or /healthz\n", "text/plain")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # scrapes every few seconds would flood the daemon's log
