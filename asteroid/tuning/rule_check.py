"""Whether a configuration meets the project's aim against the CNEOS rule, over many group splits.

The aim (README "Model quality"): over 20 group splits of the table, the winner of the pipeline's seeds
(picked on validation, as ``select_best`` picks it) loses to the rule on validation at most twice, and its
mean validation recall is not below the rule's. Decided on validation, like the tuning objective; the same
winners' test figures are reported beside it, never used to decide.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from asteroid import comparison, evaluate, features, splitting, train
from asteroid.steps.parameters import TRAINING_DEFAULTS

SPLITS = 20
MAX_LOSSES = 2


@dataclass(frozen=True)
class RuleCheck:
    """A configuration's winners against the rule over ``splits`` group splits."""

    splits: int
    val_outcomes: dict[str, int]
    val_recall: float
    rule_val_recall: float
    val_accuracy_margin: float
    test_outcomes: dict[str, int]
    test_recall: float
    rule_test_recall: float
    max_losses: int = MAX_LOSSES
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def _outcomes(outcomes: list[str]) -> dict[str, int]:
    return {name: outcomes.count(name) for name in comparison.OUTCOMES}


def _winner_on(part: splitting.SplitPart, winner: comparison.Winner) -> tuple[str, float, float]:
    """The winner against the rule on one split part: outcome, model recall, rule recall."""
    probabilities = train.predict_proba(winner.result.booster, part.features)
    model = evaluate.classification_metrics(part.labels, probabilities)
    rule = evaluate.baseline_metrics(part.features, part.labels)
    predicted = (probabilities >= model["threshold"]).astype(int)
    counts = evaluate.rule_disagreements(part.labels, predicted, evaluate.cneos_baseline(part.features))
    return evaluate.outcome(counts), model["recall"], rule["recall"]


def check_configuration(
    frame: pd.DataFrame,
    params: dict[str, Any] | None,
    splits: int = SPLITS,
    n_models: int = TRAINING_DEFAULTS["seeds"],
    max_losses: int = MAX_LOSSES,
) -> RuleCheck:
    """Train the pipeline's seeds on each of ``splits`` group splits (seeds 0..splits-1) of a table in NASA's
    schema with ``params`` over the training defaults, and judge the winners against the rule."""
    if splits < 1:
        raise ValueError(f"splits must be at least 1, got {splits}")
    frame_features, labels, groups = features.build_features(frame)
    rows: dict[str, list[Any]] = {key: [] for key in ("val", "test")}
    margins = []
    for split_seed in range(splits):
        split = splitting.group_split(frame_features, labels, groups, seed=split_seed)
        winner = comparison.pipeline_winner(split, n_models, params)
        rows["val"].append(_winner_on(split.val, winner))
        rows["test"].append(_winner_on(split.test, winner))
        rule_val_accuracy = evaluate.baseline_metrics(split.val.features, split.val.labels)["accuracy"]
        margins.append(winner.val_metrics["accuracy"] - rule_val_accuracy)
    val_outcomes = _outcomes([outcome for outcome, _, _ in rows["val"]])
    val_recall = statistics.fmean(recall for _, recall, _ in rows["val"])
    rule_val_recall = statistics.fmean(recall for _, _, recall in rows["val"])
    failures = []
    if val_outcomes["loss"] > max_losses:
        failures.append(f"loses to the rule on {val_outcomes['loss']} of {splits} validation sets")
    if val_recall < rule_val_recall:
        failures.append(f"mean validation recall {val_recall:.4f} below the rule's {rule_val_recall:.4f}")
    return RuleCheck(
        splits=splits,
        val_outcomes=val_outcomes,
        val_recall=val_recall,
        rule_val_recall=rule_val_recall,
        val_accuracy_margin=statistics.fmean(margins),
        test_outcomes=_outcomes([outcome for outcome, _, _ in rows["test"]]),
        test_recall=statistics.fmean(recall for _, recall, _ in rows["test"]),
        rule_test_recall=statistics.fmean(recall for _, _, recall in rows["test"]),
        max_losses=max_losses,
        failures=failures,
    )
