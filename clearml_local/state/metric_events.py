"""Scrolling by iteration through debug images and plots (``events.debug_images``, ``events.plots``).

As the real server's metric events iterator: a scroll state per id remembers, per task, the metrics and
variants there were when the scroll began and the lowest and highest iteration already returned. Each page
holds the next ``iters`` iterations (newest first, or after the highest with ``navigate_earlier: false``), one
event per metric and variant and iteration; an exhausted scroll answers empty iterations, so that a client
paging until nothing comes back ends. An unknown or forgotten scroll id begins a new scroll (the real
server does the same), as does a known id asked for other tasks or metrics than it began with; ``refresh``
begins again from the newest, seeing what was reported since.

For debug images a variant whose newest file name (url) was reported more than once, because the SDK
recycles file names after its history size, shows only the iterations after the previous use of that url:
the earlier events' files were overwritten.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from clearml_local.query import Scrolls
from clearml_local.storage import Document

# scroll states are forgotten after this much disuse (the real server's events state expiration)
STATE_TTL_S = 3600.0
DEBUG_IMAGE = "training_debug_image"
PLOT = "plot"

# the scroll states of each event type, kept across requests (each request has its own State)
SCROLLS = {event_type: Scrolls(ttl_s=STATE_TTL_S) for event_type in (DEBUG_IMAGE, PLOT)}
# metric → variants wanted (empty: all variants)
MetricVariants = dict[str, list[str]]
# the events of one task (and type) the iterator reads
EventSource = Callable[[str], Iterable[Document]]


@dataclass
class TaskScroll:
    """One task's part of a scroll: (metric, variant) → the last iteration whose file was overwritten (None:
    none was), for the variants there were when it began, and the iteration range already returned."""

    task: str
    variants: dict[tuple[str, str], int | None]
    last_min_iter: int | None = None
    last_max_iter: int | None = None


@dataclass
class ScrollState:
    id: str
    task_metrics: dict[str, MetricVariants]
    tasks: list[TaskScroll] = field(default_factory=list)


def _iteration(event: Document) -> int:
    return int(event.get("iter") or 0)


def _key(event: Document) -> tuple[str, str]:
    return event.get("metric") or "", event.get("variant") or ""


def _wanted(metrics: MetricVariants, event: Document) -> bool:
    metric, variant = _key(event)
    return not metrics or (metric in metrics and (not metrics[metric] or variant in metrics[metric]))


class MetricEventsIterator:
    """Pages of debug images (``event_type`` DEBUG_IMAGE) or plots (PLOT) grouped by iteration."""

    def __init__(self, event_type: str, events_of: EventSource, scrolls: Scrolls | None = None) -> None:
        """``scrolls`` keeps the scroll states (by default the process's: each request has new iterators)."""
        self.event_type = event_type
        self._events_of = events_of
        self._scrolls = SCROLLS[event_type] if scrolls is None else scrolls

    def page(
        self,
        task_metrics: dict[str, MetricVariants],
        iters: int,
        navigate_earlier: bool = True,
        refresh: bool = False,
        scroll_id: str | None = None,
    ) -> dict[str, Any]:
        """{metrics: [{task, iterations: [{iter, events}]}], scroll_id} for the next page of the scroll."""
        state = self._scrolls.get(scroll_id) if scroll_id else None
        if not isinstance(state, ScrollState) or state.task_metrics != task_metrics:
            state = ScrollState(id=uuid.uuid4().hex, task_metrics=task_metrics)
            refresh = True
        if refresh:
            state.tasks = [self._begin(task, metrics) for task, metrics in task_metrics.items()]
        metrics = [
            {"task": scroll.task, "iterations": self._next(scroll, iters, navigate_earlier)}
            for scroll in state.tasks
        ]
        self._scrolls.put(state.id, state)
        return {"metrics": metrics, "scroll_id": state.id}

    def _events(self, task: str) -> list[Document]:
        events = self._events_of(task)
        if self.event_type == DEBUG_IMAGE:
            return [event for event in events if event.get("url")]
        return list(events)

    def _begin(self, task: str, metrics: MetricVariants) -> TaskScroll:
        """The variants to show (those reported so far) and, for images, each one's overwritten iteration."""
        by_variant: dict[tuple[str, str], list[Document]] = defaultdict(list)
        for event in self._events(task):
            if _wanted(metrics, event):
                by_variant[_key(event)].append(event)
        return TaskScroll(task, {key: self._overwritten_before(events) for key, events in by_variant.items()})

    def _overwritten_before(self, events: list[Document]) -> int | None:
        """For images: the iteration of the previous use of the newest url (its file was replaced since)."""
        if self.event_type != DEBUG_IMAGE:
            return None
        newest_url = max(events, key=_iteration)["url"]
        uses = sorted((_iteration(e) for e in events if e.get("url") == newest_url), reverse=True)
        return uses[1] if len(uses) > 1 else None

    def _newest_of_variant(self, events: list[Document]) -> Document:
        """The one event a variant shows at an iteration (the real server's choice: by url, else time)."""
        if self.event_type == DEBUG_IMAGE:
            return max(events, key=lambda e: str(e.get("url")))
        return max(events, key=lambda e: e.get("timestamp") or 0)

    def _next(self, scroll: TaskScroll, iters: int, navigate_earlier: bool) -> list[dict[str, Any]]:
        if scroll.last_max_iter is None:
            navigate_earlier = True  # a scroll always begins at the newest iteration
        by_iter: dict[int, dict[tuple[str, str], list[Document]]] = defaultdict(lambda: defaultdict(list))
        for event in self._events(scroll.task):
            iteration, key = _iteration(event), _key(event)
            shown = key in scroll.variants and _after_overwrite(scroll, key, iteration)
            if shown and _not_yet_returned(scroll, iteration, navigate_earlier):
                by_iter[iteration][key].append(event)
        chosen = sorted(by_iter, reverse=navigate_earlier)[:iters]
        iterations = [
            {
                "iter": it,
                "events": [self._newest_of_variant(by_iter[it][key]) for key in sorted(by_iter[it])],
            }
            for it in sorted(chosen, reverse=True)
        ]
        if iterations:
            scroll.last_max_iter, scroll.last_min_iter = iterations[0]["iter"], iterations[-1]["iter"]
        return iterations


def _after_overwrite(scroll: TaskScroll, key: tuple[str, str], iteration: int) -> bool:
    overwritten = scroll.variants[key]
    return overwritten is None or iteration > overwritten


def _not_yet_returned(scroll: TaskScroll, iteration: int, navigate_earlier: bool) -> bool:
    if navigate_earlier:
        return scroll.last_min_iter is None or iteration < scroll.last_min_iter
    return scroll.last_max_iter is None or iteration > scroll.last_max_iter
