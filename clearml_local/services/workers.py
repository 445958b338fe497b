"""workers.*: requests to ``WorkerBackend`` calls; the statistics endpoints answer empty (nothing is kept)."""

from __future__ import annotations

from typing import Any

from clearml_local.api import Context, endpoint, required, strings
from clearml_local.errors import InvalidField

Body = dict[str, Any]


@endpoint("workers.register")
def register(ctx: Context, body: Body) -> Body:
    ctx.state.workers.register(required(body, "worker"), body)
    return {}


@endpoint("workers.unregister")
def unregister(ctx: Context, body: Body) -> Body:
    ctx.state.workers.unregister(required(body, "worker"))
    return {}


@endpoint("workers.status_report")
def status_report(ctx: Context, body: Body) -> Body:
    ctx.state.workers.status_report(required(body, "worker"), body)
    return {}


def _active(ctx: Context, body: Body) -> list[Body]:
    """The workers a get_all/get_count body asks for (get_count has no schema in the SDK: checked here)."""
    tags, system_tags = strings(body, "tags"), strings(body, "system_tags")
    last_seen = body.get("last_seen") or 0
    if not isinstance(last_seen, int) or isinstance(last_seen, bool) or last_seen < 0:
        raise InvalidField("Validation error: field 'last_seen' must be a number of seconds (>= 0)")
    return ctx.state.workers.active(tags, system_tags, last_seen)


@endpoint("workers.get_all")
def get_all(ctx: Context, body: Body) -> Body:
    return {"workers": _active(ctx, body)}


@endpoint("workers.get_count")
def get_count(ctx: Context, body: Body) -> Body:
    return {"count": len(_active(ctx, body))}


@endpoint("workers.get_by_id")
def get_by_id(ctx: Context, body: Body) -> Body:
    return {"worker": ctx.state.workers.view(body.get("worker"), "worker")}


@endpoint("workers.get_metric_keys")
def get_metric_keys(ctx: Context, body: Body) -> Body:
    return {"categories": []}


@endpoint("workers.get_stats", "workers.get_activity_report")
def get_stats(ctx: Context, body: Body) -> Body:
    return {"workers": [], "total": [], "active": []}


@endpoint("workers.set_runtime_properties")
def set_runtime_properties(ctx: Context, body: Body) -> Body:
    ctx.state.workers.set_runtime_properties(required(body, "worker"), body.get("runtime_properties") or [])
    return {}


@endpoint("workers.get_runtime_properties")
def get_runtime_properties(ctx: Context, body: Body) -> Body:
    return {"runtime_properties": ctx.state.workers.runtime_properties(required(body, "worker"))}
