"""Input series for `promtool test rules`, produced by clearml-serving's own statistics classes: the rows of
each scrape step are observed by the controller's `ScalarHistogram` (as `statistics/metrics.py` does for every
request record), the registry is rendered as the `/metrics` page for the Accept header Prometheus 2.42 sends
(prometheus_client then answers OpenMetrics and writes the names' ':' as '_'), or as the classic text format
(`curl`), and every sample of that page becomes one series with its value per step."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pandas as pd
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from asteroid.monitoring.reference import TrainingReference
from asteroid.serving.contract import PROBABILITY

SCRAPE_LABELS = {"instance": "127.0.0.1:9999", "job": "clearml-serving-statistics"}
# What Prometheus 2.42 asks a target for (scrape/scrape.go), and what `curl` gets.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
CURL_ACCEPT = "*/*"
SAMPLE_LINE = re.compile(r"^(?P<name>[^{\s]+)(?:\{(?P<labels>[^}]*)\})? (?P<value>\S+)")
LABEL = re.compile(r'(\w+)="([^"]*)"')


def page_samples(page: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample line of a /metrics page, in either format."""
    samples = []
    for line in page.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        match = SAMPLE_LINE.match(line)
        assert match, f"not a sample line: {line!r}"
        labels = dict(LABEL.findall(match.group("labels") or ""))
        samples.append((match.group("name"), labels, float(match.group("value"))))
    return samples


class ControllerSimulation:
    """The statistics controller's metrics for one served version, fed step by step."""

    def __init__(self, reference: TrainingReference, accept: str = PROMETHEUS_ACCEPT) -> None:
        self.accept = accept
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

    def scrape_page(self) -> str:
        """The /metrics page, as the controller's HTTP server renders it for this Accept header."""
        encoder, _ = choose_encoder(self.accept)
        return encoder(self.registry).decode()

    def scrape(self) -> dict[str, float]:
        """The /metrics page as Prometheus stores it: series text -> value."""
        samples = {}
        for name, labels, value in page_samples(self.scrape_page()):
            text = ", ".join(f'{key}="{value}"' for key, value in sorted({**labels, **SCRAPE_LABELS}.items()))
            samples[f"{name}{{{text}}}"] = value
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

    def bucket_values(self, metric: str, le: str) -> list[float]:
        """Values per step of one bucket series, under whichever name this page format gives the metric."""
        for name in (metric, metric.replace(":", "_")):
            key = ", ".join(f'{k}="{v}"' for k, v in sorted({**SCRAPE_LABELS, "le": le}.items()))
            if f"{name}{{{key}}}" in self.values:
                return self.values[f"{name}{{{key}}}"]
        raise KeyError(f"no series {metric} le={le}")

    def input_series(self) -> list[dict[str, str]]:
        return [
            {"series": series, "values": " ".join(f"{value:.15g}" for value in values)}
            for series, values in self.values.items()
        ]
