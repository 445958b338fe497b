"""Live quality figures for Prometheus, computed from the database at each scrape by the consumer's exporter
(`python -m asteroid.quality consume --metrics-port N`).

Per endpoint and model version (labels `endpoint`, `version`, as the drift rules': `asteroid`, `1`), gauges:

- `asteroid_quality_predictions`: predictions stored (within the retention);
- `asteroid_quality_labelled`: of those, the ones with a label (coverage = labelled / predictions);
- over the labels received in the last window (`window` seconds, the monitoring window:
  asteroid/monitoring/config.py), `asteroid_quality_window_labelled`, `asteroid_quality_window_correct`,
  `asteroid_quality_window_outcomes{outcome="true_positive|false_positive|true_negative|false_negative"}` and
  `asteroid_quality_window_label_delay_seconds` (mean time from answer to label);
- without labels: `asteroid_quality_unmatched_labels{kind="request_id|catalogue"}` and
  `asteroid_quality_label_revisions`.

Gauges, not counters: a revision moves a prediction from one outcome to another and retention deletes old
rows, so the counts go down as well as up. The window is applied here, by label arrival time, because labels
arrive late and in bulk: "labels received in the last hour" is what a recall alert should judge.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from asteroid.quality import store

PREDICTIONS = "asteroid_quality_predictions"
LABELLED = "asteroid_quality_labelled"
WINDOW_LABELLED = "asteroid_quality_window_labelled"
WINDOW_CORRECT = "asteroid_quality_window_correct"
WINDOW_OUTCOMES = "asteroid_quality_window_outcomes"
WINDOW_LABEL_DELAY = "asteroid_quality_window_label_delay_seconds"
UNMATCHED = "asteroid_quality_unmatched_labels"
REVISIONS = "asteroid_quality_label_revisions"
EXPORTED = (
    PREDICTIONS, LABELLED, WINDOW_LABELLED, WINDOW_CORRECT, WINDOW_OUTCOMES, WINDOW_LABEL_DELAY,
    UNMATCHED, REVISIONS,
)  # fmt: skip
# The drift rules' labels: `endpoint` without the version, `version` (asteroid/monitoring/rules.py).
VERSION_LABELS = ("endpoint", "version")
OUTCOME_LABEL = "outcome"
TRUE_POSITIVE, FALSE_POSITIVE = "true_positive", "false_positive"
TRUE_NEGATIVE, FALSE_NEGATIVE = "true_negative", "false_negative"


class QualityCollector(Collector):
    """Reads the quality counts at each scrape (one query for all labels, one for the window's)."""

    def __init__(self, engine: Engine, window_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.window_seconds = window_seconds
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        since = self.clock() - self.window_seconds
        with self.engine.connect() as connection:
            stored = store.quality_counts(connection)
            window = store.quality_counts(connection, labelled_since=since)
            labels = store.label_counts(connection)
        yield from _stored_families(stored)
        yield from _window_families(window, self.window_seconds)
        unmatched = GaugeMetricFamily(UNMATCHED, "Labels matching no stored prediction", labels=["kind"])
        unmatched.add_metric(["request_id"], labels.unmatched)
        unmatched.add_metric(["catalogue"], labels.catalogue_unmatched)
        yield unmatched
        yield GaugeMetricFamily(REVISIONS, "Labels that replaced an earlier label", value=labels.revisions)


def version_labels(row: store.QualityCounts) -> list[str]:
    """[endpoint, version]: the served URL `asteroid/1` the hook records, split as the drift rules label."""
    return [endpoint_label(row.endpoint, row.model_version), row.model_version]


def endpoint_label(url: str, version: str) -> str:
    """The `endpoint` label of a served URL (`asteroid/1` of version 1 -> `asteroid`)."""
    suffix = f"/{version}"
    return url[: -len(suffix)] if version and url.endswith(suffix) else url


def _stored_families(counts: list[store.QualityCounts]) -> Iterator[GaugeMetricFamily]:
    predictions = GaugeMetricFamily(PREDICTIONS, "Predictions stored", labels=VERSION_LABELS)
    labelled = GaugeMetricFamily(LABELLED, "Stored predictions with a label", labels=VERSION_LABELS)
    for row in counts:
        predictions.add_metric(version_labels(row), row.predictions)
        labelled.add_metric(version_labels(row), row.labelled)
    yield predictions
    yield labelled


def _window_families(counts: list[store.QualityCounts], window: float) -> Iterator[GaugeMetricFamily]:
    where = f"labels received in the last {window:g} s"
    labelled = GaugeMetricFamily(WINDOW_LABELLED, f"Labelled predictions, {where}", labels=VERSION_LABELS)
    correct = GaugeMetricFamily(WINDOW_CORRECT, f"Correct predictions, {where}", labels=VERSION_LABELS)
    outcomes = GaugeMetricFamily(
        WINDOW_OUTCOMES, f"Confusion counts, {where}", labels=[*VERSION_LABELS, OUTCOME_LABEL]
    )
    delay = GaugeMetricFamily(
        WINDOW_LABEL_DELAY, f"Mean seconds from answer to label, {where}", labels=VERSION_LABELS
    )
    for row in counts:
        version = version_labels(row)
        labelled.add_metric(version, row.labelled)
        correct.add_metric(version, row.correct)
        for outcome, value in (
            (TRUE_POSITIVE, row.true_positives),
            (FALSE_POSITIVE, row.false_positives),
            (TRUE_NEGATIVE, row.true_negatives),
            (FALSE_NEGATIVE, row.false_negatives),
        ):
            outcomes.add_metric([*version, outcome], value)
        if row.labelled:
            delay.add_metric(version, row.label_delay_seconds_sum / row.labelled)
    yield from (labelled, correct, outcomes, delay)
