"""queues.*: named FIFO queues of task ids that agents pull from with ``queues.get_next_task``."""

from __future__ import annotations

from typing import Any

from clearml_local.api import Context, endpoint, new_id, now_iso, require
from clearml_local.errors import ApiError, bad_request
from clearml_local.query import run_query
from clearml_local.services.common import load, touch, view

Document = dict[str, Any]
DEFAULT_QUEUE = "default"


def _new_queue(
    ctx: Context, name: str, tags: list[str] | None = None, system_tags: list[str] | None = None
) -> Document:
    stamp = now_iso()
    doc = {
        "id": new_id(),
        "name": name,
        "display_name": name,
        "user": ctx.identity.user_id,
        "company": ctx.identity.company_id,
        "created": stamp,
        "last_update": stamp,
        "tags": tags or [],
        "system_tags": system_tags or [],
        "entries": [],
        "metadata": {},
    }
    ctx.store.put("queues", doc)
    return doc


def find_by_name(ctx: Context, name: str) -> Document | None:
    return next((q for q in ctx.store.all("queues") if q["name"] == name), None)


def resolve_queue(ctx: Context, queue_id: Any, queue_name: Any) -> Document:
    """A queue by id, or by name (created on first use, like the real server's enqueue by name)."""
    if queue_id:
        return load(ctx, "queues", queue_id, "queue")
    if queue_name:
        return find_by_name(ctx, queue_name) or _new_queue(ctx, queue_name)
    return default_queue(ctx)


def default_queue(ctx: Context) -> Document:
    for queue in ctx.store.all("queues"):
        if "default" in (queue.get("system_tags") or []):
            return queue
    return find_by_name(ctx, DEFAULT_QUEUE) or _new_queue(ctx, DEFAULT_QUEUE, system_tags=["default"])


def push(ctx: Context, queue_id: str, task_id: str) -> None:
    queue = load(ctx, "queues", queue_id, "queue")
    queue["entries"] = [e for e in queue["entries"] if e["task"] != task_id]
    queue["entries"].append({"task": task_id, "added": now_iso()})
    touch(queue, ctx)
    ctx.store.put("queues", queue)


def remove(ctx: Context, queue_id: str, task_id: str) -> int:
    queue = ctx.store.get("queues", queue_id)
    if queue is None:
        return 0
    before = len(queue["entries"])
    queue["entries"] = [e for e in queue["entries"] if e["task"] != task_id]
    if len(queue["entries"]) != before:
        touch(queue, ctx)
        ctx.store.put("queues", queue)
    return before - len(queue["entries"])


@endpoint("queues.create")
def create(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    name = require(body, "name")
    with ctx.store.transaction():
        if find_by_name(ctx, name):
            raise ApiError(409, 702, f"Queue with the same name already exists: name={name}")
        queue = _new_queue(ctx, name, body.get("tags"), body.get("system_tags"))
    return {"id": queue["id"]}


@endpoint("queues.get_by_id")
def get_by_id(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    return {"queue": view(ctx, "queues", body.get("queue"), "queue")}


@endpoint("queues.get_all", "queues.get_all_ex")
def get_all(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    return {"queues": run_query(ctx.store.all("queues"), body, default_order="name")}


@endpoint("queues.get_default")
def get_default(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    with ctx.store.transaction():
        queue = default_queue(ctx)
    return {"id": queue["id"], "name": queue["name"]}


@endpoint("queues.update")
def update(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    with ctx.store.transaction():
        queue = load(ctx, "queues", body.get("queue"), "queue")
        fields = {k: body[k] for k in ("name", "tags", "system_tags", "display_name") if k in body}
        queue.update(fields)
        touch(queue, ctx)
        ctx.store.put("queues", queue)
    return {"updated": 1, "fields": fields}


@endpoint("queues.delete")
def delete(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    with ctx.store.transaction():
        queue = load(ctx, "queues", body.get("queue"), "queue")
        if queue["entries"] and not body.get("force"):
            raise ApiError(400, 703, f"Queue {queue['name']!r} is not empty: use force=true")
        ctx.store.delete("queues", queue["id"])
    return {"deleted": 1}


@endpoint("queues.add_task")
def add_task(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    with ctx.store.transaction():
        load(ctx, "tasks", body.get("task"), "task")
        push(ctx, require(body, "queue"), body["task"])
    return {"added": 1}


@endpoint("queues.remove_task")
def remove_task(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    with ctx.store.transaction():
        load(ctx, "queues", body.get("queue"), "queue")
        return {"removed": remove(ctx, body["queue"], require(body, "task"))}


@endpoint("queues.get_next_task")
def get_next_task(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    """Pop the first entry whose task is still queued (atomically: two agents never get the same task)."""
    with ctx.store.transaction():
        queue = load(ctx, "queues", body.get("queue"), "queue")
        while queue["entries"]:
            entry = queue["entries"].pop(0)
            task = ctx.store.peek("tasks", entry["task"])
            if task is None or task.get("status") != "queued":
                continue
            touch(queue, ctx)
            ctx.store.put("queues", queue)
            result: dict[str, Any] = {"entry": entry}
            if body.get("get_task_info"):
                result["task_info"] = {"company": task.get("company"), "user": task.get("user")}
            return result
        ctx.store.put("queues", queue)
    return {}


@endpoint("queues.peek_task")
def peek_task(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    queue = load(ctx, "queues", body.get("queue"), "queue")
    return {"task": queue["entries"][0]["task"]} if queue["entries"] else {}


@endpoint("queues.get_num_entries")
def get_num_entries(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    return {"num": len(load(ctx, "queues", body.get("queue"), "queue")["entries"])}


def _move(position: str) -> Any:
    def handler(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
        with ctx.store.transaction():
            queue = load(ctx, "queues", body.get("queue"), "queue")
            task_id = require(body, "task")
            index = next((i for i, e in enumerate(queue["entries"]) if e["task"] == task_id), None)
            if index is None:
                raise bad_request(f"Task {task_id} is not in queue {queue['name']!r}")
            entry = queue["entries"].pop(index)
            count = int(body.get("count") or 1)
            targets = {
                "front": 0,
                "back": len(queue["entries"]),
                "forward": max(0, index - count),
                "backward": min(len(queue["entries"]), index + count),
            }
            queue["entries"].insert(targets[position], entry)
            touch(queue, ctx)
            ctx.store.put("queues", queue)
        return {"position": targets[position]}

    return handler


endpoint("queues.move_task_to_front")(_move("front"))
endpoint("queues.move_task_to_back")(_move("back"))
endpoint("queues.move_task_forward")(_move("forward"))
endpoint("queues.move_task_backward")(_move("backward"))


@endpoint("queues.add_or_update_metadata")
def add_or_update_metadata(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    with ctx.store.transaction():
        queue = load(ctx, "queues", body.get("queue"), "queue")
        if body.get("replace_metadata"):
            queue["metadata"] = {}
        for item in body.get("metadata") or []:
            queue["metadata"][item["key"]] = item
        ctx.store.put("queues", queue)
    return {"updated": 1}


@endpoint("queues.get_queue_metrics")
def get_queue_metrics(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    return {"queues": []}
