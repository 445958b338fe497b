"""events.*: scalars, plots, debug images and console logs reported by running tasks.

``add_batch`` also keeps each task's ``last_metrics`` and ``last_iteration`` current, which is what
``Task.get_last_scalar_metrics`` and the pipeline's best-model selection read.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import defaultdict
from typing import Any

from clearml_local.api import Context, endpoint, id_list, now_iso, require
from clearml_local.errors import bad_request
from clearml_local.services.common import view

Document = dict[str, Any]
EVENT_TYPES = {"training_stats_scalar", "training_stats_vector", "training_debug_image", "plot", "log"}
SCALAR = "training_stats_scalar"
# The SDK reports single values ("Summary" table) at this iteration.
SINGLE_VALUE_ITER = -(2**31)
MAX_BATCH = 100_000


def _hash(name: str) -> str:
    return hashlib.md5(name.encode()).hexdigest()


def _validate_event(event: Any, index: int) -> str | None:
    """None for a valid event, or a message naming the field and the problem."""
    if not isinstance(event, dict):
        return f"event #{index}: must be a JSON object"
    if not isinstance(event.get("type"), str) or event["type"] not in EVENT_TYPES:
        return f"event #{index}: field 'type' must be one of {sorted(EVENT_TYPES)}"
    if not isinstance(event.get("task"), str) or not event["task"]:
        return f"event #{index}: field 'task' is required"
    if event["type"] == SCALAR and not _is_number(event.get("value")):
        return f"event #{index}: field 'value' of a scalar event must be a number"
    if event.get("iter") is not None and not _is_integer(event["iter"]):
        return f"event #{index}: field 'iter' must be an integer"
    timestamp = event.get("timestamp")
    if timestamp is not None and not (_is_number(timestamp) and 0 <= timestamp < 2**62):
        return f"event #{index}: field 'timestamp' must be milliseconds since the epoch"
    for field in ("metric", "variant"):
        if event.get(field) is not None and not isinstance(event[field], str):
            return f"event #{index}: field '{field}' must be a string"
    return None


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63


def _is_number(value: Any) -> bool:
    return _is_integer(value) or isinstance(value, float)


@endpoint("events.add_batch")
def add_batch(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    events = body.get("requests")
    if not isinstance(events, list):
        raise bad_request("events.add_batch expects JSON lines, one event object per line")
    if len(events) > MAX_BATCH:
        raise bad_request(f"events.add_batch accepts at most {MAX_BATCH} events per call, got {len(events)}")
    errors: dict[str, int] = defaultdict(int)
    rows = []
    by_task: dict[str, list[Document]] = defaultdict(list)
    with ctx.store.transaction():
        for index, event in enumerate(events):
            problem = _validate_event(event, index)
            if problem is None and ctx.store.peek("tasks", event["task"]) is None:
                problem = f"event #{index}: unknown task id {event['task']}"
            if problem is not None:
                errors[problem.split(": ", 1)[1]] += 1
                continue
            if event.get("timestamp") is None:
                event["timestamp"] = _now_ms()
            iteration = event.get("iter") if event.get("iter") is not None else 0
            rows.append(
                (
                    event["task"],
                    event["type"],
                    str(event.get("metric") or ""),
                    str(event.get("variant") or ""),
                    iteration,
                    int(event["timestamp"]),
                    event,
                )
            )
            by_task[event["task"]].append(event)
        ctx.store.add_events(rows)
        for task_id, task_events in by_task.items():
            _update_task_metrics(ctx, task_id, task_events)
    return {"added": len(rows), "errors": sum(errors.values()), "errors_info": dict(errors)}


def _now_ms() -> int:
    return int(time.time() * 1000)


def _update_task_metrics(ctx: Context, task_id: str, events: list[Document]) -> None:
    task = ctx.store.get("tasks", task_id)
    if task is None:
        return
    last_metrics = task.setdefault("last_metrics", {})
    for event in events:
        iteration = event.get("iter") or 0
        if event["type"] != SCALAR:
            if iteration > (task.get("last_iteration") or 0) and event["type"] != "log":
                task["last_iteration"] = iteration
            continue
        value = float(event["value"])
        metric, variant = str(event.get("metric") or ""), str(event.get("variant") or "")
        entry = last_metrics.setdefault(_hash(metric), {}).get(_hash(variant))
        if entry is None:
            entry = {
                "metric": metric,
                "variant": variant,
                "value": value,
                "first_value": value,
                "first_value_iteration": iteration,
                "min_value": value,
                "min_value_iteration": iteration,
                "max_value": value,
                "max_value_iteration": iteration,
                "count": 0,
                "iter": iteration,
                "timestamp": event["timestamp"],
            }
            last_metrics[_hash(metric)][_hash(variant)] = entry
        entry["count"] = entry.get("count", 0) + 1
        if iteration >= entry.get("iter", iteration):
            entry.update(value=value, iter=iteration, timestamp=event["timestamp"])
        if not math.isnan(value) and value < entry["min_value"]:
            entry.update(min_value=value, min_value_iteration=iteration)
        if not math.isnan(value) and value > entry["max_value"]:
            entry.update(max_value=value, max_value_iteration=iteration)
        if iteration != SINGLE_VALUE_ITER and iteration > (task.get("last_iteration") or 0):
            task["last_iteration"] = iteration
    task["last_update"] = now_iso()
    ctx.store.put("tasks", task)


# --- scalars ------------------------------------------------------------------------------------------------


def _scalar_series(ctx: Context, task_id: str, key: str = "iter") -> dict[str, dict[str, dict[str, Any]]]:
    series: dict[str, dict[str, dict[str, Any]]] = {}
    for _, event in ctx.store.query_events([task_id], [SCALAR], order="iter, seq"):
        if event.get("iter") == SINGLE_VALUE_ITER:
            continue
        metric, variant = event.get("metric", ""), event.get("variant", "")
        line = series.setdefault(metric, {}).setdefault(variant, {"name": variant, "x": [], "y": []})
        x = event.get("timestamp") if key in ("timestamp", "iso_time") else event.get("iter", 0)
        line["x"].append(x)
        line["y"].append(event.get("value"))
    return series


def _downsample(line: dict[str, Any], samples: int | None) -> dict[str, Any]:
    if not samples or samples <= 0 or len(line["x"]) <= samples:
        return line
    step = len(line["x"]) / samples
    picks = sorted({int(i * step) for i in range(samples)} | {len(line["x"]) - 1})
    return {**line, "x": [line["x"][i] for i in picks], "y": [line["y"][i] for i in picks]}


@endpoint("events.scalar_metrics_iter_histogram")
def scalar_metrics_iter_histogram(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    task_id = view(ctx, "tasks", body.get("task"), "task")["id"]
    wanted = _metric_filter(body.get("metrics"))
    series = _scalar_series(ctx, task_id, body.get("key") or "iter")
    samples = body.get("samples")
    return {
        metric: {variant: _downsample(line, samples) for variant, line in variants.items()}
        for metric, variants in series.items()
        if wanted is None or metric in wanted
    }


def _metric_filter(metrics: Any) -> set[str] | None:
    if not metrics:
        return None
    names = set()
    for item in metrics:
        names.add(item.get("metric") if isinstance(item, dict) else str(item))
    return names


@endpoint("events.multi_task_scalar_metrics_iter_histogram")
def multi_task_histogram(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for task_id in id_list(body, "tasks"):
        task = view(ctx, "tasks", task_id, "tasks")
        for metric, variants in _scalar_series(ctx, task_id, body.get("key") or "iter").items():
            for variant, line in variants.items():
                result.setdefault(metric, {}).setdefault(variant, {})[task_id] = {
                    **line,
                    "name": task["name"],
                }
    return result


@endpoint("events.scalar_metrics_iter_raw")
def scalar_metrics_iter_raw(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    task_id = view(ctx, "tasks", body.get("task"), "task")["id"]
    metric = body.get("metric") or {}
    variants = _scalar_series(ctx, task_id).get(metric.get("metric", ""), {})
    wanted = metric.get("variants")
    selected = {v: line for v, line in variants.items() if not wanted or v in wanted}
    total = sum(len(line["x"]) for line in selected.values())
    return {"variants": selected, "total": total, "returned": total, "scroll_id": None}


@endpoint("events.get_scalar_metrics_and_variants")
def scalar_metrics_and_variants(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    task = view(ctx, "tasks", body.get("task"), "task")
    metrics: dict[str, dict[str, Any]] = {}
    for variants in (task.get("last_metrics") or {}).values():
        for entry in variants.values():
            metrics.setdefault(entry["metric"], {})[entry["variant"]] = {"name": entry["variant"]}
    return {"metrics": metrics}


@endpoint("events.get_task_latest_scalar_values")
def latest_scalar_values(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    task = view(ctx, "tasks", body.get("task"), "task")
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for variants in (task.get("last_metrics") or {}).values():
        for entry in variants.values():
            grouped[entry["metric"]].append(
                {"name": entry["variant"], "last_value": entry["value"], "last_100_value": entry["value"]}
            )
    metrics = [{"name": name, "variants": variants} for name, variants in grouped.items()]
    return {"metrics": metrics, "last_iter": task.get("last_iteration", 0), "name": task["name"]}


@endpoint("events.get_task_single_value_metrics")
def single_value_metrics(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    tasks = []
    for task_id in id_list(body, "tasks"):
        values = [
            {k: e.get(k) for k in ("metric", "variant", "value", "timestamp")}
            for _, e in ctx.store.query_events([task_id], [SCALAR], order="seq")
            if e.get("iter") == SINGLE_VALUE_ITER
        ]
        tasks.append({"task": task_id, "values": values})
    return {"tasks": tasks}


@endpoint("events.get_task_metrics")
def get_task_metrics(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    event_type = body.get("event_type") or SCALAR
    result = []
    for task_id in id_list(body, "tasks"):
        names = sorted({e.get("metric", "") for _, e in ctx.store.query_events([task_id], [event_type])})
        result.append({"task": task_id, "metrics": names})
    return {"metrics": result}


# --- scrolling reads: logs, events, plots, debug images ---------------------------------------------------


def _scroll(
    ctx: Context,
    task_id: str,
    types: list[str],
    body: dict[str, Any],
    newest_first: bool,
    metric: str | None = None,
) -> dict[str, Any]:
    batch = body.get("batch_size") or 500
    if not isinstance(batch, int) or batch < 1:
        raise bad_request("Validation error: field 'batch_size' must be a positive integer")
    scroll = body.get("scroll_id")
    after = int(scroll) if isinstance(scroll, str) and scroll.isdigit() else None
    order = "seq DESC" if newest_first else "seq"
    rows = ctx.store.query_events([task_id], types, metric=metric, order=order, limit=batch, after_seq=after)
    total = ctx.store.count_events(task_id, types)
    events = [event for _, event in rows]
    next_scroll = str(rows[-1][0]) if rows else scroll
    return {"events": events, "returned": len(events), "total": total, "scroll_id": next_scroll}


@endpoint("events.get_task_log")
def get_task_log(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    task_id = view(ctx, "tasks", body.get("task"), "task")["id"]
    newest_first = body.get("navigate_earlier", True) is not False
    return _scroll(ctx, task_id, ["log"], body, newest_first)


@endpoint("events.get_task_events")
def get_task_events(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    task_id = view(ctx, "tasks", body.get("task"), "task")["id"]
    types = [body["event_type"]] if body.get("event_type") else sorted(EVENT_TYPES)
    return _scroll(ctx, task_id, types, body, body.get("order") == "desc")


@endpoint("events.get_scalar_metric_data")
def get_scalar_metric_data(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    task_id = view(ctx, "tasks", body.get("task"), "task")["id"]
    return _scroll(ctx, task_id, [SCALAR], body, False, metric=body.get("metric"))


@endpoint("events.get_task_plots")
def get_task_plots(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    task_id = view(ctx, "tasks", body.get("task"), "task")["id"]
    if body.get("iters") is not None:
        plots = _latest_plots(ctx, task_id, body["iters"])
        return {"plots": plots, "returned": len(plots), "total": len(plots), "scroll_id": None}
    page = _scroll(ctx, task_id, ["plot"], body, True)
    return {"plots": page.pop("events"), **page}


def _latest_plots(ctx: Context, task_id: str, iters: Any) -> list[Document]:
    """``iters`` counts iterations, not events: the plots of the latest ``iters`` iterations of each plot."""
    if not isinstance(iters, int) or isinstance(iters, bool) or iters < 1:
        raise bad_request("Validation error: field 'iters' must be a positive integer")
    by_plot: dict[tuple[str, str], dict[int, list[Document]]] = defaultdict(lambda: defaultdict(list))
    for _, event in ctx.store.query_events([task_id], ["plot"]):
        by_plot[(event.get("metric", ""), event.get("variant", ""))][event.get("iter") or 0].append(event)
    plots: list[Document] = []
    for iterations in by_plot.values():
        for iteration in sorted(iterations, reverse=True)[:iters]:
            plots.extend(iterations[iteration])
    return plots


@endpoint("events.get_multi_task_plots")
def get_multi_task_plots(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    plots: dict[str, Any] = {}
    total = 0
    for task_id in id_list(body, "tasks"):
        for _, event in ctx.store.query_events([task_id], ["plot"]):
            plots.setdefault(event.get("metric", ""), {}).setdefault(event.get("variant", ""), {})[
                task_id
            ] = event
            total += 1
    return {"plots": plots, "returned": total, "total": total, "scroll_id": None}


@endpoint("events.debug_images")
def debug_images(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    result = []
    for item in body.get("metrics") or []:
        task_id = require(item, "task")
        view(ctx, "tasks", task_id, "task")
        by_iter: dict[int, list[Document]] = defaultdict(list)
        for _, event in ctx.store.query_events(
            [task_id], ["training_debug_image"], metric=item.get("metric")
        ):
            by_iter[event.get("iter", 0)].append(event)
        iterations = [{"iter": it, "events": evs} for it, evs in sorted(by_iter.items(), reverse=True)]
        result.append({"task": task_id, "iterations": iterations})
    return {"metrics": result, "scroll_id": None}


@endpoint("events.delete_for_task")
def delete_for_task(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    task_id = view(ctx, "tasks", body.get("task"), "task")["id"]
    return {"deleted": ctx.store.delete_events(task_id)}


@endpoint("events.clear_task_log")
def clear_task_log(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    task_id = view(ctx, "tasks", body.get("task"), "task")["id"]
    return {"deleted": ctx.store.delete_events(task_id, "log")}
