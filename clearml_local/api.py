"""Endpoint registry and request context shared by the service modules.

Service modules register plain functions ``handler(ctx, body) -> dict`` under ``"service.action"`` names;
the HTTP layer (``http_api.py``) knows nothing about services and services know nothing about HTTP.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from clearml_local.errors import missing_field, wrong_type
from clearml_local.storage import Store

Handler = Callable[["Context", dict[str, Any]], dict[str, Any]]
ENDPOINTS: dict[str, Handler] = {}
# Endpoints that need no token (auth.login takes HTTP Basic credentials instead).
PUBLIC_ENDPOINTS = {"auth.login", "debug.ping", "server.info"}


def endpoint(*names: str) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        for name in names:
            ENDPOINTS[name] = func
        return func

    return register


@dataclass
class Identity:
    user_id: str
    user_name: str
    company_id: str
    company_name: str
    role: str = "admin"


@dataclass
class Context:
    """Everything a handler may use: the store, who is calling, and per-call extras (e.g. the worker id)."""

    store: Store
    identity: Identity
    extras: dict[str, Any] = field(default_factory=dict)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def new_id() -> str:
    return uuid.uuid4().hex


def require(body: dict[str, Any], name: str, kind: type | tuple[type, ...] = str) -> Any:
    """A required field, checked for presence and type (the error names the field)."""
    if body.get(name) in (None, ""):
        raise missing_field(name)
    value = body[name]
    if not isinstance(value, kind):
        raise wrong_type(name, _type_name(kind), value)
    return value


def optional(body: dict[str, Any], name: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise wrong_type(name, _type_name(kind), value)
    return value


def id_list(body: dict[str, Any], name: str) -> list[str]:
    """A field that may be one id or a list of ids."""
    value = body.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise wrong_type(name, "a string or a list of strings", value)


def _type_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", dict: "an object", list: "a list", bool: "a boolean"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)
