"""DNS rebinding: a web page whose name resolves to 127.0.0.1 reaches a loopback server, but the request
carries the page's name in ``Host``. A server listening on loopback answers only requests addressed to a
loopback name; one listening elsewhere (a container, a host interface) is reached by names it cannot know
and checks nothing here."""

from __future__ import annotations

import ipaddress

from serving_local.request_limits import send_error
from serving_local.request_metrics import ASGIApp, Receive, Scope, Send

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


def is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_allowed(host_header: str, bind_host: str, port: int) -> bool:
    """On a loopback address, only its loopback names with its port; elsewhere, any."""
    return not is_loopback(bind_host) or host_header.lower() in {f"{name}:{port}" for name in LOOPBACK_NAMES}


class LoopbackHostOnly:
    """ASGI middleware: 421 for an HTTP request to a loopback listener with a foreign ``Host``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        if scope["type"] == "http" and server and server[1] is not None:
            headers = dict(scope.get("headers", []))
            host = headers.get(b"host", b"").decode("latin-1")
            if not host_allowed(host, str(server[0]), int(server[1])):
                await send_error(send, 421, "unknown Host")
                return
        await self.app(scope, receive, send)
