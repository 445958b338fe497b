"""events.*: requests to ``EventBackend`` calls, and the shapes the SDK reads scalars, logs and plots in."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from clearml_local.api import Context, endpoint, ids, required
from clearml_local.errors import BadRequest
from clearml_local.state.events import EVENT_TYPES, SCALAR

Body = dict[str, Any]


@endpoint("events.add_batch")
def add_batch(ctx: Context, body: Body) -> Body:
    events = body.get("requests")
    if not isinstance(events, list):
        raise BadRequest("events.add_batch expects JSON lines, one event object per line")
    return ctx.state.events.add_batch(events)


# --- scalars ------------------------------------------------------------------------------------------------


def _task(ctx: Context, body: Body, field: str = "task") -> dict[str, Any]:
    return ctx.state.tasks.view(body.get(field), field)


@endpoint("events.scalar_metrics_iter_histogram")
def scalar_metrics_iter_histogram(ctx: Context, body: Body) -> Body:
    task = _task(ctx, body)
    wanted = {m.get("metric") if isinstance(m, dict) else str(m) for m in body.get("metrics") or []}
    return ctx.state.events.histogram(task["id"], body.get("key") or "iter", wanted, body.get("samples"))


@endpoint("events.multi_task_scalar_metrics_iter_histogram")
def multi_task_histogram(ctx: Context, body: Body) -> Body:
    result: Body = {}
    for task_id in ids(body, "tasks"):
        task = ctx.state.tasks.view(task_id, "tasks")
        for metric, variants in ctx.state.events.scalar_series(task_id, body.get("key") or "iter").items():
            for variant, line in variants.items():
                result.setdefault(metric, {}).setdefault(variant, {})[task_id] = {
                    **line,
                    "name": task["name"],
                }
    return result


@endpoint("events.scalar_metrics_iter_raw")
def scalar_metrics_iter_raw(ctx: Context, body: Body) -> Body:
    task = _task(ctx, body)
    metric = body.get("metric") or {}
    variants = ctx.state.events.scalar_series(task["id"]).get(metric.get("metric", ""), {})
    wanted = metric.get("variants")
    selected = {v: line for v, line in variants.items() if not wanted or v in wanted}
    total = sum(len(line["x"]) for line in selected.values())
    return {"variants": selected, "total": total, "returned": total, "scroll_id": None}


@endpoint("events.get_scalar_metrics_and_variants")
def scalar_metrics_and_variants(ctx: Context, body: Body) -> Body:
    metrics: dict[str, dict[str, Any]] = {}
    for variants in (_task(ctx, body).get("last_metrics") or {}).values():
        for entry in variants.values():
            metrics.setdefault(entry["metric"], {})[entry["variant"]] = {"name": entry["variant"]}
    return {"metrics": metrics}


@endpoint("events.get_task_latest_scalar_values")
def latest_scalar_values(ctx: Context, body: Body) -> Body:
    task = _task(ctx, body)
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for variants in (task.get("last_metrics") or {}).values():
        for entry in variants.values():
            last = {"name": entry["variant"], "last_value": entry["value"], "last_100_value": entry["value"]}
            grouped[entry["metric"]].append(last)
    metrics = [{"name": name, "variants": variants} for name, variants in grouped.items()]
    return {"metrics": metrics, "last_iter": task.get("last_iteration", 0), "name": task["name"]}


@endpoint("events.get_task_single_value_metrics")
def single_value_metrics(ctx: Context, body: Body) -> Body:
    tasks = [{"task": t, "values": ctx.state.events.single_values(t)} for t in ids(body, "tasks")]
    return {"tasks": tasks}


@endpoint("events.get_task_metrics")
def get_task_metrics(ctx: Context, body: Body) -> Body:
    event_type = body.get("event_type") or SCALAR
    metrics = [
        {"task": t, "metrics": ctx.state.events.metric_names(t, event_type)} for t in ids(body, "tasks")
    ]
    return {"metrics": metrics}


# --- scrolling reads: logs, events, plots, debug images ---------------------------------------------------


def _scroll(
    ctx: Context, body: Body, types: list[str], newest_first: bool, metric: str | None = None
) -> Body:
    task = _task(ctx, body)
    return ctx.state.events.scroll(
        task["id"], types, body.get("batch_size"), body.get("scroll_id"), newest_first, metric
    )


@endpoint("events.get_task_log")
def get_task_log(ctx: Context, body: Body) -> Body:
    return _scroll(ctx, body, ["log"], newest_first=body.get("navigate_earlier", True) is not False)


@endpoint("events.get_task_events")
def get_task_events(ctx: Context, body: Body) -> Body:
    types = [body["event_type"]] if body.get("event_type") else sorted(EVENT_TYPES)
    return _scroll(ctx, body, types, newest_first=body.get("order") == "desc")


@endpoint("events.get_scalar_metric_data")
def get_scalar_metric_data(ctx: Context, body: Body) -> Body:
    return _scroll(ctx, body, [SCALAR], newest_first=False, metric=body.get("metric"))


@endpoint("events.get_task_plots")
def get_task_plots(ctx: Context, body: Body) -> Body:
    if body.get("iters") is not None:
        plots = ctx.state.events.latest_plots(_task(ctx, body)["id"], body["iters"])
        return {"plots": plots, "returned": len(plots), "total": len(plots), "scroll_id": None}
    page = _scroll(ctx, body, ["plot"], newest_first=True)
    return {"plots": page.pop("events"), **page}


@endpoint("events.get_multi_task_plots")
def get_multi_task_plots(ctx: Context, body: Body) -> Body:
    plots, total = ctx.state.events.plots_by_metric(ids(body, "tasks"))
    return {"plots": plots, "returned": total, "total": total, "scroll_id": None}


@endpoint("events.debug_images")
def debug_images(ctx: Context, body: Body) -> Body:
    result = []
    for item in body.get("metrics") or []:
        task = ctx.state.tasks.view(required(item, "task"), "task")
        iterations = ctx.state.events.debug_images(task["id"], item.get("metric"))
        result.append({"task": task["id"], "iterations": iterations})
    return {"metrics": result, "scroll_id": None}


@endpoint("events.delete_for_task")
def delete_for_task(ctx: Context, body: Body) -> Body:
    return {"deleted": ctx.state.events.delete_for_task(_task(ctx, body)["id"])}


@endpoint("events.clear_task_log")
def clear_task_log(ctx: Context, body: Body) -> Body:
    return {"deleted": ctx.state.events.delete_for_task(_task(ctx, body)["id"], "log")}
