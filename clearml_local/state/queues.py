"""Queues: named FIFO lists of task ids that agents pull from."""

from __future__ import annotations

from typing import Any

from clearml_local.errors import (
    BadRequest,
    InvalidField,
    InvalidQueueId,
    NameTaken,
    NotEmpty,
    TaskAlreadyQueued,
    TaskNotQueued,
)
from clearml_local.state.base import Collection, new_id, now_iso
from clearml_local.state.tasks import QUEUED
from clearml_local.storage import Document

DEFAULT_QUEUE = "default"
# Queues with these system tags are left out of get_all unless asked for (by id, name or search_hidden).
HIDDEN_QUEUE_TAGS = frozenset({"k8s-glue"})
NOT_EMPTY_SUBCODE = 702


class QueueBackend(Collection):
    collection = "queues"
    missing = InvalidQueueId

    def _new(
        self,
        name: str,
        tags: list[str] | None = None,
        system_tags: list[str] | None = None,
        display_name: str | None = None,
    ) -> Document:
        stamp = now_iso()
        doc = {
            "id": new_id(),
            "name": name,
            "display_name": display_name or name,
            "user": self.state.identity.user_id,
            "company": self.state.identity.company_id,
            "created": stamp,
            "last_update": stamp,
            "tags": tags or [],
            "system_tags": system_tags or [],
            "entries": [],
            "metadata": {},
        }
        self.store.put(self.collection, doc)
        return doc

    def find(self, name: str) -> Document | None:
        return next((q for q in self.all() if q["name"] == name), None)

    def create(
        self,
        name: str,
        tags: list[str] | None,
        system_tags: list[str] | None,
        display_name: str | None = None,
    ) -> str:
        with self.store.transaction():
            if self.find(name):
                raise NameTaken("Queue", name)
            return str(self._new(name, tags, system_tags, display_name)["id"])

    def listing(self, body: dict[str, Any], with_task_names: bool) -> dict[str, Any]:
        """``queues.get_all``: hidden queues only when asked for; at most ``max_task_entries`` entries each,
        with the task's name too for ``get_all_ex``."""
        hidden = not (body.get("search_hidden") or body.get("id") or body.get("name"))
        among = [
            q for q in self.all() if not (hidden and HIDDEN_QUEUE_TAGS & set(q.get("system_tags") or []))
        ]
        reply = self.get_all(body, "queues", default_order="name", respect_hidden=False, among=among)
        limit = body.get("max_task_entries")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
            raise InvalidField("Validation error: field 'max_task_entries' must be an integer >= 0")
        for index, queue in enumerate(reply["queues"]):
            entries = queue.get("entries")
            if not isinstance(entries, list):
                continue
            entries = entries[:limit] if isinstance(limit, int) and limit >= 0 else entries
            if with_task_names:
                entries = [{**e, "task": self._task_reference(e["task"])} for e in entries]
            reply["queues"][index] = {**queue, "entries": entries}
        return reply

    def _task_reference(self, task_id: str) -> dict[str, Any]:
        task = self.store.peek("tasks", task_id) or {}
        return {"id": task_id, "name": task.get("name")}

    def resolve(self, queue_id: str | None, queue_name: str | None) -> Document:
        """A queue by id, or by name (created on first use, like the real server's enqueue by name)."""
        if queue_id:
            return self.view(queue_id, "queue")
        if queue_name:
            return self.find(queue_name) or self._new(queue_name)
        return self.default()

    def default(self) -> Document:
        with self.store.transaction():
            for queue in self.all():
                if DEFAULT_QUEUE in (queue.get("system_tags") or []):
                    return queue
            return self.find(DEFAULT_QUEUE) or self._new(DEFAULT_QUEUE, system_tags=[DEFAULT_QUEUE])

    def update(self, queue_id: str, fields: dict[str, Any]) -> dict[str, Any]:
        def apply(queue: Document) -> dict[str, Any]:
            changed = {k: fields[k] for k in ("name", "tags", "system_tags", "display_name") if k in fields}
            queue.update(changed)
            return changed

        return self.change(queue_id, apply, "queue")

    def delete(self, queue_id: str, force: bool) -> list[str]:
        """Delete a queue (a non-empty one only with force: its tasks go back to their status before)."""
        with self.store.transaction():
            queue = self.view(queue_id, "queue")
            if queue["entries"] and not force:
                raise NotEmpty(f"Queue {queue['name']!r} is not empty: use force=true", NOT_EMPTY_SUBCODE)
            returned = self._return_tasks(queue, f"Queue {queue_id} was deleted")
            self.store.delete(self.collection, queue_id)
        return returned

    def clear(self, queue_id: str) -> list[str]:
        """Empty a queue; its tasks go back to their status before they were enqueued. Their ids."""
        with self.store.transaction():
            queue = self.view(queue_id, "queue")
            returned = self._return_tasks(queue, f"Queue {queue_id} was cleared")
            self.change(queue_id, lambda doc: doc.update(entries=[]) or {"entries": []})
        return returned

    def remove_task(self, queue_id: str, task_id: str, update_task_status: bool) -> int:
        """``queues.remove_task``: 703 when the task is not in the queue; the task's status changes only
        with ``update_task_status``."""
        with self.store.transaction():
            queue = self.view(queue_id, "queue")
            if all(e["task"] != task_id for e in queue["entries"]):
                raise TaskNotQueued(task_id, queue_id)
            removed = self.remove(queue_id, task_id)
            if update_task_status:
                self.state.tasks.removed_from_queue(
                    task_id, queue_id, f"Task was removed from queue {queue_id}"
                )
        return removed

    def add_task(self, queue_id: str, task_id: str, update_execution_queue: bool) -> None:
        """``queues.add_task``: an entry for the task (706 when it has one already); the task's
        ``execution.queue`` names the queue unless told otherwise. The task's status does not change."""
        with self.store.transaction():
            queue = self.view(queue_id, "queue")
            self.state.tasks.view(task_id, "task")
            if any(e["task"] == task_id for e in queue["entries"]):
                raise TaskAlreadyQueued(task_id, queue_id)
            self.push(queue_id, task_id)
            if update_execution_queue:
                self.state.tasks.set_execution_queue(task_id, queue_id)

    def _return_tasks(self, queue: Document, reason: str) -> list[str]:
        task_ids = [e["task"] for e in queue["entries"]]
        return [t for t in task_ids if self.state.tasks.removed_from_queue(t, queue["id"], reason)]

    def push(self, queue_id: str, task_id: str) -> None:
        def apply(queue: Document) -> dict[str, Any]:
            queue["entries"] = [e for e in queue["entries"] if e["task"] != task_id]
            queue["entries"].append({"task": task_id, "added": now_iso()})
            return {"entries": queue["entries"]}

        self.change(queue_id, apply, "queue")

    def remove(self, queue_id: str, task_id: str) -> int:
        """Take a task out of a queue (a queue that no longer exists holds nothing); how many entries."""
        queue = self.store.peek(self.collection, queue_id)
        if queue is None or all(e["task"] != task_id for e in queue["entries"]):
            return 0
        removed = 0

        def apply(doc: Document) -> dict[str, Any]:
            nonlocal removed
            kept = [e for e in doc["entries"] if e["task"] != task_id]
            removed = len(doc["entries"]) - len(kept)
            doc["entries"] = kept
            return {"entries": kept}

        self.change(queue_id, apply)
        return removed

    def next_task(self, queue_id: str) -> tuple[Document, Document] | None:
        """Pop the first entry whose task is still queued, atomically: two agents never get the same task.
        (entry, task), or None when the queue holds no queued task."""
        with self.store.transaction():
            queue = self.load(queue_id, "queue")
            found = None
            while queue["entries"] and found is None:
                entry = queue["entries"].pop(0)
                task = self.store.peek("tasks", entry["task"])
                if task is not None and task.get("status") == QUEUED:
                    found = (entry, task)
            self.save(queue)
        return found

    def move_entry(self, queue_id: str, task_id: str, position: str, count: int) -> int:
        """Move a task's entry to the front/back or ``count`` places forward/backward; its new index."""
        new_index = 0

        def apply(queue: Document) -> dict[str, Any]:
            nonlocal new_index
            index = next((i for i, e in enumerate(queue["entries"]) if e["task"] == task_id), None)
            if index is None:
                raise BadRequest(f"Task {task_id} is not in queue {queue['name']!r}")
            entry = queue["entries"].pop(index)
            targets = {
                "front": 0,
                "back": len(queue["entries"]),
                "forward": max(0, index - count),
                "backward": min(len(queue["entries"]), index + count),
            }
            new_index = targets[position]
            queue["entries"].insert(new_index, entry)
            return {"entries": queue["entries"]}

        self.change(queue_id, apply, "queue")
        return new_index

    def set_metadata(self, queue_id: str, items: list[dict[str, Any]], replace: bool) -> None:
        def apply(queue: Document) -> dict[str, Any]:
            if replace:
                queue["metadata"] = {}
            for item in items:
                if not item.get("key"):
                    raise BadRequest("Validation error: every metadata item needs a 'key'")
                queue["metadata"][item["key"]] = item
            return {"metadata": queue["metadata"]}

        self.change(queue_id, apply, "queue")
