"""The request's ``Content-Type`` and ``Accept``, for code the stock app calls with the body alone.

clearml-serving hands a hook (its ``Preprocess`` class) the request body and nothing of the request's headers,
so a hook cannot tell an Arrow body from a JSON one by what the client declared, nor answer in the format the
client asked for. This ASGI middleware records both headers of the ``/serve/...`` request being handled in a
context variable; the stock app runs the hook in the same task (or a thread that copies the context), where
``request_media_type()`` and ``client_accepts()`` read them. A hook that finds this module missing (the stock
app alone) keeps its defaults.

Besides ``api.py``, the one module of ``serving_local`` the application imports: the hook runs inside the
inference app, whose image holds the wrapper's modules only (deploy/serving/Dockerfile), not what ``api.py``
needs (the process supervisor, the stack's configuration).
"""

from __future__ import annotations

from contextvars import ContextVar

from serving_local.request_metrics import SERVE_PREFIX, ASGIApp, Receive, Scope, Send

# Media types whose bodies are binary: never parsed as JSON by the stock app or, by contract, by a hook.
BINARY_MEDIA_TYPES = frozenset({"application/vnd.apache.arrow.stream"})

_HEADERS: ContextVar[tuple[str, str]] = ContextVar("serving_local_request_headers", default=("", ""))


def media_type(content_type: str) -> str:
    """``application/json; charset=utf-8`` -> ``application/json``."""
    return content_type.split(";", 1)[0].strip().lower()


def accepted_media_types(accept: str) -> set[str]:
    """The media types an ``Accept`` header names with a quality above 0 (wildcards as written)."""
    accepted = set()
    for item in accept.split(","):
        name, *parameters = item.split(";")
        quality = 1.0
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if name.strip() and quality > 0:
            accepted.add(media_type(name))
    return accepted


def request_media_type() -> str:
    """The media type of the current request's ``Content-Type`` ("" outside a request or without one)."""
    return media_type(_HEADERS.get()[0])


def client_accepts(wanted: str) -> bool:
    """Whether the current request's ``Accept`` names this media type itself. Wildcards do not count:
    ``*/*`` (what curl and requests send by default) leaves the app to answer in its default format."""
    return media_type(wanted) in accepted_media_types(_HEADERS.get()[1])


def _header(scope: Scope, name: bytes) -> str:
    values = [value for key, value in scope.get("headers", []) if key.lower() == name]
    return b",".join(values).decode("latin-1")


class ContentNegotiation:
    """ASGI middleware: makes the ``/serve/...`` request's Content-Type and Accept readable while the wrapped
    app handles it (see the module's docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith(SERVE_PREFIX):
            await self.app(scope, receive, send)
            return
        token = _HEADERS.set((_header(scope, b"content-type"), _header(scope, b"accept")))
        try:
            await self.app(scope, receive, send)
        finally:
            _HEADERS.reset(token)
