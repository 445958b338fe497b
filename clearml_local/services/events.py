"""events.*: requests to ``EventBackend`` calls, and the shapes the SDK reads scalars, logs and plots in."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from clearml_local.api import Context, endpoint, ids, required
from clearml_local.errors import BadRequest, InvalidField
from clearml_local.state.events import EVENT_TYPES, SCALAR, average_buckets
from clearml_local.state.metric_events import MetricEventsIterator

# get_task_log's page size when a request names none (the real server's)
LOG_BATCH_SIZE = 5000

Body = dict[str, Any]


@endpoint("events.add_batch")
def add_batch(ctx: Context, body: Body) -> Body:
    events = body.get("requests")
    if not isinstance(events, list):
        raise BadRequest("events.add_batch expects JSON lines, one event object per line")
    return ctx.state.events.add_batch(events)


@endpoint("events.add")
def add(ctx: Context, body: Body) -> Body:
    """One event as the whole body (the real server stores it as a batch of one)."""
    return ctx.state.events.add_batch([body])


# --- scalars ------------------------------------------------------------------------------------------------


def _task(ctx: Context, body: Body, field: str = "task") -> dict[str, Any]:
    """The task the request names, or the model when it asks for ``model_events``."""
    owners = ctx.state.models if body.get("model_events") is True else ctx.state.tasks
    return owners.view(body.get(field), field)


@endpoint("events.scalar_metrics_iter_histogram")
def scalar_metrics_iter_histogram(ctx: Context, body: Body) -> Body:
    task = _task(ctx, body)
    wanted = {m.get("metric") if isinstance(m, dict) else str(m) for m in body.get("metrics") or []}
    return ctx.state.events.histogram(task["id"], body.get("key") or "iter", wanted, body.get("samples"))


def _metric_variants(body: Body) -> dict[str, set[str]]:
    """metric → wanted variants (empty: all) from a request's ``metrics: [{metric, variants}]``."""
    wanted: dict[str, set[str]] = {}
    for item in body.get("metrics") or []:
        if isinstance(item, dict) and isinstance(item.get("metric"), str):
            wanted[item["metric"]] = set(item.get("variants") or [])
    return wanted


@endpoint("events.multi_task_scalar_metrics_iter_histogram")
def multi_task_histogram(ctx: Context, body: Body) -> Body:
    """{metrics: metric → variant → task → {name, x, y}} averaged into at most ``samples`` points."""
    wanted = _metric_variants(body)
    result: Body = {}
    for task_id in ids(body, "tasks"):
        task = ctx.state.tasks.view(task_id, "tasks")
        for metric, variants in ctx.state.events.scalar_series(task_id, body.get("key") or "iter").items():
            if wanted and metric not in wanted:
                continue
            for variant, line in variants.items():
                if wanted.get(metric) and variant not in wanted[metric]:
                    continue
                result.setdefault(metric, {}).setdefault(variant, {})[task_id] = {
                    **average_buckets(line, body.get("samples")),
                    "name": task["name"],
                }
    return {"metrics": result}


@endpoint("events.get_multi_task_metrics")
def get_multi_task_metrics(ctx: Context, body: Body) -> Body:
    owners = ctx.state.models if body.get("model_events") is True else ctx.state.tasks
    task_ids = [owners.view(t, "tasks")["id"] for t in ids(body, "tasks")]
    found = ctx.state.events.metric_variants(task_ids, body.get("event_type"))
    return {"metrics": [{"metric": m, "variants": sorted(found[m])} for m in sorted(found)]}


@endpoint("events.scalar_metrics_iter_raw")
def scalar_metrics_iter_raw(ctx: Context, body: Body) -> Body:
    task = _task(ctx, body)
    metric = body.get("metric") if isinstance(body.get("metric"), dict) else {}
    batch_size = body.get("batch_size")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise InvalidField("Validation error: field 'batch_size' must be a positive integer")
    return ctx.state.events.raw_scalars(
        task["id"],
        str(metric.get("metric") or ""),
        metric.get("variants") or [],
        batch_size,
        body.get("scroll_id"),
    )


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
    wanted = _metric_variants(body)
    tasks = []
    for task_id in ids(body, "tasks"):
        task = ctx.state.tasks.view(task_id, "tasks")
        values = ctx.state.events.single_values(task["id"], wanted)
        if values:
            tasks.append({"task": task["id"], "task_name": task["name"], "values": values})
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
    """A page of log lines next to ``from_timestamp``; ``order`` may reverse the page (as the real server)."""
    task = _task(ctx, body)
    batch_size = body.get("batch_size") or LOG_BATCH_SIZE
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidField("Validation error: field 'batch_size' must be a positive integer")
    from_timestamp = body.get("from_timestamp")
    if from_timestamp is not None and not isinstance(from_timestamp, int | float):
        raise InvalidField("Validation error: field 'from_timestamp' must be milliseconds since the epoch")
    earlier = body.get("navigate_earlier", True) is not False
    events, total = ctx.state.events.log_page(
        task["id"], batch_size, earlier, from_timestamp, _metric_variants(body)
    )
    if body.get("order") == ("asc" if earlier else "desc"):
        events.reverse()
    return {"events": events, "returned": len(events), "total": total}


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
    names = {t: ctx.state.tasks.view(t, "tasks")["name"] for t in ids(body, "tasks")}
    iters = body.get("iters") or 1
    plots, total = ctx.state.events.plots_by_metric(names, iters, set(_metric_variants(body)))
    return {"plots": plots, "returned": len(plots), "total": total, "scroll_id": None}


