"""Events: scalars, plots, debug images and console logs reported by running tasks.

``add_batch`` also keeps each task's ``last_metrics`` and ``last_iteration`` current, which is what
``Task.get_last_scalar_metrics`` and the pipeline's best-model selection read.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from clearml_local.errors import BadRequest, InvalidField
from clearml_local.state.base import now_iso
from clearml_local.storage import Document

if TYPE_CHECKING:
    from clearml_local.state import State

EVENT_TYPES = frozenset(
    {"training_stats_scalar", "training_stats_vector", "training_debug_image", "plot", "log"}
)
SCALAR = "training_stats_scalar"
# The SDK reports single values ("Summary" table) at this iteration.
SINGLE_VALUE_ITER = -(2**31)
MAX_BATCH = 100_000
MAX_TIMESTAMP_MS = 2**62


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

    # --- writing ----------------------------------------------------------------------------------------

    def add_batch(self, events: list[Any]) -> dict[str, Any]:
        """Store the valid events (and count the others by problem), in one commit."""
        if len(events) > MAX_BATCH:
            raise BadRequest(
                f"events.add_batch accepts at most {MAX_BATCH} events per call, got {len(events)}"
            )
        errors: dict[str, int] = defaultdict(int)
        rows = []
        by_task: dict[str, list[Document]] = defaultdict(list)
        with self.store.transaction():
            for event in events:
                problem = event_problem(event)
                if problem is None and not self.state.tasks.exists(event["task"]):
                    problem = f"unknown task id {event['task']}"
                if problem is not None:
                    errors[problem] += 1
                    continue
                if event.get("timestamp") is None:
                    event["timestamp"] = int(time.time() * 1000)
                rows.append(_row(event))
                by_task[event["task"]].append(event)
            self.store.add_events(rows)
            for task_id, task_events in by_task.items():
                self._update_task_metrics(task_id, task_events)
        return {"added": len(rows), "errors": sum(errors.values()), "errors_info": dict(errors)}

    def _update_task_metrics(self, task_id: str, events: list[Document]) -> None:
        task = self.store.get("tasks", task_id)
        if task is None:
            return
        last_metrics = task.setdefault("last_metrics", {})
        for event in events:
            iteration = event.get("iter") or 0
            if event["type"] == SCALAR:
                _record_scalar(last_metrics, event, iteration)
            if event["type"] != "log" and iteration != SINGLE_VALUE_ITER:
                task["last_iteration"] = max(task.get("last_iteration") or 0, iteration)
        task["last_update"] = now_iso()
        self.store.put("tasks", task)

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
            line["x"].append(
                event.get("timestamp") if key in ("timestamp", "iso_time") else event.get("iter", 0)
            )
            line["y"].append(event.get("value"))
        return series

    def histogram(
        self, task_id: str, key: str, metrics: set[str], samples: int | None
    ) -> dict[str, dict[str, dict[str, Any]]]:
        """The scalar series of the wanted metrics (all when none is named), downsampled to ``samples``."""
        return {
            metric: {variant: downsample(line, samples) for variant, line in variants.items()}
            for metric, variants in self.scalar_series(task_id, key).items()
            if not metrics or metric in metrics
        }

    def single_values(self, task_id: str) -> list[dict[str, Any]]:
        return [
            {k: e.get(k) for k in ("metric", "variant", "value", "timestamp")}
            for _, e in self.store.query_events([task_id], [SCALAR], order="seq")
            if e.get("iter") == SINGLE_VALUE_ITER
        ]

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
        after = int(scroll_id) if isinstance(scroll_id, str) and scroll_id.isdigit() else None
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

    def plots_by_metric(self, task_ids: list[str]) -> tuple[dict[str, Any], int]:
        plots: dict[str, Any] = {}
        total = 0
        for task_id in task_ids:
            for _, event in self.store.query_events([task_id], ["plot"]):
                variants = plots.setdefault(event.get("metric", ""), {})
                variants.setdefault(event.get("variant", ""), {})[task_id] = event
                total += 1
        return plots, total

    def debug_images(self, task_id: str, metric: str | None) -> list[dict[str, Any]]:
        by_iter: dict[int, list[Document]] = defaultdict(list)
        for _, event in self.store.query_events([task_id], ["training_debug_image"], metric=metric):
            by_iter[event.get("iter", 0)].append(event)
        return [{"iter": it, "events": evs} for it, evs in sorted(by_iter.items(), reverse=True)]


def downsample(line: dict[str, Any], samples: int | None) -> dict[str, Any]:
    if not samples or samples <= 0 or len(line["x"]) <= samples:
        return line
    step = len(line["x"]) / samples
    picks = sorted({int(i * step) for i in range(samples)} | {len(line["x"]) - 1})
    return {**line, "x": [line["x"][i] for i in picks], "y": [line["y"][i] for i in picks]}


def _row(event: Document) -> tuple[str, str, str, str, int, int, Document]:
    iteration = event.get("iter") if event.get("iter") is not None else 0
    metric, variant = event.get("metric") or "", event.get("variant") or ""
    return (event["task"], event["type"], metric, variant, iteration, int(event["timestamp"]), event)


def _record_scalar(last_metrics: dict[str, Any], event: Document, iteration: int) -> None:
    value = float(event["value"])
    metric, variant = event.get("metric") or "", event.get("variant") or ""
    variants = last_metrics.setdefault(metric_hash(metric), {})
    entry = variants.get(metric_hash(variant))
    if entry is None:
        entry = variants[metric_hash(variant)] = {
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
    entry["count"] = entry.get("count", 0) + 1
    if iteration >= entry.get("iter", iteration):
        entry.update(value=value, iter=iteration, timestamp=event["timestamp"])
    if not math.isnan(value) and value < entry["min_value"]:
        entry.update(min_value=value, min_value_iteration=iteration)
    if not math.isnan(value) and value > entry["max_value"]:
        entry.update(max_value=value, max_value_iteration=iteration)
