"""Request, error and latency metrics of the inference app, per endpoint and status code.

clearml-serving's own statistics only see requests that succeeded, so error rates and latency percentiles
come from here: an ASGI middleware around the stock app (whose code stays unmodified) that counts every
`/serve/...` request and answers `GET /metrics` in Prometheus' text format. With several worker processes
the metrics go through prometheus_client's multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`).

A canary route (`/serve/asteroid`) sends each request to one of several versions; the `version_*` metrics
count every request under the version that answered it (`asteroid/2`), told by `note_served_url` (which
`third_party_patches.report_canary_draws` calls with each draw of the route), so a canary analysis can compare
the error rates and latencies of the versions sharing the route.
"""

from __future__ import annotations

import contextvars
import os
import time
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

SERVE_PREFIX = "/serve/"
# Label of every request whose path names no served endpoint (404, 405, a redirect, a refused body...):
# the label set is the served endpoints plus this one, whatever paths clients send.
UNKNOWN_ENDPOINT = "_unknown"
# Cumulative buckets (seconds), fine enough for a p99 of a few milliseconds.
LATENCY_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

REQUESTS = Counter(
    "clearml_serving_requests",
    "Requests to /serve/<endpoint>, by endpoint and HTTP status code",
    ["endpoint", "code"],
)
LATENCY = Histogram(
    "clearml_serving_request_duration_seconds",
    "Time from request to the end of the response, by endpoint",
    ["endpoint"],
    buckets=LATENCY_BUCKETS,
)
VERSION_REQUESTS = Counter(
    "clearml_serving_version_requests",
    "Requests to /serve/<endpoint>, by the endpoint version that answered (a canary's draw) and status code",
    ["endpoint", "code"],
)
VERSION_LATENCY = Histogram(
    "clearml_serving_version_request_duration_seconds",
    "Time from request to the end of the response, by the endpoint version that answered",
    ["endpoint"],
    buckets=LATENCY_BUCKETS,
)
HOOK_DROPPED_ROWS = Counter(
    "clearml_serving_hook_dropped_rows",
    "Rows a hook's background work gave up on (never an answer: e.g. a log that could not keep up), by what",
    ["what"],
)
# Per request: a dict the canary draw is written into (a dict: a draw made in a copied context still lands)
_SERVED_URL: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "served_url", default=None
)


def note_served_url(url: str) -> None:
    """Record the endpoint URL a canary route drew for the request being served (outside one: nothing)."""
    holder = _SERVED_URL.get()
    if holder is not None:
        holder["url"] = url


def count_dropped_rows(what: str, rows: int) -> None:
    """For a hook: `rows` its background work dropped (`what` names that work), so no drop goes unseen."""
    HOOK_DROPPED_ROWS.labels(what).inc(rows)


def endpoint_label(path: str, known: Collection[str]) -> str:
    """`/serve/asteroid/3` -> `asteroid/3` when the service serves that endpoint (``known``: its endpoint
    URLs, with and without version); any other path -> UNKNOWN_ENDPOINT."""
    endpoint = path[len(SERVE_PREFIX) :].strip("/")
    return endpoint if endpoint in known else UNKNOWN_ENDPOINT


def metrics_text() -> bytes:
    multiproc_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not multiproc_dir:
        from prometheus_client import REGISTRY

        return generate_latest(REGISTRY)
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=multiproc_dir)
    return generate_latest(registry)


class RequestMetrics:
    """ASGI middleware: measures `/serve/...` requests and serves `GET /metrics`; everything else passes.
    ``known_endpoints`` answers, at each request, which endpoint URLs the service serves."""

    def __init__(self, app: ASGIApp, known_endpoints: Callable[[], Collection[str]] = lambda: ()) -> None:
        self.app = app
        self.known_endpoints = known_endpoints

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path == "/metrics" and scope.get("method") == "GET":
            await _send_metrics(send)
            return
        if not path.startswith(SERVE_PREFIX):
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        served: dict[str, str] = {}
        token = _SERVED_URL.set(served)
        try:
            await self.app(scope, receive, send_and_record)
        finally:
            _SERVED_URL.reset(token)
            elapsed = time.perf_counter() - began
            known = self.known_endpoints()
            endpoint = endpoint_label(path, known)
            REQUESTS.labels(endpoint=endpoint, code=str(status)).inc()
            LATENCY.labels(endpoint=endpoint).observe(elapsed)
            version = served["url"] if served.get("url") in known else endpoint
            VERSION_REQUESTS.labels(endpoint=version, code=str(status)).inc()
            VERSION_LATENCY.labels(endpoint=version).observe(elapsed)


async def _send_metrics(send: Send) -> None:
    body = metrics_text()
    headers = [(b"content-type", CONTENT_TYPE_LATEST.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
