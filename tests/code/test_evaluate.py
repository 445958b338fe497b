"""Metrics, including degenerate inputs, and the CNEOS baseline."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from asteroid import evaluate


def test_metrics_on_a_known_case() -> None:
    y_true = [1, 1, 1, 0, 0, 0, 0, 0]
    y_prob = [0.9, 0.8, 0.3, 0.6, 0.2, 0.1, 0.1, 0.05]
    m = evaluate.classification_metrics(y_true, y_prob)
    assert (m["tp"], m["fn"], m["fp"], m["tn"]) == (2, 1, 1, 4)
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["roc_auc"] == pytest.approx(14 / 15)
    assert 0 < m["pr_auc"] <= 1
    assert (m["n"], m["positives"], m["threshold"]) == (8, 3, 0.5)
    assert m["notes"] == []


def test_threshold_moves_the_decision() -> None:
    m = evaluate.classification_metrics([1, 0], [0.4, 0.1], threshold=0.3)
    assert (m["tp"], m["tn"]) == (1, 1)
    assert evaluate.classification_metrics([1, 0], [0.4, 0.1])["tp"] == 0


@pytest.mark.parametrize("label", [0, 1])
def test_single_class_gives_nan_auc_with_a_note(label: int) -> None:
    m = evaluate.classification_metrics([label] * 4, [0.2, 0.7, 0.4, 0.9])
    assert math.isnan(m["roc_auc"]) and math.isnan(m["pr_auc"])
    assert any("one class" in note for note in m["notes"])
    assert m["n"] == 4


def test_no_positive_predictions_gives_zero_precision() -> None:
    m = evaluate.classification_metrics([1, 0, 0], [0.1, 0.2, 0.3])
    assert m["precision"] == 0 and m["recall"] == 0 and m["f1"] == 0
    assert any("precision" in note for note in m["notes"])


def test_empty_input() -> None:
    m = evaluate.classification_metrics([], [])
    assert m["n"] == 0 and math.isnan(m["accuracy"]) and math.isnan(m["roc_auc"])


@pytest.mark.parametrize(
    ("y_true", "y_prob", "message"),
    [([1, 0], [0.5], "length"), ([2, 0], [0.5, 0.5], "0/1"), ([1, 0], [1.5, 0.2], r"\[0, 1\]"),
     ([1, 0], [np.nan, 0.2], "NaN")],
)  # fmt: skip
def test_invalid_input_raises(y_true: list, y_prob: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate.classification_metrics(y_true, y_prob)


def test_cneos_baseline_on_features_and_raw_columns() -> None:
    feats = pd.DataFrame(
        {"minimum_orbit_intersection": [0.01, 0.05, 0.06, 0.01], "absolute_magnitude": [21, 22, 20, 22.1]}
    )
    expected = [1, 1, 0, 0]
    assert evaluate.cneos_baseline(feats).tolist() == expected
    raw = feats.rename(columns={"minimum_orbit_intersection": "Minimum Orbit Intersection",
                                "absolute_magnitude": "Absolute Magnitude"})  # fmt: skip
    assert evaluate.cneos_baseline(raw).tolist() == expected
    with pytest.raises(ValueError, match="Minimum Orbit Intersection"):
        evaluate.cneos_baseline(feats.drop(columns=["minimum_orbit_intersection"]))


def test_baseline_metrics() -> None:
    feats = pd.DataFrame(
        {"minimum_orbit_intersection": [0.01, 0.2, 0.01], "absolute_magnitude": [20, 20, 25]}
    )
    m = evaluate.baseline_metrics(feats, [1, 0, 1])
    assert (m["tp"], m["tn"], m["fn"], m["fp"]) == (1, 1, 1, 0)
    assert m["recall"] == pytest.approx(0.5)


def test_baseline_on_sample_data_is_nearly_perfect(sample_frame: pd.DataFrame) -> None:
    m = evaluate.baseline_metrics(sample_frame, sample_frame["Hazardous"].astype(int))
    assert 0.985 <= m["accuracy"] < 1.0


def test_curve_points_span_the_unit_square_and_are_empty_for_one_class() -> None:
    labels, scores = [0, 0, 1, 1, 0, 1], [0.1, 0.4, 0.35, 0.8, 0.2, 0.9]
    fpr, tpr = evaluate.roc_points(labels, scores)
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert fpr == sorted(fpr) and tpr == sorted(tpr)
    recall, precision = evaluate.pr_points(labels, scores)
    assert len(recall) == len(precision) and max(recall) == 1.0
    assert evaluate.roc_points([1, 1], [0.2, 0.9]) == ([], [])
    assert evaluate.pr_points([0, 0], [0.2, 0.9]) == ([], [])
