"""HTTP front of the API server: parses ``/v2.x/<service>.<action>`` calls, authenticates, validates the
request against the SDK's schema, dispatches, and wraps every reply (success or error) in the ClearML
envelope. No service logic lives here."""

from __future__ import annotations

import ipaddress
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from clearml_local import services  # noqa: F401  (registers the endpoints)
from clearml_local.api import ENDPOINTS, PUBLIC_ENDPOINTS, Context
from clearml_local.auth_tokens import API_VERSION, Authenticator
from clearml_local.errors import ApiError, bad_request, unauthorized, unknown_endpoint
from clearml_local.http_base import EnvelopeHandler, ThreadedServer, envelope, is_disk_full, no_space_message
from clearml_local.storage import Store
from clearml_local.validation import RequestValidator, default_validator
from clearml_local.webview import Response, WebView, is_web_path
from clearml_local.webview.html import error_page
from clearml_local.webview.routes import SECURITY_HEADERS

log = logging.getLogger("clearml_local.api")
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
        validator: RequestValidator | None = None,
        web_auth: bool | None = None,
    ) -> None:
        super().__init__(address, ApiRequestHandler)
        self.store = store
        self.webview = WebView(store)
        # The web view asks for the backend's keys (HTTP Basic) unless it is reachable from this host only.
        self.web_auth = web_auth_required(address[0]) if web_auth is None else web_auth
        self.authenticator = authenticator
        self.context_factory = context_factory
        self.observer = observer
        self.validator = validator or default_validator()


