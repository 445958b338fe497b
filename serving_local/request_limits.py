"""Bounds on what one request to ``/serve/...`` may cost the inference app, before the stock app sees it.

clearml-serving reads the whole body, inflates a gzip body without a cap and parses JSON recursively, so a
large body, a small gzip bomb or a deeply nested document costs memory (or a ``RecursionError``, a 500)
in proportion to what the client sends. This ASGI middleware reads the body itself, with limits:

- a ``Content-Length`` above ``max_body_bytes`` → 413 at once, nothing read; a body that grows past it while
  arriving → 413 there (the rest is never read);
- ``Content-Encoding: gzip`` is inflated here, incrementally, and never beyond ``max_body_bytes`` (413);
  the stock app then gets the inflated body without the header;
- brackets nested deeper than ``max_depth`` outside JSON strings → 400, whatever the content type, except a
  binary one (``content_negotiation.BINARY_MEDIA_TYPES``: an Arrow stream is never parsed as JSON).

The checked body is then handed to the stock app as one message.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import MutableMapping
from typing import Any

from serving_local.content_negotiation import BINARY_MEDIA_TYPES, media_type
from serving_local.request_metrics import SERVE_PREFIX, ASGIApp, Receive, Scope, Send

MAX_BODY_ENV = "SERVING_LOCAL_MAX_BODY_BYTES"
DEFAULT_MAX_BODY_BYTES = 16 << 20  # about 50,000 rows of the asteroid model in one request
MAX_DEPTH = 32
_CHUNK = 64 << 10


class Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def max_body_bytes() -> int:
    value = os.environ.get(MAX_BODY_ENV, "")
    return int(value) if value else DEFAULT_MAX_BODY_BYTES


def nesting_depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether ``[``/``{`` outside JSON strings nest deeper than ``limit`` (linear, no recursion)."""
    depth, in_string, escaped = 0, False, False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return False


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {name.lower(): value for name, value in scope.get("headers", [])}


def _declared_length(headers: dict[bytes, bytes]) -> int | None:
    try:
        return int(headers[b"content-length"])
    except (KeyError, ValueError):
        return None


async def read_limited(receive: Receive, limit: int) -> bytes:
    """The request body; Refused(413) as soon as it exceeds ``limit`` bytes."""
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Refused(400, "the client closed the connection before the body was complete")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Refused(413, f"request body larger than {limit} bytes")
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def inflate_limited(body: bytes, limit: int) -> bytes:
    """A gzip body inflated piece by piece; Refused(413) once the output would exceed ``limit`` bytes,
    Refused(400) when it is not gzip."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    out, size, pending = [], 0, body
    try:
        while pending:
            piece = inflater.decompress(pending, _CHUNK)
            size += len(piece)
            if size > limit:
                raise Refused(413, f"gzip request body inflates beyond {limit} bytes")
            out.append(piece)
            pending = inflater.unconsumed_tail
            if inflater.eof:
                break
        rest = inflater.flush()  # at most what zlib held back of its last output
    except zlib.error as exc:
        raise Refused(400, f"Content-Encoding is gzip but the body is not: {exc}") from None
    if size + len(rest) > limit:
        raise Refused(413, f"gzip request body inflates beyond {limit} bytes")
    return b"".join([*out, rest])


class RequestLimits:
    """ASGI middleware bounding the body of every ``/serve/...`` request (see the module's docstring)."""

    def __init__(self, app: ASGIApp, max_bytes: int | None = None, max_depth: int = MAX_DEPTH) -> None:
        self.app = app
        self.max_bytes = max_body_bytes() if max_bytes is None else max_bytes
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith(SERVE_PREFIX):
            await self.app(scope, receive, send)
            return
        try:
            body, scope = await self._checked(scope, receive)
        except Refused as refused:
            await send_error(send, refused.status, refused.detail)
            return
        delivered = False

        async def replay() -> MutableMapping[str, Any]:
            nonlocal delivered
            if delivered:
                return await receive()  # after the body: the disconnect, when it comes
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _checked(self, scope: Scope, receive: Receive) -> tuple[bytes, Scope]:
        headers = _headers(scope)
        declared = _declared_length(headers)
        if declared is not None and declared > self.max_bytes:
            raise Refused(413, f"request body of {declared} bytes; the limit is {self.max_bytes}")
        body = await read_limited(receive, self.max_bytes)
        if b"gzip" in headers.get(b"content-encoding", b"").lower():
            body = inflate_limited(body, self.max_bytes)
            dropped = (b"content-encoding", b"content-length")
            kept = [(k, v) for k, v in scope.get("headers", []) if k.lower() not in dropped]
            scope = {**scope, "headers": [*kept, (b"content-length", str(len(body)).encode())]}
        binary = media_type(headers.get(b"content-type", b"").decode("latin-1")) in BINARY_MEDIA_TYPES
        if not binary and nesting_depth_exceeds(body, self.max_depth):
            raise Refused(400, f"request body nested deeper than {self.max_depth} levels")
        return body, scope


async def send_error(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
