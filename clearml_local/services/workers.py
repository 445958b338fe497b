"""workers.*: agents register, report status while polling queues, and unregister."""

from __future__ import annotations

import datetime as dt
from typing import Any

from clearml_local.api import Context, endpoint, now_iso, require
from clearml_local.services.common import load

Document = dict[str, Any]
DEFAULT_TIMEOUT_S = 600


def _expired(worker: Document) -> bool:
    try:
        seen = dt.datetime.fromisoformat(worker["last_activity_time"])
    except (KeyError, ValueError):
        return True
    timeout = int(worker.get("timeout") or DEFAULT_TIMEOUT_S)
    return (dt.datetime.now(dt.UTC) - seen).total_seconds() > timeout


def _queue_refs(ctx: Context, queue_ids: list[str]) -> list[dict[str, Any]]:
    refs = []
    for queue_id in queue_ids:
        queue = ctx.store.peek("queues", queue_id)
        if queue is not None:
            refs.append({"id": queue_id, "name": queue["name"], "num_tasks": len(queue["entries"])})
    return refs


@endpoint("workers.register")
def register(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    worker_id = require(body, "worker")
    stamp = now_iso()
    with ctx.store.transaction():
        doc = ctx.store.get("workers", worker_id) or {"id": worker_id, "register_time": stamp}
        doc.update(
            {
                "user": {"id": ctx.identity.user_id, "name": ctx.identity.user_name},
                "company": {"id": ctx.identity.company_id, "name": ctx.identity.company_name},
                "last_activity_time": stamp,
                "last_report_time": stamp,
                "timeout": body.get("timeout") or DEFAULT_TIMEOUT_S,
                "queue_ids": body.get("queues") or doc.get("queue_ids") or [],
                "tags": body.get("tags") or [],
                "system_tags": body.get("system_tags") or [],
                "key": worker_id,
            }
        )
        ctx.store.put("workers", doc)
    return {}


@endpoint("workers.unregister")
def unregister(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    ctx.store.delete("workers", require(body, "worker"))
    return {}


@endpoint("workers.status_report")
def status_report(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    worker_id = require(body, "worker")
    stamp = now_iso()
    with ctx.store.transaction():
        doc = ctx.store.get("workers", worker_id) or {
            "id": worker_id,
            "register_time": stamp,
            "key": worker_id,
        }
        doc["last_activity_time"] = stamp
        doc["last_report_time"] = stamp
        if body.get("queues"):
            doc["queue_ids"] = body["queues"]
        task_id = body.get("task")
        if task_id:
            task = ctx.store.peek("tasks", task_id)
            doc["task"] = {
                "id": task_id,
                "name": task["name"] if task else "",
                "running_time": 0,
                "last_iteration": task.get("last_iteration", 0) if task else 0,
            }
        else:
            doc.pop("task", None)
        if body.get("machine_stats"):
            doc["machine_stats"] = body["machine_stats"]
        ctx.store.put("workers", doc)
    return {}


@endpoint("workers.get_all")
def get_all(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    workers = []
    for doc in ctx.store.all("workers"):
        if _expired(doc):
            continue
        worker = {
            k: v for k, v in doc.items() if k not in ("queue_ids", "timeout", "machine_stats", "system_tags")
        }
        worker["queues"] = _queue_refs(ctx, doc.get("queue_ids") or [])
        workers.append(worker)
    return {"workers": workers}


@endpoint("workers.get_by_id")
def get_by_id(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    return {"worker": load(ctx, "workers", body.get("worker"), "worker")}


@endpoint("workers.get_metric_keys")
def get_metric_keys(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    return {"categories": []}


@endpoint("workers.get_stats", "workers.get_activity_report")
def get_stats(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    return {"workers": [], "total": [], "active": []}


@endpoint("workers.set_runtime_properties")
def set_runtime_properties(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    worker_id = require(body, "worker")
    with ctx.store.transaction():
        doc = ctx.store.get("workers", worker_id) or {"id": worker_id, "key": worker_id}
        properties = {p["key"]: p for p in doc.get("runtime_properties", [])}
        for item in body.get("runtime_properties") or []:
            if isinstance(item, dict) and item.get("key"):
                properties[item["key"]] = {"key": item["key"], "value": item.get("value")}
        doc["runtime_properties"] = list(properties.values())
        ctx.store.put("workers", doc)
    return {}


@endpoint("workers.get_runtime_properties")
def get_runtime_properties(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    doc = ctx.store.peek("workers", require(body, "worker")) or {}
    return {"runtime_properties": list(doc.get("runtime_properties", []))}
