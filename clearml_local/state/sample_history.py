"""One debug image at a time (``events.get_debug_image_sample``, ``events.next_debug_image_sample``): the
image viewer's navigation, as the real server's debug image history iterator.

A sample request begins (or, with its ``scroll_id``, continues) a state that remembers the task, the metric
(or all metrics, without ``navigate_current_metric``), each variant's valid iteration range and the sample
shown last. A variant's range begins at the earliest iteration whose file is still its own: the SDK recycles
file names, so of each url only its latest use is valid, and the range starts at the earliest of those. The
next sample is the next variant (by metric and name) at the same iteration, else the first of the next
iteration; ``next_iteration`` skips straight to the next iteration. At either end the answer has no event.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from clearml_local.errors import InvalidScrollId
from clearml_local.query import Scrolls
from clearml_local.state.metric_events import STATE_TTL_S
from clearml_local.storage import Document

SCROLLS = Scrolls(ttl_s=STATE_TTL_S)
Key = tuple[str, str]  # (metric, variant)
EventSource = Callable[[str], Iterable[Document]]


@dataclass(frozen=True)
class VariantRange:
    min_iteration: int
    max_iteration: int


@dataclass
class SampleState:
    id: str
    task: str
    metric: str
    navigate_current_metric: bool
    variants: dict[Key, VariantRange] = field(default_factory=dict)
    shown: Key | None = None
    iteration: int | None = None


def _scroll_state(
    scrolls: Scrolls, scroll_id: str | None, task: str, metric: str, navigate_current_metric: bool
) -> Any:
    """The state a scroll id names, None for a new scroll; InvalidScrollId when it was made for another task,
    another navigation or (navigating one metric) another metric."""
    state = scrolls.get(scroll_id) if scroll_id else None
    if state is not None and (
        (state.task, state.navigate_current_metric) != (task, navigate_current_metric)
        or (navigate_current_metric and state.metric != metric)
    ):
        raise InvalidScrollId(scroll_id)
    return state


def _iteration(event: Document) -> int:
    return int(event.get("iter") or 0)


def _key(event: Document) -> Key:
    return event.get("metric") or "", event.get("variant") or ""


class DebugImageHistory:
    def __init__(self, events_of: EventSource, scrolls: Scrolls = SCROLLS) -> None:
        self._events_of = events_of
        self._scrolls = scrolls

    def _images(self, task: str) -> list[Document]:
        return [event for event in self._events_of(task) if event.get("url")]

    def sample(
        self,
        task: str,
        metric: str,
        variant: str,
        iteration: int | None = None,
        refresh: bool = False,
        scroll_id: str | None = None,
        navigate_current_metric: bool = True,
    ) -> dict[str, Any]:
        """The variant's image at ``iteration`` (or the latest before it; the latest of all without one)."""
        state = _scroll_state(self._scrolls, scroll_id, task, metric, navigate_current_metric)
        if state is None:
            state = SampleState(uuid.uuid4().hex, task, metric, navigate_current_metric)
            refresh = True
        if refresh:
            state.variants = self._ranges(task, metric if navigate_current_metric else None)
        result = {"scroll_id": state.id, "event": None, "min_iteration": None, "max_iteration": None}
        valid = state.variants.get((metric, variant))
        if valid is not None:
            result.update(min_iteration=valid.min_iteration, max_iteration=valid.max_iteration)
            events = [
                e
                for e in self._images(task)
                if _key(e) == (metric, variant)
                and _iteration(e) >= valid.min_iteration
                and (iteration is None or _iteration(e) <= iteration)
            ]
            if events:
                self._show(state, max(events, key=lambda e: (_iteration(e), str(e["url"]))), result)
        self._scrolls.put(state.id, state)
        return result

    def next(self, task: str, scroll_id: Any, navigate_earlier: bool, next_iteration: bool) -> dict[str, Any]:
        """The next (or previous) sample after the one the state showed last; no event at either end."""
        state = self._scrolls.get(scroll_id) if isinstance(scroll_id, str) else None
        if not isinstance(state, SampleState) or state.task != task:
            raise InvalidScrollId(scroll_id)
        result = {"scroll_id": state.id, "event": None, "min_iteration": None, "max_iteration": None}
        if state.shown is None or state.iteration is None:
            return result
        images = self._images(task)
        event = None if next_iteration else self._same_iteration(state, images, navigate_earlier)
        event = event or self._other_iteration(state, images, navigate_earlier)
        if event is not None:
            self._show(state, event, result)
            self._scrolls.put(state.id, state)
        return result

    def _ranges(self, task: str, metric: str | None) -> dict[Key, VariantRange]:
        """Each variant's valid iterations: from the earliest latest-use of any of its urls to its last."""
        last_use: dict[Key, dict[str, int]] = defaultdict(dict)
        for event in self._images(task):
            if metric is None or event.get("metric") == metric:
                uses = last_use[_key(event)]
                uses[event["url"]] = max(uses.get(event["url"], _iteration(event)), _iteration(event))
        return {key: VariantRange(min(uses.values()), max(uses.values())) for key, uses in last_use.items()}

    def _navigable(self, state: SampleState) -> dict[Key, VariantRange]:
        if not state.navigate_current_metric:
            return state.variants
        return {key: valid for key, valid in state.variants.items() if key[0] == state.metric}

    def _same_iteration(self, state: SampleState, images: list[Document], earlier: bool) -> Document | None:
        assert state.shown is not None and state.iteration is not None
        variants = {
            key: valid
            for key, valid in self._navigable(state).items()
            if (key < state.shown if earlier else key > state.shown)
            and valid.min_iteration <= state.iteration
        }
        found = [e for e in images if _iteration(e) == state.iteration and _key(e) in variants]
        return _first(found, earlier, with_iteration=False)

    def _other_iteration(self, state: SampleState, images: list[Document], earlier: bool) -> Document | None:
        assert state.iteration is not None
        variants = {
            key: valid
            for key, valid in self._navigable(state).items()
            if not earlier or valid.min_iteration < state.iteration
        }
        found = [
            e
            for e in images
            if _key(e) in variants
            and _iteration(e) >= variants[_key(e)].min_iteration
            and (_iteration(e) < state.iteration if earlier else _iteration(e) > state.iteration)
        ]
        return _first(found, earlier, with_iteration=True)

    @staticmethod
    def _show(state: SampleState, event: Document, result: dict[str, Any]) -> None:
        state.shown, state.iteration = _key(event), _iteration(event)
        valid = state.variants.get(state.shown)
        result["event"] = event
        if valid is not None:
            result.update(min_iteration=valid.min_iteration, max_iteration=valid.max_iteration)


