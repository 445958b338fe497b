"""The retrain receiver: Alertmanager's webhook notifications in, retrain decisions out.

    POST /alerts    Alertmanager's webhook payload (version 4), with `Authorization: Bearer <token>`
    POST /datasets  {"dataset_id": "<id>"}: a new raw dataset version (the dataset trigger's process posts it)
    GET  /healthz   200 when it runs

Each firing alert of `config.RETRAIN_ALERTS` becomes an event keyed by its fingerprint and start; the
Retrainer decides on the events and commits the decisions before the 200, whose body lists them. Other and
resolved alerts are ignored (counted in the answer). Refused, with a 4xx naming what is wrong: no token (401),
a wrong one (403), no Content-Length (411), a body over the limit (413, nothing read), another content type
than application/json (415), a body that is not JSON or nests too deeply (400), a payload without the fields
used here or with wrong types (422). 503 when the database cannot record the decisions (nothing acknowledged).
"""

from __future__ import annotations

import hmac
import json
import os
import re
import secrets
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from asteroid.automation.config import ALERTS_PATH, DATASETS_PATH, RETRAIN_ALERTS
from asteroid.automation.retrain import Retrainer
from asteroid.automation.store import Event

MAX_TEXT = 128  # fingerprint and startsAt are far shorter in Alertmanager's payloads
STATUSES = ("firing", "resolved")


class BadPayload(ValueError):
    """The body is not a notification this receiver can use; the message names the field."""


class NotJson(BadPayload):
    """The body is not JSON at all (400)."""


DATASET_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")


def dataset_event(dataset_id: str) -> Event:
    return Event("dataset", f"dataset:{dataset_id}", dataset_id)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_TEXT:
        raise BadPayload(f"field {where} must be a string of 1-{MAX_TEXT} characters")
    return value


