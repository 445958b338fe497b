"""tasks.*: requests to ``TaskBackend`` calls (the rules live in ``clearml_local/state/tasks.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clearml_local.api import Context, endpoint, flag, ids, many, required, strings
from clearml_local.errors import InvalidField
from clearml_local.validation import default_validator

Body = dict[str, Any]


def _reason(body: Body) -> dict[str, str]:
    return {"reason": body.get("status_reason") or "", "message": body.get("status_message") or ""}


# --- create, read, edit ---------------------------------------------------------------------------


@endpoint("tasks.create")
def create(ctx: Context, body: Body) -> Body:
    return {"id": ctx.state.tasks.create(body)}


@endpoint("tasks.validate")
def validate(ctx: Context, body: Body) -> Body:
    ctx.state.tasks.new_document(body)
    return {}


@endpoint("tasks.get_by_id")
def get_by_id(ctx: Context, body: Body) -> Body:
    return {"task": ctx.state.tasks.view(body.get("task"), "task")}


# Keys an SDK sends that the real server knows no filter for, and so ignores: the dataset trigger of SDKs
# talking to a server before 1.16.3 adds ``task_types`` to its queries.
IGNORED_QUERY_KEYS = frozenset({"task_types"})


def _with_subprojects(ctx: Context, body: Body) -> Body:
    body = {k: v for k, v in body.items() if k not in IGNORED_QUERY_KEYS}
    if not (body.get("project") and flag(body, "include_subprojects", False)):
        return body
    roots = ids(body, "project")
    return {**body, "project": sorted(set().union(*(ctx.state.projects.descendants(p) for p in roots)))}


@endpoint("tasks.get_all")
def get_all(ctx: Context, body: Body) -> Body:
    return ctx.state.tasks.get_all(_with_subprojects(ctx, body), "tasks", default_order="-created")


@endpoint("tasks.get_all_ex")
def get_all_ex(ctx: Context, body: Body) -> Body:
    """``get_all`` that also joins the references its ``only_fields`` reach into (the web UI's form)."""
    query = _with_subprojects(ctx, body)
    return ctx.state.tasks.get_all(query, "tasks", default_order="-created", expand=ctx.state.tasks.joined)


@endpoint("tasks.get_types")
def get_types(ctx: Context, body: Body) -> Body:
    projects = ids(body, "projects")
    tasks = ctx.state.tasks.in_projects(set(projects)) if projects else ctx.state.tasks.all()
    return {"types": sorted({t["type"] for t in tasks})}


@endpoint("tasks.edit")
def edit(ctx: Context, body: Body) -> Body:
    fields = ctx.state.tasks.edit(body.get("task"), body, bool(body.get("force")))
    return {"updated": 1, "fields": fields}


@endpoint("tasks.update")
def update(ctx: Context, body: Body) -> Body:
    return {"updated": 1, "fields": ctx.state.tasks.update(body.get("task"), body)}


@endpoint("tasks.update_batch")
def update_batch(ctx: Context, body: Body) -> Body:
    items = body.get("requests") or []
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise InvalidField("Validation error: field 'requests' must be a list of tasks.update requests")
    checked = [default_validator().validate("tasks.update", item) for item in items]
    for item in checked:
        ctx.state.tasks.update(item.get("task"), item)
    return {"updated": len(checked)}


@endpoint("tasks.update_tags")
def update_tags(ctx: Context, body: Body) -> Body:
    """Add and remove tags on many tasks (API 2.27: no schema in the pinned SDK, checked here)."""
    updated = ctx.state.tasks.update_tags(
        strings(body, "ids"), strings(body, "add_tags"), strings(body, "remove_tags")
    )
    return {"updated": updated}


@endpoint("tasks.set_requirements")
def set_requirements(ctx: Context, body: Body) -> Body:
    fields = ctx.state.tasks.set_requirements(body.get("task"), body.get("requirements") or {})
    return {"updated": 1, "fields": fields}


@endpoint("tasks.move")
def move(ctx: Context, body: Body) -> Body:
    project_id = body.get("project")
    if not project_id and body.get("project_name"):
        project_id = ctx.state.projects.ensure(body["project_name"])
    return {"project_id": ctx.state.tasks.move(ids(body, "ids"), project_id)}


# --- life cycle ----------------------------------------------------------------------------------------


def _transition(action: str) -> Callable[[Context, Body], Body]:
    def handler(ctx: Context, body: Body) -> Body:
        fields = ctx.state.tasks.transition(
            body.get("task"), action, bool(body.get("force")), **_reason(body)
        )
        reply: Body = {"updated": 1, "fields": fields}
        if action == "started":
            reply["started"] = 1
        return reply

    return handler


for _action, _name in (
    ("started", "tasks.started"),
    ("failed", "tasks.failed"),
    ("stopped", "tasks.stopped"),
    ("closed", "tasks.close"),
):
    endpoint(_name)(_transition(_action))


@endpoint("tasks.completed")
def completed(ctx: Context, body: Body) -> Body:
    fields, published = ctx.state.tasks.complete(
        body.get("task"), bool(body.get("force")), bool(body.get("publish")), **_reason(body)
    )
    return {"updated": 1, "fields": fields, "published": int(published)}


@endpoint("tasks.stop")
def stop(ctx: Context, body: Body) -> Body:
    fields = ctx.state.tasks.stop(body.get("task"), bool(body.get("force")), body.get("status_reason") or "")
    return {"updated": 1, "fields": fields}


@endpoint("tasks.publish")
def publish(ctx: Context, body: Body) -> Body:
    fields = ctx.state.tasks.publish(
        body.get("task"),
        bool(body.get("force")),
        **_reason(body),
        publish_model=body.get("publish_model") is not False,
    )
    return {"committed_versions_results": [], "updated": 1, "fields": fields}


@endpoint("tasks.reset")
def reset(ctx: Context, body: Body) -> Body:
    result = ctx.state.tasks.reset(
        body.get("task"),
        bool(body.get("force")),
        body.get("status_reason") or "",
        bool(body.get("clear_all")),
    )
    reply: Body = {
        "updated": 1,
        "fields": result.fields,
        "dequeued": result.dequeued,
        "deleted_models": result.cleanup.deleted_models,
    }
    if body.get("return_file_urls"):
        reply["urls"] = result.cleanup.urls
    return reply


@endpoint("tasks.enqueue")
def enqueue(ctx: Context, body: Body) -> Body:
    fields = ctx.state.tasks.enqueue(
        body.get("task"), body.get("queue"), body.get("queue_name"), bool(body.get("force"))
    )
    return {"queued": 1, "queue_watched": True, "updated": 1, "fields": fields}


@endpoint("tasks.dequeue")
def dequeue(ctx: Context, body: Body) -> Body:
    fields = ctx.state.tasks.dequeue(
        body.get("task"), body.get("new_status"), body.get("status_reason") or ""
    )
    return {"dequeued": 1, "updated": int(bool(fields)), "fields": fields}


@endpoint("tasks.ping")
def ping(ctx: Context, body: Body) -> Body:
    ctx.state.tasks.ping(body.get("task"))
    return {}


@endpoint("tasks.clone")
def clone(ctx: Context, body: Body) -> Body:
    task_id, new_project = ctx.state.tasks.clone(body.get("task"), body)
    return {"id": task_id, "new_project": new_project}


@endpoint("tasks.delete")
def delete(ctx: Context, body: Body) -> Body:
    return ctx.state.tasks.delete(
        body.get("task"), bool(body.get("force")), bool(body.get("return_file_urls"))
    )


@endpoint("tasks.archive")
def archive(ctx: Context, body: Body) -> Body:
    task_ids = ids(body, "tasks")
    with ctx.state.store.transaction():
        for task_id in task_ids:
            ctx.state.tasks.archive(task_id, **_reason(body))
    return {"archived": len(task_ids)}


@endpoint("tasks.archive_many")
def archive_many(ctx: Context, body: Body) -> Body:
    reason = _reason(body)

    def run(task_id: str) -> Body:
        ctx.state.tasks.archive(task_id, **reason)
        return {"archived": 1}

    return many(ids(body, "ids"), run)


@endpoint("tasks.unarchive_many")
def unarchive_many(ctx: Context, body: Body) -> Body:
    def run(task_id: str) -> Body:
        ctx.state.tasks.set_archived(task_id, False)
        return {"unarchived": 1}

    return many(ids(body, "ids"), run)


def _many_of(handler: Callable[[Context, Body], Body]) -> Callable[[Context, Body], Body]:
    def run(ctx: Context, body: Body) -> Body:
        shared = {k: v for k, v in body.items() if k != "ids"}
        return many(ids(body, "ids"), lambda task_id: handler(ctx, {**shared, "task": task_id}))

    return run


endpoint("tasks.delete_many")(_many_of(delete))
endpoint("tasks.stop_many")(_many_of(stop))
endpoint("tasks.reset_many")(_many_of(reset))
endpoint("tasks.enqueue_many")(_many_of(enqueue))
endpoint("tasks.dequeue_many")(_many_of(dequeue))
endpoint("tasks.publish_many")(_many_of(publish))


# --- hyperparameters and configuration ----------------------------------------------------------------


@endpoint("tasks.edit_hyper_params")
def edit_hyper_params(ctx: Context, body: Body) -> Body:
    items = required(body, "hyperparams")
    ctx.state.tasks.edit_hyper_params(
        body.get("task"), items, body.get("replace_hyperparams") or "none", bool(body.get("force"))
    )
    return {"updated": 1}


@endpoint("tasks.get_hyper_params")
def get_hyper_params(ctx: Context, body: Body) -> Body:
    params = [{"task": t, "hyperparams": ctx.state.tasks.hyper_params(t)} for t in ids(body, "tasks")]
    return {"params": params}


@endpoint("tasks.delete_hyper_params")
def delete_hyper_params(ctx: Context, body: Body) -> Body:
    deleted = ctx.state.tasks.delete_hyper_params(
        body.get("task"), required(body, "hyperparams"), bool(body.get("force"))
    )
    return {"deleted": deleted}


@endpoint("tasks.edit_configuration")
def edit_configuration(ctx: Context, body: Body) -> Body:
    items = required(body, "configuration")
    ctx.state.tasks.edit_configuration(
        body.get("task"), items, bool(body.get("replace_configuration")), bool(body.get("force"))
    )
    return {"updated": 1}


@endpoint("tasks.get_configurations")
def get_configurations(ctx: Context, body: Body) -> Body:
    names = body.get("names")
    result = []
    for task_id in ids(body, "tasks"):
        config = ctx.state.tasks.configuration(task_id)
        result.append(
            {
                "task": task_id,
                "configuration": [dict(v) for k, v in config.items() if not names or k in names],
            }
        )
    return {"configurations": result}


@endpoint("tasks.get_configuration_names")
def get_configuration_names(ctx: Context, body: Body) -> Body:
    names = [{"task": t, "names": sorted(ctx.state.tasks.configuration(t))} for t in ids(body, "tasks")]
    return {"configurations": names}


@endpoint("tasks.delete_configuration")
def delete_configuration(ctx: Context, body: Body) -> Body:
    return {
        "deleted": ctx.state.tasks.delete_configuration(
            body.get("task"), body.get("configuration") or [], bool(body.get("force"))
        )
    }


# --- artifacts and models -------------------------------------------------------------------------------


@endpoint("tasks.add_or_update_artifacts")
def add_or_update_artifacts(ctx: Context, body: Body) -> Body:
    return {"updated": ctx.state.tasks.add_or_update_artifacts(body.get("task"), required(body, "artifacts"))}


@endpoint("tasks.delete_artifacts")
def delete_artifacts(ctx: Context, body: Body) -> Body:
    return {"deleted": ctx.state.tasks.delete_artifacts(body.get("task"), required(body, "artifacts"))}


@endpoint("tasks.add_or_update_model")
def add_or_update_model(ctx: Context, body: Body) -> Body:
    ctx.state.tasks.set_model(
        body.get("task"),
        body.get("type") or "output",
        required(body, "name"),
        required(body, "model"),
        body.get("iteration"),
    )
    return {"updated": 1}


@endpoint("tasks.delete_models")
def delete_models(ctx: Context, body: Body) -> Body:
    deleted = ctx.state.tasks.delete_models(body.get("task"), required(body, "models"))
    return {"updated": int(deleted > 0)}
