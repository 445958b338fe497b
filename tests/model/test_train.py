"""Training on generated data, and the saved model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from asteroid import evaluate, features, schema, splitting, train


@pytest.fixture(scope="module")
def split(sample_frame: pd.DataFrame) -> splitting.Split:
    return splitting.group_split(*features.build_features(sample_frame), seed=0)


@pytest.fixture(scope="module")
def result(split: splitting.Split) -> train.TrainResult:
    return train.train_classifier(split, seed=0)


def test_metrics_are_sane_and_close_to_the_rule(split: splitting.Split, result: train.TrainResult) -> None:
    test = split.test
    metrics = evaluate.classification_metrics(test.labels, train.predict_proba(result.booster, test.features))
    baseline = evaluate.baseline_metrics(test.features, test.labels)
    assert metrics["accuracy"] >= 0.98
    assert metrics["recall"] >= 0.93
    assert metrics["roc_auc"] >= 0.99
    assert metrics["accuracy"] >= baseline["accuracy"] - 0.01
    assert metrics["n"] == len(test)


def test_early_stopping_keeps_the_best_iteration(result: train.TrainResult) -> None:
    assert 0 < result.best_iteration < train.DEFAULT_PARAMS["num_boost_round"] - 1
    assert result.booster.num_boosted_rounds() == result.best_iteration + 1
    history = result.evals_result["val"]["logloss"]
    assert result.best_score == pytest.approx(min(history))
    assert history.index(min(history)) == result.best_iteration
    assert set(result.evals_result) == {"train", "val"}
    assert result.feature_names == list(schema.FEATURES)


def test_the_trees_split_on_the_cneos_cell_first_then_moid_and_magnitude(result: train.TrainResult) -> None:
    gain = result.booster.get_score(importance_type="total_gain")
    assert max(gain, key=gain.get) == schema.CNEOS_CELL, gain
    assert set(gain) <= {schema.CNEOS_CELL, "minimum_orbit_intersection", "absolute_magnitude"}, gain


def test_training_is_deterministic_and_seeded(split: splitting.Split, result: train.TrainResult) -> None:
    again = train.train_classifier(split, seed=0)
    x = split.test.features
    assert np.array_equal(train.predict_proba(again.booster, x), train.predict_proba(result.booster, x))
    other = train.train_classifier(split, seed=1)  # subsample < 1: the seed matters
    assert not np.array_equal(train.predict_proba(other.booster, x), train.predict_proba(result.booster, x))


def test_params_override_defaults(split: splitting.Split) -> None:
    short = train.train_classifier(split, {"num_boost_round": 3, "max_depth": 2}, seed=0)
    assert short.booster.num_boosted_rounds() <= 3
    assert short.params["max_depth"] == 2 and short.params["eta"] == train.DEFAULT_PARAMS["eta"]


def test_saved_json_keeps_feature_names_and_predictions(
    split: splitting.Split, result: train.TrainResult, tmp_path: Path
) -> None:
    path = train.save_model(result.booster, tmp_path / "models" / "model.json")
    document = json.loads(path.read_text())
    assert document["learner"]["feature_names"] == list(schema.FEATURES)
    loaded = train.load_model(path)
    assert loaded.feature_names == list(schema.FEATURES)
    x = split.test.features
    assert np.array_equal(train.predict_proba(loaded, x), train.predict_proba(result.booster, x))
    assert np.array_equal(train.predict(loaded, x), train.predict(result.booster, x))


def test_prediction_matches_columns_by_name(split: splitting.Split, result: train.TrainResult) -> None:
    x = split.test.features
    shuffled = x[list(reversed(x.columns))]
    assert np.array_equal(
        train.predict_proba(result.booster, shuffled), train.predict_proba(result.booster, x)
    )
    with pytest.raises(ValueError, match="eccentricity"):
        train.predict_proba(result.booster, x.drop(columns=["eccentricity"]))


def test_threshold(split: splitting.Split, result: train.TrainResult) -> None:
    x = split.test.features
    probabilities = train.predict_proba(result.booster, x)
    assert schema.HAZARD_THRESHOLD == 0.5
    assert np.array_equal(train.predict(result.booster, x), (probabilities >= 0.5).astype(int))
    assert train.predict(result.booster, x, threshold=0.0).all()


def test_model_file_errors(result: train.TrainResult, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.json"):
        train.save_model(result.booster, tmp_path / "model.ubj")
    with pytest.raises(FileNotFoundError):
        train.load_model(tmp_path / "absent.json")


def test_dmatrix_keeps_names() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    matrix = train.make_dmatrix(frame, pd.Series([0, 1]))
    assert isinstance(matrix, xgb.DMatrix)
    assert matrix.feature_names == ["a", "b"] and matrix.get_label().tolist() == [0.0, 1.0]


def test_trees_split_only_on_the_split_features(split: splitting.Split, result: train.TrainResult) -> None:
    allowed = set(train.DEFAULT_PARAMS["split_features"].split(","))
    used = set(result.booster.get_score(importance_type="weight"))
    assert used and used <= allowed
    x = split.test.features
    others = [name for name in x.columns if name not in allowed]
    shuffled = x.assign(**{name: x[name].sample(frac=1.0, random_state=0).to_numpy() for name in others})
    assert np.array_equal(
        train.predict_proba(result.booster, shuffled), train.predict_proba(result.booster, x)
    )
    assert result.booster.feature_names == list(schema.FEATURES)  # the input is still every feature


def test_all_features_can_be_split_on(split: splitting.Split) -> None:
    free = train.train_classifier(split, {"split_features": "", "monotone_decreasing": ""}, seed=0)
    assert len(free.booster.get_score(importance_type="weight")) > 2


def test_monotone_constraints_follow_the_feature_order() -> None:
    names = ["a", "minimum_orbit_intersection", "b", "absolute_magnitude"]
    assert (
        train.monotone_constraints("absolute_magnitude, minimum_orbit_intersection", names) == "(0,-1,0,-1)"
    )
    assert train.monotone_constraints("", names) == "(0,0,0,0)"
    with pytest.raises(ValueError, match="not model features: moid"):
        train.monotone_constraints("moid", names)


def test_monotone_increasing_features_get_plus_one() -> None:
    names = ["a", "minimum_orbit_intersection", "b"]
    assert train.monotone_constraints("minimum_orbit_intersection", names, "b") == "(0,-1,1)"
    with pytest.raises(ValueError, match="both monotone_decreasing and monotone_increasing: b"):
        train.monotone_constraints("b", names, "b")


def test_a_diameter_constrained_increasing_never_lowers_the_risk(split: splitting.Split) -> None:
    params = {
        "split_features": "est_dia_km_avg,minimum_orbit_intersection",
        "monotone_increasing": "est_dia_km_avg",
    }
    result = train.train_classifier(split, params, seed=0)
    rows = split.test.features
    before = train.predict_proba(result.booster, rows)
    after = train.predict_proba(result.booster, rows.assign(est_dia_km_avg=rows["est_dia_km_avg"] * 2))
    assert (after >= before).all()


def test_hidden_features_are_missing() -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    hidden = train.hidden_from_trees(frame, "a")
    assert hidden["a"].tolist() == [1.0, 2.0] and hidden["b"].isna().all()
    assert train.hidden_from_trees(frame, "").equals(frame)
    with pytest.raises(ValueError, match="split_features"):
        train.hidden_from_trees(frame, "c")


def test_each_asteroid_weighs_one_in_total() -> None:
    groups = pd.Series([7, 7, 7, 8, 9, 9])
    weights = train.sample_weights(groups, "per_asteroid")
    assert weights.tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 1.0, 0.5, 0.5])
    assert weights.sum() == pytest.approx(groups.nunique())
    assert train.sample_weights(groups, "per_row") is None
    with pytest.raises(ValueError, match="sample_weighting"):
        train.sample_weights(groups, "per_day")


def test_a_sampled_training_curve_leaves_the_model_unchanged(
    split: splitting.Split, result: train.TrainResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above TRAINING_CURVE_ROWS training rows the curve is computed on a sample of them: early stopping
    watches validation, so the trees are the same; below it the curve is the whole training set's."""
    monkeypatch.setattr(train, "TRAINING_CURVE_ROWS", len(split.train) // 4)
    sampled = train.train_classifier(split, seed=0)
    x = split.test.features
    assert np.array_equal(train.predict_proba(sampled.booster, x), train.predict_proba(result.booster, x))
    assert sampled.evals_result["val"] == result.evals_result["val"]
    assert sampled.evals_result["train"]["logloss"] != result.evals_result["train"]["logloss"]
    dtrain = train.make_dmatrix(split.train.features, split.train.labels)
    curve = train.training_curve_matrix(dtrain, rows=100)
    assert curve.num_row() == 100 and train.training_curve_matrix(dtrain, rows=len(split.train)) is dtrain
    assert set(curve.get_label()) <= set(dtrain.get_label())
