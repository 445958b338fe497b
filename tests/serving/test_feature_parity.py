"""No train/serve skew: the hook computes exactly the training features, for every row."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from asteroid import feature_rows, features, schema


def hook_features(frame: pd.DataFrame) -> np.ndarray:
    # a JSON round trip, as the example client's `requests.post(json=row.to_dict())` makes it (exact floats)
    rows = json.loads(json.dumps(frame.to_dict(orient="records")))
    matrices = [
        feature_rows.feature_matrix(feature_rows.validate_rows(rows[i : i + 5000]))
        for i in range(0, len(rows), 5000)
    ]
    return np.vstack(matrices)


def assert_same_features(frame: pd.DataFrame) -> None:
    training = features.build_features(frame)[0]
    assert list(training.columns) == list(schema.FEATURES)
    np.testing.assert_array_equal(hook_features(frame), training.to_numpy())


def test_hook_features_equal_training_features_on_sample_data(sample_frame: pd.DataFrame) -> None:
    assert_same_features(sample_frame)


def test_hook_features_equal_training_features_on_nasa_table(nasa_frame: pd.DataFrame) -> None:
    assert_same_features(nasa_frame)


def test_the_computed_cneos_cell_is_the_rule(sample_frame: pd.DataFrame) -> None:
    computed = hook_features(sample_frame)[:, schema.FEATURES.index(schema.CNEOS_CELL)]
    rule = schema.cneos_rule(sample_frame["Minimum Orbit Intersection"], sample_frame["Absolute Magnitude"])
    np.testing.assert_array_equal(computed, rule.astype(float))
    assert 0 < computed.sum() < len(computed)


def test_rows_of_feature_names_may_leave_the_computed_features_out(sample_frame: pd.DataFrame) -> None:
    training = features.build_features(sample_frame)[0].head(50)
    for columns in (schema.INPUT_FEATURES, schema.FEATURES):
        rows = training[list(columns)].to_dict(orient="records")
        matrix = feature_rows.feature_matrix(feature_rows.validate_rows(rows))
        np.testing.assert_array_equal(matrix, training.to_numpy())