def _task_metrics(ctx: Context, body: Body) -> dict[str, dict[str, list[str]]]:
    """task → metric → variants of a request's ``metrics: [{task, metric, variants}]``; a task named without
    a metric wants all its metrics (an empty mapping), as the real server reads the request."""
    items = body.get("metrics")
    if not isinstance(items, list) or not items:
        raise InvalidField("Validation error: field 'metrics' must be a non-empty list of {task, metric}")
    owners = ctx.state.models if body.get("model_events") is True else ctx.state.tasks
    wanted: dict[str, dict[str, list[str]]] = {}
    everything: set[str] = set()
    for item in items:
        if not isinstance(item, dict):
            raise InvalidField("Validation error: field 'metrics' must be a list of {task, metric, variants}")
        task_id = owners.view(required(item, "task"), "task")["id"]
        metrics = wanted.setdefault(task_id, {})
        if item.get("metric") is None:
            everything.add(task_id)
        else:
            metrics[str(item["metric"])] = [str(v) for v in item.get("variants") or []]
    return {task_id: {} if task_id in everything else metrics for task_id, metrics in wanted.items()}


def _iterate(ctx: Context, body: Body, iterator: MetricEventsIterator) -> Body:
    iters = body.get("iters", 1)
    if not isinstance(iters, int) or isinstance(iters, bool) or iters < 1:
        raise InvalidField("Validation error: field 'iters' must be an integer >= 1")
    scroll_id = body.get("scroll_id")
    if scroll_id is not None and not isinstance(scroll_id, str):
        raise InvalidField("Validation error: field 'scroll_id' must be a string")
    return iterator.page(
        _task_metrics(ctx, body),
        iters,
        navigate_earlier=body.get("navigate_earlier", True) is not False,
        refresh=body.get("refresh") is True,
        scroll_id=scroll_id,
    )


@endpoint("events.plots")
def plots(ctx: Context, body: Body) -> Body:
    """The next ``iters`` iterations of the requested tasks' plots, one per metric and variant (scrolled)."""
    return _iterate(ctx, body, ctx.state.events.plots)


@endpoint("events.get_plot_sample")
def get_plot_sample(ctx: Context, body: Body) -> Body:
    """A metric's plots at an iteration (or its latest), opening a state to navigate from."""
    task = _task(ctx, body)
    scroll_id = body.get("scroll_id")
    return ctx.state.events.plot_history.sample(
        task["id"],
        str(required(body, "metric")),
        _optional_int(body, "iteration"),
        refresh=body.get("refresh") is True,
        scroll_id=scroll_id if isinstance(scroll_id, str) else None,
        navigate_current_metric=body.get("navigate_current_metric", True) is not False,
    )


@endpoint("events.next_plot_sample")
def next_plot_sample(ctx: Context, body: Body) -> Body:
    """The plots after (or before) the ones a plot sample state showed last."""
    task = _task(ctx, body)
    return ctx.state.events.plot_history.next(
        task["id"],
        required(body, "scroll_id"),
        navigate_earlier=body.get("navigate_earlier", True) is not False,
        next_iteration=body.get("next_iteration") is True,
    )


def _optional_int(body: Body, name: str) -> int | None:
    value = body.get(name)
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
        raise InvalidField(f"Validation error: field '{name}' must be an integer")
    return value


@endpoint("events.get_debug_image_sample")
def get_debug_image_sample(ctx: Context, body: Body) -> Body:
    """A variant's image at an iteration (or its latest), opening a state to navigate from."""
    task = _task(ctx, body)
    scroll_id = body.get("scroll_id")
    return ctx.state.events.debug_image_history.sample(
        task["id"],
        str(required(body, "metric")),
        str(required(body, "variant")),
        _optional_int(body, "iteration"),
        refresh=body.get("refresh") is True,
        scroll_id=scroll_id if isinstance(scroll_id, str) else None,
        navigate_current_metric=body.get("navigate_current_metric", True) is not False,
    )


@endpoint("events.next_debug_image_sample")
def next_debug_image_sample(ctx: Context, body: Body) -> Body:
    """The image after (or before) the one a sample state showed last."""
    task = _task(ctx, body)
    return ctx.state.events.debug_image_history.next(
        task["id"],
        required(body, "scroll_id"),
        navigate_earlier=body.get("navigate_earlier", True) is not False,
        next_iteration=body.get("next_iteration") is True,
    )


@endpoint("events.debug_images")
def debug_images(ctx: Context, body: Body) -> Body:
    """The next ``iters`` iterations of the requested tasks' debug images and media (scrolled)."""
    return _iterate(ctx, body, ctx.state.events.debug_images)


@endpoint("events.delete_for_task")
def delete_for_task(ctx: Context, body: Body) -> Body:
    return {"deleted": ctx.state.events.delete_for_task(_task(ctx, body)["id"])}


@endpoint("events.clear_task_log")
def clear_task_log(ctx: Context, body: Body) -> Body:
    exclude = {m for m in body.get("exclude_metrics") or [] if isinstance(m, str)}
    return {"deleted": ctx.state.events.clear_log(_task(ctx, body)["id"], exclude)}
