"""tasks.*: task documents, their life cycle (created → queued → in_progress → completed/failed/stopped →
published), hyperparameters, configuration, artifacts and model references."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from typing import Any

from clearml_local.api import Context, endpoint, id_list, new_id, now_iso, optional, require
from clearml_local.errors import ApiError, bad_request, wrong_type
from clearml_local.query import run_query
from clearml_local.services import projects, queues
from clearml_local.services.common import load, many, touch, view, visible

Document = dict[str, Any]

TASK_TYPES = [
    "training",
    "testing",
    "inference",
    "data_processing",
    "application",
    "monitor",
    "controller",
    "optimizer",
    "service",
    "qc",
    "custom",
]
EDITABLE_FIELDS = (
    "name",
    "tags",
    "system_tags",
    "type",
    "comment",
    "parent",
    "project",
    "execution",
    "hyperparams",
    "configuration",
    "script",
    "models",
    "container",
    "runtime",
    "output",
)
# Sections every task has, so that SDK code reading e.g. task.data.execution.artifacts never meets None.
EMPTY_SCRIPT = {
    "binary": "python",
    "repository": "",
    "tag": "",
    "branch": "",
    "version_num": "",
    "entry_point": "",
    "working_dir": "",
    "requirements": {},
    "diff": "",
}


def _new_task_doc(ctx: Context, body: dict[str, Any]) -> Document:
    stamp = now_iso()
    task_type = body.get("type") or "training"
    if task_type not in TASK_TYPES:
        raise bad_request(f"Validation error: field 'type' must be one of {TASK_TYPES}, got {task_type!r}")
    execution = {"parameters": {}, "model_desc": {}, "model_labels": {}, "framework": None, "artifacts": []}
    execution.update(body.get("execution") or {})
    execution.setdefault("artifacts", [])
    models = {"input": [], "output": []}
    models.update(body.get("models") or {})
    return {
        "id": new_id(),
        "name": require(body, "name"),
        "user": ctx.identity.user_id,
        "company": ctx.identity.company_id,
        "type": task_type,
        "status": "created",
        "comment": body.get("comment") or "",
        "created": stamp,
        "started": None,
        "completed": None,
        "active_duration": None,
        "parent": body.get("parent"),
        "project": _project_id(ctx, body.get("project")),
        "output": {"destination": body.get("output_dest"), **(body.get("output") or {})},
        "execution": execution,
        "container": body.get("container") or {},
        "models": models,
        "script": {**EMPTY_SCRIPT, **(body.get("script") or {})},
        "tags": body.get("tags") or [],
        "system_tags": body.get("system_tags") or [],
        "status_changed": stamp,
        "status_message": "",
        "status_reason": "",
        "published": None,
        "last_worker": None,
        "last_update": stamp,
        "last_change": stamp,
        "last_changed_by": ctx.identity.user_id,
        "last_iteration": 0,
        "last_metrics": {},
        "hyperparams": body.get("hyperparams") or {},
        "configuration": body.get("configuration") or {},
        "runtime": body.get("runtime") or {},
    }


def _project_id(ctx: Context, project: Any) -> str | None:
    if project in (None, ""):
        return None
    if not isinstance(project, str):
        raise wrong_type("project", "a project id string", project)
    if ctx.store.peek("projects", project) is None:
        raise ApiError(400, 103, f"Invalid project id: id={project}")
    return project


def _save(ctx: Context, task: Document) -> None:
    touch(task, ctx)
    ctx.store.put("tasks", task)


def _update_task(ctx: Context, task_id: Any, change: Callable[[Document], dict[str, Any]]) -> dict[str, Any]:
    """Load, change and save one task atomically; ``change`` returns the changed fields."""
    with ctx.store.transaction():
        task = load(ctx, "tasks", task_id, "task")
        fields = change(task)
        _save(ctx, task)
    return {"updated": 1, "fields": fields}


# --- create, read, edit ---------------------------------------------------------------------------


@endpoint("tasks.create")
def create(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    with ctx.store.transaction():
        task = _new_task_doc(ctx, body)
        ctx.store.put("tasks", task)
    return {"id": task["id"]}


@endpoint("tasks.validate")
def validate(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    _new_task_doc(ctx, body)
    return {}


@endpoint("tasks.get_by_id")
def get_by_id(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    return {"task": view(ctx, "tasks", body.get("task"), "task")}


@endpoint("tasks.get_all", "tasks.get_all_ex")
def get_all(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    return {"tasks": run_query(ctx.store.all("tasks"), body, extra=visible(body), default_order="-created")}


@endpoint("tasks.get_types")
def get_types(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    return {"types": sorted({t["type"] for t in ctx.store.all("tasks")})}


@endpoint("tasks.edit")
def edit(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    def change(task: Document) -> dict[str, Any]:
        _require_editable(task, body)
        fields = {k: body[k] for k in EDITABLE_FIELDS if k in body}
        if "project" in fields:
            fields["project"] = _project_id(ctx, fields["project"])
        if "output_dest" in body:
            task.setdefault("output", {})["destination"] = body["output_dest"]
        if "execution" in fields:
            fields["execution"] = {"artifacts": task["execution"].get("artifacts", []), **fields["execution"]}
        if "script" in fields:
            fields["script"] = {**EMPTY_SCRIPT, **(fields["script"] or {})}
        if "models" in fields:
            fields["models"] = {"input": [], "output": [], **(fields["models"] or {})}
        task.update(fields)
        return fields

    return _update_task(ctx, body.get("task"), change)


@endpoint("tasks.update")
def update(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    def change(task: Document) -> dict[str, Any]:
        fields = {k: body[k] for k in ("name", "tags", "system_tags", "comment") if k in body}
        if "project" in body:
            fields["project"] = _project_id(ctx, body["project"])
        if "output__error" in body:
            task.setdefault("output", {})["error"] = body["output__error"]
        task.update(fields)
        return fields

    return _update_task(ctx, body.get("task"), change)


@endpoint("tasks.update_batch")
def update_batch(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    items = body.get("requests") or []
    for item in items:
        update(ctx, item)
    return {"updated": len(items)}


def _require_editable(task: Document, body: dict[str, Any]) -> None:
    if task["status"] not in ("created", "in_progress") and not body.get("force"):
        raise ApiError(
            400, 110, f"Invalid task status: task {task['id']} is {task['status']}; edit needs force=true"
        )


@endpoint("tasks.set_requirements")
def set_requirements(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    requirements = optional(body, "requirements", dict, {})

    def change(task: Document) -> dict[str, Any]:
        task["script"]["requirements"] = requirements
        return {"script.requirements": requirements}

    return _update_task(ctx, body.get("task"), change)


@endpoint("tasks.move")
def move(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    project_id = body.get("project")
    if not project_id and body.get("project_name"):
        project_id = projects.ensure_project(ctx, body["project_name"])
    project_id = _project_id(ctx, project_id)
    for task_id in id_list(body, "ids"):
        _update_task(ctx, task_id, lambda t: t.update(project=project_id) or {"project": project_id})
    return {"project_id": project_id}


# --- life cycle ----------------------------------------------------------------------------------------


def _set_status(task: Document, status: str, body: dict[str, Any], **extra: Any) -> dict[str, Any]:
    stamp = now_iso()
    fields = {
        "status": status,
        "status_changed": stamp,
        "status_reason": body.get("status_reason") or "",
        "status_message": body.get("status_message") or "",
        **extra,
    }
    task.update(fields)
    return fields


@endpoint("tasks.started")
def started(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    def change(task: Document) -> dict[str, Any]:
        if task["status"] not in ("created", "queued", "in_progress", "stopped", "failed") and not body.get(
            "force"
        ):
            raise ApiError(400, 110, f"Invalid task status: cannot start a {task['status']} task")
        _remove_from_queue(ctx, task)
        return _set_status(task, "in_progress", body, started=now_iso(), last_worker=_worker(ctx, task))

    return {"started": 1, **_update_task(ctx, body.get("task"), change)}


def _worker(ctx: Context, task: Document) -> str | None:
    return ctx.extras.get("worker") or task.get("last_worker")


def _finish(
    status: str, timestamp_field: str | None = None
) -> Callable[[Context, dict[str, Any]], dict[str, Any]]:
    def handler(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
        def change(task: Document) -> dict[str, Any]:
            extra: dict[str, Any] = {}
            if timestamp_field:
                extra[timestamp_field] = now_iso()
            if status in ("completed", "failed", "stopped") and task.get("started"):
                extra["active_duration"] = _seconds_since(task["started"])
            _remove_from_queue(ctx, task)
            return _set_status(task, status, body, **extra)

        return _update_task(ctx, body.get("task"), change)

    return handler


def _seconds_since(iso: str) -> int:
    try:
        begin = dt.datetime.fromisoformat(iso)
    except ValueError:
        return 0
    return max(0, int((dt.datetime.now(dt.UTC) - begin).total_seconds()))


endpoint("tasks.completed")(_finish("completed", "completed"))
endpoint("tasks.failed")(_finish("failed", "completed"))
endpoint("tasks.stopped")(_finish("stopped", "completed"))
endpoint("tasks.close")(_finish("closed", "completed"))


@endpoint("tasks.stop")
def stop(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    def change(task: Document) -> dict[str, Any]:
        _remove_from_queue(ctx, task)
        if task["status"] == "in_progress" and not body.get("force"):
            # A running task is asked to stop; the SDK inside it sees the message and aborts.
            fields = {"status_message": "stopping", "status_reason": body.get("status_reason") or "stopped"}
            task.update(fields)
            return fields
        return _set_status(task, "stopped", body, completed=now_iso())

    return _update_task(ctx, body.get("task"), change)


@endpoint("tasks.publish")
def publish(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    def change(task: Document) -> dict[str, Any]:
        if task["status"] not in ("completed", "stopped", "published") and not body.get("force"):
            raise ApiError(
                400, 110, f"Invalid task status: only completed tasks can be published ({task['status']})"
            )
        for ref in task["models"].get("output", []):
            model = ctx.store.get("models", ref.get("model", ""))
            if model is not None and not model.get("ready"):
                model["ready"] = True
                ctx.store.put("models", model)
        return _set_status(task, "published", body, published=now_iso())

    return {"committed_versions_results": [], **_update_task(ctx, body.get("task"), change)}


@endpoint("tasks.reset")
def reset(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    def change(task: Document) -> dict[str, Any]:
        if task["status"] == "published" and not body.get("force"):
            raise ApiError(400, 110, "Invalid task status: cannot reset a published task without force")
        _remove_from_queue(ctx, task)
        task["execution"]["queue"] = None
        task["execution"]["artifacts"] = [
            a for a in task["execution"].get("artifacts", []) if a.get("mode") == "input"
        ]
        task["models"]["output"] = []
        task["output"] = {"destination": (task.get("output") or {}).get("destination")}
        task["last_metrics"] = {}
        task["last_iteration"] = 0
        ctx.store.delete_events(task["id"])
        return _set_status(task, "created", body, started=None, completed=None, published=None)

    result = _update_task(ctx, body.get("task"), change)
    return {**result, "dequeued": {}, "events": {}, "deleted_models": 0, "urls": {}}


@endpoint("tasks.enqueue")
def enqueue(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    with ctx.store.transaction():
        queue = queues.resolve_queue(ctx, body.get("queue"), body.get("queue_name"))

        def change(task: Document) -> dict[str, Any]:
            if task["status"] not in ("created", "stopped", "failed", "queued") and not body.get("force"):
                raise ApiError(400, 110, f"Invalid task status: cannot enqueue a {task['status']} task")
            _remove_from_queue(ctx, task)
            task["execution"]["queue"] = queue["id"]
            queues.push(ctx, queue["id"], task["id"])
            return {**_set_status(task, "queued", body), "execution.queue": queue["id"]}

        result = _update_task(ctx, body.get("task"), change)
    return {"queued": 1, "queue_watched": True, **result}


@endpoint("tasks.dequeue")
def dequeue(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    def change(task: Document) -> dict[str, Any]:
        if task["status"] != "queued" and not body.get("force"):
            raise ApiError(400, 110, f"Invalid task status: task is {task['status']}, not queued")
        _remove_from_queue(ctx, task)
        task["execution"]["queue"] = None
        return _set_status(task, "created", body)

    return {"dequeued": 1, **_update_task(ctx, body.get("task"), change)}


def _remove_from_queue(ctx: Context, task: Document) -> None:
    queue_id = (task.get("execution") or {}).get("queue")
    if queue_id:
        queues.remove(ctx, queue_id, task["id"])


@endpoint("tasks.ping")
def ping(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    task = ctx.store.peek("tasks", body.get("task") or "")
    if task is None:
        load(ctx, "tasks", body.get("task"), "task")
    return {}


@endpoint("tasks.clone")
def clone(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    with ctx.store.transaction():
        source = load(ctx, "tasks", body.get("task"), "task")
        project = source.get("project")
        new_project = None
        if body.get("new_project_name"):
            project = projects.ensure_project(ctx, body["new_project_name"])
            new_project = {"id": project, "name": body["new_project_name"]}
        elif body.get("new_task_project"):
            project = _project_id(ctx, body["new_task_project"])
        execution = copy.deepcopy(source.get("execution") or {})
        execution["queue"] = None
        execution["artifacts"] = [a for a in execution.get("artifacts", []) if a.get("mode") == "input"]
        execution.update(body.get("execution_overrides") or {})
        models = {"input": copy.deepcopy(source["models"].get("input", [])), "output": []}
        if body.get("new_task_input_models") is not None:
            models["input"] = body["new_task_input_models"]
        task = _new_task_doc(
            ctx,
            {
                "name": body.get("new_task_name") or source["name"],
                "type": source["type"],
                "comment": body.get("new_task_comment", source.get("comment")),
                "tags": body.get("new_task_tags", source.get("tags")),
                "system_tags": body.get("new_task_system_tags", source.get("system_tags")),
                "parent": body.get("new_task_parent", source.get("parent")),
                "project": project,
                "execution": execution,
                "models": models,
                "script": copy.deepcopy(source.get("script")),
                "container": body.get("new_task_container", source.get("container")),
                "hyperparams": body.get("new_task_hyperparams", source.get("hyperparams")),
                "configuration": body.get("new_task_configuration", source.get("configuration")),
                "runtime": copy.deepcopy(source.get("runtime") or {}),
                "output": {"destination": (source.get("output") or {}).get("destination")},
            },
        )
        ctx.store.put("tasks", task)
    return {"id": task["id"], "new_project": new_project}


@endpoint("tasks.delete")
def delete(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    with ctx.store.transaction():
        task = load(ctx, "tasks", body.get("task"), "task")
        if task["status"] == "in_progress" and not body.get("force"):
            raise ApiError(400, 110, "Invalid task status: cannot delete a running task without force")
        _remove_from_queue(ctx, task)
        ctx.store.delete("tasks", task["id"])
        deleted_events = ctx.store.delete_events(task["id"])
        updated_models = 0
        for model in ctx.store.all("models"):
            if model.get("task") == task["id"]:
                moved = dict(model, task=None)
                ctx.store.put("models", moved)
                updated_models += 1
        children = [t for t in ctx.store.all("tasks") if t.get("parent") == task["id"]]
        for child in children:
            ctx.store.put("tasks", dict(child, parent=None))
    return {
        "deleted": 1,
        "updated_children": len(children),
        "updated_models": updated_models,
        "events": {"deleted": deleted_events},
        "urls": {},
    }


def _archive(ctx: Context, task_id: str, archived: bool) -> dict[str, Any]:
    def change(task: Document) -> dict[str, Any]:
        tags = [t for t in task.get("system_tags") or [] if t != "archived"]
        if archived:
            tags.append("archived")
        task["system_tags"] = tags
        return {"system_tags": tags}

    _update_task(ctx, task_id, change)
    return {"archived": 1} if archived else {"unarchived": 1}


@endpoint("tasks.archive")
def archive(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    ids = id_list(body, "tasks")
    for task_id in ids:
        _archive(ctx, task_id, True)
    return {"archived": len(ids)}


@endpoint("tasks.archive_many")
def archive_many(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    return many(body.get("ids"), lambda task_id: _archive(ctx, task_id, True))


@endpoint("tasks.unarchive_many")
def unarchive_many(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    return many(body.get("ids"), lambda task_id: _archive(ctx, task_id, False))


def _many_of(handler: Callable[[Context, dict[str, Any]], dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    def run(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
        shared = {k: v for k, v in body.items() if k != "ids"}
        return many(body.get("ids"), lambda task_id: handler(ctx, {**shared, "task": task_id}))

    return run


endpoint("tasks.delete_many")(_many_of(delete))
endpoint("tasks.stop_many")(_many_of(stop))
endpoint("tasks.reset_many")(_many_of(reset))
endpoint("tasks.enqueue_many")(_many_of(enqueue))
endpoint("tasks.dequeue_many")(_many_of(dequeue))
endpoint("tasks.publish_many")(_many_of(publish))


# --- hyperparameters and configuration ----------------------------------------------------------------


def _param_items(body: dict[str, Any], field: str) -> list[dict[str, Any]]:
    items = body.get(field)
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise wrong_type(field, "a list of objects", items)
    return items


@endpoint("tasks.edit_hyper_params")
def edit_hyper_params(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    items = _param_items(body, "hyperparams")
    mode = body.get("replace_hyperparams") or "none"

    def change(task: Document) -> dict[str, Any]:
        params = task.setdefault("hyperparams", {})
        if mode == "all":
            params.clear()
        if mode == "section":
            for section in {i.get("section") for i in items}:
                params.pop(section, None)
        for item in items:
            if not item.get("section"):
                raise bad_request("Validation error: every hyperparam needs a 'section'")
            section = params.setdefault(item["section"], {})
            name = item.get("name")
            if name is None:
                continue
            value = item.get("value")
            entry = {
                "section": item["section"],
                "name": name,
                "value": "" if value is None else str(value),
                "type": item.get("type"),
                "description": item.get("description"),
            }
            section[name] = {k: v for k, v in entry.items() if v is not None}
        return {"hyperparams": params}

    _update_task(ctx, body.get("task"), change)
    return {"updated": 1}


@endpoint("tasks.get_hyper_params")
def get_hyper_params(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    result = []
    for task_id in id_list(body, "tasks"):
        task = load(ctx, "tasks", task_id, "tasks")
        flat = [
            dict(param) for section in (task.get("hyperparams") or {}).values() for param in section.values()
        ]
        result.append({"task": task_id, "hyperparams": flat})
    return {"params": result}


@endpoint("tasks.delete_hyper_params")
def delete_hyper_params(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    items = _param_items(body, "hyperparams")
    deleted = 0

    def change(task: Document) -> dict[str, Any]:
        nonlocal deleted
        params = task.setdefault("hyperparams", {})
        for item in items:
            section, name = item.get("section"), item.get("name")
            if section in params and name is None:
                deleted += len(params.pop(section))
            elif section in params and name in params[section]:
                del params[section][name]
                deleted += 1
        return {"hyperparams": params}

    _update_task(ctx, body.get("task"), change)
    return {"deleted": deleted}


@endpoint("tasks.edit_configuration")
def edit_configuration(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    items = _param_items(body, "configuration")

    def change(task: Document) -> dict[str, Any]:
        config = task.setdefault("configuration", {})
        if body.get("replace_configuration"):
            config.clear()
        for item in items:
            if not item.get("name"):
                raise bad_request("Validation error: every configuration item needs a 'name'")
            entry = {k: item[k] for k in ("name", "value", "type", "description") if item.get(k) is not None}
            config[item["name"]] = entry
        return {"configuration": config}

    _update_task(ctx, body.get("task"), change)
    return {"updated": 1}


@endpoint("tasks.get_configurations")
def get_configurations(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    names = body.get("names")
    result = []
    for task_id in id_list(body, "tasks"):
        config = load(ctx, "tasks", task_id, "tasks").get("configuration") or {}
        items = [dict(v) for k, v in config.items() if not names or k in names]
        result.append({"task": task_id, "configuration": items})
    return {"configurations": result}


@endpoint("tasks.get_configuration_names")
def get_configuration_names(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    result = []
    for task_id in id_list(body, "tasks"):
        config = load(ctx, "tasks", task_id, "tasks").get("configuration") or {}
        result.append({"task": task_id, "names": sorted(config)})
    return {"configurations": result}


@endpoint("tasks.delete_configuration")
def delete_configuration(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    names = body.get("configuration") or []
    deleted = 0

    def change(task: Document) -> dict[str, Any]:
        nonlocal deleted
        config = task.setdefault("configuration", {})
        for name in names:
            deleted += config.pop(name, None) is not None
        return {"configuration": config}

    _update_task(ctx, body.get("task"), change)
    return {"deleted": deleted}


# --- artifacts and models -------------------------------------------------------------------------------


@endpoint("tasks.add_or_update_artifacts")
def add_or_update_artifacts(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    items = _param_items(body, "artifacts")
    for item in items:
        if not item.get("key") or not item.get("type"):
            raise bad_request("Validation error: every artifact needs 'key' and 'type'")

    def change(task: Document) -> dict[str, Any]:
        current = task["execution"].setdefault("artifacts", [])
        for item in items:
            item.setdefault("mode", "output")
            current[:] = [a for a in current if (a.get("key"), a.get("mode")) != (item["key"], item["mode"])]
            current.append(item)
        return {"execution.artifacts": current}

    _update_task(ctx, body.get("task"), change)
    return {"updated": len(items)}


@endpoint("tasks.delete_artifacts")
def delete_artifacts(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    items = _param_items(body, "artifacts")
    keys = {(i.get("key"), i.get("mode") or "output") for i in items}
    deleted = 0

    def change(task: Document) -> dict[str, Any]:
        nonlocal deleted
        current = task["execution"].setdefault("artifacts", [])
        kept = [a for a in current if (a.get("key"), a.get("mode") or "output") not in keys]
        deleted = len(current) - len(kept)
        task["execution"]["artifacts"] = kept
        return {"execution.artifacts": kept}

    _update_task(ctx, body.get("task"), change)
    return {"deleted": deleted}


@endpoint("tasks.add_or_update_model")
def add_or_update_model(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    name = require(body, "name")
    model_id = require(body, "model")
    kind = body.get("type") or "output"
    if kind not in ("input", "output"):
        raise bad_request(f"Validation error: field 'type' must be 'input' or 'output', got {kind!r}")

    def change(task: Document) -> dict[str, Any]:
        refs = task["models"].setdefault(kind, [])
        refs[:] = [r for r in refs if r.get("name") != name]
        refs.append({"name": name, "model": model_id, "updated": now_iso()})
        if body.get("iteration") is not None:
            task["last_iteration"] = max(task.get("last_iteration") or 0, int(body["iteration"]))
        return {f"models.{kind}": refs}

    _update_task(ctx, body.get("task"), change)
    return {"updated": 1}


@endpoint("tasks.delete_models")
def delete_models(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    items = _param_items(body, "models")
    deleted = 0

    def change(task: Document) -> dict[str, Any]:
        nonlocal deleted
        for item in items:
            refs = task["models"].setdefault(item.get("type") or "output", [])
            kept = [r for r in refs if r.get("name") != item.get("name")]
            deleted += len(refs) - len(kept)
            refs[:] = kept
        return {"models": task["models"]}

    _update_task(ctx, body.get("task"), change)
    return {"updated": deleted}
