"""queues.*: requests to ``QueueBackend`` calls (the rules live in ``clearml_local/state/queues.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clearml_local.api import Context, endpoint, flag, required

Body = dict[str, Any]


@endpoint("queues.create")
def create(ctx: Context, body: Body) -> Body:
    queue_id = ctx.state.queues.create(
        required(body, "name"), body.get("tags"), body.get("system_tags"), body.get("display_name")
    )
    return {"id": queue_id}


@endpoint("queues.get_by_id")
def get_by_id(ctx: Context, body: Body) -> Body:
    return {"queue": ctx.state.queues.view(body.get("queue"), "queue")}


@endpoint("queues.get_all")
def get_all(ctx: Context, body: Body) -> Body:
    return ctx.state.queues.listing(body, with_task_names=False)


@endpoint("queues.get_all_ex")
def get_all_ex(ctx: Context, body: Body) -> Body:
    return ctx.state.queues.listing(body, with_task_names=True)


@endpoint("queues.get_default")
def get_default(ctx: Context, body: Body) -> Body:
    queue = ctx.state.queues.default()
    return {"id": queue["id"], "name": queue["name"]}


@endpoint("queues.update")
def update(ctx: Context, body: Body) -> Body:
    return {"updated": 1, "fields": ctx.state.queues.update(body.get("queue"), body)}


@endpoint("queues.delete")
def delete(ctx: Context, body: Body) -> Body:
    ctx.state.queues.delete(body.get("queue"), bool(body.get("force")))
    return {"deleted": 1}


@endpoint("queues.clear_queue")
def clear_queue(ctx: Context, body: Body) -> Body:
    return {"removed_tasks": ctx.state.queues.clear(body.get("queue"))}


@endpoint("queues.add_task")
def add_task(ctx: Context, body: Body) -> Body:
    ctx.state.queues.add_task(
        body.get("queue"), required(body, "task"), flag(body, "update_execution_queue", True)
    )
    return {"added": 1}


@endpoint("queues.remove_task")
def remove_task(ctx: Context, body: Body) -> Body:
    removed = ctx.state.queues.remove_task(
        body.get("queue"), required(body, "task"), flag(body, "update_task_status", False)
    )
    return {"removed": removed}


@endpoint("queues.get_next_task")
def get_next_task(ctx: Context, body: Body) -> Body:
    found = ctx.state.queues.next_task(body.get("queue"))
    if found is None:
        return {}
    entry, task = found
    reply: Body = {"entry": entry}
    if body.get("get_task_info"):
        reply["task_info"] = {"company": task.get("company"), "user": task.get("user")}
    return reply


@endpoint("queues.peek_task")
def peek_task(ctx: Context, body: Body) -> Body:
    entries = ctx.state.queues.view(body.get("queue"), "queue")["entries"]
    return {"task": entries[0]["task"]} if entries else {}


@endpoint("queues.get_num_entries")
def get_num_entries(ctx: Context, body: Body) -> Body:
    return {"num": len(ctx.state.queues.view(body.get("queue"), "queue")["entries"])}


def _move(position: str) -> Callable[[Context, Body], Body]:
    def handler(ctx: Context, body: Body) -> Body:
        index = ctx.state.queues.move_entry(
            body.get("queue"), required(body, "task"), position, body.get("count") or 1
        )
        return {"position": index}

    return handler


for _position in ("front", "back"):
    endpoint(f"queues.move_task_to_{_position}")(_move(_position))
for _position in ("forward", "backward"):
    endpoint(f"queues.move_task_{_position}")(_move(_position))


@endpoint("queues.add_or_update_metadata")
def add_or_update_metadata(ctx: Context, body: Body) -> Body:
    ctx.state.queues.set_metadata(
        body.get("queue"), body.get("metadata") or [], bool(body.get("replace_metadata"))
    )
    return {"updated": 1}


@endpoint("queues.get_queue_metrics")
def get_queue_metrics(ctx: Context, body: Body) -> Body:
    return {"queues": []}
