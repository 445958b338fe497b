"""The live quality figures as ClearML scalars of the serving service's monitoring task, so that a ClearML
trigger can watch them beside Prometheus' alerts.

The monitoring task is the one clearml-serving's statistics controller creates for the service
(`<service name> - statistics controller`, type `monitor`, in the service's project); without one (a service
whose controller never ran), the service task itself. Every `ASTEROID_QUALITY_SCALARS_SECONDS` (default 60;
`0` turns it off) the consumer's reporter thread reads the same counts as the Prometheus exporter
(asteroid/quality/metrics.py) over the same window and reports, per endpoint and model version (series
`asteroid/1`):

    title "live accuracy", "live recall", "live precision"   over the labels received in the window
    title "live labelled"                                      labels received in the window
    title "live label coverage"                                labelled / stored predictions

at iteration = Unix time in seconds (monotonic across consumer restarts). A figure whose denominator is 0 is
not reported. A ClearML `TriggerScheduler.add_task_trigger(trigger_on_metric="live recall",
trigger_on_variant="asteroid/1", trigger_on_threshold=0.9, trigger_on_sign="min", ...)` on the monitoring
task then fires when the lowest recall the task recorded falls to 0.9 or below (ClearML compares the
task's `last_metrics` minimum, so it fires once per task, not per window: Prometheus' alerts stay the
alerting path).
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from asteroid.quality import store
from asteroid.quality.metrics import version_labels

EVERY_ENV = "ASTEROID_QUALITY_SCALARS_SECONDS"
DEFAULT_EVERY_S = 60.0
SERVICE_ID_ENV = "CLEARML_SERVING_TASK_ID"  # clearml-serving's own variable for its service
ACCURACY = "live accuracy"
RECALL = "live recall"
PRECISION = "live precision"
LABELLED = "live labelled"
COVERAGE = "live label coverage"
TITLES = (ACCURACY, RECALL, PRECISION, LABELLED, COVERAGE)
CONTROLLER_SUFFIX = " - statistics controller"  # clearml_serving/statistics/main.py names its task so


@dataclass(frozen=True)
class Figure:
    title: str
    series: str  # endpoint/version: "asteroid/1"
    value: float


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def figures(window: list[store.QualityCounts], stored: list[store.QualityCounts]) -> list[Figure]:
    """The figures of each endpoint and version: `window` counts the labels received in the window,
    `stored` all stored predictions and their labels (for the coverage)."""
    coverage = {
        "/".join(version_labels(row)): _ratio(row.labelled, row.predictions) for row in stored
    }  # fmt: skip
    found: list[Figure] = []
    for row in window:
        series = "/".join(version_labels(row))
        values = {
            ACCURACY: _ratio(row.correct, row.labelled),
            RECALL: _ratio(row.true_positives, row.true_positives + row.false_negatives),
            PRECISION: _ratio(row.true_positives, row.true_positives + row.false_positives),
            LABELLED: float(row.labelled),
            COVERAGE: coverage.get(series),
        }
        found += [Figure(title, series, value) for title, value in values.items() if value is not None]
    return found


class ScalarReporter:
    """Reports the figures to a ClearML logger (the monitoring task's) at each `report()`."""

    def __init__(
        self, logger: Any, engine: Engine, window_seconds: float, clock: Callable[[], float] = time.time
    ) -> None:
        self.logger = logger
        self.engine = engine
        self.window_seconds = window_seconds
        self.clock = clock

    def report(self) -> list[Figure]:
        now = self.clock()
        with self.engine.connect() as connection:
            window = store.quality_counts(connection, labelled_since=now - self.window_seconds)
            stored = store.quality_counts(connection)
        reported = figures(window, stored)
        for figure in reported:
            self.logger.report_scalar(figure.title, figure.series, value=figure.value, iteration=int(now))
        self.logger.flush(wait=True)
        return reported

    def run(self, stop: threading.Event, every_s: float) -> None:
        """Report every `every_s` until `stop` is set; a failed report is said on stderr and retried."""
        while not stop.wait(every_s):
            try:
                self.report()
            except Exception as exc:  # the consumer goes on storing whatever ClearML does
                print(f"live quality scalars: {exc!r}", file=sys.stderr, flush=True)


def monitoring_task(service_id: str) -> Any:
    """The clearml Task of the service's statistics controller, else the service task itself."""
    from clearml import Task

    service = Task.get_task(task_id=service_id)
    name = f"{service.name}{CONTROLLER_SUFFIX}"
    candidates = Task.get_tasks(
        project_name=service.get_project_name(),
        task_name=f"^{re.escape(name)}$",
        task_filter={"type": ["monitor"], "order_by": ["-last_update"]},
    )
    return candidates[0] if candidates else service


def every_seconds() -> float:
    raw = os.environ.get(EVERY_ENV)
    every = float(raw) if raw else DEFAULT_EVERY_S
    if every < 0:
        raise ValueError(f"{EVERY_ENV} must be 0 (off) or a positive number of seconds, got {raw!r}")
    return every


def service_id() -> str | None:
    """`CLEARML_SERVING_TASK_ID`, else the running local stack's service."""
    if os.environ.get(SERVICE_ID_ENV):
        return os.environ[SERVICE_ID_ENV]
    from serving_local.api import running_stack

    state = running_stack()
    return state.service_id if state else None


def start_reporting(engine: Engine, clock: Callable[[], float] = time.time) -> threading.Event | None:
    """The consumer's hook: report from a daemon thread (ClearML is looked up there: a server that does not
    answer delays the scalars, never the consumer) until the returned event is set; None, with a line saying
    why, when the scalars are off or there is no serving service to report to."""
    every = every_seconds()
    service = service_id()
    if not every or not service:
        reason = f"{EVERY_ENV}=0" if not every else f"no serving service ({SERVICE_ID_ENV}, running stack)"
        print(f"live quality scalars: off ({reason})", flush=True)
        return None
    from asteroid.monitoring import config as monitoring_config

    window = monitoring_config.seconds(monitoring_config.load().window)
    stop = threading.Event()

    def report_to_the_monitoring_task() -> None:
        try:
            task = monitoring_task(service)
        except Exception as exc:  # the consumer goes on storing
            print(f"live quality scalars: off, service {service}: {exc!r}", file=sys.stderr, flush=True)
            return
        print(f"live quality scalars: every {every:g} s to ClearML task {task.id} {task.name!r}", flush=True)
        ScalarReporter(task.get_logger(), engine, window, clock).run(stop, every)

    threading.Thread(target=report_to_the_monitoring_task, name="quality-scalars", daemon=True).start()
    return stop
