"""Workers: agents register, report status while polling queues, and unregister."""

from __future__ import annotations

import datetime as dt
from typing import Any

from clearml_local.errors import InvalidField, InvalidWorkerId
from clearml_local.query import match_tags
from clearml_local.state.base import Collection, now_iso
from clearml_local.storage import Document

DEFAULT_TIMEOUT_S = 600


class WorkerBackend(Collection):
    collection = "workers"
    missing = InvalidWorkerId

    def _current(self, worker_id: str) -> Document:
        stamp = now_iso()
        return self.store.get(self.collection, worker_id) or {
            "id": worker_id,
            "key": worker_id,
            "register_time": stamp,
        }

    def register(self, worker_id: str, fields: dict[str, Any]) -> None:
        identity = self.state.identity
        stamp = now_iso()
        with self.store.transaction():
            doc = self._current(worker_id)
            doc.update(
                {
                    "user": {"id": identity.user_id, "name": identity.user_name},
                    "company": {"id": identity.company_id, "name": identity.company_name},
                    "last_activity_time": stamp,
                    "last_report_time": stamp,
                    "timeout": fields.get("timeout") or DEFAULT_TIMEOUT_S,
                    "queue_ids": fields.get("queues") or doc.get("queue_ids") or [],
                    "tags": fields.get("tags") or [],
                    "system_tags": fields.get("system_tags") or [],
                }
            )
            self.store.put(self.collection, doc)

    def unregister(self, worker_id: str) -> None:
        self.store.delete(self.collection, worker_id)

    def status_report(self, worker_id: str, fields: dict[str, Any]) -> None:
        stamp = now_iso()
        with self.store.transaction():
            doc = self._current(worker_id)
            doc["last_activity_time"] = stamp
            doc["last_report_time"] = stamp
            if fields.get("queues"):
                doc["queue_ids"] = fields["queues"]
            task_id = fields.get("task")
            if task_id:
                task = self.state.tasks.worker_report(task_id, worker_id)
                doc["task"] = {
                    "id": task_id,
                    "name": task["name"] if task else "",
                    "running_time": 0,
                    "last_iteration": task.get("last_iteration", 0) if task else 0,
                }
            else:
                doc.pop("task", None)
            if fields.get("machine_stats"):
                doc["machine_stats"] = fields["machine_stats"]
            self.store.put(self.collection, doc)

    def active(
        self, tags: list[str] | None = None, system_tags: list[str] | None = None, last_seen: int = 0
    ) -> list[Document]:
        """Workers heard from within their timeout (and within ``last_seen`` seconds when given), with the
        tag filters of get_all (``-tag`` excludes), and the queues they serve."""
        workers = []
        for doc in self.all():
            if _expired(doc) or (last_seen and _silent_for(doc) > last_seen):
                continue
            if tags and not match_tags(doc.get("tags"), tags):
                continue
            if system_tags and not match_tags(doc.get("system_tags"), system_tags):
                continue
            hidden = ("queue_ids", "timeout", "machine_stats")
            worker = {k: v for k, v in doc.items() if k not in hidden}
            worker["queues"] = self._queue_refs(doc.get("queue_ids") or [])
            workers.append(worker)
        return workers

    def _queue_refs(self, queue_ids: list[str]) -> list[dict[str, Any]]:
        refs = []
        for queue_id in queue_ids:
            queue = self.store.peek("queues", queue_id)
            if queue is not None:
                refs.append({"id": queue_id, "name": queue["name"], "num_tasks": len(queue["entries"])})
        return refs

    def set_runtime_properties(self, worker_id: str, items: list[dict[str, Any]]) -> None:
        with self.store.transaction():
            doc = self._current(worker_id)
            properties = {p["key"]: p for p in doc.get("runtime_properties", [])}
            for item in items:
                if not isinstance(item, dict) or not isinstance(item.get("key"), str):
                    raise InvalidField("Validation error: every runtime property needs a 'key' string")
                if item.get("key"):
                    properties[item["key"]] = {"key": item["key"], "value": item.get("value")}
            doc["runtime_properties"] = list(properties.values())
            self.store.put(self.collection, doc)

    def runtime_properties(self, worker_id: str) -> list[dict[str, Any]]:
        doc = self.store.peek(self.collection, worker_id) or {}
        return list(doc.get("runtime_properties", []))


def _silent_for(worker: Document) -> float:
    """Seconds since the worker was last heard from (infinite for a record without a valid time)."""
    try:
        seen = dt.datetime.fromisoformat(worker["last_activity_time"])
    except (KeyError, TypeError, ValueError):
        return float("inf")
    return (dt.datetime.now(dt.UTC) - seen).total_seconds()


def _expired(worker: Document) -> bool:
    try:
        timeout = int(worker.get("timeout") or DEFAULT_TIMEOUT_S)
    except (TypeError, ValueError):
        return True
    return _silent_for(worker) > timeout