def _first(events: list[Document], earlier: bool, with_iteration: bool) -> Document | None:
    """The first event in navigation order: by (iteration,) metric and variant, descending when going
    earlier, ascending otherwise; of one variant's events the greatest url (the real server's order)."""
    if not events:
        return None
    by_url = sorted(events, key=lambda e: str(e["url"]), reverse=True)

    def place(e: Document) -> tuple[Any, ...]:
        return (_iteration(e), *_key(e)) if with_iteration else _key(e)

    return (max if earlier else min)(by_url, key=place)  # of equal places, the first: the greatest url


# the plots of one metric at one iteration a plot sample holds at most (the real server's)
PLOTS_PER_SAMPLE = 100
PLOT_SCROLLS = Scrolls(ttl_s=STATE_TTL_S)


@dataclass
class PlotSampleState:
    id: str
    task: str
    metric: str
    navigate_current_metric: bool
    metrics: dict[str, VariantRange] = field(default_factory=dict)
    iteration: int | None = None


class PlotHistory:
    """The plots of one metric at one iteration at a time (``events.get_plot_sample``,
    ``events.next_plot_sample``): the next metric at the same iteration (across metrics only without
    ``navigate_current_metric``), else the first of the next iteration; at either end no events."""

    def __init__(self, events_of: EventSource, scrolls: Scrolls = PLOT_SCROLLS) -> None:
        self._events_of = events_of
        self._scrolls = scrolls

    def sample(
        self,
        task: str,
        metric: str,
        iteration: int | None = None,
        refresh: bool = False,
        scroll_id: str | None = None,
        navigate_current_metric: bool = True,
    ) -> dict[str, Any]:
        state = _scroll_state(self._scrolls, scroll_id, task, metric, navigate_current_metric)
        if state is None:
            state = PlotSampleState(uuid.uuid4().hex, task, metric, navigate_current_metric)
            refresh = True
        if refresh:
            state.metrics = self._ranges(task, metric if navigate_current_metric else None)
        result = {"scroll_id": state.id, "events": [], "min_iteration": None, "max_iteration": None}
        if metric in state.metrics:
            result.update(min_iteration=state.metrics[metric].min_iteration)
            result.update(max_iteration=state.metrics[metric].max_iteration)
            found = [
                e
                for e in self._events_of(task)
                if e.get("metric") == metric and (iteration is None or _iteration(e) <= iteration)
            ]
            self._show(state, _first_group(found, earlier=True), result)
        self._scrolls.put(state.id, state)
        return result

    def next(self, task: str, scroll_id: Any, navigate_earlier: bool, next_iteration: bool) -> dict[str, Any]:
        state = self._scrolls.get(scroll_id) if isinstance(scroll_id, str) else None
        if not isinstance(state, PlotSampleState) or state.task != task:
            raise InvalidScrollId(scroll_id)
        result = {"scroll_id": state.id, "events": [], "min_iteration": None, "max_iteration": None}
        if state.iteration is None:
            return result
        events = self._events_of(task)
        found = [e for e in events if self._follows(state, e, navigate_earlier, next_iteration)]
        if self._show(state, _first_group(found, navigate_earlier), result):
            self._scrolls.put(state.id, state)
        return result

    @staticmethod
    def _follows(state: PlotSampleState, event: Document, earlier: bool, next_iteration: bool) -> bool:
        assert state.iteration is not None
        metric, iteration = event.get("metric") or "", _iteration(event)
        if state.navigate_current_metric and metric != state.metric:
            return False
        if iteration != state.iteration:
            return iteration < state.iteration if earlier else iteration > state.iteration
        if next_iteration or state.navigate_current_metric:
            return False
        return metric < state.metric if earlier else metric > state.metric

    def _ranges(self, task: str, metric: str | None) -> dict[str, VariantRange]:
        iterations: dict[str, list[int]] = defaultdict(list)
        for event in self._events_of(task):
            if metric is None or event.get("metric") == metric:
                iterations[event.get("metric") or ""].append(_iteration(event))
        return {name: VariantRange(min(found), max(found)) for name, found in iterations.items()}

    @staticmethod
    def _show(state: PlotSampleState, events: list[Document], result: dict[str, Any]) -> bool:
        if not events:
            return False
        state.metric, state.iteration = events[0].get("metric") or "", _iteration(events[0])
        result["events"] = events
        valid = state.metrics.get(state.metric)
        if valid is not None:
            result.update(min_iteration=valid.min_iteration, max_iteration=valid.max_iteration)
        return True


def _first_group(events: list[Document], earlier: bool) -> list[Document]:
    """The plots of the first (iteration, metric) in navigation order (descending when going earlier), by
    variant."""
    if not events:
        return []
    place = (max if earlier else min)((_iteration(e), e.get("metric") or "") for e in events)
    group = [e for e in events if (_iteration(e), e.get("metric") or "") == place]
    return sorted(group, key=lambda e: str(e.get("variant") or ""))[:PLOTS_PER_SAMPLE]
