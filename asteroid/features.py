"""Model features, the group-aware train/val/test split, feature statistics and histogram buckets."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

import global_config
from asteroid import feature_rows, schema

SPLIT_NAMES = ("train", "val", "test")
FEATURE_SPEC_FILE = "feature_spec.json"
DEFAULT_BUCKETS = global_config.HISTOGRAM_BUCKETS


def build_features(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Model features (snake_case, float64, in `schema.FEATURES` order), label (int 0/1) and groups.

    Accepts the source columns with their original names (CSV or database) or in snake_case. The features
    come from `feature_rows.compute_features`, the same code the serving hook runs on request rows.
    """
    frame = df.rename(columns={column.name: column.snake for column in schema.COLUMNS})
    for name, (low, high) in schema.DERIVED_FEATURES.items():
        # A frame that already holds a derived feature (and not its sources) stands for sources equal to it.
        low, high = schema.snake_case(low), schema.snake_case(high)
        if name in frame and low not in frame and high not in frame:
            frame[low] = frame[high] = frame[name]
    needed = [*feature_rows.SOURCE_COLUMNS, schema.LABEL_NAME, schema.GROUP_NAME]
    missing = [name for name in needed if name not in frame]
    if missing:
        raise ValueError(f"cannot build features: missing column(s) {', '.join(map(repr, missing))}")
    sources = {name: frame[name].astype("float64") for name in feature_rows.SOURCE_COLUMNS}
    features = pd.DataFrame(feature_rows.compute_features(sources)).reset_index(drop=True)
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


def _stratify_key(strata: np.ndarray, n_take: int) -> np.ndarray | None:
    """The finest usable stratification: (label, CNEOS cell), else label alone, else none."""
    for key in (strata, strata // 2):
        counts = np.unique(key, return_counts=True)[1]
        if counts.min() >= 2 and min(n_take, key.size - n_take) >= counts.size:
            return key
    return None


def _allocate(sizes: np.ndarray, n_take: int) -> np.ndarray:
    """Groups to take per stratum: largest-remainder shares summing to `n_take`.

    A stratum with at least two groups keeps one on each side while the total allows it.
    """
    exact = n_take * sizes / sizes.sum()
    take = np.floor(exact).astype(int)
    for index in np.argsort(-(exact - take), kind="stable")[: n_take - take.sum()]:
        take[index] += 1
    low = np.where(sizes >= 2, 1, 0)
    high = np.where(sizes >= 2, sizes - 1, sizes)
    wanted = np.clip(take, low, high)
    # Move the surplus (or deficit) the clipping made onto strata with room, biggest room first.
    while wanted.sum() != n_take:
        step = 1 if wanted.sum() < n_take else -1
        room = (high - wanted) if step == 1 else (wanted - low)
        if room.max() <= 0:
            bound = sizes if step == 1 else np.zeros_like(sizes)
            room = np.abs(bound - wanted)
            if room.max() <= 0:
                break
        wanted[int(np.argmax(room))] += step
    return wanted


def _split_groups(
    group_ids: np.ndarray, strata: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split distinct groups, stratified; returns (rest ids, rest strata, taken ids, taken strata).

    Exactly `n_take` groups are taken: per stratum a seeded permutation, its share by largest remainder.
    """
    n_take = min(max(1, math.ceil(fraction * group_ids.size)), group_ids.size - 1)
    key = _stratify_key(strata, n_take)
    if key is None:
        key = np.zeros_like(strata)
    rng = np.random.default_rng(seed)
    values, inverse, sizes = np.unique(key, return_inverse=True, return_counts=True)
    quotas = _allocate(sizes, n_take)
    taken_mask = np.zeros(group_ids.size, dtype=bool)
    for index in range(values.size):
        members = np.flatnonzero(inverse == index)
        taken_mask[rng.permutation(members)[: quotas[index]]] = True
    return group_ids[~taken_mask], strata[~taken_mask], group_ids[taken_mask], strata[taken_mask]


def group_strata(features: pd.DataFrame, labels: pd.Series, groups: pd.Series) -> pd.Series:
    """Per group: 2 * ever hazardous + ever inside the CNEOS cell (0 when H or MOID is not a feature)."""
    label = labels.groupby(groups.to_numpy()).max().astype(int)
    if {"minimum_orbit_intersection", "absolute_magnitude"} <= set(features.columns):
        inside = schema.cneos_rule(features["minimum_orbit_intersection"], features["absolute_magnitude"])
        cell = pd.Series(inside, index=features.index).groupby(groups.to_numpy()).max().astype(int)
    else:
        cell = label * 0
    return 2 * label + cell


def group_split(
    features: pd.DataFrame,
    labels: pd.Series,
    groups: pd.Series,
    seed: int,
    val_fraction: float = global_config.VAL_FRACTION,
    test_fraction: float = global_config.TEST_FRACTION,
) -> Split:
    """Split by asteroid so none appears on two sides. Fractions are of asteroids. Deterministic per seed.

    Asteroids are stratified by label and by whether the CNEOS rule calls them hazardous, so every part
    gets its share of positives and of the few asteroids whose label contradicts the rule (label noise
    near H = 22); without that, a test set holding several of them swings recall by several points.
    """
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"fractions must be in (0, 1) and sum below 1; got {val_fraction}, {test_fraction}")
    if not len(features) == len(labels) == len(groups):
        raise ValueError(
            f"lengths differ: {len(features)} features, {len(labels)} labels, {len(groups)} groups"
        )
    features, labels, groups = (x.reset_index(drop=True) for x in (features, labels, groups))
    strata = group_strata(features, labels, groups)
    if len(strata) < 3:
        raise ValueError(f"need at least 3 distinct groups to split, got {len(strata)}")

    rest, rest_strata, test_ids, _ = _split_groups(
        strata.index.to_numpy(), strata.to_numpy(), test_fraction, seed
    )
    train_ids, _, val_ids, _ = _split_groups(rest, rest_strata, val_fraction / (1 - test_fraction), seed + 1)

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


def usable_buckets(edges: list[float]) -> list[float]:
    """The bucket edges clearml-serving gets: strictly increasing, at least two (its histogram needs two)."""
    edges = sorted(set(edges))
    return edges if len(edges) >= 2 else [edges[0], edges[0] + 1.0]


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
            "edges": usable_buckets(edges[name]),
            "fractions": bucket_fractions(train_features[name], usable_buckets(edges[name])),
        }
        for name in train_features.columns
    }


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
        # The drift reference: training fraction per served bucket (edges as served, then +Inf).
        "bucket_fractions": {
            name: reference["fractions"]
            for name, reference in training_reference(split.train.features, n_buckets).items()
        },
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
