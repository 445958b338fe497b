"""The CNEOS rule check of a tuned configuration, on generated sample data."""

from __future__ import annotations

import pandas as pd
import pytest

from asteroid.tuning.rule_check import check_configuration

HOPELESS = {"max_depth": 1, "num_boost_round": 1, "eta": 0.01}  # predicts nothing hazardous


def test_the_defaults_figures_add_up(sample_frame: pd.DataFrame) -> None:
    check = check_configuration(sample_frame, None, splits=2)
    assert sum(check.val_outcomes.values()) == sum(check.test_outcomes.values()) == 2
    assert check.passed == (check.val_outcomes["loss"] <= 2 and check.val_recall >= check.rule_val_recall)
    assert check.as_dict()["passed"] == check.passed


def test_a_configuration_that_misses_hazards_fails_naming_why(sample_frame: pd.DataFrame) -> None:
    check = check_configuration(sample_frame, HOPELESS, splits=2)
    assert not check.passed and check.val_recall == 0.0
    assert any("recall" in failure for failure in check.failures), check.failures


def test_at_least_one_split() -> None:
    with pytest.raises(ValueError, match="splits"):
        check_configuration(pd.DataFrame(), None, splits=0)
