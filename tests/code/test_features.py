"""Feature building, the group split, statistics, bucket edges and split persistence."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from asteroid import feature_stats, features, schema, split_files, splitting


@pytest.fixture(scope="module")
def built(sample_frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    return features.build_features(sample_frame)


@pytest.fixture(scope="module")
def split(built: tuple[pd.DataFrame, pd.Series, pd.Series]) -> splitting.Split:
    return splitting.group_split(*built, seed=3)


def test_build_features(sample_frame: pd.DataFrame, built: tuple[pd.DataFrame, pd.Series, pd.Series]) -> None:
    x, y, groups = built
    assert list(x.columns) == list(schema.FEATURES)
    assert (x.dtypes == "float64").all()
    assert len(x) == len(y) == len(groups) == len(sample_frame)
    assert y.name == "hazardous" and set(y.unique()) == {0, 1} and y.dtype == "int64"
    assert groups.name == "neo_reference_id"
    assert (groups.to_numpy() == sample_frame["Neo Reference ID"].to_numpy()).all()
    average = (sample_frame["Est Dia in KM(min)"] + sample_frame["Est Dia in KM(max)"]) / 2
    assert np.allclose(x["est_dia_km_avg"], average)
    assert y.sum() == sample_frame["Hazardous"].sum()


def test_build_features_accepts_snake_case_columns(sample_frame: pd.DataFrame) -> None:
    snake = sample_frame.rename(columns=schema.snake_case)
    x, y, _ = features.build_features(snake)
    pd.testing.assert_frame_equal(x, features.build_features(sample_frame)[0])
    assert y.sum() == sample_frame["Hazardous"].sum()


def test_build_features_names_missing_columns(sample_frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="'eccentricity'"):
        features.build_features(sample_frame.drop(columns=["Eccentricity"]))


def test_split_has_no_group_leakage_and_covers_all_rows(split: splitting.Split, built) -> None:
    sides = [set(part.groups) for part in split.parts().values()]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    assert sum(len(part) for part in split.parts().values()) == len(built[0])
    for part in split.parts().values():
        assert len(part.features) == len(part.labels) == len(part.groups)
        assert list(part.features.columns) == list(schema.FEATURES)


def test_split_sizes_and_positives(split: splitting.Split, built) -> None:
    n_groups = built[2].nunique()
    summary = split.summary()
    assert summary["test"]["groups"] == math.ceil(0.15 * n_groups)
    assert summary["val"]["groups"] == pytest.approx(0.15 * n_groups, abs=2)
    overall = built[1].mean()
    for name, part in split.parts().items():
        assert part.positives > 0, name
        assert part.labels.mean() == pytest.approx(overall, abs=0.04), name


def test_split_is_deterministic_per_seed(built) -> None:
    first = splitting.group_split(*built, seed=5)
    again = splitting.group_split(*built, seed=5)
    other = splitting.group_split(*built, seed=6)
    assert set(first.test.groups) == set(again.test.groups)
    pd.testing.assert_frame_equal(first.train.features, again.train.features)
    assert set(first.test.groups) != set(other.test.groups)


def test_split_on_tiny_data_without_enough_positives() -> None:
    x = pd.DataFrame({name: np.arange(8.0) for name in schema.FEATURES})
    y = pd.Series([0, 0, 0, 0, 0, 0, 0, 1])
    groups = pd.Series([1, 1, 2, 3, 4, 5, 6, 7])
    split = splitting.group_split(x, y, groups, seed=0, val_fraction=0.2, test_fraction=0.2)
    assert sum(len(p) for p in split.parts().values()) == 8
    assert all(len(p) > 0 for p in split.parts().values())


@pytest.mark.parametrize(("val", "test"), [(0, 0.2), (0.5, 0.5), (0.2, 1.2)])
def test_split_rejects_bad_fractions(built, val: float, test: float) -> None:
    with pytest.raises(ValueError, match="fractions"):
        splitting.group_split(*built, seed=0, val_fraction=val, test_fraction=test)


def test_feature_statistics(built) -> None:
    x = built[0]
    stats = feature_stats.feature_statistics(x)
    assert list(stats.index) == list(x.columns)
    assert {"count", "missing", "mean", "std", "min", "p05", "p50", "p95", "max"} <= set(stats.columns)
    row = stats.loc["absolute_magnitude"]
    assert row["min"] <= row["p05"] <= row["p50"] <= row["p95"] <= row["max"]
    assert row["count"] == len(x) and row["missing"] == 0
    assert row["mean"] == pytest.approx(x["absolute_magnitude"].mean())


def test_bucket_edges_are_finite_strictly_increasing_quantiles(split: splitting.Split) -> None:
    edges = feature_stats.bucket_edges(split.train.features, n_buckets=10)
    assert list(edges) == list(schema.FEATURES)
    for name, values in edges.items():
        assert all(np.isfinite(values)), name
        assert all(b > a for a, b in itertools.pairwise(values)), name
        assert len(values) <= 11
        column = split.train.features[name]
        assert values[0] == pytest.approx(column.min(), rel=1e-5)
        assert values[-1] == pytest.approx(column.max(), rel=1e-5)
    # A continuous feature gets every quantile; a 0..9 code collapses to its distinct values.
    assert len(edges["absolute_magnitude"]) >= 10
    assert len(edges["orbit_uncertainity"]) <= 10


def test_bucket_edges_edge_cases() -> None:
    frame = pd.DataFrame({"constant": [3.0] * 5, "with_nan": [1.0, np.nan, np.inf, 2.0, 3.0]})
    edges = feature_stats.bucket_edges(frame, n_buckets=4)
    assert edges["constant"] == [3.0]
    assert edges["with_nan"] == [1.0, 1.5, 2.0, 2.5, 3.0]
    with pytest.raises(ValueError, match="no finite"):
        feature_stats.bucket_edges(pd.DataFrame({"empty": [np.nan]}))
    with pytest.raises(ValueError, match="n_buckets"):
        feature_stats.bucket_edges(frame, n_buckets=0)


def test_save_and_load_split(split: splitting.Split, tmp_path: Path) -> None:
    directory = split_files.save_split(split, tmp_path / "split", n_buckets=5)
    assert {p.name for p in directory.iterdir()} == {
        "train.parquet",
        "val.parquet",
        "test.parquet",
        "feature_spec.json",
    }
    spec = json.loads((directory / "feature_spec.json").read_text())
    assert spec["feature_names"] == list(schema.FEATURES)
    assert spec["rows"] == {name: len(part) for name, part in split.parts().items()}
    assert spec["bucket_edges"] == feature_stats.bucket_edges(split.train.features, 5)
    loaded = split_files.load_split(directory)
    for name, part in split.parts().items():
        other = loaded.parts()[name]
        pd.testing.assert_frame_equal(other.features, part.features)  # floats round-trip exactly
        pd.testing.assert_series_equal(other.labels, part.labels)
        pd.testing.assert_series_equal(other.groups, part.groups)
    assert loaded.seed == split.seed


def test_split_written_as_csv_by_an_earlier_release_loads_the_same(
    split: splitting.Split, tmp_path: Path
) -> None:
    directory = split_files.save_split(split, tmp_path / "split")
    for name, part in split.parts().items():
        (directory / f"{name}.parquet").unlink()
        part.to_frame().to_csv(directory / f"{name}.csv", index=False)  # as save_split wrote it before
    loaded = split_files.load_split(directory)
    for name, part in split.parts().items():
        pd.testing.assert_frame_equal(loaded.parts()[name].features, part.features)
        pd.testing.assert_series_equal(loaded.parts()[name].labels, part.labels)


def test_load_split_detects_tampering(split: splitting.Split, tmp_path: Path) -> None:
    directory = split_files.save_split(split, tmp_path / "split")
    test_file = directory / "test.parquet"
    frame = pd.read_parquet(test_file)
    frame.iloc[:-1].to_parquet(test_file, index=False)
    with pytest.raises(ValueError, match="rows"):
        split_files.load_split(directory)
    frame.drop(columns=["inclination"]).to_parquet(test_file, index=False)
    with pytest.raises(ValueError, match="columns"):
        split_files.load_split(directory)
    with pytest.raises(FileNotFoundError, match=r"feature_spec\.json"):
        split_files.load_split(tmp_path)


def _strata_frame(n_groups: int, seed: int) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """Groups of 1-3 rows with random labels and features; a few groups contradict the CNEOS cell."""
    rng = np.random.default_rng(seed)
    group_of_row = np.repeat(np.arange(n_groups), rng.integers(1, 4, n_groups))
    x = pd.DataFrame({name: rng.random(group_of_row.size) for name in schema.FEATURES})
    inside = rng.random(n_groups) < 0.3
    x["minimum_orbit_intersection"] = np.where(inside[group_of_row], 0.01, 0.3)
    x["absolute_magnitude"] = 20.0
    hazardous = np.where(rng.random(n_groups) < 0.1, ~inside, inside)
    return x, pd.Series(hazardous[group_of_row].astype(int)), pd.Series(group_of_row)


def test_split_takes_exact_group_fractions_and_keeps_strata() -> None:
    x, y, groups = _strata_frame(1000, seed=1)
    split = splitting.group_split(x, y, groups, seed=4, val_fraction=0.15, test_fraction=0.15)
    sides = [set(part.groups) for part in split.parts().values()]
    assert all(not (a & b) for a, b in itertools.combinations(sides, 2))
    assert len(sides[2]) == 150 and len(sides[1]) == 150 and len(sides[0]) == 700
    strata = splitting.group_strata(x, y, groups)
    for ids in sides:
        share = len(ids) / len(strata)
        for value in range(4):
            count = int((strata.loc[sorted(ids)] == value).sum())
            assert abs(count - share * (strata == value).sum()) <= 1, value


def test_split_differs_between_seeds_and_repeats_per_seed() -> None:
    x, y, groups = _strata_frame(200, seed=2)
    runs = [splitting.group_split(x, y, groups, seed=seed) for seed in (0, 0, 1)]
    assert set(runs[0].test.groups) == set(runs[1].test.groups)
    assert set(runs[0].val.groups) == set(runs[1].val.groups)
    assert set(runs[0].test.groups) != set(runs[2].test.groups)


@pytest.mark.parametrize("n_groups", [3, 4, 5])
def test_split_of_a_few_groups_fills_every_part(n_groups: int) -> None:
    x, y, groups = _strata_frame(n_groups, seed=n_groups)
    split = splitting.group_split(x, y, groups, seed=0)
    assert all(part.groups.nunique() >= 1 for part in split.parts().values())
    assert sum(part.groups.nunique() for part in split.parts().values()) == n_groups


def test_split_does_not_import_sklearn() -> None:
    import subprocess
    import sys

    code = (
        "import sys, pandas as pd; from asteroid import schema, splitting\n"
        "x = pd.DataFrame({n: [float(i) for i in range(9)] for n in schema.FEATURES})\n"
        "splitting.group_split(x, pd.Series([0, 1] * 4 + [1]), pd.Series(range(9)), seed=0)\n"
        "print('sklearn' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
