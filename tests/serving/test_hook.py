"""The hook through clearml-serving's real XGBoost engine, loaded from the folder `make serve` deploys."""

from __future__ import annotations

import json
import sys
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

import preprocess_serving
from asteroid import features, schema, train
from asteroid.serving.hook_package import HOOK_FILES
from tests.serving.conftest import serve


def offline_probabilities(booster: xgb.Booster, frame: pd.DataFrame) -> np.ndarray:
    return train.predict_proba(booster, features.build_features(frame)[0])


def test_the_deployed_folder_is_a_package_of_its_own(engine: Any) -> None:
    hook = engine._preprocess
    # loaded from the folder: its feature code is the folder's copy, not the installed project's
    assert type(hook).__module__ == "py_code_asteroid_1"
    assert set(HOOK_FILES) == {
        "__init__.py",
        "feature_rows.py",
        "schema.py",
        "contract.py",
        "observation_rules.py",
        "prediction_log.py",
        "prediction_forwarder.py",
    }
    module = sys.modules[type(hook).__module__]
    assert module.contract.__name__ == "py_code_asteroid_1.contract"
    assert module.contract.schema.__name__ == "py_code_asteroid_1.schema"
    assert engine._model is not None and engine._model.feature_names == list(schema.FEATURES)


def test_one_row_with_nasa_column_names(
    engine: Any, sample_frame: pd.DataFrame, sample_records: list[dict], offline_booster: xgb.Booster
) -> None:
    reply, statistics = serve(engine, sample_records[0])
    expected = offline_probabilities(offline_booster, sample_frame.head(1))[0]
    assert reply["probability"] == expected
    assert reply["hazardous"] is bool(expected >= schema.HAZARD_THRESHOLD)
    assert reply["model"] == {"id": "model-1", "version": "1", "endpoint": "asteroid/1"}
    # every input feature and the probability are reported, under Prometheus-safe snake_case names
    assert set(statistics) == {*schema.FEATURES, "probability"}
    assert statistics["probability"] == reply["probability"]
    assert all(isinstance(value, float) for value in statistics.values())


def test_a_batch_answers_in_request_order(
    engine: Any, sample_frame: pd.DataFrame, sample_records: list[dict], offline_booster: xgb.Booster
) -> None:
    rows = sample_records[:300]
    reply, statistics = serve(engine, {"rows": rows})
    expected = offline_probabilities(offline_booster, sample_frame.head(300))
    got = np.array([prediction["probability"] for prediction in reply["predictions"]])
    np.testing.assert_array_equal(got, expected)
    assert [p["hazardous"] for p in reply["predictions"]] == (expected >= schema.HAZARD_THRESHOLD).tolist()
    assert reply["model"]["endpoint"] == "asteroid/1"
    # a sample of the rows is reported, each with its own features and probability
    sample = preprocess_serving.MAX_STATISTICS_ROWS
    assert all(len(statistics[name]) == sample for name in (*schema.FEATURES, "probability"))
    batch_features = features.build_features(sample_frame.head(300))[0].to_numpy().tolist()
    served = {(*row, probability) for row, probability in zip(batch_features, got, strict=True)}
    reported = zip(*(statistics[name] for name in (*schema.FEATURES, "probability")), strict=True)
    assert all(tuple(values) in served for values in reported)


def test_small_batches_report_every_row(engine: Any, sample_records: list[dict]) -> None:
    _, statistics = serve(engine, {"rows": sample_records[:7]})
    assert all(len(statistics[name]) == 7 for name in (*schema.FEATURES, "probability"))


def test_snake_case_feature_names_and_raw_json_bodies(
    engine: Any, sample_frame: pd.DataFrame, offline_booster: xgb.Booster
) -> None:
    feature_frame = features.build_features(sample_frame.head(3))[0]
    feature_rows = json.loads(feature_frame.to_json(orient="records"))
    expected = offline_probabilities(offline_booster, sample_frame.head(3))
    reply, _ = serve(engine, feature_rows[0])
    assert reply["probability"] == pytest.approx(expected[0], abs=1e-7)
    # a bare JSON array arrives as bytes when not sent as application/json
    reply, _ = serve(engine, json.dumps(feature_rows).encode())
    np.testing.assert_allclose([p["probability"] for p in reply["predictions"]], expected, atol=1e-7)


def test_columns_without_physics_do_not_change_the_answer(engine: Any, sample_records: list[dict]) -> None:
    row = dict(sample_records[5])
    changed = {
        **row,
        "Name": 1,
        "Close Approach Date": "1999-01-01",
        "Orbiting Body": "Mars",
        "Hazardous": True,
    }
    assert serve(engine, changed)[0]["probability"] == serve(engine, row)[0]["probability"]


def test_loading_a_model_leaves_what_is_alive_out_of_the_collectors_scans(
    engine: Any, sample_records: list[dict]
) -> None:
    """After a load the model and the app's objects are frozen: full collections scan only what requests
    create (a full collection took 56-70 ms in a worker's heap, 0.1-0.3 ms frozen)."""
    import gc

    predictor = engine._preprocess._predictor
    assert gc.get_freeze_count() > 0
    assert all(tracked is not predictor for tracked in gc.get_objects())  # in the permanent generation
    reply, _ = serve(engine, sample_records[0])
    assert reply["hazardous"] in (True, False)
