"""The model-versus-rule comparison the model benchmark and the training task report."""

from __future__ import annotations

import pandas as pd
import pytest

from asteroid import comparison, evaluate, features, splitting


def test_disagreements_count_rows_only_one_side_gets_right() -> None:
    truth = [1, 1, 0, 0, 1, 0]
    model = [1, 0, 0, 1, 1, 1]
    rule = [0, 1, 0, 1, 1, 0]
    counts = evaluate.rule_disagreements(truth, model, rule)
    assert counts == {evaluate.MODEL_ONLY_RIGHT: 1, evaluate.RULE_ONLY_RIGHT: 2}
    assert evaluate.outcome(counts) == "loss"
    assert evaluate.outcome({evaluate.MODEL_ONLY_RIGHT: 2, evaluate.RULE_ONLY_RIGHT: 2}) == "tie"
    assert evaluate.outcome({evaluate.MODEL_ONLY_RIGHT: 1, evaluate.RULE_ONLY_RIGHT: 0}) == "win"
    with pytest.raises(ValueError, match="lengths differ"):
        evaluate.rule_disagreements(truth, model[:-1], rule)


def test_winner_is_the_best_validation_pr_auc(sample_frame: pd.DataFrame) -> None:
    split = splitting.group_split(*features.build_features(sample_frame), seed=3)
    winner = comparison.pipeline_winner(split, n_models=3)
    assert winner.seed in (0, 1, 2)
    others = [comparison.pipeline_winner(split, n_models=1)]  # seed 0 alone
    assert winner.val_metrics["pr_auc"] >= others[0].val_metrics["pr_auc"]


def test_comparison_over_splits_is_consistent(sample_frame: pd.DataFrame) -> None:
    comparisons = comparison.compare_over_splits(sample_frame, [0, 1, 2], n_models=2)
    assert [c.split_seed for c in comparisons] == [0, 1, 2]
    for item in comparisons:
        # accuracies differ by exactly the rows only one side gets right
        margin = item.disagreements[evaluate.MODEL_ONLY_RIGHT] - item.disagreements[evaluate.RULE_ONLY_RIGHT]
        assert item.model["n"] == item.rule["n"]
        assert item.model["accuracy"] - item.rule["accuracy"] == pytest.approx(margin / item.model["n"])
    summary = comparison.summarize(comparisons)
    assert summary["splits"] == 3 and sum(summary["outcomes"].values()) == 3
    mean, sd = summary["metrics"]["accuracy"]["model"]
    assert mean == pytest.approx(sum(c.model["accuracy"] for c in comparisons) / 3) and sd >= 0
    with pytest.raises(ValueError, match="no splits"):
        comparison.summarize([])
