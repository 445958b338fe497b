"""The sample generator: same schema and formats as nasa.csv, physically consistent, labelled like CNEOS."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from asteroid import database, sample_data, schema
from tests.conftest import SAMPLE_ROWS


def _rel_close(actual: pd.Series, expected: pd.Series | np.ndarray, rtol: float) -> bool:
    return bool(
        np.allclose(actual.to_numpy(dtype=float), np.asarray(expected, dtype=float), rtol=rtol, atol=0)
    )


def test_columns_and_dtypes_match_schema(sample_frame: pd.DataFrame) -> None:
    assert list(sample_frame.columns) == list(schema.COLUMN_NAMES)
    assert {name: str(dtype) for name, dtype in sample_frame.dtypes.items()} == schema.dtypes()
    assert len(sample_frame) == SAMPLE_ROWS


def test_csv_reads_back_identically_with_nasa_dtypes(sample_frame: pd.DataFrame, sample_csv: Path) -> None:
    back = pd.read_csv(sample_csv)
    pd.testing.assert_frame_equal(back, sample_frame)


def test_schema_and_csv_match_the_real_table(
    nasa_csv: Path, nasa_frame: pd.DataFrame, sample_csv: Path
) -> None:
    assert list(nasa_frame.columns) == list(schema.COLUMN_NAMES)
    assert {name: str(dtype) for name, dtype in nasa_frame.dtypes.items()} == schema.dtypes()
    generated = pd.read_csv(sample_csv)
    assert list(generated.columns) == list(nasa_frame.columns)
    assert (generated.dtypes == nasa_frame.dtypes).all()
    with nasa_csv.open() as real, sample_csv.open() as sample:
        assert next(real) == next(sample)  # byte-identical header


def test_text_formats_follow_nasa(sample_csv: Path) -> None:
    with sample_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert all(row["Minimum Orbit Intersection"].startswith(".") for row in rows)
    assert all(row["Eccentricity"].startswith(".") for row in rows)
    assert {row["Hazardous"] for row in rows} == {"True", "False"}
    assert all(len(row["Close Approach Date"]) == 10 for row in rows)
    assert all(len(row["Orbit Determination Date"]) == 19 for row in rows)
    assert not any("e-" in value for row in rows for value in row.values())  # no exponent notation
    assert any("." not in row["Miss Dist.(kilometers)"] for row in rows)  # integral values lose ".0"


def test_all_rows_pass_the_loader_validation(sample_frame: pd.DataFrame) -> None:
    _, reasons = database.validate_frame(sample_frame.astype(str))
    assert reasons.map(len).sum() == 0


def test_orbits_are_physically_consistent(sample_frame: pd.DataFrame) -> None:
    f = sample_frame
    a, e = f["Semi Major Axis"], f["Eccentricity"]
    assert ((e >= 0) & (e < 1)).all()
    assert _rel_close(f["Perihelion Distance"], a * (1 - e), 1e-12)
    assert _rel_close(f["Aphelion Dist"], a * (1 + e), 1e-12)
    assert (f["Perihelion Distance"] <= 1.3).all()
    assert _rel_close(f["Orbital Period"], 365.25 * a**1.5, 1e-12)
    assert _rel_close(f["Mean Motion"], 360.0 / f["Orbital Period"], 1e-12)
    tisserand = sample_data.tisserand(a, e, f["Inclination"], sample_data.JUPITER_A_AU)
    assert np.allclose(f["Jupiter Tisserand Invariant"], tisserand, atol=5e-4)
    for column in ("Inclination", "Asc Node Longitude", "Perihelion Arg", "Mean Anomaly"):
        assert f[column].between(0, 360).all(), column
    # The perihelion passage is consistent with the mean anomaly at the osculation epoch.
    elapsed = (f["Epoch Osculation"] - f["Perihelion Time"]) * f["Mean Motion"]
    assert np.allclose(np.mod(elapsed, 360.0), f["Mean Anomaly"], atol=1e-4)


def test_sizes_follow_absolute_magnitude_and_units_agree(sample_frame: pd.DataFrame) -> None:
    f = sample_frame
    h = f["Absolute Magnitude"]
    assert np.allclose(h, h.round(1))
    assert np.allclose(f["Est Dia in KM(min)"], 1329 / np.sqrt(0.25) * 10 ** (-h / 5), rtol=1e-8)
    assert np.allclose(f["Est Dia in KM(max)"], 1329 / np.sqrt(0.05) * 10 ** (-h / 5), rtol=1e-8)
    for bound in ("min", "max"):
        km = f[f"Est Dia in KM({bound})"]
        # Each copy is rounded to 10 decimals, like NASA's, so tiny diameters differ in the 8th digit.
        assert _rel_close(f[f"Est Dia in M({bound})"], km * 1000, 1e-6)
        assert _rel_close(f[f"Est Dia in Miles({bound})"], km * 0.621371, 1e-6)
        assert _rel_close(f[f"Est Dia in Feet({bound})"], km * 1000 * 3.28084, 1e-6)
    speed = f["Relative Velocity km per sec"]
    assert _rel_close(f["Relative Velocity km per hr"], speed * 3600, 1e-8)
    assert _rel_close(f["Miles per hour"], speed * 2236.9, 1e-8)
    au = f["Miss Dist.(Astronomical)"]
    assert _rel_close(f["Miss Dist.(lunar)"], au * 389, 1e-6)  # stored as float32, like NASA's
    assert _rel_close(f["Miss Dist.(kilometers)"], au * sample_data.AU_KM, 1e-6)
    assert _rel_close(f["Miss Dist.(miles)"], f["Miss Dist.(kilometers)"] * 0.621371, 1e-6)


def test_approach_dates_and_epochs(sample_frame: pd.DataFrame) -> None:
    dates = sample_frame["Close Approach Date"]
    assert dates.min() >= "1995-01-01" and dates.max() <= "2016-09-08"
    # Epoch milliseconds are local midnight at JPL: 8 h after UTC midnight in winter, 7 h in summer.
    utc_midnight = (pd.to_datetime(dates) - pd.Timestamp("1970-01-01")) // pd.Timedelta(milliseconds=1)
    offset_hours = (sample_frame["Epoch Date Close Approach"] - utc_midnight) / 3_600_000
    assert set(offset_hours.unique()) == {7.0, 8.0}
    january = pd.to_datetime(dates).dt.month == 1
    assert (offset_hours[january] == 8).all()
    determined = pd.to_datetime(sample_frame["Orbit Determination Date"], format=schema.DATETIME_FORMAT)
    assert determined.notna().all()


def test_miss_distance_and_moid(sample_frame: pd.DataFrame) -> None:
    moid, miss = sample_frame["Minimum Orbit Intersection"], sample_frame["Miss Dist.(Astronomical)"]
    assert (moid >= 0).all() and (miss <= 0.5).all()
    assert 0.9 <= (moid <= miss).mean() < 1.0  # mostly, as in NASA's table (97.6%)
    assert 0.35 <= (moid <= 0.05).mean() <= 0.65


def test_label_follows_cneos_rule_with_noise_only_near_thresholds(sample_frame: pd.DataFrame) -> None:
    h, moid = sample_frame["Absolute Magnitude"], sample_frame["Minimum Orbit Intersection"]
    label = sample_frame["Hazardous"]
    rule = schema.cneos_rule(moid, h)
    agreement = (rule == label).mean()
    assert 0.985 <= agreement < 1.0
    assert 0.12 <= label.mean() <= 0.21
    flips = rule != label
    near = ((h - schema.CNEOS_H_MAX).abs() <= 0.35) | ((moid - schema.CNEOS_MOID_MAX_AU).abs() <= 0.003)
    assert near[flips].all()


def test_repeated_asteroids_share_their_orbit(sample_frame: pd.DataFrame) -> None:
    ids = sample_frame["Neo Reference ID"]
    per_id = ids.value_counts()
    repeated_share = (per_id > 1).mean()
    assert 0.12 <= repeated_share <= 0.28
    assert per_id.max() <= sample_data.MAX_APPROACHES
    assert (sample_frame["Name"] == ids).all()
    fixed = [c for c in schema.COLUMN_NAMES if c not in sample_data.PER_APPROACH_COLUMNS]
    assert (sample_frame.groupby("Neo Reference ID")[fixed].nunique() == 1).all().all()
    assert not sample_frame.duplicated(["Neo Reference ID", "Close Approach Date"]).any()
    repeated = sample_frame[ids.isin(per_id[per_id > 1].index)]
    assert repeated.groupby("Neo Reference ID")["Relative Velocity km per sec"].nunique().min() > 1


def test_constant_columns(sample_frame: pd.DataFrame) -> None:
    assert set(sample_frame["Orbiting Body"]) == {"Earth"}
    assert set(sample_frame["Equinox"]) == {"J2000"}


def test_deterministic_per_seed() -> None:
    first = sample_data.generate_sample(500, 3)
    pd.testing.assert_frame_equal(first, sample_data.generate_sample(500, 3))
    assert not first.equals(sample_data.generate_sample(500, 4))


@pytest.mark.parametrize("n_rows", [1, 2, 17])
def test_exact_row_count_for_small_samples(n_rows: int) -> None:
    frame = sample_data.generate_sample(n_rows, 0)
    assert len(frame) == n_rows
    assert {name: str(dtype) for name, dtype in frame.dtypes.items()} == schema.dtypes()


def test_rejects_non_positive_row_count() -> None:
    with pytest.raises(ValueError, match="n_rows"):
        sample_data.generate_sample(0, 1)


def test_fast_enough() -> None:
    started = time.perf_counter()
    sample_data.generate_sample(5000, 1)
    assert time.perf_counter() - started < 1.0


def test_write_sample_csv(tmp_path: Path) -> None:
    path = sample_data.write_sample_csv(tmp_path / "nested" / "s.csv", n_rows=50, seed=2)
    assert path.is_file()
    pd.testing.assert_frame_equal(pd.read_csv(path), sample_data.generate_sample(50, 2))
