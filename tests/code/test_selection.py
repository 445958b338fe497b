"""The best-model choice uses validation only, breaks ties deterministically and never picks NaN."""

from __future__ import annotations

import math

import pytest

from asteroid.ranking import Candidate, choose


def candidate(seed: int, pr_auc: float, logloss: float) -> Candidate:
    return Candidate(
        task_id=f"t{seed}", seed=seed, model_id=f"m{seed}", val_pr_auc=pr_auc, val_logloss=logloss
    )


def test_highest_validation_pr_auc_wins() -> None:
    assert choose([candidate(0, 0.90, 0.1), candidate(1, 0.95, 0.3), candidate(2, 0.93, 0.05)]).seed == 1


def test_ties_go_to_the_lower_validation_logloss_then_the_lower_seed() -> None:
    assert choose([candidate(0, 0.95, 0.2), candidate(1, 0.95, 0.1)]).seed == 1
    assert choose([candidate(3, 0.95, 0.1), candidate(2, 0.95, 0.1)]).seed == 2


def test_an_undefined_metric_never_wins() -> None:
    assert choose([candidate(0, math.nan, 0.0), candidate(1, 0.5, 0.9)]).seed == 1


def test_no_candidates_is_an_error() -> None:
    with pytest.raises(ValueError, match="no training runs"):
        choose([])
