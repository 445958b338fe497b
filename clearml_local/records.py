"""Repairs stored documents whose shape no valid request could produce (written before requests were
validated, or by hand), so that one bad record can never break the reads of a whole collection.

Applied once, when the store loads; what it changes is logged.
"""

from __future__ import annotations

import logging
from typing import Any

from clearml_local.storage import Document

log = logging.getLogger("clearml_local.records")

LIST_FIELDS = ("tags", "system_tags")
MAPPING_FIELDS = {
    "tasks": ("execution", "script", "models", "output", "runtime", "container", "last_metrics"),
    "models": ("design", "labels", "metadata"),
    "projects": (),
    "queues": ("metadata",),
}
MAX_DEPTH = 8


def repair(collection: str, doc: Document) -> Document:
    """The document with every field a reader relies on in the shape the reader expects."""
    fixed = dict(doc)
    for field in LIST_FIELDS:
        if field in fixed:
            fixed[field] = _strings(fixed[field])
    for field in MAPPING_FIELDS.get(collection, ()):
        if field in fixed:
            fixed[field] = _bounded(fixed[field]) if isinstance(fixed[field], dict) else {}
    if collection == "tasks":
        _repair_task(fixed)
    if collection == "queues" and "entries" in fixed:
        fixed["entries"] = [e for e in _list(fixed["entries"]) if isinstance(e, dict) and "task" in e]
    if fixed != doc:
        log.warning("repaired malformed %s record %s", collection, doc.get("id"))
    return fixed


def _repair_task(task: Document) -> None:
    if not isinstance(task.get("name"), str):
        task["name"] = str(task.get("name") or "")
    task["hyperparams"] = {
        section: {name: _scalars(item) for name, item in params.items() if isinstance(item, dict)}
        for section, params in _mapping(task.get("hyperparams")).items()
        if isinstance(params, dict)
    }
    task["configuration"] = {
        name: _scalars(item)
        for name, item in _mapping(task.get("configuration")).items()
        if isinstance(item, dict)
    }
    models = _mapping(task.get("models"))
    task["models"] = {
        kind: [r for r in _list(models.get(kind)) if isinstance(r, dict)] for kind in ("input", "output")
    }
    execution = _mapping(task.get("execution"))
    execution["artifacts"] = [a for a in _list(execution.get("artifacts")) if isinstance(a, dict)]
    task["execution"] = execution


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _scalars(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if v is None or isinstance(v, str | int | float | bool)}


def _bounded(value: Any, depth: int = 0) -> Any:
    """``value`` with whatever nests deeper than ``MAX_DEPTH`` cut off."""
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            return {}
        return {k: _bounded(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        if depth >= MAX_DEPTH:
            return []
        return [_bounded(v, depth + 1) for v in value]
    return value
