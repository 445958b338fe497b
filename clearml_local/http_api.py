"""HTTP front of the API server: parses ``/v2.x/<service>.<action>`` calls, authenticates, dispatches, and
wraps every reply (success or error) in the ClearML envelope. No service logic lives here."""

from __future__ import annotations

import json
import logging
import threading
import traceback
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from clearml_local import services  # noqa: F401  (registers the endpoints)
from clearml_local.api import ENDPOINTS, PUBLIC_ENDPOINTS, Context
from clearml_local.auth_tokens import Authenticator
from clearml_local.errors import ApiError, bad_request, unauthorized, unknown_endpoint
from clearml_local.http_base import ThreadedServer
from clearml_local.storage import Store

log = logging.getLogger("clearml_local.api")
API_VERSION = "2.23"
MAX_REQUEST_BYTES = 64 * 1024 * 1024

# (endpoint, request body, reply data or None, status) — used by tests to validate the wire format.
Observer = Callable[[str, dict[str, Any], dict[str, Any] | None, int], None]


class ApiServer(ThreadedServer):
    def __init__(
        self,
        address: tuple[str, int],
        store: Store,
        authenticator: Authenticator,
        context_factory: Callable[[Any, str | None], Context],
        observer: Observer | None = None,
    ) -> None:
        super().__init__(address, ApiRequestHandler)
        self.store = store
        self.authenticator = authenticator
        self.context_factory = context_factory
        self.observer = observer
        self.request_count = 0
        self._count_lock = threading.Lock()


class ApiRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: with Nagle's algorithm on, every keep-alive reply waits
    # for the client's delayed ACK (~40 ms per call).
    disable_nagle_algorithm = True
    server: ApiServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        with self.server._count_lock:
            self.server.request_count += 1
        request_id = uuid.uuid4().hex
        url = urlsplit(self.path)
        name = _endpoint_name(url.path)
        body: dict[str, Any] = {}
        try:
            body = self._read_body(name, url.query)
            if not name:
                raise bad_request(
                    f"Invalid API path {url.path!r}: expected /v{API_VERSION}/<service>.<action>"
                )
            handler = ENDPOINTS.get(name)
            if handler is None:
                raise unknown_endpoint(name)
            identity = self._authenticate(name, body)
            ctx = self.server.context_factory(identity, self._worker_header())
            data = handler(ctx, body)
            self._reply(name, request_id, 200, 0, "OK", data, body)
        except ApiError as err:
            self._reply(name, request_id, err.status, err.subcode, err.message, None, body)
        except Exception as exc:  # a bug in a handler must not take the server down
            log.error("error handling %s: %s", name, traceback.format_exc())
            self._reply(name, request_id, 500, 0, f"Internal error in {name}: {exc}", None, body)

    def _read_body(self, name: str, query: str) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            self.rfile.read(length)
            raise ApiError(
                413, 0, f"Request body of {length} bytes exceeds the {MAX_REQUEST_BYTES} byte limit"
            )
        raw = self.rfile.read(length) if length else b""
        body: dict[str, Any] = {}
        for key, values in parse_qs(query).items():
            body[key] = values if len(values) > 1 else values[0]
        # The SDK tags some calls with the HTTP method it meant; it is not a filter.
        body.pop("method", None)
        if not raw.strip():
            return body
        parsed = _parse_json_or_lines(raw, name)
        if name == "events.add_batch" and isinstance(parsed, dict) and "requests" not in parsed:
            parsed = [parsed]  # a batch of one event is one JSON line
        if isinstance(parsed, list):
            # events.add_batch sends JSON lines; anything else must be an object.
            body["requests"] = parsed
        elif isinstance(parsed, dict):
            parsed.pop("method", None)
            body.update(parsed)
        else:
            raise bad_request("Request body must be a JSON object")
        return body

    def _worker_header(self) -> str | None:
        """The worker id clients send with every call (agents: their registered worker name)."""
        return self.headers.get("X-ClearML-Worker") or self.headers.get("X-Trains-Worker")

    def _authenticate(self, name: str, body: dict[str, Any]) -> Any:
        header = self.headers.get("Authorization", "")
        if name == "auth.login":
            return self.server.authenticator.identity_from_basic(header)
        if name in PUBLIC_ENDPOINTS:
            return self.server.authenticator.anonymous()
        if not header.startswith("Bearer "):
            raise unauthorized("Unauthorized (missing credentials): send a Bearer token from auth.login")
        return self.server.authenticator.identity_from_token(header[len("Bearer ") :])

    def _reply(
        self,
        name: str,
        request_id: str,
        status: int,
        subcode: int,
        message: str,
        data: dict[str, Any] | None,
        body: dict[str, Any],
    ) -> None:
        envelope = {
            "meta": {
                "id": request_id,
                "trx": request_id,
                "endpoint": {"name": name, "requested_version": API_VERSION, "actual_version": API_VERSION},
                "result_code": status,
                "result_subcode": subcode,
                "result_msg": message,
                "error_stack": None,
                "error_data": {},
                "alarms": {},
            },
            "data": data if data is not None else {},
        }
        payload = json.dumps(envelope, default=str).encode()
        if self.server.observer is not None:
            self.server.observer(name, body, data, status)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def _endpoint_name(path: str) -> str:
    parts = [p for p in path.split("/") if p]
    if parts and parts[0].startswith("v") and parts[0][1:].replace(".", "").isdigit():
        parts = parts[1:]
    if len(parts) != 1 or parts[0].count(".") != 1:
        return ""
    return parts[0]


def _parse_json_or_lines(raw: bytes, name: str) -> Any:
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError as first_error:
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) > 1:
            try:
                return [json.loads(line) for line in lines]
            except json.JSONDecodeError:
                pass
        raise bad_request(f"Invalid JSON in {name or 'request'} body: {first_error}") from first_error
