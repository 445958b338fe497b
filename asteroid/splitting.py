"""The group-aware train/validation/test split: no asteroid on two sides, stratified by label and by the
CNEOS cell, deterministic per seed, without scikit-learn."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

import global_config
from asteroid import schema

SPLIT_NAMES = ("train", "val", "test")


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
