"""projects.*: requests to ``ProjectBackend`` calls, and the cross-collection summaries the UI asks for."""

from __future__ import annotations

from typing import Any

from clearml_local.api import Context, endpoint, ids, required

Body = dict[str, Any]
PROJECT_FIELDS = ("description", "tags", "system_tags", "default_output_destination")


@endpoint("projects.create")
def create(ctx: Context, body: Body) -> Body:
    fields = {k: body.get(k) for k in PROJECT_FIELDS}
    return {"id": ctx.state.projects.create(required(body, "name"), fields)}


@endpoint("projects.get_by_id")
def get_by_id(ctx: Context, body: Body) -> Body:
    return {"project": ctx.state.projects.view(body.get("project"), "project")}


@endpoint("projects.get_all", "projects.get_all_ex")
def get_all(ctx: Context, body: Body) -> Body:
    query = dict(body)
    parents = set(ids(query, "parent"))
    query.pop("parent", None)
    among = None
    if parents:
        shallow = bool(query.get("shallow_search"))
        among = [p for p in ctx.state.projects.all() if ctx.state.projects.under(p, parents, shallow)]
    return {"projects": ctx.state.projects.query(query, default_order="name", among=among)}


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


@endpoint("projects.get_task_tags", "projects.get_model_tags", "projects.get_project_tags")
def get_tags(ctx: Context, body: Body) -> Body:
    tags: set[str] = set()
    system_tags: set[str] = set()
    for backend in (ctx.state.tasks, ctx.state.models, ctx.state.projects):
        for doc in backend.all():
            tags.update(doc.get("tags") or [])
            system_tags.update(doc.get("system_tags") or [])
    return {"tags": sorted(tags), "system_tags": sorted(system_tags)}


def _tasks_of(ctx: Context, project: str | None) -> list[dict[str, Any]]:
    if not project:
        return ctx.state.tasks.all()
    return ctx.state.tasks.in_projects(ctx.state.projects.descendants(project))


@endpoint("projects.get_unique_metric_variants")
def unique_metric_variants(ctx: Context, body: Body) -> Body:
    seen: dict[tuple[str, str], dict[str, str]] = {}
    for task in _tasks_of(ctx, body.get("project")):
        for metric_hash, variants in (task.get("last_metrics") or {}).items():
            for variant_hash, entry in variants.items():
                key = (entry.get("metric", ""), entry.get("variant", ""))
                seen[key] = {
                    "metric": key[0],
                    "variant": key[1],
                    "metric_hash": metric_hash,
                    "variant_hash": variant_hash,
                }
    return {"metrics": list(seen.values())}


@endpoint("projects.get_hyper_parameters")
def hyper_parameters(ctx: Context, body: Body) -> Body:
    found: set[tuple[str, str]] = set()
    for task in _tasks_of(ctx, body.get("project")):
        for section, params in (task.get("hyperparams") or {}).items():
            found.update((section, name) for name in params)
    parameters = [{"section": s, "name": n} for s, n in sorted(found)]
    return {"parameters": parameters, "total": len(parameters), "remaining": 0}


@endpoint("projects.get_task_parents")
def task_parents(ctx: Context, body: Body) -> Body:
    parent_ids = {t.get("parent") for t in ctx.state.tasks.all() if t.get("parent")}
    parents = [ctx.state.store.peek("tasks", pid) for pid in parent_ids]
    return {"parents": [{"id": p["id"], "name": p["name"]} for p in parents if p]}


@endpoint("projects.make_private", "projects.make_public")
def make_public(ctx: Context, body: Body) -> Body:
    return {"updated": len(ids(body, "ids"))}