class ApiRequestHandler(EnvelopeHandler):
    server: ApiServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        path, _, query = self.path.partition("?")
        if is_web_path(path):
            self._serve_web(path, query)
        else:
            self.not_allowed()

    def _handle(self) -> None:
        path, _, query = self.path.partition("?")
        if self.command == "GET" and is_web_path(path):
            self._serve_web(path, query.partition("#")[0])
            return
        url = urlsplit(self.path)
        name = self.endpoint_name = _endpoint_name(url.path)
        body: dict[str, Any] = {}
        try:
            raw = self._read_raw_body()
            if not name:
                raise bad_request(f"Invalid API path: expected /v{API_VERSION}/<service>.<action>")
            handler = ENDPOINTS.get(name)
            if handler is None:
                raise unknown_endpoint(name)
            identity = self._authenticate(name)
            body = self.server.validator.validate(name, self._parse_body(name, raw, url.query))
            ctx = self.server.context_factory(identity, self._worker_header())
            self._reply(name, 200, 0, "OK", handler(ctx, body), body)
        except ApiError as err:
            self._reply(name, err.status, err.subcode, err.message, None, body)
        except TimeoutError:
            self.close_connection = True
            self._reply(name, 408, 0, "Request timed out: the body did not arrive in time", None, body)
        except ConnectionError:
            self.close_connection = True
        except Exception as exc:  # a bug in a handler must not take the server down, nor show its insides
            if is_disk_full(exc):
                log.error("no space left in %s: %s failed", self.server.store.path.parent, name)
                message = no_space_message(self.server.store.path.parent, name)
                self._reply(name, 507, 0, message, None, body)
                return
            incident = uuid.uuid4().hex[:12]
            log.exception("internal error %s handling %s", incident, name)
            self._reply(name, 500, 0, f"Internal error in {name} (incident {incident})", None, body)

    # --- the web view ---------------------------------------------------------------------------------

    def _serve_web(self, path: str, query: str) -> None:
        """A page of the web view (HTML or the charts' JSON); errors are HTML pages, never tracebacks."""
        try:
            self._read_raw_body()  # read a GET's body, so that the next request on the connection parses
            if self.server.web_auth:
                self.server.authenticator.identity_from_basic(self.headers.get("Authorization", ""))
            response = self.server.webview.handle(path, query)
        except ApiError as err:
            headers = {"WWW-Authenticate": 'Basic realm="clearml-local"'} if err.status == 401 else {}
            message = (
                "Log in with the backend's access key and secret key" if err.status == 401 else err.message
            )
            response = Response(
                err.status, "text/html; charset=utf-8", error_page(err.status, message).encode(), headers
            )
        except TimeoutError:
            self.close_connection = True
            return
        except ConnectionError:
            self.close_connection = True
            return
        except Exception:
            incident = uuid.uuid4().hex[:12]
            log.exception("internal error %s rendering %s", incident, path[:200])
            page = error_page(500, f"Internal error (incident {incident})").encode()
            response = Response(500, "text/html; charset=utf-8", page)
        self._send_web(response)

    def _send_web(self, response: Response) -> None:
        self.send_response(response.status)
        headers = {**SECURITY_HEADERS, **response.headers}
        headers["Content-Type"] = response.content_type
        headers["Content-Length"] = str(len(response.body))
        for name, value in headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _read_raw_body(self) -> bytes:
        # A POST must say how long its body is (GET calls, like auth.login, may have none).
        length = self.content_length(MAX_REQUEST_BYTES, required=self.command == "POST")
        raw = self.rfile.read(length) if length else b""
        if len(raw) < length:
            self.close_connection = True
            raise bad_request(f"Request body ended after {len(raw)} of {length} bytes")
        return raw

    def _parse_body(self, name: str, raw: bytes, query: str) -> dict[str, Any]:
        body = self._query_values(name, query)
        if raw.strip():
            parsed = _parse_json_or_lines(raw, name)
            if name == "events.add_batch" and isinstance(parsed, dict) and "requests" not in parsed:
                parsed = [parsed]  # a batch of one event is one JSON line
            if isinstance(parsed, list):
                # events.add_batch sends JSON lines; anything else must be an object.
                body["requests"] = parsed
            elif isinstance(parsed, dict):
                body.update(parsed)
            else:
                raise bad_request("Request body must be a JSON object")
        # The SDK tags calls (and events) with the HTTP method it meant; it is not a filter.
        body.pop("method", None)
        return body

    def _query_values(self, name: str, query: str) -> dict[str, Any]:
        """Query-string parameters, read as the types the schema gives them (``expiration_sec=60``)."""
        types = self.server.validator.property_types(name)
        body: dict[str, Any] = {}
        for key, values in parse_qs(query).items():
            kinds = types.get(key, set())
            converted = [_from_text(value, kinds) for value in values]
            body[key] = converted if len(converted) > 1 or "array" in kinds else converted[0]
        return body

    def _worker_header(self) -> str | None:
        """The worker id clients send with every call (agents: their registered worker name)."""
        return self.headers.get("X-ClearML-Worker") or self.headers.get("X-Trains-Worker")

    def _authenticate(self, name: str) -> Any:
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
        status: int,
        subcode: int,
        message: str,
        data: dict[str, Any] | None,
        body: dict[str, Any],
    ) -> None:
        payload = envelope(name, status, subcode, message, data)
        if self.server.observer is not None:
            self.server.observer(name, body, data, status)
        self.send_json(status, payload)


def web_auth_required(host: str) -> bool:
    """Whether a server bound to ``host`` is reachable from other machines (then the web view needs keys)."""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def _endpoint_name(path: str) -> str:
    parts = [p for p in path.split("/") if p]
    if parts and parts[0].startswith("v") and parts[0][1:].replace(".", "").isdigit():
        parts = parts[1:]
    if len(parts) != 1 or parts[0].count(".") != 1 or len(parts[0]) > 100 or not parts[0].isascii():
        return ""
    return parts[0]


def _from_text(value: str, kinds: set[str]) -> Any:
    if "integer" in kinds and value.lstrip("-").isdigit() and len(value) < 19:
        return int(value)
    if "boolean" in kinds and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


def _parse_json_or_lines(raw: bytes, name: str) -> Any:
    text = raw.decode("utf-8", errors="replace")
    try:
        return _loads(text)
    except ValueError as first_error:
        lines = [line for line in text.splitlines() if line.strip()]
        if len(lines) > 1:
            try:
                return [_loads(line) for line in lines]
            except ValueError:
                pass
        raise bad_request(f"Invalid JSON in {name or 'request'} body: {_reason(first_error)}") from None


def _loads(text: str) -> Any:
    """json.loads, with nesting beyond the parser's stack and 4,300-digit integers read as bad JSON."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nesting too deep") from None


def _reason(error: ValueError) -> str:
    return str(error)[:200]
