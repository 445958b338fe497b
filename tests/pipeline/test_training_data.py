"""The training step builds a split's matrices once and trains every seed on them: the same models as on
fresh matrices, byte for byte (XGBoost keeps a matrix's histogram bins; reusing them must not change a
tree)."""

from __future__ import annotations

import pandas as pd
import pytest

from asteroid import features, splitting, train


@pytest.fixture(scope="module")
def split(sample_frame: pd.DataFrame) -> splitting.Split:
    return splitting.group_split(*features.build_features(sample_frame), seed=0)


def test_seeds_trained_on_shared_matrices_equal_those_trained_on_fresh_ones(split: splitting.Split) -> None:
    shared = train.training_data(split)
    for seed in (0, 1, 2):
        reused = train.train_classifier(split, seed=seed, data=shared)
        fresh = train.train_classifier(split, seed=seed)
        assert reused.booster.save_raw("json") == fresh.booster.save_raw("json"), seed
        assert (reused.best_iteration, reused.evals_result) == (fresh.best_iteration, fresh.evals_result)


def test_matrices_built_for_other_data_settings_are_refused(split: splitting.Split) -> None:
    per_row = train.training_data(split, {"sample_weighting": "per_row"})
    with pytest.raises(ValueError, match="sample_weighting"):
        train.train_classifier(split, seed=0, data=per_row)
