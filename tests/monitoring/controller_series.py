"""Input series for `promtool test rules`, produced by clearml-serving's own statistics classes: the rows of
each scrape step are observed by the controller's `ScalarHistogram` (as `statistics/metrics.py` does for every
request record), the registry is rendered as the `/metrics` page Prometheus scrapes, and every sample of that
page becomes one series with its value per step."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from asteroid.monitoring.reference import PROBABILITY, TrainingReference

SCRAPE_LABELS = {"instance": "127.0.0.1:9999", "job": "clearml-serving-statistics"}


class ControllerSimulation:
    """The statistics controller's metrics for one served version, fed step by step."""

    def __init__(self, reference: TrainingReference) -> None:
        from clearml_serving.statistics.metrics import ScalarHistogram

        self.registry = CollectorRegistry()
        self.histograms = {
            feature.name: ScalarHistogram(
                reference.metric(feature.name, ""),
                feature.name,
                buckets=feature.edges,
                registry=self.registry,
            )
            for feature in reference.features
        }
        self.histograms[PROBABILITY] = ScalarHistogram(
            reference.metric(PROBABILITY, ""),
            PROBABILITY,
            buckets=reference.probability_edges,
            registry=self.registry,
        )
        self.values: dict[str, list[float]] = {}

    def scrape(self) -> dict[str, float]:
        """The /metrics page as Prometheus would read it: series text -> value."""
        page = generate_latest(self.registry).decode()
        samples = {}
        for family in text_string_to_metric_families(page):
            for sample in family.samples:
                labels = {**sample.labels, **SCRAPE_LABELS}
                text = ", ".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
                samples[f"{sample.name}{{{text}}}"] = sample.value
        return samples

    def step(self, rows: pd.DataFrame | None, probabilities: Sequence[float] = ()) -> None:
        """One scrape interval: observe the rows (one list per statistic, as for a batch), then scrape."""
        if rows is not None and len(rows):
            for name, histogram in self.histograms.items():
                if name != PROBABILITY:
                    histogram.observe(rows[name].tolist())
        if len(probabilities):
            self.histograms[PROBABILITY].observe(list(probabilities))
        for series, value in self.scrape().items():
            self.values.setdefault(series, []).append(value)

    def input_series(self) -> list[dict[str, str]]:
        return [
            {"series": series, "values": " ".join(f"{value:.15g}" for value in values)}
            for series, values in self.values.items()
        ]
