"""models.*: requests to ``ModelBackend`` calls (the rules live in ``clearml_local/state/models.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clearml_local.api import Context, endpoint, ids, many, strings

Body = dict[str, Any]


@endpoint("models.create")
def create(ctx: Context, body: Body) -> Body:
    # the real server makes a model ready unless told otherwise (the SDK always says)
    return {"id": ctx.state.models.create({"ready": True, **body}), "created": True}


@endpoint("models.get_by_id")
def get_by_id(ctx: Context, body: Body) -> Body:
    return {"model": ctx.state.models.view(body.get("model"), "model")}


@endpoint("models.get_by_task_id")
def get_by_task_id(ctx: Context, body: Body) -> Body:
    return {"model": ctx.state.models.output_of(body.get("task"))}


@endpoint("models.get_all")
def get_all(ctx: Context, body: Body) -> Body:
    return _get_all(ctx, body)


@endpoint("models.get_all_ex")
def get_all_ex(ctx: Context, body: Body) -> Body:
    return _get_all(ctx, body, joined=True)


def _get_all(ctx: Context, body: Body, joined: bool = False) -> Body:
    query = dict(body)
    if query.get("project") and query.get("include_subprojects"):
        roots = ids(query, "project")
        query["project"] = sorted(set().union(*(ctx.state.projects.descendants(p) for p in roots)))
    expand = ctx.state.models.joined if joined else None
    reply = ctx.state.models.get_all(query, "models", default_order="-created", expand=expand)
    if body.get("include_stats"):
        reply["models"] = [
            {**m, "stats": {"labels_count": len(m.get("labels") or {})}} for m in reply["models"]
        ]
    return reply


@endpoint("models.update_tags")
def update_tags(ctx: Context, body: Body) -> Body:
    """Add and remove tags on many models (API 2.27: no schema in the pinned SDK, checked here)."""
    updated = ctx.state.models.update_tags(
        strings(body, "ids"), strings(body, "add_tags"), strings(body, "remove_tags")
    )
    return {"updated": updated}


@endpoint("models.get_frameworks")
def get_frameworks(ctx: Context, body: Body) -> Body:
    projects = ids(body, "projects")
    within = set().union(*(ctx.state.projects.descendants(p) for p in projects)) if projects else None
    return {"frameworks": ctx.state.models.frameworks(within)}


@endpoint("models.edit", "models.update")
def edit(ctx: Context, body: Body) -> Body:
    return {"updated": 1, "fields": ctx.state.models.edit(body.get("model"), body)}


@endpoint("models.update_for_task")
def update_for_task(ctx: Context, body: Body) -> Body:
    model_id, created, fields = ctx.state.models.update_for_task(body.get("task"), body)
    return {"id": model_id, "created": created, "updated": 1, "fields": fields}


@endpoint("models.set_ready")
def set_ready(ctx: Context, body: Body) -> Body:
    return ctx.state.models.publish(
        body.get("model"), body.get("publish_task") is not False, bool(body.get("force_publish_task"))
    )


@endpoint("models.publish_many")
def publish_many(ctx: Context, body: Body) -> Body:
    publish_task, force = body.get("publish_task") is not False, bool(body.get("force_publish_task"))
    return many(ids(body, "ids"), lambda model_id: ctx.state.models.publish(model_id, publish_task, force))


def _set_archived(ctx: Context, archived: bool) -> Callable[[str], Body]:
    def run(model_id: str) -> Body:
        return {"updated": 1, "fields": ctx.state.models.set_archived(model_id, archived)}

    return run


@endpoint("models.archive_many")
def archive_many(ctx: Context, body: Body) -> Body:
    return many(ids(body, "ids"), _set_archived(ctx, True))


@endpoint("models.unarchive_many")
def unarchive_many(ctx: Context, body: Body) -> Body:
    return many(ids(body, "ids"), _set_archived(ctx, False))


@endpoint("models.delete")
def delete(ctx: Context, body: Body) -> Body:
    return ctx.state.models.delete(body.get("model"), bool(body.get("force")))


@endpoint("models.delete_many")
def delete_many(ctx: Context, body: Body) -> Body:
    force = bool(body.get("force"))
    return many(ids(body, "ids"), lambda model_id: ctx.state.models.delete(model_id, force))


@endpoint("models.add_or_update_metadata")
def add_or_update_metadata(ctx: Context, body: Body) -> Body:
    ctx.state.models.set_metadata(body.get("model"), body.get("metadata"), bool(body.get("replace_metadata")))
    return {"updated": 1}


@endpoint("models.delete_metadata")
def delete_metadata(ctx: Context, body: Body) -> Body:
    ctx.state.models.delete_metadata(body.get("model"), body.get("keys") or [])
    return {"updated": 1}


@endpoint("models.move")
def move(ctx: Context, body: Body) -> Body:
    project_id = body.get("project")
    if not project_id and body.get("project_name"):
        project_id = ctx.state.projects.ensure(body["project_name"])
    return {"project_id": ctx.state.models.move(ids(body, "ids"), project_id)}
