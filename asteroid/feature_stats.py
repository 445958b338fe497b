"""Statistics of the training features: a summary table per feature, and the histogram buckets the served
version counts live traffic in (training quantiles) with the training fraction per bucket, the drift
reference the monitoring rules compare live fractions with. The edges are served as the release contract
serves them (`asteroid.serving.contract.served_edges`)."""

from __future__ import annotations

import numpy as np
import pandas as pd

import global_config
from asteroid.serving.contract import served_edges

DEFAULT_BUCKETS = global_config.HISTOGRAM_BUCKETS


def feature_statistics(df: pd.DataFrame) -> pd.DataFrame:
    """Per numeric column: count, missing, mean, std, min, p01, p05, p25, p50, p75, p95, p99, max."""
    numeric = df.select_dtypes(include="number")
    quantiles = {"p01": 0.01, "p05": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95, "p99": 0.99}
    stats = pd.DataFrame(
        {
            "count": numeric.count(),
            "missing": numeric.isna().sum(),
            "mean": numeric.mean(),
            "std": numeric.std(),
            "min": numeric.min(),
            **{name: numeric.quantile(q) for name, q in quantiles.items()},
            "max": numeric.max(),
        }
    )
    stats.index.name = "feature"
    return stats


def bucket_edges(train_features: pd.DataFrame, n_buckets: int = DEFAULT_BUCKETS) -> dict[str, list[float]]:
    """Histogram bucket upper bounds per feature: training quantiles 0, 1/n, ..., 1, rounded to 6
    significant digits, finite, deduplicated and strictly increasing (Prometheus adds +Inf itself)."""
    if n_buckets < 1:
        raise ValueError(f"n_buckets must be >= 1, got {n_buckets}")
    edges: dict[str, list[float]] = {}
    for name in train_features.columns:
        values = pd.to_numeric(train_features[name], errors="coerce").to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        if values.size == 0:
            raise ValueError(f"feature {name!r} has no finite training values")
        quantiles = np.quantile(values, np.linspace(0.0, 1.0, n_buckets + 1))
        rounded = [float(f"{q:.6g}") for q in quantiles]
        edges[name] = sorted(set(rounded))
    return edges


def bucket_fractions(values: pd.Series, edges: list[float]) -> list[float]:
    """Fraction of the values per bucket as clearml-serving's statistics controller counts them: each value in
    the first bucket with value <= edge (non-cumulative), one more bucket (+Inf) for values above the last
    edge. Returns len(edges) + 1 fractions summing to 1; non-finite values are left out."""
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    numbers = numbers[np.isfinite(numbers)]
    if numbers.size == 0:
        raise ValueError("no finite values to count")
    index = np.searchsorted(np.asarray(edges, dtype=float), numbers, side="left")
    counts = np.bincount(index, minlength=len(edges) + 1)
    return [float(count) / numbers.size for count in counts]


def training_reference(train_features: pd.DataFrame, n_buckets: int = DEFAULT_BUCKETS) -> dict[str, dict]:
    """Per feature: the served bucket edges and the training fraction per bucket (the drift reference)."""
    edges = bucket_edges(train_features, n_buckets)
    return {
        name: {
            "edges": served_edges(edges[name]),
            "fractions": bucket_fractions(train_features[name], served_edges(edges[name])),
        }
        for name in train_features.columns
    }
