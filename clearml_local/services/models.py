"""models.*: registered model documents (weights live on the file server, the document keeps the URI)."""

from __future__ import annotations

from typing import Any

from clearml_local.api import Context, endpoint, new_id, now_iso, require
from clearml_local.errors import ApiError, bad_request
from clearml_local.query import run_query
from clearml_local.services import projects
from clearml_local.services.common import load, many, touch, view, visible

Document = dict[str, Any]
EDITABLE = (
    "uri",
    "name",
    "comment",
    "tags",
    "system_tags",
    "framework",
    "design",
    "labels",
    "ready",
    "project",
    "parent",
    "task",
)


def _project(ctx: Context, project: Any) -> str | None:
    if not project:
        return None
    if ctx.store.peek("projects", project) is None:
        raise ApiError(400, 103, f"Invalid project id: id={project}")
    return project


def _metadata(items: Any) -> dict[str, dict[str, Any]]:
    if items is None:
        return {}
    if isinstance(items, dict):
        items = list(items.values())
    if not isinstance(items, list):
        raise bad_request("Validation error: field 'metadata' must be a list of {key, type, value}")
    out = {}
    for item in items:
        if not isinstance(item, dict) or not item.get("key"):
            raise bad_request("Validation error: every metadata item needs a 'key'")
        out[item["key"]] = {"key": item["key"], "type": item.get("type") or "str", "value": item.get("value")}
    return out


def _new_model(ctx: Context, body: dict[str, Any]) -> Document:
    stamp = now_iso()
    project = body.get("project")
    if not project and body.get("task"):
        task = ctx.store.peek("tasks", body["task"])
        project = task.get("project") if task else None
    return {
        "id": new_id(),
        "name": body.get("name") or "",
        "user": ctx.identity.user_id,
        "company": ctx.identity.company_id,
        "created": stamp,
        "last_update": stamp,
        "task": body.get("task"),
        "parent": body.get("parent"),
        "project": _project(ctx, project),
        "comment": body.get("comment") or "",
        "tags": body.get("tags") or [],
        "system_tags": body.get("system_tags") or [],
        "framework": body.get("framework"),
        "design": body.get("design") or {},
        "labels": body.get("labels") or {},
        "uri": body.get("uri"),
        "ready": bool(body.get("ready", False)),
        "metadata": _metadata(body.get("metadata")),
        "last_iteration": body.get("iteration") or 0,
    }


