"""Model quality on NASA's real table (skipped when it is absent), judged on what the pipeline publishes: the
winner on validation of one model per training seed, on the pipeline's default split — and over 20 splits,
against the CNEOS rule on the same test rows.

NASA's label is the CNEOS rule with noise at H 21.9-22.6 that no column resolves, so the rule is the ceiling:
the model is asked to match it, and where it differs from it to differ only at the rule's boundary.
"""

from __future__ import annotations

import pandas as pd
import pytest

from asteroid import comparison, evaluate, features, schema, splitting, train
from asteroid.steps.parameters import PREPROCESSING_DEFAULTS

TARGET_ACCURACY = 0.99
TARGET_RECALL = 0.97
PIPELINE_SEEDS = 3
SPLITS = range(20)
MAX_LOSSES = 2  # issue 11's aim: worse than the rule on at most 2 of the 20 splits
# How close to the CNEOS boundary a row must be for the model to be allowed to differ from the rule there.
H_MARGIN = 0.15
MOID_MARGIN_AU = 0.001


@pytest.fixture(scope="module")
def nasa_features(nasa_frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    return features.build_features(nasa_frame)


@pytest.fixture(scope="module")
def default_run(nasa_features) -> tuple[splitting.Split, comparison.Winner]:
    """The split and the winner a default `pipeline.py --seeds 3` run publishes."""
    split = splitting.group_split(*nasa_features, seed=PREPROCESSING_DEFAULTS["split_seed"])
    return split, comparison.pipeline_winner(split, n_models=PIPELINE_SEEDS)


def test_the_default_runs_winner_meets_the_target(default_run) -> None:
    split, winner = default_run
    test = evaluate.classification_metrics(
        split.test.labels, train.predict_proba(winner.result.booster, split.test.features)
    )
    rule = evaluate.baseline_metrics(split.test.features, split.test.labels)
    assert test["accuracy"] >= TARGET_ACCURACY and test["recall"] >= TARGET_RECALL, test
    assert test["recall"] >= rule["recall"], (test, rule)


def test_the_default_runs_winner_differs_from_the_rule_only_at_its_boundary(default_run) -> None:
    split, winner = default_run
    rows = split.test.features
    differs = train.predict(winner.result.booster, rows) != evaluate.cneos_baseline(rows)
    near_h = (rows["absolute_magnitude"] - schema.CNEOS_H_MAX).abs() <= H_MARGIN
    near_moid = (rows["minimum_orbit_intersection"] - schema.CNEOS_MOID_MAX_AU).abs() <= MOID_MARGIN_AU
    assert not (differs & ~(near_h | near_moid)).any(), rows[differs]


@pytest.mark.slow
def test_over_20_splits_the_model_is_at_least_as_good_as_the_rule(nasa_frame: pd.DataFrame) -> None:
    comparisons = comparison.compare_over_splits(nasa_frame, SPLITS, PIPELINE_SEEDS)
    summary = comparison.summarize(comparisons)
    metrics = summary["metrics"]
    for name in ("accuracy", "f1"):
        model_mean, rule_mean = metrics[name]["model"][0], metrics[name]["rule"][0]
        assert model_mean >= rule_mean, (name, summary)
    assert summary["outcomes"]["loss"] <= MAX_LOSSES, summary
    assert metrics["recall"]["model"][0] >= metrics["recall"]["rule"][0], summary


@pytest.mark.parametrize("split_seed", [0, 1, 2, 42])
def test_cneos_rule_on_the_same_test_rows(nasa_features, split_seed: int) -> None:
    split = splitting.group_split(*nasa_features, seed=split_seed)
    baseline = evaluate.baseline_metrics(split.test.features, split.test.labels)
    assert baseline["accuracy"] >= TARGET_ACCURACY and baseline["recall"] >= TARGET_RECALL, baseline
    assert baseline["accuracy"] < 1.0  # the label is not exactly the rule
