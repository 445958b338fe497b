"""The training reference of one served model version: bucket edges and training fractions per feature (from
the split's ``feature_spec``) and the base rate of hazardous objects, with the metric names the statistics
controller gives that version."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from prometheus_client.utils import floatToGoString

from asteroid import schema

PROBABILITY = "probability"  # the predicted probability's statistic (see asteroid/serving/deploy.py)


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
    probability_edges: list[float]

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
        """`le` labels of the probability buckets above the decision threshold."""
        return [le_label(e) for e in self.probability_edges if e > schema.HAZARD_THRESHOLD] + ["+Inf"]


def from_feature_spec(
    spec: dict, endpoint: str, version: int, probability_edges: list[float]
) -> TrainingReference:
    """Read the reference from a split's feature_spec (`asteroid.features.save_split`)."""
    from asteroid.features import usable_buckets

    fractions = spec.get("bucket_fractions") or {}
    edges = spec.get("bucket_edges") or {}
    missing = [name for name in schema.FEATURES if name not in fractions or name not in edges]
    if missing:
        raise ValueError(f"feature_spec has no bucket edges or training fractions for {missing}")
    features = []
    for name in schema.FEATURES:
        served = usable_buckets([float(edge) for edge in edges[name]])
        values = [float(value) for value in fractions[name]]
        if len(values) != len(served) + 1 or not math.isclose(sum(values), 1.0, abs_tol=1e-6):
            raise ValueError(f"training fractions of {name} do not match its {len(served)} bucket edges")
        features.append(FeatureReference(name, served, values))
    rows, positives = spec["rows"]["train"], spec["positives"]["train"]
    return TrainingReference(endpoint, version, features, positives / rows, list(probability_edges))
