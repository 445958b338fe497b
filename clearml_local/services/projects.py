"""projects.*: a tree of projects named by full path (``a/b/.datasets/c``); parents are created implicitly."""

from __future__ import annotations

from typing import Any

from clearml_local.api import Context, endpoint, new_id, now_iso, optional, require
from clearml_local.errors import ApiError
from clearml_local.query import run_query
from clearml_local.services.common import load, touch, view, visible

Document = dict[str, Any]


def _normalize(name: str) -> str:
    parts = [p.strip() for p in name.split("/")]
    if any(not p for p in parts):
        raise ApiError(400, 403, f"Invalid project name {name!r}: empty path component")
    return "/".join(parts)


def find_by_name(ctx: Context, name: str) -> Document | None:
    for doc in ctx.store.all("projects"):
        if doc["name"] == name:
            return doc
    return None


def ensure_project(ctx: Context, name: str, **fields: Any) -> str:
    """The id of the project with this full path, creating it and its parents as needed."""
    name = _normalize(name)
    existing = find_by_name(ctx, name)
    if existing:
        return existing["id"]
    parent_id = None
    if "/" in name:
        parent_id = ensure_project(ctx, name.rsplit("/", 1)[0])
    stamp = now_iso()
    doc: Document = {
        "id": new_id(),
        "name": name,
        "basename": name.rsplit("/", 1)[-1],
        "description": fields.get("description") or "",
        "user": ctx.identity.user_id,
        "company": ctx.identity.company_id,
        "created": stamp,
        "last_update": stamp,
        "tags": fields.get("tags") or [],
        "system_tags": fields.get("system_tags") or [],
        "default_output_destination": fields.get("default_output_destination"),
        "parent": parent_id,
    }
    ctx.store.put("projects", doc)
    return doc["id"]


def descendants(ctx: Context, project_id: str) -> set[str]:
    """The project and all its subprojects."""
    root = ctx.store.peek("projects", project_id)
    if root is None:
        return {project_id}
    prefix = root["name"] + "/"
    return {project_id} | {p["id"] for p in ctx.store.all("projects") if p["name"].startswith(prefix)}


@endpoint("projects.create")
def create(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    name = _normalize(require(body, "name"))
    with ctx.store.transaction():
        if find_by_name(ctx, name):
            raise ApiError(409, 701, f"Project with the same name already exists: name={name}")
        fields = {
            k: body.get(k) for k in ("description", "tags", "system_tags", "default_output_destination")
        }
        return {"id": ensure_project(ctx, name, **fields)}


@endpoint("projects.get_by_id")
def get_by_id(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    return {"project": view(ctx, "projects", body.get("project"), "project")}


@endpoint("projects.get_all", "projects.get_all_ex")
def get_all(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    query = dict(body)
    parents = query.pop("parent", None)
    docs = ctx.store.all("projects")
    if parents:
        parent_ids = {parents} if isinstance(parents, str) else set(parents)
        shallow = bool(query.get("shallow_search"))
        docs = [d for d in docs if _under(ctx, d, parent_ids, shallow)]
    projects = run_query(docs, query, extra=visible(body), default_order="name")
    return {"projects": projects}


def _under(ctx: Context, doc: Document, parent_ids: set[str], shallow: bool) -> bool:
    if shallow:
        return doc.get("parent") in parent_ids
    names = [p["name"] + "/" for pid in parent_ids if (p := ctx.store.peek("projects", pid))]
    return any(doc["name"].startswith(prefix) for prefix in names)


@endpoint("projects.update")
def update(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    with ctx.store.transaction():
        doc = load(ctx, "projects", body.get("project"), "project")
        fields: dict[str, Any] = {}
        for key in ("description", "tags", "system_tags", "default_output_destination"):
            if key in body:
                fields[key] = body[key]
        if body.get("name"):
            new_name = _normalize(body["name"])
            if new_name != doc["name"] and find_by_name(ctx, new_name):
                raise ApiError(409, 701, f"Project with the same name already exists: name={new_name}")
            fields["name"], fields["basename"] = new_name, new_name.rsplit("/", 1)[-1]
        doc.update(fields)
        touch(doc, ctx)
        ctx.store.put("projects", doc)
    return {"updated": 1, "fields": fields}


@endpoint("projects.delete")
def delete(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    with ctx.store.transaction():
        doc = load(ctx, "projects", body.get("project"), "project")
        ids = descendants(ctx, doc["id"])
        tasks = [t for t in ctx.store.all("tasks") if t.get("project") in ids]
        models = [m for m in ctx.store.all("models") if m.get("project") in ids]
        force = bool(optional(body, "force", bool, False))
        if (tasks or models) and not force and not body.get("delete_contents"):
            raise ApiError(
                400,
                704,
                f"Project {doc['name']!r} has {len(tasks)} tasks and {len(models)} models: use force",
            )
        for project_id in ids:
            ctx.store.delete("projects", project_id)
        for kind, docs in (("tasks", tasks), ("models", models)):
            for item in docs:
                if body.get("delete_contents"):
                    ctx.store.delete(kind, item["id"])
                else:
                    ctx.store.put(kind, {**item, "project": None})
    return {"deleted": len(ids), "disassociated_tasks": len(tasks), "deleted_models": 0, "deleted_tasks": 0}


@endpoint("projects.validate_delete")
def validate_delete(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    doc = load(ctx, "projects", body.get("project"), "project")
    ids = descendants(ctx, doc["id"])
    tasks = [t for t in ctx.store.all("tasks") if t.get("project") in ids]
    models = [m for m in ctx.store.all("models") if m.get("project") in ids]
    return {
        "tasks": len(tasks),
        "non_archived_tasks": sum(1 for t in tasks if "archived" not in (t.get("system_tags") or [])),
        "models": len(models),
        "non_archived_models": sum(1 for m in models if "archived" not in (m.get("system_tags") or [])),
    }


@endpoint("projects.get_task_tags", "projects.get_model_tags", "projects.get_project_tags")
def get_tags(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    tags: set[str] = set()
    system_tags: set[str] = set()
    for collection in ("tasks", "models", "projects"):
        for doc in ctx.store.all(collection):
            tags.update(doc.get("tags") or [])
            system_tags.update(doc.get("system_tags") or [])
    return {"tags": sorted(tags), "system_tags": sorted(system_tags)}


@endpoint("projects.get_unique_metric_variants")
def unique_metric_variants(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    project = body.get("project")
    ids = descendants(ctx, project) if project else None
    seen: dict[tuple[str, str], dict[str, str]] = {}
    for task in ctx.store.all("tasks"):
        if ids is not None and task.get("project") not in ids:
            continue
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
def hyper_parameters(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    project = body.get("project")
    ids = descendants(ctx, project) if project else None
    found: set[tuple[str, str]] = set()
    for task in ctx.store.all("tasks"):
        if ids is None or task.get("project") in ids:
            for section, params in (task.get("hyperparams") or {}).items():
                found.update((section, name) for name in params)
    parameters = [{"section": s, "name": n} for s, n in sorted(found)]
    return {"parameters": parameters, "total": len(parameters), "remaining": 0}


@endpoint("projects.get_task_parents")
def task_parents(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    parent_ids = {t.get("parent") for t in ctx.store.all("tasks") if t.get("parent")}
    parents = [ctx.store.peek("tasks", pid) for pid in parent_ids]
    return {"parents": [{"id": p["id"], "name": p["name"]} for p in parents if p]}


@endpoint("projects.make_private", "projects.make_public")
def make_public(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    return {"updated": len(body.get("ids") or [])}
