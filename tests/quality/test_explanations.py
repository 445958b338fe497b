"""Explanations on request, through clearml-serving's real XGBoost engine: per row every feature's
contribution and the bias, on the log-odds scale, summing to the row's margin; checked on every sample
row."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

import preprocess_serving
from asteroid import features, schema
from tests.serving.conftest import serve


def test_every_sample_rows_contributions_sum_to_its_margin(
    engine: Any, sample_frame: pd.DataFrame, sample_records: list[dict], offline_booster: xgb.Booster
) -> None:
    reply, _ = serve(engine, {"rows": sample_records, "explain": True})
    predictions = reply["predictions"]
    assert len(predictions) == len(sample_records)
    matrix = features.build_features(sample_frame)[0].to_numpy(dtype=np.float32)
    margins = offline_booster.predict(
        xgb.DMatrix(matrix, feature_names=list(schema.FEATURES)), output_margin=True
    )
    for prediction, margin in zip(predictions, margins.tolist(), strict=True):
        explanation = prediction[preprocess_serving.EXPLANATION]
        assert list(explanation["contributions"]) == list(schema.FEATURES)
        total = explanation["bias"] + math.fsum(explanation["contributions"].values())
        assert total == pytest.approx(margin, abs=1e-4)
        # the margin is the answer's probability on the log-odds scale
        assert 1.0 / (1.0 + math.exp(-total)) == pytest.approx(prediction["probability"], abs=1e-5)


def test_a_single_row_is_explained_and_explanations_are_off_by_default(
    engine: Any, sample_records: list[dict]
) -> None:
    explained, _ = serve(engine, {**sample_records[3], "explain": True})
    plain, _ = serve(engine, sample_records[3])
    assert preprocess_serving.EXPLANATION in explained
    assert preprocess_serving.EXPLANATION not in plain
    assert explained["probability"] == plain["probability"]


@pytest.mark.parametrize("flag", ["yes", 1, None, {"a": 1}])
def test_a_flag_that_is_not_a_boolean_is_refused_naming_it(
    engine: Any, sample_records: list[dict], flag: Any
) -> None:
    with pytest.raises(ValueError, match="field 'explain' must be true or false"):
        serve(engine, {"rows": sample_records[:2], "explain": flag})
