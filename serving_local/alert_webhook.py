"""A webhook receiver for Alertmanager: every notification (firing and resolved) is appended as one JSON line
to a file, with the time it arrived.

    python -m serving_local.alert_webhook --port 9097 --file alerts.jsonl [--host 127.0.0.1]
                                          [--token-file FILE]

POST /alerts   Alertmanager's webhook payload (version 4): 200, or 4xx naming what is wrong with the body
GET  /alerts   every notification received so far, as a JSON array
GET  /healthz  200 when it runs

What it refuses, so that neither a web page nor a forged payload can write an alert: a body that is not
``application/json`` (415: a page's form or ``text/plain`` post cannot send one without a CORS preflight),
without ``Authorization: Bearer <token>`` when a token file is given (401; Alertmanager sends it through
``http_config.authorization``), a ``Host`` other than its own loopback name when it listens on loopback
(421: DNS rebinding), a body that does not follow the notification schema or nests too deeply (4xx, never a
traceback), numbers JSON cannot carry (``1e400``, ``NaN``). The time it records is its own.
"""

from __future__ import annotations

import argparse
import errno
import hmac
import json
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from serving_local.host_check import host_allowed

MAX_BODY_BYTES = 1024 * 1024
STATUSES = ("firing", "resolved")


class BadNotification(ValueError):
    """The body is not an Alertmanager notification; the message says why (sent back with a 4xx)."""


def validate(payload: Any) -> dict[str, Any]:
    """Check the parts of Alertmanager's webhook payload this receiver relies on."""
    if not isinstance(payload, dict):
        raise BadNotification("the body must be a JSON object (Alertmanager's webhook payload)")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        raise BadNotification("'alerts' must be a non-empty list")
    if payload.get("status") not in STATUSES:
        raise BadNotification(f"'status' must be one of {list(STATUSES)}")
    for number, alert in enumerate(alerts, 1):
        if not isinstance(alert, dict):
            raise BadNotification(f"alert {number} must be an object")
        if alert.get("status") not in STATUSES:
            raise BadNotification(f"alert {number}: 'status' must be one of {list(STATUSES)}")
        if not isinstance(alert.get("labels"), dict) or "alertname" not in alert["labels"]:
            raise BadNotification(f"alert {number}: 'labels' must be an object with an 'alertname'")
        for field in ("labels", "annotations"):
            values = alert.get(field, {})
            if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
                raise BadNotification(f"alert {number}: '{field}' must map names to strings")
    return payload


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise BadNotification(f"the number {text} is out of range")
    return value


def _no_constant(name: str) -> None:
    raise BadNotification(f"{name} is not a JSON number")


def parse(body: bytes) -> dict[str, Any]:
    """The body as a checked notification; BadNotification (or ValueError for non-JSON) otherwise."""
    try:
        payload = json.loads(body.decode("utf-8"), parse_float=_finite, parse_constant=_no_constant)
    except RecursionError:
        raise BadNotification("the body is nested too deeply") from None
    return validate(payload)


class NotificationLog:
    """The JSON-lines file, appended under a lock (one line per notification)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def append(self, payload: dict[str, Any]) -> dict[str, Any]:
        record = {**payload, "received_at": time.time()}  # the payload cannot set the time it arrived
        data = (json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n").encode()
        with self._lock, self.path.open("ab", buffering=0) as out:
            start = out.tell()
            try:
                written = 0
                while written < len(data):
                    written += out.write(data[written:]) or 0
            except OSError:
                out.truncate(start)  # no half line is left for the next one to run into
                raise
        return record

    def read(self) -> list[dict[str, Any]]:
        return read_notifications(self.path)


def read_notifications(path: Path) -> list[dict[str, Any]]:
    """Every notification in a receiver's file (none when the file does not exist yet)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line a reader cannot use (e.g. written by an older receiver) is skipped
        if isinstance(record, dict):
            records.append(record)
    return records


def storage_error(exc: OSError, path: Path) -> tuple[HTTPStatus, dict[str, str]]:
    """A write that failed: 507 naming the directory when the disk is full, else 503 (not recorded)."""
    if exc.errno == errno.ENOSPC:
        return HTTPStatus.INSUFFICIENT_STORAGE, {"error": f"no space left in {path.parent}; not recorded"}
    return HTTPStatus.SERVICE_UNAVAILABLE, {"error": f"cannot write {path}: {exc.strerror}; not recorded"}


def make_handler(
    log: NotificationLog, token: str | None, bind: tuple[str, int]
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "serving-local-alert-webhook"

        def _refused(self) -> bool:
            """Answers (and True) when the request may not be served: foreign Host, no or wrong token."""
            if not host_allowed(self.headers.get("Host", ""), *bind):
                self._reply(HTTPStatus.MISDIRECTED_REQUEST, {"error": "unknown Host"})
                return True
            if token is None or self.path == "/healthz":
                return False
            given = self.headers.get("Authorization", "")
            if hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return False
            self._reply(
                HTTPStatus.UNAUTHORIZED, {"error": "a valid 'Authorization: Bearer' token is required"}
            )
            return True

        def _reply(self, status: HTTPStatus, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self._refused():
                return
            if self.path == "/healthz":
                self._reply(HTTPStatus.OK, {"ok": True})
            elif self.path == "/alerts":
                self._reply(HTTPStatus.OK, log.read())
            else:
                self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such path {self.path}"})

        def do_POST(self) -> None:
            if self._refused():
                return
            if self.path != "/alerts":
                error = f"POST notifications to /alerts, not {self.path}"
                self._reply(HTTPStatus.NOT_FOUND, {"error": error})
                return
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self._reply(HTTPStatus.LENGTH_REQUIRED, {"error": "a Content-Length header is required"})
                return
            if length > MAX_BODY_BYTES or length < 0:
                self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"at most {MAX_BODY_BYTES} bytes"})
                return
            content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if content_type != "application/json":
                self._reply(
                    HTTPStatus.UNSUPPORTED_MEDIA_TYPE, {"error": "Content-Type must be application/json"}
                )
                return
            body = self.rfile.read(length)
            try:
                payload = parse(body)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                self._reply(HTTPStatus.BAD_REQUEST, {"error": f"the body is not JSON: {exc}"})
                return
            except BadNotification as exc:
                self._reply(HTTPStatus.UNPROCESSABLE_ENTITY, {"error": str(exc)})
                return
            try:
                log.append(payload)
            except OSError as exc:
                self._reply(*storage_error(exc, log.path))
                return
            self._reply(HTTPStatus.OK, {"ok": True})

        def do_PUT(self) -> None:
            self._reply(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "use POST /alerts or GET /alerts"})

        do_DELETE = do_PATCH = do_PUT

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per notification is in the file; no access log

    return Handler


def make_server(host: str, port: int, path: Path, token: str | None = None) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), make_handler(NotificationLog(path), token, (host, port)))
    server.daemon_threads = True
    return server


def read_token(path: Path | None) -> str | None:
    if path is None:
        return None
    token = path.read_text(encoding="utf-8").strip()
    if not token:
        raise SystemExit(f"error: the token file {path} is empty")
    return token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--file", type=Path, required=True, help="JSON-lines file the notifications go to")
    parser.add_argument("--token-file", type=Path, help="require 'Authorization: Bearer <its content>'")
    args = parser.parse_args(argv)
    server = make_server(args.host, args.port, args.file, read_token(args.token_file))
    print(f"alert webhook on http://{args.host}:{args.port}/alerts -> {args.file}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
