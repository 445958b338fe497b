"""projects.*: requests to ``ProjectBackend`` calls, and the cross-collection summaries the UI asks for."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clearml_local.api import Context, endpoint, flag, ids, required
from clearml_local.errors import InvalidField
from clearml_local.query import MAX_PAGE_SIZE

Body = dict[str, Any]
PROJECT_FIELDS = ("description", "tags", "system_tags", "default_output_destination")


@endpoint("projects.create")
def create(ctx: Context, body: Body) -> Body:
    fields = {k: body.get(k) for k in PROJECT_FIELDS}
    return {"id": ctx.state.projects.create(required(body, "name"), fields)}


@endpoint("projects.get_by_id")
def get_by_id(ctx: Context, body: Body) -> Body:
    return {"project": ctx.state.projects.view(body.get("project"), "project")}


@endpoint("projects.get_all")
def get_all(ctx: Context, body: Body) -> Body:
    return _get_all(ctx, body)


@endpoint("projects.get_all_ex")
def get_all_ex(ctx: Context, body: Body) -> Body:
    return _get_all(ctx, body, joined=True)


def _get_all(ctx: Context, body: Body, joined: bool = False) -> Body:
    query = dict(body)
    parents = set(ids(query, "parent"))
    query.pop("parent", None)
    among = None
    shallow = bool(query.get("shallow_search"))
    if parents:
        among = [p for p in ctx.state.projects.all() if ctx.state.projects.under(p, parents, shallow)]
    elif shallow:  # a shallow search without a parent stays at the top level
        among = [p for p in ctx.state.projects.all() if not p.get("parent")]
    expand = ctx.state.projects.joined if joined else None
    return ctx.state.projects.get_all(query, "projects", default_order="name", among=among, expand=expand)


@endpoint("projects.update")
def update(ctx: Context, body: Body) -> Body:
    return {"updated": 1, "fields": ctx.state.projects.update(body.get("project"), body)}


@endpoint("projects.delete")
def delete(ctx: Context, body: Body) -> Body:
    return ctx.state.projects.delete(
        body.get("project"), bool(body.get("force")), bool(body.get("delete_contents"))
    )


@endpoint("projects.validate_delete")
def validate_delete(ctx: Context, body: Body) -> Body:
    return ctx.state.projects.validate_delete(body.get("project"))


def _tags(kinds: tuple[str, ...]) -> Callable[[Context, Body], Body]:
    def handler(ctx: Context, body: Body) -> Body:
        where = {k: v for k, v in (body.get("filter") or {}).items() if k in ("tags", "system_tags")}
        tags, system_tags = ctx.state.projects.all_tags(kinds, ids(body, "projects") or None, where)
        return {"tags": tags, "system_tags": system_tags}

    return handler


endpoint("projects.get_task_tags")(_tags(("tasks",)))
endpoint("projects.get_model_tags")(_tags(("models",)))
endpoint("projects.get_project_tags")(_tags(("projects",)))


@endpoint("projects.move")
def move(ctx: Context, body: Body) -> Body:
    return {"moved": ctx.state.projects.move(body.get("project"), body.get("new_location"))}


@endpoint("projects.merge")
def merge(ctx: Context, body: Body) -> Body:
    entities, projects = ctx.state.projects.merge(body.get("project"), body.get("destination_project"))
    return {"moved_entities": entities, "moved_projects": projects}


@endpoint("projects.get_unique_metric_variants")
def unique_metric_variants(ctx: Context, body: Body) -> Body:
    task_ids = ids(body, "ids") if body.get("ids") else None
    return {"metrics": ctx.state.projects.metric_variants(body.get("project"), task_ids)}


@endpoint("projects.get_hyper_parameters")
def hyper_parameters(ctx: Context, body: Body) -> Body:
    parameters = ctx.state.projects.hyper_parameter_names(body.get("project"))
    return {"parameters": parameters, "total": len(parameters), "remaining": 0}


@endpoint("projects.get_hyperparam_values")
def hyperparam_values(ctx: Context, body: Body) -> Body:
    values = ctx.state.projects.hyperparam_values(
        ids(body, "projects"),
        required(body, "section"),
        required(body, "name"),
        body.get("include_subprojects") is not False,
        body.get("pattern"),
    )
    page, page_size = body.get("page", 0), body.get("page_size", MAX_PAGE_SIZE)
    numbers = [v for v in (page, page_size) if isinstance(v, int) and not isinstance(v, bool)]
    if len(numbers) < 2 or page < 0 or page_size < 1:
        raise InvalidField("Validation error: 'page' must be >= 0 and 'page_size' >= 1")
    return {"total": len(values), "values": values[page * page_size : (page + 1) * page_size]}


@endpoint("projects.get_task_parents")
def task_parents(ctx: Context, body: Body) -> Body:
    state = body.get("tasks_state")
    if state not in (None, "active", "archived"):
        raise InvalidField(
            f"Validation error: field 'tasks_state' must be 'active' or 'archived', got {state!r}"
        )
    parents = ctx.state.projects.task_parents(
        ids(body, "projects"), flag(body, "include_subprojects", True), state, body.get("task_name")
    )
    return {"parents": parents}


@endpoint("projects.make_private", "projects.make_public")
def make_public(ctx: Context, body: Body) -> Body:
    return {"updated": len(ids(body, "ids"))}
