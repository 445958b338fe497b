"""What the API server and the file server share: a threaded HTTP server with a bound on connections and a
read timeout, ClearML's reply envelope, the parsing of ``Content-Length``, the ``Host`` check of a loopback
listener, and the reading of a full disk."""

from __future__ import annotations

import errno
import ipaddress
import json
import logging
import sqlite3
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from clearml_local.auth_tokens import API_VERSION
from clearml_local.errors import ApiError

log = logging.getLogger("clearml_local.http")

# A client that stops sending for this long (mid-request or idle on a keep-alive connection) is dropped.
READ_TIMEOUT_S = 30.0
# Connections served at once; further clients wait in the listen backlog for a free slot.
MAX_CONNECTIONS = 128
# How long the accept loop waits for a free slot before it refuses a connection.
SLOT_WAIT_S = 10.0


class ThreadedServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
    ) -> None:
        super().__init__(address, handler)
        self.max_connections = MAX_CONNECTIONS
        self.slot_wait_s = SLOT_WAIT_S
        self._slots = threading.BoundedSemaphore(self.max_connections)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(timeout=self.slot_wait_s):
            log.warning("refusing %s: %d connections already open", client_address, self.max_connections)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):  # the client went away or stalled
            log.debug("client %s disconnected mid-request", client_address)
            return
        log.exception("unhandled error serving %s", client_address)


def is_loopback(host: str) -> bool:
    """Whether a host name or address (IPv6 with or without brackets) names this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_allowed(host_header: str, bind_address: str) -> bool:
    """DNS rebinding: a web page whose name resolves to 127.0.0.1 reaches a loopback listener, but its
    requests carry the page's name in ``Host``. A loopback listener answers loopback names only (any port);
    a request without ``Host`` (HTTP/1.0) is no such page's; a listener on another interface is reached by
    names it cannot know and checks nothing (the web view then asks for the keys)."""
    if not is_loopback(bind_address) or not host_header:
        return True
    try:
        name = urlsplit(f"//{host_header}").hostname
    except ValueError:
        return False
    return name is not None and is_loopback(name)


def is_disk_full(exc: BaseException) -> bool:
    """Whether a failed write failed for want of space (a file's ENOSPC/EDQUOT, SQLite's SQLITE_FULL)."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, sqlite3.Error):
        return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_FULL
    return False


def no_space_message(directory: Path, what: str) -> str:
    return f"No space left in {directory}: {what} was not stored; free some space there and send it again"


def envelope(endpoint: str, status: int, subcode: int, message: str, data: dict[str, Any] | None) -> bytes:
    """ClearML's reply: ``meta``, parsed strictly by clients, and ``data`` (``{}`` on errors, never null)."""
    request_id = uuid.uuid4().hex
    reply = {
        "meta": {
            "id": request_id,
            "trx": request_id,
            "endpoint": {"name": endpoint, "requested_version": API_VERSION, "actual_version": API_VERSION},
            "result_code": status,
            "result_subcode": subcode,
            "result_msg": message,
            "error_stack": None,
            "error_data": {},
            "alarms": {},
        },
        "data": data if data is not None else {},
    }
    return json.dumps(reply, default=str).encode()


class EnvelopeHandler(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1 with a read timeout; every error, including the ones ``http.server`` raises
    itself (bad request line, unsupported method), goes out as a ClearML envelope."""

    protocol_version = "HTTP/1.1"
    timeout = READ_TIMEOUT_S
    # Headers and body go out in separate writes: with Nagle's algorithm on, every keep-alive reply waits
    # for the client's delayed ACK (~40 ms per call).
    disable_nagle_algorithm = True
    endpoint_name = ""

    def parse_request(self) -> bool:
        """http.server's parsing, then the ``Host`` check: 421 to a request addressed to a foreign name."""
        if not super().parse_request():
            return False
        if host_allowed(self.headers.get("Host", ""), str(self.server.server_address[0])):
            return True
        self.close_connection = True
        self.send_error_envelope(421, 0, "Misdirected request: this server answers its loopback names only")
        return False

    def send_json(self, status: int, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def send_error_envelope(self, status: int, subcode: int, message: str) -> None:
        self.send_json(status, envelope(self.endpoint_name, status, subcode, message, None))

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        if code == 501:  # http.server's answer to a method no do_* handles
            code, message = 405, f"Method {self.command} is not allowed"
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # an unreadable request line: answer with a status line anyway
            self.request_version = "HTTP/1.0"
        self.send_error_envelope(code, 0, message or self.responses.get(code, ("Error",))[0])

    def not_allowed(self) -> None:
        self.close_connection = True
        self.send_error_envelope(405, 0, f"Method {self.command} is not allowed")

    do_PUT = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = not_allowed

    def content_length(self, limit: int, required: bool = False) -> int:
        """The announced body length: a 4xx for chunked, non-numeric, negative or too large values.

        A rejected length leaves the body unread, so the connection is closed after the reply."""
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise ApiError(
                status=411,
                subcode=0,
                message="Chunked bodies are not supported: send a Content-Length header",
            )
        raw = self.headers.get("Content-Length")
        if raw is None:
            if required:
                self.close_connection = True
                raise ApiError(status=411, subcode=0, message="This request needs a Content-Length header")
            return 0
        value = raw.strip()
        if not (value.isascii() and value.isdigit()) or len(value) > 18:
            self.close_connection = True
            raise ApiError(
                status=400,
                subcode=0,
                message=f"Invalid Content-Length header {raw[:40]!r}: expected a byte count",
            )
        length = int(value)
        if length > limit:
            self.close_connection = True
            raise ApiError(
                status=413,
                subcode=0,
                message=f"Request body of {length} bytes exceeds the limit of {limit} bytes",
            )
        return length
