"""Endpoint registry and the request context the service handlers get.

Service modules register plain functions ``handler(ctx, body) -> dict`` under ``"service.action"`` names. A
handler turns a validated request body into a call of the state layer (``ctx.state``) and its result into
reply data; the HTTP layer (``http_api.py``) knows nothing about services and services know nothing about
HTTP.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from clearml_local.auth_tokens import Authenticator, Identity
from clearml_local.errors import ApiError, InvalidField, MissingField
from clearml_local.state import State

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
class Context:
    """What a handler may use: the state layer as the caller sees it, who is calling, the authenticator."""

    state: State
    identity: Identity
    authenticator: Authenticator


def required(body: dict[str, Any], name: str) -> Any:
    """A field the handler cannot do without (the schema requires most; this covers the rest)."""
    if body.get(name) in (None, ""):
        raise MissingField(name)
    return body[name]


def ids(body: dict[str, Any], name: str) -> list[str]:
    """A field that may hold one id or a list of ids (the schema has checked the types)."""
    value = body.get(name)
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def strings(body: dict[str, Any], name: str) -> list[str]:
    """A list of strings (or one string) in a body no SDK schema checks; 400 naming the field otherwise."""
    value = body.get(name)
    value = [] if value is None else [value] if isinstance(value, str) else value
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidField(f"Validation error: field '{name}' must be a list of strings")
    return value


def flag(body: dict[str, Any], name: str, default: bool) -> bool:
    """A boolean a body may carry outside the SDK's schema (newer API versions); 400 when not a boolean."""
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise InvalidField(f"Validation error: field '{name}' must be a boolean")
    return value


def many(ids_: list[str], action: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """Run an action per id and report successes and failures the way ``*_many`` endpoints do."""
    succeeded, failed = [], []
    for doc_id in ids_:
        try:
            succeeded.append({"id": doc_id, **action(doc_id)})
        except ApiError as err:
            failed.append({"id": doc_id, "error": {"codes": [err.status, err.subcode], "msg": err.message}})
    return {"succeeded": succeeded, "failed": failed}