@endpoint("models.create")
def create(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    require(body, "name")
    with ctx.store.transaction():
        model = _new_model(ctx, body)
        ctx.store.put("models", model)
    return {"id": model["id"], "created": True}


@endpoint("models.get_by_id")
def get_by_id(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    return {"model": view(ctx, "models", body.get("model"), "model")}


@endpoint("models.get_by_task_id")
def get_by_task_id(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    task = load(ctx, "tasks", body.get("task"), "task")
    outputs = task["models"].get("output") or []
    if not outputs:
        raise ApiError(400, 102, f"No output model for task {task['id']}")
    return {"model": load(ctx, "models", outputs[-1]["model"], "model")}


@endpoint("models.get_all", "models.get_all_ex")
def get_all(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    query = dict(body)
    if query.get("project") and query.get("include_subprojects"):
        roots = [query["project"]] if isinstance(query["project"], str) else query["project"]
        query["project"] = sorted(set().union(*(projects.descendants(ctx, p) for p in roots)))
    models = run_query(ctx.store.all("models"), query, extra=visible(body), default_order="-created")
    return {"models": models}


@endpoint("models.get_frameworks")
def get_frameworks(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    return {"frameworks": sorted({m["framework"] for m in ctx.store.all("models") if m.get("framework")})}


def _edit(ctx: Context, model_id: Any, body: dict[str, Any]) -> dict[str, Any]:
    with ctx.store.transaction():
        model = load(ctx, "models", model_id, "model")
        changed = [k for k in ("uri", "design", "labels") if k in body and body[k] != model.get(k)]
        if model.get("ready") and not body.get("force") and changed:
            raise ApiError(
                400, 105, f"Model {model['id']} is published: its {', '.join(changed)} cannot change"
            )
        fields = {k: body[k] for k in EDITABLE if k in body}
        if "project" in fields:
            fields["project"] = _project(ctx, fields["project"])
        if "metadata" in body:
            fields["metadata"] = _metadata(body["metadata"])
        if body.get("iteration") is not None:
            fields["last_iteration"] = body["iteration"]
        model.update(fields)
        touch(model, ctx)
        ctx.store.put("models", model)
    return {"updated": 1, "fields": fields}


@endpoint("models.edit", "models.update")
def edit(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    return _edit(ctx, body.get("model"), body)


@endpoint("models.update_for_task")
def update_for_task(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    task_id = require(body, "task")
    with ctx.store.transaction():
        task = load(ctx, "tasks", task_id, "task")
        override = body.get("override_model_id")
        if override:
            load(ctx, "models", override, "override_model_id")
            model_id, created = override, False
        else:
            model = _new_model(
                ctx, {**body, "name": body.get("name") or task["name"], "project": task.get("project")}
            )
            ctx.store.put("models", model)
            model_id, created = model["id"], True
        fields = _edit(
            ctx, model_id, {k: v for k, v in body.items() if k in ("uri", "comment", "tags", "system_tags")}
        )
        refs = task["models"].setdefault("output", [])
        name = body.get("name") or task["name"]
        refs[:] = [r for r in refs if r.get("name") != name]
        refs.append({"name": name, "model": model_id, "updated": now_iso()})
        touch(task, ctx)
        ctx.store.put("tasks", task)
    return {"id": model_id, "created": created, "updated": 1, "fields": fields["fields"]}


def _publish(ctx: Context, model_id: str, publish_task: bool) -> dict[str, Any]:
    with ctx.store.transaction():
        model = load(ctx, "models", model_id, "model")
        model["ready"] = True
        touch(model, ctx)
        ctx.store.put("models", model)
        published_task: dict[str, Any] = {}
        task = ctx.store.get("tasks", model.get("task") or "")
        if publish_task and task is not None and task["status"] in ("completed", "stopped"):
            task["status"] = "published"
            task["published"] = now_iso()
            task["status_changed"] = task["published"]
            ctx.store.put("tasks", task)
            published_task = {"id": task["id"], "data": {"updated": 1, "fields": {"status": "published"}}}
    return {"updated": 1, "published_task": published_task}


@endpoint("models.set_ready")
def set_ready(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    return _publish(ctx, body.get("model"), bool(body.get("publish_task", True)))


@endpoint("models.publish_many")
def publish_many(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    publish_task = bool(body.get("publish_task", True))
    return many(body.get("ids"), lambda model_id: _publish(ctx, model_id, publish_task))


def _archive(ctx: Context, model_id: str, archived: bool) -> dict[str, Any]:
    model = load(ctx, "models", model_id, "model")
    tags = [t for t in model.get("system_tags") or [] if t != "archived"]
    return _edit(ctx, model_id, {"system_tags": [*tags, "archived"] if archived else tags})


@endpoint("models.archive_many")
def archive_many(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    return many(body.get("ids"), lambda model_id: _archive(ctx, model_id, True))


@endpoint("models.unarchive_many")
def unarchive_many(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    return many(body.get("ids"), lambda model_id: _archive(ctx, model_id, False))


def _delete(ctx: Context, model_id: str, force: bool) -> dict[str, Any]:
    with ctx.store.transaction():
        model = load(ctx, "models", model_id, "model")
        if model.get("ready") and not force:
            raise ApiError(400, 105, f"Model {model_id} is published: delete it with force=true")
        ctx.store.delete("models", model_id)
        for task in ctx.store.all("tasks"):
            refs = task.get("models") or {}
            if any(r.get("model") == model_id for kind in ("input", "output") for r in refs.get(kind, [])):
                updated = dict(task)
                updated["models"] = {
                    kind: [r for r in refs.get(kind, []) if r.get("model") != model_id]
                    for kind in ("input", "output")
                }
                ctx.store.put("tasks", updated)
    return {"deleted": True, "url": model.get("uri")}


@endpoint("models.delete")
def delete(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    return _delete(ctx, body.get("model"), bool(body.get("force")))


@endpoint("models.delete_many")
def delete_many(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    return many(body.get("ids"), lambda model_id: _delete(ctx, model_id, bool(body.get("force"))))


@endpoint("models.add_or_update_metadata")
def add_or_update_metadata(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    with ctx.store.transaction():
        model = load(ctx, "models", body.get("model"), "model")
        current = {} if body.get("replace_metadata") else model.get("metadata") or {}
        current.update(_metadata(body.get("metadata")))
        model["metadata"] = current
        touch(model, ctx)
        ctx.store.put("models", model)
    return {"updated": 1}


@endpoint("models.delete_metadata")
def delete_metadata(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    with ctx.store.transaction():
        model = load(ctx, "models", body.get("model"), "model")
        keys = body.get("keys") or []
        for key in keys:
            model.get("metadata", {}).pop(key, None)
        ctx.store.put("models", model)
    return {"updated": 1}


@endpoint("models.move")
def move(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    project = body.get("project") or (
        projects.ensure_project(ctx, body["project_name"]) if body.get("project_name") else None
    )
    for model_id in body.get("ids") or []:
        _edit(ctx, model_id, {"project": project})
    return {"project_id": project}
