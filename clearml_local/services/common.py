"""Helpers shared by the service modules: loading documents, hidden filtering, bulk ("*_many") replies."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from clearml_local.api import Context, now_iso
from clearml_local.errors import ApiError, not_found

Document = dict[str, Any]

SUBCODES = {"tasks": 101, "models": 102, "projects": 103, "queues": 701, "workers": 1001}
KINDS = {"tasks": "task", "models": "model", "projects": "project", "queues": "queue", "workers": "worker"}


def view(ctx: Context, collection: str, doc_id: Any, field: str | None = None) -> Document:
    """One document to read and reply with, not to change (no copy: polling endpoints stay cheap);
    a 400 naming the field and the id when there is no such document."""
    if not isinstance(doc_id, str) or not doc_id:
        raise ApiError(
            400, 11, f"Validation error: field '{field or KINDS[collection]}' must be an id string"
        )
    doc = ctx.store.peek(collection, doc_id)
    if doc is None:
        raise not_found(KINDS[collection], doc_id, SUBCODES.get(collection, 0))
    return doc


def load(ctx: Context, collection: str, doc_id: Any, field: str | None = None) -> Document:
    """A copy of one document, to change and ``put`` back (cached documents are never changed in place)."""
    return copy.deepcopy(view(ctx, collection, doc_id, field))


def is_hidden(doc: Document) -> bool:
    return "hidden" in (doc.get("system_tags") or [])


def visible(body: dict[str, Any]) -> Callable[[Document], bool] | None:
    """Hidden documents are only returned with search_hidden=true, or when asked for by id."""
    if _truthy(body.get("search_hidden")) or body.get("id"):
        return None
    return lambda doc: not is_hidden(doc)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return bool(value)


def touch(doc: Document, ctx: Context) -> None:
    stamp = now_iso()
    doc["last_update"] = stamp
    doc["last_change"] = stamp
    doc["last_changed_by"] = ctx.identity.user_id


def many(ids: Any, action: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """Run an action per id and report successes and failures the way ``*_many`` endpoints do."""
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ApiError(400, 11, "Validation error: field 'ids' must be a list of id strings")
    succeeded, failed = [], []
    for doc_id in ids:
        try:
            succeeded.append({"id": doc_id, **action(doc_id)})
        except ApiError as err:
            failed.append({"id": doc_id, "error": {"codes": [err.status, err.subcode], "msg": err.message}})
    return {"succeeded": succeeded, "failed": failed}
