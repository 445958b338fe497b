"""Classification metrics, and the CNEOS rule as a baseline."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from asteroid import schema

_MOID = "minimum_orbit_intersection"
_H = "absolute_magnitude"


def _safe_ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def classification_metrics(
    y_true: Any, y_prob: Any, threshold: float = schema.HAZARD_THRESHOLD
) -> dict[str, Any]:
    """accuracy, precision, recall, f1, roc_auc, pr_auc (average precision), tn/fp/fn/tp, n, positives.

    Precision/recall/f1 are 0 when undefined; the AUCs are NaN when only one class is present, with an
    explanation in `notes`.
    """
    truth = np.asarray(y_true, dtype=float).ravel()
    prob = np.asarray(y_prob, dtype=float).ravel()
    if truth.shape != prob.shape:
        raise ValueError(f"y_true and y_prob differ in length: {truth.size} vs {prob.size}")
    if not np.isin(truth, (0, 1)).all():
        raise ValueError("y_true must contain only 0/1 (or booleans)")
    if np.isnan(prob).any() or (prob < 0).any() or (prob > 1).any():
        raise ValueError("y_prob must be probabilities in [0, 1] without NaN")
    truth = truth.astype(int)
    predicted = (prob >= threshold).astype(int)
    tp = int(((predicted == 1) & (truth == 1)).sum())
    tn = int(((predicted == 0) & (truth == 0)).sum())
    fp = int(((predicted == 1) & (truth == 0)).sum())
    fn = int(((predicted == 0) & (truth == 1)).sum())
    n, positives = int(truth.size), int(truth.sum())
    notes: list[str] = []
    precision, recall = _safe_ratio(tp, tp + fp), _safe_ratio(tp, tp + fn)
    if tp + fp == 0:
        notes.append("no positive predictions: precision set to 0")
    if positives == 0:
        notes.append("no positive labels: recall set to 0")
    if n and 0 < positives < n:
        roc_auc = float(roc_auc_score(truth, prob))
        pr_auc = float(average_precision_score(truth, prob))
    else:
        roc_auc = pr_auc = math.nan
        notes.append("only one class present: roc_auc and pr_auc are undefined (NaN)")
    return {
        "accuracy": _safe_ratio(tp + tn, n) if n else math.nan,
        "precision": precision,
        "recall": recall,
        "f1": _safe_ratio(2 * precision * recall, precision + recall) if precision + recall else 0.0,
        "roc_auc": roc_auc,
        "pr_auc": pr_auc,
        "tn": tn,
        "fp": fp,
        "fn": fn,
        "tp": tp,
        "n": n,
        "positives": positives,
        "threshold": float(threshold),
        "notes": notes,
    }


def cneos_baseline(data: pd.DataFrame) -> np.ndarray:
    """CNEOS rule (MOID <= 0.05 au and H <= 22.0) as 0/1, from features (snake_case) or raw columns."""
    columns = {
        _MOID: (_MOID, "Minimum Orbit Intersection"),
        _H: (_H, "Absolute Magnitude"),
    }
    values = {}
    for key, candidates in columns.items():
        found = next((name for name in candidates if name in data.columns), None)
        if found is None:
            raise ValueError(f"CNEOS baseline needs one of the columns {candidates}")
        values[key] = data[found].to_numpy(dtype=float)
    return schema.cneos_rule(values[_MOID], values[_H]).astype(np.int64)


def baseline_metrics(data: pd.DataFrame, y_true: Any) -> dict[str, Any]:
    """`classification_metrics` of the CNEOS rule (its hard 0/1 predictions serve as scores)."""
    return classification_metrics(y_true, cneos_baseline(data).astype(float), threshold=0.5)


MODEL_ONLY_RIGHT = "model right, rule wrong"
RULE_ONLY_RIGHT = "rule right, model wrong"


def rule_disagreements(y_true: Any, model_predicted: Any, rule_predicted: Any) -> dict[str, int]:
    """Rows where exactly one of model and rule is right, counted by which one (0/1 predictions)."""
    truth = np.asarray(y_true, dtype=int).ravel()
    model = np.asarray(model_predicted, dtype=int).ravel()
    rule = np.asarray(rule_predicted, dtype=int).ravel()
    if not truth.size == model.size == rule.size:
        raise ValueError(f"lengths differ: {truth.size} labels, {model.size} and {rule.size} predictions")
    model_right, rule_right = model == truth, rule == truth
    return {
        MODEL_ONLY_RIGHT: int((model_right & ~rule_right).sum()),
        RULE_ONLY_RIGHT: int((rule_right & ~model_right).sum()),
    }


def outcome(disagreements: dict[str, int]) -> str:
    """win / tie / loss of the model against the rule: whose accuracy is higher on the same rows."""
    margin = disagreements[MODEL_ONLY_RIGHT] - disagreements[RULE_ONLY_RIGHT]
    return "win" if margin > 0 else "loss" if margin < 0 else "tie"


def feature_importance(booster: Any, importance_type: str = "total_gain") -> dict[str, float]:
    """Importance per feature, largest first; features the trees never split on get 0."""
    scores = booster.get_score(importance_type=importance_type)
    for name in booster.feature_names or []:
        scores.setdefault(name, 0.0)
    return dict(sorted(scores.items(), key=lambda item: item[1], reverse=True))


def _both_classes(y_true: Any, y_prob: Any) -> tuple[np.ndarray, np.ndarray] | None:
    truth, prob = np.asarray(y_true, dtype=int), np.asarray(y_prob, dtype=float)
    return (truth, prob) if np.unique(truth).size == 2 else None


def roc_points(y_true: Any, y_prob: Any) -> tuple[list[float], list[float]]:
    """(false positive rates, true positive rates) of the ROC curve; empty when only one class is present."""
    data = _both_classes(y_true, y_prob)
    if data is None:
        return [], []
    fpr, tpr, _ = roc_curve(*data)
    return fpr.tolist(), tpr.tolist()


def pr_points(y_true: Any, y_prob: Any) -> tuple[list[float], list[float]]:
    """(recalls, precisions) of the precision-recall curve; empty when only one class is present."""
    data = _both_classes(y_true, y_prob)
    if data is None:
        return [], []
    precision, recall, _ = precision_recall_curve(*data)
    return recall.tolist(), precision.tolist()
