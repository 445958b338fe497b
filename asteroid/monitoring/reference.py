"""The training reference of one served model version, read from its release contract
(asteroid/serving/contract.py): served bucket edges and training fractions per feature, the probability
buckets and the served threshold, and the base rate of hazardous objects of the training split; with the
metric names the statistics controller gives that version."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from prometheus_client.utils import floatToGoString

from asteroid.serving.contract import FEATURE_STATISTICS, ReleaseContract


def le_label(edge: float) -> str:
    """The `le` label the statistics controller writes for a bucket edge (prometheus_client's formatting)."""
    return floatToGoString(edge)


def promql_regex(text: str) -> str:
    """`text` matched literally by a PromQL regex matcher (escaped for RE2, then for the string literal)."""
    return re.escape(text).replace("\\", "\\\\")


def metric_prefix(endpoint: str, version: int, variable: str) -> str:
    """clearml-serving's metric name for a statistic of `<endpoint>/<version>` (statistics/metrics.py)."""
    return re.sub(r"[^(a-zA-Z0-9_:)]", "_", f"{endpoint}/{version}:{variable}")


@dataclass(frozen=True)
class FeatureReference:
    name: str
    edges: list[float]  # as served (strictly increasing); a last bucket +Inf follows
    fractions: list[float]  # training fraction per bucket, len(edges) + 1

    @property
    def labels(self) -> list[str]:
        return [le_label(edge) for edge in self.edges] + ["+Inf"]


@dataclass(frozen=True)
class TrainingReference:
    endpoint: str
    version: int
    features: list[FeatureReference]
    base_rate: float  # fraction of hazardous objects in the training split
    release: ReleaseContract

    @property
    def probability_edges(self) -> list[float]:
        return self.release.probability_edges

    @property
    def threshold(self) -> float:
        """The served threshold: a probability at or above it is answered `hazardous`."""
        return self.release.threshold

    def metric(self, variable: str, suffix: str) -> str:
        """The name the statistics controller gives the metric (`asteroid_1:absolute_magnitude_bucket`)."""
        return f"{metric_prefix(self.endpoint, self.version, variable)}{suffix}"

    def selector(self, variable: str, suffix: str) -> str:
        """A PromQL selector for that metric under either name Prometheus may store: prometheus_client 0.26
        writes the ':' as '_' when Prometheus negotiates OpenMetrics (Prometheus 2.42 does), and keeps it in
        the classic text format (`curl /metrics`)."""
        endpoint_part, variable_part = self.metric(variable, suffix).split(":", 1)
        return f'{{__name__=~"{promql_regex(endpoint_part)}[:_]{promql_regex(variable_part)}"}}'

    @property
    def hazardous_labels(self) -> list[str]:
        """`le` labels of the probability buckets above the served threshold (one of the edges)."""
        return [le_label(edge) for edge in self.release.hazardous_edges] + ["+Inf"]


def from_contract(release: ReleaseContract, endpoint: str, version: int) -> TrainingReference:
    """The reference of `<endpoint>/<version>`, released under this contract."""
    spec = release.spec
    fractions = spec.get("bucket_fractions") or {}
    missing = [name for name in FEATURE_STATISTICS if name not in fractions]
    if missing:
        raise ValueError(f"feature_spec has no training fractions for {missing}")
    features = []
    for name in FEATURE_STATISTICS:
        served = release.feature_edges[name]
        values = [float(value) for value in fractions[name]]
        if len(values) != len(served) + 1 or not math.isclose(sum(values), 1.0, abs_tol=1e-6):
            raise ValueError(f"training fractions of {name} do not match its {len(served)} bucket edges")
        features.append(FeatureReference(name, served, values))
    rows, positives = spec["rows"]["train"], spec["positives"]["train"]
    return TrainingReference(endpoint, version, features, positives / rows, release)
