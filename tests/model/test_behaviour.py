"""Behavioural tests of the model a default pipeline run publishes (Made With ML style: direction, minimum
functionality and invariance), on generated sample data and, when present, on NASA's table.

The model under test is trained as the pipeline trains it: the default split seed, one model per training
seed, the winner chosen on validation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from asteroid import comparison, feature_rows, features, schema, splitting, train
from asteroid.steps.parameters import PREPROCESSING_DEFAULTS

MOID = "minimum_orbit_intersection"
H = "absolute_magnitude"
DIAMETER = "est_dia_km_avg"
PIPELINE_SEEDS = 3
# Away from the CNEOS boundary: farther than this from H = 22.0 and from MOID = 0.05 au. H is tabulated to
# 0.1 mag, so between 22.0 and 22.1 no row tells where the boundary is; MOIDs are dense near 0.05 au.
H_MARGIN = 0.15
MOID_MARGIN_AU = 0.001
# Source columns that describe no physics of the asteroid: names, ids, dates, bookkeeping, constants.
NON_PHYSICAL_CHANGES = {
    "Neo Reference ID": lambda column: column + 1_000_000,
    "Name": lambda column: column + 1_000_000,
    "Close Approach Date": lambda column: pd.Series("2001-02-03", index=column.index),
    "Epoch Date Close Approach": lambda column: column + 86_400_000,
    "Orbit Determination Date": lambda column: pd.Series("2010-10-10 10:10:10", index=column.index),
    "Orbit ID": lambda column: column + 7,
    "Epoch Osculation": lambda column: column - 365.25,
    "Perihelion Time": lambda column: column + 100.0,
    "Orbiting Body": lambda column: pd.Series("Mars", index=column.index),
    "Equinox": lambda column: pd.Series("B1950", index=column.index),
}


@dataclass(frozen=True)
class Published:
    """The pipeline's winner on a table, the table it came from, and the rows it was tested on."""

    booster: xgb.Booster
    raw: pd.DataFrame
    features: pd.DataFrame
    test_features: pd.DataFrame


def _published(raw: pd.DataFrame) -> Published:
    frame_features, labels, groups = features.build_features(raw)
    split = splitting.group_split(frame_features, labels, groups, seed=PREPROCESSING_DEFAULTS["split_seed"])
    winner = comparison.pipeline_winner(split, n_models=PIPELINE_SEEDS)
    return Published(winner.result.booster, raw, frame_features, split.test.features)


@pytest.fixture(scope="module", params=["sample", "nasa"])
def published(request: pytest.FixtureRequest) -> Published:
    fixture = "sample_frame" if request.param == "sample" else "nasa_frame"
    return _published(request.getfixturevalue(fixture))


def _changed(frame: pd.DataFrame, **columns: object) -> pd.DataFrame:
    """The feature rows with some features replaced and the computed ones (`in_cneos_cell`) recomputed, as
    the serving hook would compute them for such a request."""
    changed = frame.assign(**columns)
    return changed.assign(**feature_rows.computed_features(changed))


def _brighter(frame: pd.DataFrame, magnitudes: float) -> pd.DataFrame:
    """The same asteroids `magnitudes` brighter (lower H), so larger: D scales as 10^(-H/5)."""
    return _changed(frame, **{H: frame[H] - magnitudes, DIAMETER: frame[DIAMETER] * 10 ** (magnitudes / 5)})


@pytest.mark.parametrize("factor", [0.99, 0.9, 0.5, 0.1, 0.0])
def test_a_smaller_moid_never_lowers_the_risk(published: Published, factor: float) -> None:
    rows = published.test_features
    before = train.predict_proba(published.booster, rows)
    after = train.predict_proba(published.booster, _changed(rows, **{MOID: rows[MOID] * factor}))
    assert (after >= before).all(), rows[after < before]


