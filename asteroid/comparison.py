"""The model against the CNEOS rule: what the pipeline would publish on a split, and how it compares with the
rule on that split's test rows, over as many split seeds as asked."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

import pandas as pd

from asteroid import evaluate, features, splitting, train
from asteroid.ranking import Candidate, choose

METRICS = ("accuracy", "precision", "recall", "f1")
OUTCOMES = ("win", "tie", "loss")


@dataclass(frozen=True)
class Winner:
    """The training run the pipeline's selection picks (best validation PR-AUC, then log loss, then seed)."""

    seed: int
    result: train.TrainResult
    val_metrics: dict[str, Any]


def pipeline_winner(
    split: splitting.Split, n_models: int = 3, params: dict[str, Any] | None = None
) -> Winner:
    """Train seeds 0..n_models-1 on the split and choose one as ``select_best`` does — on validation only."""
    runs: dict[int, Winner] = {}
    candidates = []
    for seed in range(n_models):
        result = train.train_classifier(split, params, seed=seed)
        val = evaluate.classification_metrics(
            split.val.labels, train.predict_proba(result.booster, split.val.features)
        )
        runs[seed] = Winner(seed, result, val)
        candidates.append(Candidate(f"seed-{seed}", seed, f"seed-{seed}", val["pr_auc"], result.best_score))
    return runs[choose(candidates).seed]


@dataclass(frozen=True)
class SplitComparison:
    """Model and rule on one split's test rows, and the winner's validation accuracy minus the rule's (what
    parameters are chosen on)."""

    split_seed: int
    winner_seed: int
    model: dict[str, Any]
    rule: dict[str, Any]
    disagreements: dict[str, int]
    val_accuracy_margin: float

    @property
    def outcome(self) -> str:
        """win / tie / loss of the model against the rule, on test accuracy."""
        return evaluate.outcome(self.disagreements)


def compare_on_split(
    frame_features: pd.DataFrame,
    labels: pd.Series,
    groups: pd.Series,
    split_seed: int,
    n_models: int = 3,
    params: dict[str, Any] | None = None,
) -> SplitComparison:
    """Split by asteroid with ``split_seed``, choose the winner on validation, compare it with the rule."""
    split = splitting.group_split(frame_features, labels, groups, seed=split_seed)
    winner = pipeline_winner(split, n_models, params)
    test = split.test
    probabilities = train.predict_proba(winner.result.booster, test.features)
    model = evaluate.classification_metrics(test.labels, probabilities)
    predicted = (probabilities >= model["threshold"]).astype(int)
    return SplitComparison(
        split_seed=split_seed,
        winner_seed=winner.seed,
        model=model,
        rule=evaluate.baseline_metrics(test.features, test.labels),
        disagreements=evaluate.rule_disagreements(
            test.labels, predicted, evaluate.cneos_baseline(test.features)
        ),
        val_accuracy_margin=winner.val_metrics["accuracy"]
        - evaluate.baseline_metrics(split.val.features, split.val.labels)["accuracy"],
    )


def compare_over_splits(
    frame: pd.DataFrame,
    split_seeds: range | list[int],
    n_models: int = 3,
    params: dict[str, Any] | None = None,
) -> list[SplitComparison]:
    """`compare_on_split` for each split seed, on a table in NASA's schema."""
    frame_features, labels, groups = features.build_features(frame)
    return [compare_on_split(frame_features, labels, groups, seed, n_models, params) for seed in split_seeds]


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan


def summarize(comparisons: list[SplitComparison]) -> dict[str, Any]:
    """Mean and sd per metric for model and rule, and the model's wins / ties / losses on accuracy."""
    if not comparisons:
        raise ValueError("no splits to summarize")
    metrics = {
        name: {
            "model": _mean_sd([c.model[name] for c in comparisons]),
            "rule": _mean_sd([c.rule[name] for c in comparisons]),
        }
        for name in METRICS
    }
    outcomes = {name: sum(c.outcome == name for c in comparisons) for name in OUTCOMES}
    return {"splits": len(comparisons), "metrics": metrics, "outcomes": outcomes}