def _labels(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise BadPayload(f"field {where} must be an object mapping label names to strings")
    if "alertname" not in value:
        raise BadPayload(f"field {where}.alertname is missing")
    return value


def alert_event(alert: Any, where: str) -> Event | None:
    """The retrain event of one alert of the payload, None when it does not retrain."""
    if not isinstance(alert, dict):
        raise BadPayload(f"field {where} must be an object")
    for name in ("status", "labels", "fingerprint", "startsAt"):
        if name not in alert:
            raise BadPayload(f"field {where}.{name} is missing")
    status = alert["status"]
    if status not in STATUSES:
        raise BadPayload(f"field {where}.status must be one of {list(STATUSES)}")
    labels = _labels(alert["labels"], f"{where}.labels")
    fingerprint = _text(alert["fingerprint"], f"{where}.fingerprint")
    starts_at = _text(alert["startsAt"], f"{where}.startsAt")
    if status != "firing" or not retrains(labels):
        return None
    return Event("alert", f"alert:{fingerprint}@{starts_at}", labels["alertname"])


def retrains(labels: Mapping[str, str]) -> bool:
    required = RETRAIN_ALERTS.get(labels["alertname"])
    return required is not None and all(labels.get(k) == v for k, v in required.items())


def _no_constant(name: str) -> None:
    raise NotJson(f"the body is not JSON: {name} is not a JSON number")


def _json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except RecursionError:
        raise BadPayload("the body is nested too deeply") from None
    except NotJson:
        raise
    except (UnicodeDecodeError, ValueError) as exc:
        raise NotJson(f"the body is not JSON: {exc}") from None


def parse_dataset(body: bytes) -> Event:
    """The retrain event of a new dataset version's body; BadPayload (400/422) otherwise."""
    payload = _json(body)
    if not isinstance(payload, dict) or set(payload) != {"dataset_id"}:
        raise BadPayload('the body must be a JSON object with one field, dataset_id: {"dataset_id": "<id>"}')
    dataset_id = payload["dataset_id"]
    if not isinstance(dataset_id, str) or not DATASET_ID.fullmatch(dataset_id):
        raise BadPayload("field dataset_id must be a dataset id (1-64 letters, digits, - or _)")
    return dataset_event(dataset_id)


def parse_events(body: bytes) -> tuple[list[Event], int]:
    """(retrain events, alerts ignored) of a notification body; BadPayload (400/422) otherwise."""
    payload = _json(body)
    if not isinstance(payload, dict):
        raise BadPayload("the body must be a JSON object (Alertmanager's webhook payload)")
    if "alerts" not in payload:
        raise BadPayload("field alerts is missing")
    alerts = payload["alerts"]
    if not isinstance(alerts, list) or not alerts:
        raise BadPayload("field alerts must be a non-empty array")
    events = [alert_event(alert, f"alerts[{index}]") for index, alert in enumerate(alerts)]
    kept = [event for event in events if event is not None]
    return kept, len(events) - len(kept)


def read_or_create_token(path: Path) -> str:
    """The bearer token in ``path``, generated (readable by its owner only) when the file does not exist."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process wrote it first
        else:
            with os.fdopen(descriptor, "w") as out:
                out.write(secrets.token_urlsafe(32) + "\n")
    token = path.read_text(encoding="utf-8").strip()
    if not token:
        raise ValueError(f"the retrain token file {path} is empty")
    return token


def make_handler(retrainer: Retrainer, token: str, max_body_bytes: int) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "asteroid-retrain-receiver"

        def _reply(self, status: HTTPStatus, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: HTTPStatus, message: str) -> None:
            self._reply(status, {"error": message})

        def _authorized(self) -> bool:
            given = self.headers.get("Authorization", "")
            if not given.startswith("Bearer "):
                self._error(HTTPStatus.UNAUTHORIZED, "header Authorization: Bearer <token> is required")
                return False
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                self._error(HTTPStatus.FORBIDDEN, "header Authorization: the bearer token is wrong")
                return False
            return True

        def _body(self) -> bytes | None:
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self._error(HTTPStatus.LENGTH_REQUIRED, "header Content-Length is required")
                return None
            if not 0 <= length <= max_body_bytes:
                self.close_connection = True  # the body is never read
                self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body: at most {max_body_bytes} bytes")
                return None
            content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if content_type != "application/json":
                self.close_connection = True
                self._error(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "header Content-Type must be application/json")
                return None
            return self.rfile.read(length)

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._reply(HTTPStatus.OK, {"ok": True})
            else:
                self._error(HTTPStatus.NOT_FOUND, f"no such path {self.path}; POST alerts to {ALERTS_PATH}")

        def do_POST(self) -> None:
            if self.path not in (ALERTS_PATH, DATASETS_PATH):
                self.close_connection = True
                self._error(HTTPStatus.NOT_FOUND, f"POST notifications to {ALERTS_PATH}, not {self.path}")
                return
            if not self._authorized():
                self.close_connection = True
                return
            body = self._body()
            if body is None:
                return
            try:
                events, ignored = (
                    parse_events(body) if self.path == ALERTS_PATH else ([parse_dataset(body)], 0)
                )
            except NotJson as exc:
                self._error(HTTPStatus.BAD_REQUEST, str(exc))
                return
            except BadPayload as exc:
                status = HTTPStatus.BAD_REQUEST if "nested" in str(exc) else HTTPStatus.UNPROCESSABLE_ENTITY
                self._error(status, str(exc))
                return
            try:
                decided = retrainer.submit(events)
            except sa.exc.SQLAlchemyError as exc:
                self._error(HTTPStatus.SERVICE_UNAVAILABLE, f"decisions not recorded: {type(exc).__name__}")
                return
            answer = [
                {"id": d.id, "subject": d.subject, "decision": d.decision, "reason": d.reason}
                for d in decided
            ]
            self._reply(HTTPStatus.OK, {"decisions": answer, "ignored": ignored})

        def do_PUT(self) -> None:
            self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"use POST {ALERTS_PATH}")

        do_DELETE = do_PATCH = do_PUT

        def log_message(self, format: str, *args: Any) -> None:
            pass  # every decision is in the audit table

    return Handler


def make_server(
    host: str, port: int, retrainer: Retrainer, token: str, max_body_bytes: int
) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), make_handler(retrainer, token, max_body_bytes))
    server.daemon_threads = True
    return server