@pytest.mark.parametrize("magnitudes", [0.05, 0.1, 0.3, 1.0, 5.0])
def test_a_lower_magnitude_never_lowers_the_risk(published: Published, magnitudes: float) -> None:
    rows = published.test_features
    before = train.predict_proba(published.booster, rows)
    after = train.predict_proba(published.booster, _brighter(rows, magnitudes))
    assert (after >= before).all(), rows[after < before]


def test_risk_never_falls_along_a_path_toward_the_earth(published: Published) -> None:
    """One asteroid moved from 0.5 au to 0 in 500 steps, at H from 28 down to 15: risk never falls."""
    row = published.test_features.iloc[[0]]
    moids = np.linspace(0.5, 0.0, 501)
    for magnitude in np.arange(28.0, 14.9, -0.5):
        path = _changed(pd.concat([row] * moids.size, ignore_index=True), **{MOID: moids, H: magnitude})
        risk = train.predict_proba(published.booster, path)
        assert (np.diff(risk) >= 0).all(), (magnitude, risk)


@pytest.mark.parametrize("moid_au", [0.06, 0.1, 0.3, 1.0])
def test_far_away_asteroids_are_never_hazardous(published: Published, moid_au: float) -> None:
    rows = _brighter(published.test_features, 5.0)  # even the largest
    assert not train.predict(published.booster, _changed(rows, **{MOID: moid_au})).any()


@pytest.mark.parametrize("magnitude", [23.0, 25.0, 30.0])
def test_tiny_asteroids_are_never_hazardous(published: Published, magnitude: float) -> None:
    rows = published.test_features
    tiny = _brighter(rows, rows[H] - magnitude)  # every row moved to H = magnitude
    tiny = _changed(tiny, **{MOID: 0.0})  # even on a collision course
    assert np.allclose(tiny[H], magnitude)
    assert not train.predict(published.booster, tiny).any()


def test_columns_without_physics_do_not_change_a_prediction(published: Published) -> None:
    changed = published.raw.copy()
    for column, change in NON_PHYSICAL_CHANGES.items():
        changed[column] = change(changed[column])
        assert not changed[column].equals(published.raw[column]), column
    changed_features = features.build_features(changed)[0]
    before = train.predict_proba(published.booster, published.features)
    assert np.array_equal(train.predict_proba(published.booster, changed_features), before)


def _away_from_the_boundary(frame: pd.DataFrame) -> np.ndarray:
    return (
        ((frame[H] - schema.CNEOS_H_MAX).abs() > H_MARGIN)
        & ((frame[MOID] - schema.CNEOS_MOID_MAX_AU).abs() > MOID_MARGIN_AU)
    ).to_numpy()


def test_agrees_with_the_rule_on_every_row_away_from_the_boundary(published: Published) -> None:
    rows = published.features[_away_from_the_boundary(published.features)]
    assert len(rows) > 0.95 * len(published.features)
    predicted = train.predict(published.booster, rows)
    rule = schema.cneos_rule(rows[MOID], rows[H]).astype(int)
    assert np.array_equal(predicted, rule), rows[predicted != rule][[MOID, H]]


def test_agrees_with_the_rule_on_a_grid_away_from_the_boundary(published: Published) -> None:
    """MOID 0-0.2 au by 0.0005 × H 15-28 by 0.02, every other feature at its median."""
    moid, magnitude = np.meshgrid(np.linspace(0.0, 0.2, 401), np.round(np.arange(15.0, 28.0, 0.02), 2))
    median = published.features.median()
    grid = pd.DataFrame(np.tile(median.to_numpy(), (moid.size, 1)), columns=median.index)
    grid = _changed(grid, **{MOID: moid.ravel(), H: magnitude.ravel()})
    grid = grid[_away_from_the_boundary(grid)]
    predicted = train.predict(published.booster, grid)
    rule = schema.cneos_rule(grid[MOID], grid[H]).astype(int)
    assert rule.sum() > 1000 and (rule == 0).sum() > 1000  # both sides of the boundary are covered
    assert np.array_equal(predicted, rule), grid[predicted != rule][[MOID, H]]
