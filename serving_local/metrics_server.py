"""A Prometheus metrics endpoint that answers only requests addressed to its own loopback names.

``prometheus_client.start_http_server`` answers any ``Host``: a page whose name resolves to 127.0.0.1 (DNS
rebinding) could read the figures. This serves the same WSGI app (``prometheus_client.make_wsgi_app``) with
the check of serving_local/host_check.py in front: 421 for a foreign ``Host`` on a loopback listener.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app

from serving_local.host_check import host_allowed

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds would flood the part's log."""


def host_checked(app: WSGIApp, bind_host: str, port: Callable[[], int]) -> WSGIApp:
    """`app` behind the loopback ``Host`` check (``port`` read per request: a port-0 listener learns it
    once bound)."""

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not host_allowed(environ.get("HTTP_HOST", ""), bind_host, port()):
            start_response("421 Misdirected Request", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"unknown Host\n"]
        return app(environ, start_response)

    return guarded


def start_metrics_server(
    port: int, addr: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY
) -> tuple[WSGIServer, threading.Thread]:
    """Like ``prometheus_client.start_http_server`` (same arguments, same return), with the ``Host`` check."""
    bound: list[int] = []
    app = host_checked(make_wsgi_app(registry), addr, lambda: bound[0])
    server = make_server(addr, port, app, _ThreadingServer, handler_class=_QuietHandler)
    bound.append(int(server.server_address[1]))
    thread = threading.Thread(target=server.serve_forever, name="metrics-server", daemon=True)
    thread.start()
    return server, thread
