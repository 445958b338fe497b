"""Model features, the group-aware train/val/test split, feature statistics and histogram buckets."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from asteroid import schema

SPLIT_NAMES = ("train", "val", "test")
FEATURE_SPEC_FILE = "feature_spec.json"
DEFAULT_BUCKETS = 10


def build_features(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Model features (snake_case, float64, in `schema.FEATURES` order), label (int 0/1) and groups.

    Accepts the source columns with their original names (CSV or database) or in snake_case.
    """
    frame = df.rename(columns={column.name: column.snake for column in schema.COLUMNS})
    for name, (low, high) in schema.DERIVED_FEATURES.items():
        low, high = schema.snake_case(low), schema.snake_case(high)
        if name not in frame and low in frame and high in frame:
            frame[name] = (frame[low] + frame[high]) / 2.0
    needed = [*schema.FEATURES, schema.LABEL_NAME, schema.GROUP_NAME]
    missing = [name for name in needed if name not in frame]
    if missing:
        raise ValueError(f"cannot build features: missing column(s) {', '.join(map(repr, missing))}")
    features = frame[list(schema.FEATURES)].astype("float64").reset_index(drop=True)
    labels = frame[schema.LABEL_NAME].astype(bool).astype("int64").reset_index(drop=True)
    groups = frame[schema.GROUP_NAME].astype("int64").reset_index(drop=True)
    return features, labels.rename(schema.LABEL_NAME), groups.rename(schema.GROUP_NAME)


@dataclass(frozen=True)
class SplitPart:
    """One side of a split: aligned features, labels and groups."""

    features: pd.DataFrame
    labels: pd.Series
    groups: pd.Series

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def positives(self) -> int:
        return int(self.labels.sum())

    def to_frame(self) -> pd.DataFrame:
        return pd.concat([self.features, self.labels, self.groups], axis=1)


@dataclass
class Split:
    """Train/validation/test parts with no asteroid (group) on two sides."""

    train: SplitPart
    val: SplitPart
    test: SplitPart
    feature_names: list[str] = field(default_factory=lambda: list(schema.FEATURES))
    seed: int | None = None

    def parts(self) -> dict[str, SplitPart]:
        return {"train": self.train, "val": self.val, "test": self.test}

    def summary(self) -> dict[str, dict[str, int]]:
        """Rows, positives and distinct groups per part."""
        return {
            name: {"rows": len(part), "positives": part.positives, "groups": int(part.groups.nunique())}
            for name, part in self.parts().items()
        }


def _split_groups(
    group_ids: np.ndarray, group_labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split distinct groups, stratified on the group label when each class has enough groups."""
    n_take = max(1, math.ceil(fraction * len(group_ids)))
    counts = np.bincount(group_labels, minlength=2)
    stratify = group_labels if counts.min() >= 2 and min(n_take, len(group_ids) - n_take) >= 2 else None
    rest, taken = train_test_split(group_ids, test_size=n_take, random_state=seed, stratify=stratify)
    return np.asarray(rest), np.asarray(taken)


def group_split(
    features: pd.DataFrame,
    labels: pd.Series,
    groups: pd.Series,
    seed: int,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
) -> Split:
    """Split by asteroid so none appears on two sides; fractions are of asteroids, stratified by whether an
    asteroid is ever hazardous, so every part gets its share of positives. Deterministic for a seed."""
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"fractions must be in (0, 1) and sum below 1; got {val_fraction}, {test_fraction}")
    if not len(features) == len(labels) == len(groups):
        raise ValueError(
            f"lengths differ: {len(features)} features, {len(labels)} labels, {len(groups)} groups"
        )
    features, labels, groups = (x.reset_index(drop=True) for x in (features, labels, groups))
    by_group = labels.groupby(groups.to_numpy()).max()
    if len(by_group) < 3:
        raise ValueError(f"need at least 3 distinct groups to split, got {len(by_group)}")
    group_ids, group_labels = by_group.index.to_numpy(), by_group.to_numpy().astype(int)

    rest, test_ids = _split_groups(group_ids, group_labels, test_fraction, seed)
    rest_labels = by_group.loc[rest].to_numpy().astype(int)
    train_ids, val_ids = _split_groups(rest, rest_labels, val_fraction / (1 - test_fraction), seed + 1)

    def part(ids: np.ndarray) -> SplitPart:
        mask = groups.isin(ids).to_numpy()
        return SplitPart(
            features[mask].reset_index(drop=True),
            labels[mask].reset_index(drop=True),
            groups[mask].reset_index(drop=True),
        )

    return Split(part(train_ids), part(val_ids), part(test_ids), list(features.columns), seed)


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


# --- persistence: a split travels between pipeline steps as a directory of files ---------------------


def save_split(split: Split, directory: str | Path, n_buckets: int = DEFAULT_BUCKETS) -> Path:
    """Write train.csv, val.csv, test.csv (features + label + group) and feature_spec.json."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, part in split.parts().items():
        part.to_frame().to_csv(directory / f"{name}.csv", index=False)
    spec = {
        "feature_names": list(split.feature_names),
        "label": schema.LABEL_NAME,
        "group": schema.GROUP_NAME,
        "seed": split.seed,
        "rows": {name: len(part) for name, part in split.parts().items()},
        "positives": {name: part.positives for name, part in split.parts().items()},
        "bucket_edges": bucket_edges(split.train.features, n_buckets),
    }
    (directory / FEATURE_SPEC_FILE).write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    return directory


def load_feature_spec(directory: str | Path) -> dict:
    """The feature_spec.json written by `save_split`."""
    path = Path(directory) / FEATURE_SPEC_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {FEATURE_SPEC_FILE} in {directory}: not a saved split")
    return json.loads(path.read_text(encoding="utf-8"))


def load_split(directory: str | Path) -> Split:
    """Read a split written by `save_split`, checking it against its feature_spec.json."""
    directory = Path(directory)
    spec = load_feature_spec(directory)
    names = list(spec["feature_names"])
    parts = {}
    for split_name in SPLIT_NAMES:
        frame = pd.read_csv(directory / f"{split_name}.csv")
        expected = [*names, spec["label"], spec["group"]]
        if list(frame.columns) != expected:
            raise ValueError(
                f"{split_name}.csv columns {list(frame.columns)} differ from the spec {expected}"
            )
        if len(frame) != spec["rows"][split_name]:
            raise ValueError(f"{split_name}.csv has {len(frame)} rows, spec says {spec['rows'][split_name]}")
        parts[split_name] = SplitPart(
            frame[names].astype("float64"),
            frame[spec["label"]].astype("int64"),
            frame[spec["group"]].astype("int64"),
        )
    return Split(parts["train"], parts["val"], parts["test"], names, spec.get("seed"))
