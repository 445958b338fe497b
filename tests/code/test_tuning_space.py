"""The tuning search space: defaults, a user's ranges and choices, what is refused, ClearML's ranges."""

from __future__ import annotations

import pytest
from clearml.automation import (
    DiscreteParameterRange,
    LogUniformParameterRange,
    UniformIntegerParameterRange,
    UniformParameterRange,
)

from asteroid import train
from asteroid.tuning.space import (
    DEFAULT_SPACE,
    Choice,
    Range,
    SpaceError,
    build_space,
    clearml_parameters,
    typed_params,
)


def test_the_default_space_covers_the_training_options() -> None:
    space = build_space()
    assert space == DEFAULT_SPACE
    expected = {"eta", "max_depth", "min_child_weight", "gamma", "subsample", "num_boost_round"}
    expected |= {"split_features", "monotone_decreasing", "monotone_increasing", "sample_weighting"}
    assert expected <= set(space)
    for name, domain in space.items():  # every default value can be drawn
        default = train.DEFAULT_PARAMS[name]
        if isinstance(domain, Choice):
            assert default in domain.values, name
        else:
            assert domain.low <= default <= domain.high, name


def test_ranges_and_choices_from_the_command_line() -> None:
    space = build_space(
        ["max_depth=3:10", "eta=0.01:0.5:log", "sample_weighting=per_row"], ["max_depth", "eta"]
    )
    assert space == {"max_depth": Range(3, 10), "eta": Range(0.01, 0.5, log=True)}
    assert build_space(["lambda=0.5:4"])["lambda"] == Range(0.5, 4)  # any tunable parameter may be added
    assert build_space(["sample_weighting=per_row|per_asteroid"])["sample_weighting"] == Choice(
        ("per_row", "per_asteroid")
    )


@pytest.mark.parametrize(
    ("overrides", "only", "message"),
    [
        (["depth=1:3"], None, "unknown parameter 'depth'"),
        ([], ["eta", "colour"], "unknown parameter 'colour'"),
        (["eta=0.3:0.1"], None, "eta: empty range 0.3..0.1"),
        (["gamma=2:2"], None, "gamma: empty range"),
        (["eta=0:0.3:log"], None, "log range needs LOW above 0"),
        (["max_depth=2.5:6"], None, "integer bounds"),
        (["eta=a:b"], None, "must be numbers"),
        (["eta"], None, "expected NAME=LOW:HIGH"),
        (["eta=0.1"], None, "expected LOW:HIGH"),
    ],
)
def test_what_cannot_be_searched_is_refused_naming_the_parameter(
    overrides: list[str], only: list[str] | None, message: str
) -> None:
    with pytest.raises(SpaceError, match=message):
        build_space(overrides, only)


def test_clearml_ranges_named_as_the_training_task_connects_them() -> None:
    ranges = {p.name: p for p in clearml_parameters(DEFAULT_SPACE)}
    assert isinstance(ranges["xgboost/max_depth"], UniformIntegerParameterRange)
    assert isinstance(ranges["xgboost/eta"], LogUniformParameterRange)
    assert isinstance(ranges["xgboost/gamma"], UniformParameterRange)
    assert isinstance(ranges["xgboost/sample_weighting"], DiscreteParameterRange)
    drawn = ranges["xgboost/eta"].get_value()["xgboost/eta"]
    assert 0.02 <= drawn <= 0.3


def test_values_read_back_from_a_task_get_the_defaults_types() -> None:
    typed = typed_params({"max_depth": "5", "eta": "0.05", "split_features": "", "unknown": "x"})
    assert typed == {"max_depth": 5, "eta": 0.05, "split_features": ""}
