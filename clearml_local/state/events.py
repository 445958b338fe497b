"""Events: scalars, plots, debug images and console logs reported by running tasks (and models).

``add_batch`` also keeps each task's (or model's) ``last_metrics`` and ``last_iteration`` current, as the
real server does: what ``Task.get_last_scalar_metrics``, the pipeline's best-model selection and
ClearML's HyperParameterOptimizer and TriggerScheduler read, filter and order by.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from clearml_local.errors import BadRequest, InvalidField, InvalidScrollId
from clearml_local.state.base import now_iso
from clearml_local.state.metric_events import DEBUG_IMAGE, PLOT, MetricEventsIterator
from clearml_local.state.sample_history import DebugImageHistory, PlotHistory
from clearml_local.storage import Document

if TYPE_CHECKING:
    from clearml_local.state import State

EVENT_TYPES = frozenset(
    {"training_stats_scalar", "training_stats_vector", "training_debug_image", "plot", "log"}
)
SCALAR = "training_stats_scalar"
# what a model may report (no console log)
MODEL_EVENT_TYPES = frozenset({SCALAR, "plot", "training_debug_image", "training_stats_vector"})
# The SDK reports single values ("Summary" table) at this iteration.
SINGLE_VALUE_ITER = -(2**31)
MAX_BATCH = 100_000
MAX_TIMESTAMP_MS = 2**62
# histogram points per series when a request names no ``samples`` (the real server's default)
DEFAULT_SAMPLES = 6000
# mean_value is kept rounded to this many decimals, as the real server stores it
MEAN_DECIMALS = 2
MAX_SCROLL_DIGITS = 18
# scalar_metrics_iter_raw's page size when a request names none (the real server's)
RAW_BATCH_SIZE = 10_000


class EventsNotAdded(BadRequest):
    """A batch none of whose events could be stored (the real server's 400/131)."""

    subcode = 131


def metric_hash(name: str) -> str:
    return hashlib.md5(name.encode()).hexdigest()


def event_problem(event: Any) -> str | None:
    """None for a valid event, or the field and what is wrong with it."""
    if not isinstance(event, dict):
        return "must be a JSON object"
    if not isinstance(event.get("type"), str) or event["type"] not in EVENT_TYPES:
        return f"field 'type' must be one of {sorted(EVENT_TYPES)}"
    if not isinstance(event.get("task"), str) or not event["task"]:
        return "field 'task' is required"
    if event["type"] == SCALAR and not _is_number(event.get("value")):
        return "field 'value' of a scalar event must be a number"
    if event.get("iter") is not None and not _is_integer(event["iter"]):
        return "field 'iter' must be an integer"
    timestamp = event.get("timestamp")
    if timestamp is not None and not (_is_number(timestamp) and 0 <= timestamp < MAX_TIMESTAMP_MS):
        return "field 'timestamp' must be milliseconds since the epoch"
    for field in ("metric", "variant"):
        if event.get(field) is not None and not isinstance(event[field], str):
            return f"field '{field}' must be a string"
    return None


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63


def _is_number(value: Any) -> bool:
    return _is_integer(value) or isinstance(value, float)


class EventBackend:
    def __init__(self, state: State) -> None:
        self.state = state
        self.store = state.store
        self.debug_images = MetricEventsIterator(DEBUG_IMAGE, self._events_of_type(DEBUG_IMAGE))
        self.plots = MetricEventsIterator(PLOT, self._events_of_type(PLOT))
        self.debug_image_history = DebugImageHistory(self._events_of_type(DEBUG_IMAGE))
        self.plot_history = PlotHistory(self._events_of_type(PLOT))

    def _events_of_type(self, event_type: str) -> Callable[[str], list[Document]]:
        def events_of(task_id: str) -> list[Document]:
            return [event for _, event in self.store.query_events([task_id], [event_type])]

        return events_of

    # --- writing ----------------------------------------------------------------------------------------

    def add_batch(self, events: list[Any]) -> dict[str, Any]:
        """Store the valid events (and count the others by problem), in one commit."""
        if len(events) > MAX_BATCH:
            raise BadRequest(
                f"events.add_batch accepts at most {MAX_BATCH} events per call, got {len(events)}"
            )
        errors: dict[str, int] = defaultdict(int)
        rows = []
        by_owner: dict[tuple[str, str], list[Document]] = defaultdict(list)
        if not events:
            return {"added": 0, "errors": 0, "errors_info": {}}
        with self.store.transaction():
            for event in events:
                problem = event_problem(event) or self._owner_problem(event)
                if problem is not None:
                    errors[problem] += 1
                    continue
                if event.get("timestamp") is None:
                    event["timestamp"] = int(time.time() * 1000)
                rows.append(_row(event))
                by_owner[(owner_collection(event), event["task"])].append(event)
            if not rows:
                raise EventsNotAdded(f"events not added: {dict(errors)}")
            for task_id, _, metric, variant, iteration, _, _ in rows:
                if iteration == SINGLE_VALUE_ITER:  # a single value replaces the previous one (real server)
                    self.store.delete_event_key(task_id, SCALAR, metric, variant, iteration)
            self.store.add_events(rows)
            for (collection, owner_id), owned in by_owner.items():
                self._update_metrics(collection, owner_id, owned)
        return {"added": len(rows), "errors": sum(errors.values()), "errors_info": dict(errors)}

    def _owner_problem(self, event: Document) -> str | None:
        """Why the task or model an event belongs to cannot take it, if it cannot."""
        if owner_collection(event) == "models":
            if event["type"] not in MODEL_EVENT_TYPES:
                return f"a model takes no {event['type']} events"
            return None if self.store.peek("models", event["task"]) else f"unknown model id {event['task']}"
        return None if self.state.tasks.exists(event["task"]) else f"unknown task id {event['task']}"

    def _update_metrics(self, collection: str, owner_id: str, events: list[Document]) -> None:
        """Keep the ``last_metrics`` and ``last_iteration`` of the task (or model) the events belong to.

        The cached document is read, not copied (a deep copy of a task cost more than the rest of a small
        batch): the new document shares its unchanged parts and ``put`` replaces the cached one."""
        owner = self.store.peek(collection, owner_id)
        if owner is None:
            return
        last_iteration = owner.get("last_iteration") or 0
        scalars: dict[tuple[str, str], list[Document]] = defaultdict(list)
        for event in events:
            iteration = event.get("iter") or 0
            if event["type"] == SCALAR:
                scalars[(event.get("metric") or "", event.get("variant") or "")].append(event)
            if event["type"] != "log" and iteration != SINGLE_VALUE_ITER:
                last_iteration = max(last_iteration, iteration)
        last_metrics = {key: dict(variants) for key, variants in (owner.get("last_metrics") or {}).items()}
        for (metric, variant), series in scalars.items():
            variants = last_metrics.setdefault(metric_hash(metric), {})
            variants[metric_hash(variant)] = merge_scalars(
                variants.get(metric_hash(variant)), metric, variant, series
            )
        self.store.put(
            collection,
            {
                **owner,
                # keys in hash order, as the real server returns them
                "last_metrics": {k: dict(sorted(v.items())) for k, v in sorted(last_metrics.items())},
                "last_iteration": last_iteration,
                "last_update": now_iso(),
            },
        )

    def delete_for_task(self, task_id: str, event_type: str | None = None) -> int:
        return self.store.delete_events(task_id, event_type)

    # --- reading ----------------------------------------------------------------------------------------

    def scalar_series(self, task_id: str, key: str = "iter") -> dict[str, dict[str, dict[str, Any]]]:
        """metric → variant → {name, x, y} of a task's scalars in iteration order (single values left out)."""
        series: dict[str, dict[str, dict[str, Any]]] = {}
        for _, event in self.store.query_events([task_id], [SCALAR], order="iter, seq"):
            if event.get("iter") == SINGLE_VALUE_ITER:
                continue
            metric, variant = event.get("metric", ""), event.get("variant", "")
            line = series.setdefault(metric, {}).setdefault(variant, {"name": variant, "x": [], "y": []})
            if event.get("x_axis_label") is not None:
                line["x_axis_label"] = event["x_axis_label"]
            line["x"].append(
                event.get("timestamp") if key in ("timestamp", "iso_time") else event.get("iter", 0)
            )
            line["y"].append(event.get("value"))
        return series

    def histogram(
        self, task_id: str, key: str, metrics: set[str], samples: int | None
    ) -> dict[str, dict[str, dict[str, Any]]]:
        """The scalar series of the wanted metrics (all when none is named), averaged into at most ``samples``
        points each (``average_buckets``)."""
        return {
            metric: {variant: average_buckets(line, samples) for variant, line in variants.items()}
            for metric, variants in self.scalar_series(task_id, key).items()
            if not metrics or metric in metrics
        }

    def single_values(self, task_id: str, wanted: dict[str, set[str]]) -> list[dict[str, Any]]:
        """The task's single values (the latest of each metric and variant), of the ``wanted`` metric →
        variants (all when empty)."""
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for _, e in self.store.query_events([task_id], [SCALAR], order="seq"):
            metric, variant = e.get("metric") or "", e.get("variant") or ""
            if e.get("iter") != SINGLE_VALUE_ITER or not _selected(wanted, metric, variant):
                continue
            latest[(metric, variant)] = {k: e.get(k) for k in ("metric", "variant", "value", "timestamp")}
        return list(latest.values())

    def log_page(
        self,
        task_id: str,
        batch_size: int,
        navigate_earlier: bool,
        from_timestamp: int | None,
        wanted: dict[str, set[str]],
    ) -> tuple[list[Document], int]:
        """A page of log events next to ``from_timestamp`` (earlier or later), newest first when navigating
        earlier; and how many log events of the wanted metrics there are in all."""
        events = [
            e
            for _, e in self.store.query_events([task_id], ["log"], order="seq")
            if _selected(wanted, e.get("metric") or "", e.get("variant") or "")
        ]
        events.sort(key=lambda e: e["timestamp"], reverse=navigate_earlier)
        if from_timestamp is not None:
            events_after = [
                e
                for e in events
                if (e["timestamp"] < from_timestamp if navigate_earlier else e["timestamp"] > from_timestamp)
            ]
        else:
            events_after = events
        return events_after[:batch_size], len(events)

    def clear_log(self, task_id: str, exclude_metrics: set[str]) -> int:
        """Delete a task's log events except those of ``exclude_metrics``."""
        if not exclude_metrics:
            return self.delete_for_task(task_id, "log")
        keep = [
            _row(e)
            for _, e in self.store.query_events([task_id], ["log"], order="seq")
            if e.get("metric") in exclude_metrics
        ]
        with self.store.transaction():
            deleted = self.delete_for_task(task_id, "log")
            self.store.add_events(keep)
        return deleted - len(keep)

    def metric_names(self, task_id: str, event_type: str) -> list[str]:
        return sorted({e.get("metric", "") for _, e in self.store.query_events([task_id], [event_type])})

    def scroll(
        self,
        task_id: str,
        types: list[str],
        batch_size: int | None,
        scroll_id: str | None,
        newest_first: bool,
        metric: str | None = None,
    ) -> dict[str, Any]:
        """One page of a task's events; ``scroll_id`` continues after the previous page."""
        batch = batch_size or 500
        if batch < 1:
            raise InvalidField("Validation error: field 'batch_size' must be a positive integer")
        after = parse_scroll_id(scroll_id)
        order = "seq DESC" if newest_first else "seq"
        rows = self.store.query_events(
            [task_id], types, metric=metric, order=order, limit=batch, after_seq=after
        )
        events = [event for _, event in rows]
        return {
            "events": events,
            "returned": len(events),
            "total": self.store.count_events(task_id, types),
            "scroll_id": str(rows[-1][0]) if rows else scroll_id,
        }

    def latest_plots(self, task_id: str, iters: int) -> list[Document]:
        """The plots of the latest ``iters`` iterations of each plot (iterations, not events)."""
        if iters < 1:
            raise InvalidField("Validation error: field 'iters' must be a positive integer")
        by_plot: dict[tuple[str, str], dict[int, list[Document]]] = defaultdict(lambda: defaultdict(list))
        for _, event in self.store.query_events([task_id], ["plot"]):
            by_plot[(event.get("metric", ""), event.get("variant", ""))][event.get("iter") or 0].append(event)
        plots: list[Document] = []
        for iterations in by_plot.values():
            for iteration in sorted(iterations, reverse=True)[:iters]:
                plots.extend(iterations[iteration])
        return plots

    def plots_by_metric(
        self, task_names: dict[str, str], iters: int, metrics: set[str]
    ) -> tuple[dict[str, Any], int]:
        """metric → variant → task → iteration → {name, plots}: each task's latest ``iters`` plots of each
        metric and variant (the real server's multi-task plot shape); and how many plots there were."""
        latest: dict[tuple[str, str, str], list[Document]] = defaultdict(list)
        total = 0
        for _, event in self.store.query_events(list(task_names), ["plot"]):
            if metrics and event.get("metric", "") not in metrics:
                continue
            total += 1
            latest[(event.get("metric", ""), event.get("variant", ""), event["task"])].append(event)
        plots: dict[str, Any] = {}
        for (metric, variant, task_id), events in latest.items():
            events.sort(key=lambda e: e.get("iter") or 0, reverse=True)
            by_iter = plots.setdefault(metric, {}).setdefault(variant, {}).setdefault(task_id, {})
            for event in events[:iters]:
                entry = by_iter.setdefault(
                    str(event.get("iter") or 0), {"name": task_names[task_id], "plots": []}
                )
                entry["plots"].append(event)
        return plots, total

    def metric_variants(self, task_ids: list[str], event_type: str | None) -> dict[str, set[str]]:
        """metric → its variants over the tasks' events (of one type, or all)."""
        found: dict[str, set[str]] = defaultdict(set)
        types = [event_type] if event_type else sorted(EVENT_TYPES)
        for _, event in self.store.query_events(task_ids, types):
            found[event.get("metric") or ""].add(event.get("variant") or "")
        return found

    def raw_scalars(
        self, task_id: str, metric: str, variants: list[str], batch_size: int | None, scroll_id: str | None
    ) -> dict[str, Any]:
        """A page of one metric's scalars in iteration order, single values included, grouped by variant.
        The scroll id carries the position and the page size, so that later pages keep the first one's."""
        offset = 0
        if scroll_id:
            position, _, size = scroll_id.partition("-")
            offset = parse_scroll_id(position) or 0
            batch_size = batch_size or parse_scroll_id(size)
        batch_size = batch_size or RAW_BATCH_SIZE
        rows = self.store.query_events([task_id], [SCALAR], metric=metric, order="iter, seq")
        selected = [(seq, e) for seq, e in rows if not variants or e.get("variant") in variants]
        page = selected[offset : offset + batch_size]
        grouped: dict[str, dict[str, list[Any]]] = {}
        for _, event in page:
            line = grouped.setdefault(event.get("variant") or "", {"iter": [], "y": []})
            line["iter"].append(event.get("iter") or 0)
            line["y"].append(event.get("value"))
        return {
            "variants": grouped,
            "returned": len(page),
            "total": len(selected),
            "scroll_id": f"{offset + len(page)}-{batch_size}",
        }


def owner_collection(event: Document) -> str:
    """Where the owner of an event lives: a model's events carry ``model_event``."""
    return "models" if event.get("model_event") is True else "tasks"


def _selected(wanted: dict[str, set[str]], metric: str, variant: str) -> bool:
    return not wanted or (metric in wanted and (not wanted[metric] or variant in wanted[metric]))


def parse_scroll_id(scroll_id: Any) -> int | None:
    """The position a scroll id continues after; one this server cannot have issued is a 400."""
    if scroll_id is None or scroll_id == "":
        return None
    if not isinstance(scroll_id, str) or not scroll_id.isdigit() or len(scroll_id) > MAX_SCROLL_DIGITS:
        raise InvalidScrollId(scroll_id)
    return int(scroll_id)


def average_buckets(line: dict[str, Any], samples: int | None) -> dict[str, Any]:
    """At most ``samples`` points: x floored to multiples of an interval, y the mean of each bucket (as the
    real server's histogram aggregation). Fewer points than ``samples`` keep one bucket per x."""
    samples = DEFAULT_SAMPLES if samples is None else samples
    xs, ys = line["x"], line["y"]
    if not xs or samples <= 0:
        return line
    interval = 1
    if len(xs) >= samples:
        interval = max(1, math.ceil((max(xs) - min(xs) + 1) / samples))
    buckets: dict[Any, list[float]] = defaultdict(list)
    for x, y in zip(xs, ys, strict=True):
        buckets[x // interval * interval if isinstance(x, int) else x].append(y)
    keys = sorted(buckets)
    return {**line, "x": keys, "y": [sum(buckets[k]) / len(buckets[k]) for k in keys]}


def _row(event: Document) -> tuple[str, str, str, str, int, int, Document]:
    iteration = event.get("iter") if event.get("iter") is not None else 0
    metric, variant = event.get("metric") or "", event.get("variant") or ""
    return (event["task"], event["type"], metric, variant, iteration, int(event["timestamp"]), event)


def merge_scalars(
    entry: Document | None, metric: str, variant: str, series: list[Document]
) -> dict[str, Any]:
    """A ``last_metrics`` entry after one batch of a series' scalars, as the real server keeps it: the value
    of the batch's latest event by (iteration, timestamp), min/max with their iterations, the first value,
    the count and the mean (rounded to MEAN_DECIMALS)."""
    merged: dict[str, Any] = dict(entry or {}, metric=metric, variant=variant)
    latest = series[0]
    total = 0.0
    for event in series:
        value, iteration = float(event["value"]), event.get("iter") or 0
        total += value
        if (iteration, event["timestamp"]) >= (latest.get("iter") or 0, latest["timestamp"]):
            latest = event
        if "first_value" not in merged:
            merged.update(first_value=value, first_value_iteration=iteration)
        if not math.isnan(value) and ("min_value" not in merged or value < merged["min_value"]):
            merged.update(min_value=value, min_value_iteration=iteration)
        if not math.isnan(value) and ("max_value" not in merged or value > merged["max_value"]):
            merged.update(max_value=value, max_value_iteration=iteration)
    count = merged.get("count", 0)
    mean = ((merged.get("mean_value") or 0.0) * count + total) / (count + len(series))
    merged.update(
        value=float(latest["value"]),
        iter=latest.get("iter") or 0,
        timestamp=latest["timestamp"],
        count=count + len(series),
        mean_value=round(mean, MEAN_DECIMALS) if not math.isnan(mean) else mean,
    )
    if latest.get("x_axis_label") is not None:
        merged["x_axis_label"] = latest["x_axis_label"]
    return merged
