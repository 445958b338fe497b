"""`POST /feedback/<endpoint>` beside `/serve/<endpoint>`, on the same address: a generic route whose meaning
the application supplies by configuration.

Why a handler named by configuration rather than a producer onto a fixed topic: what a valid label is (its
fields, their types) belongs to the application, and the 422 that names a wrong field must come from the code
that knows the fields. `SERVING_LOCAL_FEEDBACK_HANDLER=package.module:function` names a callable
`handler(endpoint: str, body: Any) -> dict`, imported by name when the app starts (so this package imports
nothing of the application). The route does what is generic:

- only `POST`, only `application/json` or no content type; the body read with a limit
  (`SERVING_LOCAL_FEEDBACK_MAX_BYTES`, default 1 MiB): larger → 413, before the rest arrives;
- JSON parsed here: not UTF-8, not JSON, NaN/Infinity or nested deeper than `MAX_DEPTH` → 422 saying so;
- the handler runs on a worker thread (it may wait for a broker's acknowledgement); its `ValueError` → 422
  with the message, any other exception → 503 (the label was not stored; the client may retry);
- its dict → 200 as JSON.

Without a configured handler the route does not exist (404 from the stock app, as before).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
from collections.abc import Callable
from typing import Any

from serving_local.request_limits import Refused, read_limited
from serving_local.request_metrics import ASGIApp, Receive, Scope, Send

HANDLER_ENV = "SERVING_LOCAL_FEEDBACK_HANDLER"
MAX_BYTES_ENV = "SERVING_LOCAL_FEEDBACK_MAX_BYTES"
DEFAULT_MAX_BYTES = 1 << 20
MAX_DEPTH = 4  # {"rows": [{...}]} is three levels deep
PREFIX = "/feedback/"

Handler = Callable[[str, Any], dict]


class FeedbackError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def load_handler(spec: str) -> Handler:
    """`package.module:function` -> the function."""
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise ValueError(f"{HANDLER_ENV} must be 'package.module:function', got {spec!r}")
    handler = getattr(importlib.import_module(module_name), name)
    if not callable(handler):
        raise ValueError(f"{HANDLER_ENV}: {spec} is not callable")
    return handler


def with_feedback_route(app: ASGIApp) -> ASGIApp:
    """`app` with the feedback route when the environment names a handler, else `app` itself."""
    spec = os.environ.get(HANDLER_ENV)
    if not spec:
        return app
    max_bytes = int(os.environ.get(MAX_BYTES_ENV) or DEFAULT_MAX_BYTES)
    return FeedbackRoute(app, load_handler(spec), max_bytes)


class FeedbackRoute:
    """ASGI middleware answering `POST /feedback/<endpoint>` with the handler; everything else passes."""

    def __init__(self, app: ASGIApp, handler: Handler, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.app = app
        self.handler = handler
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith(PREFIX):
            await self.app(scope, receive, send)
            return
        try:
            answer = await self._answer(scope, receive, path[len(PREFIX) :].strip("/"))
            await _send_json(send, 200, answer)
        except FeedbackError as exc:
            await _send_json(send, exc.status, {"detail": exc.detail})

    async def _answer(self, scope: Scope, receive: Receive, endpoint: str) -> dict:
        if scope.get("method") != "POST":
            raise FeedbackError(405, "send labels with POST")
        if not endpoint:
            raise FeedbackError(404, "POST /feedback/<endpoint>")
        content_type = _header(scope, b"content-type").split(";")[0].strip().lower()
        if content_type not in ("", "application/json"):
            raise FeedbackError(415, f"the body must be application/json, got {content_type}")
        body = parse_json(await self._read_body(scope, receive))
        try:
            answer = await asyncio.to_thread(self.handler, endpoint, body)
        except ValueError as exc:
            raise FeedbackError(422, str(exc)) from None
        except Exception as exc:  # the handler could not store the label: the client may retry
            raise FeedbackError(503, f"the feedback was not stored: {type(exc).__name__}: {exc}") from None
        return answer

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        declared = _header(scope, b"content-length")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise FeedbackError(413, f"the body is larger than {self.max_bytes} bytes")
        try:
            return await read_limited(receive, self.max_bytes)
        except Refused as exc:
            raise FeedbackError(exc.status, exc.detail) from None


def parse_json(raw: bytes) -> Any:
    """The body as JSON: 422 naming what is wrong with it."""
    if not raw.strip():
        raise FeedbackError(422, "the body is empty: send a JSON object")
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        raise FeedbackError(422, f"the body is not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise FeedbackError(422, f"the body is not valid JSON: {exc.msg} at position {exc.pos}") from None
    except RecursionError:
        raise FeedbackError(422, f"the body is nested deeper than {MAX_DEPTH} levels") from None
    if _depth(value) > MAX_DEPTH:
        raise FeedbackError(422, f"the body is nested deeper than {MAX_DEPTH} levels")
    return value


def _reject_constant(name: str) -> Any:
    raise FeedbackError(422, f"the body holds {name}, which is not a number JSON allows")


def _depth(value: Any) -> int:
    """Levels of objects and arrays, counted only up to `MAX_DEPTH + 1` (breadth first, no recursion)."""
    level, depth = [value], 0
    while depth <= MAX_DEPTH:
        containers = [item for item in level if isinstance(item, (dict, list))]
        if not containers:
            return depth
        depth += 1
        level = [
            child for item in containers for child in (item.values() if isinstance(item, dict) else item)
        ]
    return depth


def _children(container: dict | list) -> list:
    return list(container.values()) if isinstance(container, dict) else container


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


async def _send_json(send: Send, status: int, payload: Any) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
