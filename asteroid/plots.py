"""Matplotlib figures for training reports. Figures are built without pyplot (no global state, no GUI);
saving them renders with the Agg backend."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import xgboost as xgb
from matplotlib.figure import Figure

from asteroid import evaluate


def _single_class(y_true: np.ndarray) -> bool:
    return np.unique(y_true).size < 2


def feature_importance(
    booster: xgb.Booster, importance_type: str = "total_gain", max_features: int = 20
) -> Figure:
    """Horizontal bars of feature importance (total gain by default), largest at the top."""
    ranked = list(evaluate.feature_importance(booster, importance_type).items())[:max_features]
    names, values = [name for name, _ in ranked][::-1], [value for _, value in ranked][::-1]
    figure = Figure(figsize=(8, 0.35 * max(len(names), 4) + 1.2), layout="constrained")
    axes = figure.subplots()
    axes.barh(names, values, color="tab:blue")
    axes.set_xlabel(importance_type.replace("_", " "))
    axes.set_title(f"Feature importance ({importance_type.replace('_', ' ')})")
    return figure


def confusion_matrix(
    metrics: Mapping[str, Any], class_names: Sequence[str] = ("not hazardous", "hazardous")
) -> Figure:
    """2x2 confusion matrix with counts and row percentages, from `classification_metrics` output."""
    missing = [key for key in ("tn", "fp", "fn", "tp") if key not in metrics]
    if missing:
        raise ValueError(f"metrics lack the confusion counts {missing}; pass classification_metrics output")
    matrix = np.array([[metrics["tn"], metrics["fp"]], [metrics["fn"], metrics["tp"]]])
    figure = Figure(figsize=(5.5, 4.6), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axes, shrink=0.8)
    row_totals = matrix.sum(axis=1, keepdims=True)
    for (row, column), count in np.ndenumerate(matrix):
        share = count / row_totals[row, 0] if row_totals[row, 0] else 0.0
        color = "white" if count > matrix.max() / 2 else "black"
        axes.text(column, row, f"{count}\n{share:.1%}", ha="center", va="center", color=color)
    axes.set_xticks([0, 1], labels=list(class_names))
    axes.set_yticks([0, 1], labels=list(class_names))
    axes.set_xlabel("predicted")
    axes.set_ylabel("actual")
    threshold = f"threshold {metrics['threshold']:g}, " if "threshold" in metrics else ""
    axes.set_title(f"Confusion matrix\n({threshold}n={int(matrix.sum())})")
    return figure


def roc_curve(y_true: Any, y_prob: Any) -> Figure:
    """ROC curve with its AUC; says so when undefined (one class only)."""
    truth, prob = np.asarray(y_true, dtype=int), np.asarray(y_prob, dtype=float)
    figure = Figure(figsize=(5, 5), layout="constrained")
    axes = figure.subplots()
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    if _single_class(truth):
        axes.set_title("ROC curve (undefined: one class only)")
    else:
        fpr, tpr = evaluate.roc_points(truth, prob)
        auc = evaluate.classification_metrics(truth, prob)["roc_auc"]
        axes.plot(fpr, tpr, color="tab:blue", label=f"model (AUC = {auc:.4f})")
        axes.set_title("ROC curve")
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate (recall)")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.legend(loc="lower right")
    return figure


def pr_curve(y_true: Any, y_prob: Any) -> Figure:
    """Precision-recall curve with average precision and the positive rate as the chance level."""
    truth, prob = np.asarray(y_true, dtype=int), np.asarray(y_prob, dtype=float)
    figure = Figure(figsize=(5, 5), layout="constrained")
    axes = figure.subplots()
    if _single_class(truth):
        axes.set_title("Precision-recall curve (undefined: one class only)")
    else:
        recall, precision = evaluate.pr_points(truth, prob)
        average_precision = evaluate.classification_metrics(truth, prob)["pr_auc"]
        axes.plot(recall, precision, color="tab:orange", label=f"model (AP = {average_precision:.4f})")
        axes.axhline(truth.mean(), linestyle="--", color="grey", label=f"chance ({truth.mean():.3f})")
        axes.set_title("Precision-recall curve")
        axes.legend(loc="lower left")
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    return figure


def feature_distributions(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    reference_label: str = "train",
    current_label: str = "current",
    features: Sequence[str] | None = None,
    bins: int = 30,
    columns: int = 3,
) -> Figure:
    """Per feature, overlaid density histograms of two samples (e.g. train vs test or serving traffic)."""
    names = list(features) if features is not None else [c for c in reference.columns if c in current]
    if not names:
        raise ValueError("no features to compare: the two frames share no columns")
    rows = -(-len(names) // columns)
    figure = Figure(figsize=(4 * columns, 2.8 * rows), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns)).ravel()
    for axis, name in zip(axes, names, strict=False):
        left = pd.to_numeric(reference[name], errors="coerce").dropna().to_numpy()
        right = pd.to_numeric(current[name], errors="coerce").dropna().to_numpy()
        both = np.concatenate([left, right])
        if both.size == 0:
            axis.set_title(f"{name} (no values)")
            continue
        edges = np.histogram_bin_edges(both, bins=bins)
        axis.hist(left, bins=edges, density=True, alpha=0.55, label=f"{reference_label} (n={left.size})")
        axis.hist(right, bins=edges, density=True, alpha=0.55, label=f"{current_label} (n={right.size})")
        axis.set_title(name)
        axis.set_ylabel("density")
        axis.legend(fontsize="small")
    for axis in axes[len(names) :]:
        axis.set_visible(False)
    figure.suptitle(f"Feature distributions: {reference_label} vs {current_label}")
    return figure
