"""Figures are built, labelled and renderable, also for degenerate inputs."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from matplotlib.figure import Figure

from asteroid import evaluate, plots


def _render(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def booster() -> xgb.Booster:
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200), "unused": np.zeros(200)})
    y = (x["a"] + 0.1 * x["b"] > 0).astype(int)
    dtrain = xgb.DMatrix(x, label=y, feature_names=list(x.columns))
    return xgb.train(
        {"objective": "binary:logistic", "max_depth": 2, "nthread": 1}, dtrain, num_boost_round=5
    )


def test_feature_importance_lists_all_features_by_gain(booster: xgb.Booster) -> None:
    figure = plots.feature_importance(booster)
    axes = figure.axes[0]
    labels = [tick.get_text() for tick in axes.get_yticklabels()]
    assert labels[-1] == "a" and set(labels) == {"a", "b", "unused"}  # largest at the top
    assert "gain" in axes.get_title()
    assert _render(figure).startswith(b"\x89PNG")


def test_confusion_matrix_shows_counts() -> None:
    metrics = evaluate.classification_metrics([1, 1, 0, 0, 0], [0.9, 0.2, 0.7, 0.1, 0.1])
    figure = plots.confusion_matrix(metrics)
    texts = [text.get_text() for text in figure.axes[0].texts]
    assert any(text.startswith("2\n") for text in texts)  # true negatives
    assert sum(text.startswith("1\n") for text in texts) == 3
    assert "n=5" in figure.axes[0].get_title()
    _render(figure)
    with pytest.raises(ValueError, match="confusion counts"):
        plots.confusion_matrix({"accuracy": 1.0})


def test_curves() -> None:
    y, p = [0, 1, 0, 1, 1], [0.1, 0.8, 0.4, 0.35, 0.9]
    roc, pr = plots.roc_curve(y, p), plots.pr_curve(y, p)
    assert "AUC" in roc.axes[0].get_legend_handles_labels()[1][1]
    assert roc.axes[0].get_xlabel() == "false positive rate"
    assert "AP" in pr.axes[0].get_legend_handles_labels()[1][0]
    _render(roc)
    _render(pr)


def test_curves_with_one_class_do_not_crash() -> None:
    assert "undefined" in plots.roc_curve([0, 0], [0.1, 0.2]).axes[0].get_title()
    assert "undefined" in plots.pr_curve([1, 1], [0.1, 0.2]).axes[0].get_title()


def test_feature_distributions() -> None:
    rng = np.random.default_rng(1)
    train = pd.DataFrame({"x": rng.normal(size=100), "y": rng.uniform(size=100), "z": np.ones(100)})
    other = train.sample(30, random_state=0) + 1
    figure = plots.feature_distributions(train, other, "train", "serving")
    visible = [axes for axes in figure.axes if axes.get_visible()]
    assert [axes.get_title() for axes in visible] == ["x", "y", "z"]
    assert "train (n=100)" in visible[0].get_legend_handles_labels()[1]
    _render(figure)
    with pytest.raises(ValueError, match="no features"):
        plots.feature_distributions(train, pd.DataFrame({"other": [1.0]}))
