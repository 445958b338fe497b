"""The search space over the training step's hyperparameters, and how a user narrows or changes it.

A parameter is searched under the name the training task connects it with (``xgboost/<name>``), so a trial is
an ordinary clone of the training task with some of its ``xgboost`` parameters edited.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from asteroid import train

SECTION = "xgboost"  # the section the training step connects its hyperparameters under
_CELL_AND_BOUNDARY = f"{train.MOID},{train.MAGNITUDE},{train.CNEOS_CELL}"


@dataclass(frozen=True)
class Range:
    """A numeric range (``low`` ≤ value ≤ ``high``), searched on a log scale when ``log``."""

    low: float
    high: float
    log: bool = False

    def describe(self) -> str:
        return f"{self.low:g}..{self.high:g}" + (" (log)" if self.log else "")


@dataclass(frozen=True)
class Choice:
    """A categorical parameter: one of ``values``."""

    values: tuple[str, ...]

    def describe(self) -> str:
        return " | ".join(repr(value) for value in self.values)


Domain = Range | Choice

# Around the hand-chosen defaults (asteroid/train.py), wide enough to find a different optimum; the feature
# options can switch off what the defaults restrict (an empty list: every feature, or no constraint).
DEFAULT_SPACE: dict[str, Domain] = {
    "eta": Range(0.02, 0.3, log=True),
    "max_depth": Range(2, 8),
    "min_child_weight": Range(0.5, 10.0, log=True),
    "gamma": Range(0.0, 4.0),
    "subsample": Range(0.6, 1.0),
    "colsample_bytree": Range(0.6, 1.0),
    "num_boost_round": Range(100, 800),
    "split_features": Choice((_CELL_AND_BOUNDARY, "")),
    "monotone_decreasing": Choice((f"{train.MOID},{train.MAGNITUDE}", "")),
    "monotone_increasing": Choice((train.CNEOS_CELL, "")),
    "sample_weighting": Choice(train.SAMPLE_WEIGHTINGS),
}
# What a user may search: the training step's hyperparameters (every one it connects, not only the defaults).
TUNABLE = {
    key: value
    for key, value in train.DEFAULT_PARAMS.items()
    if key not in ("objective", "eval_metric", "tree_method")
}


class SpaceError(ValueError):
    """A search space the user asked for that cannot be searched; the message names the parameter."""


def is_integer(name: str) -> bool:
    return isinstance(TUNABLE[name], int) and not isinstance(TUNABLE[name], bool)


def parse_domain(name: str, text: str) -> Domain:
    """``LOW:HIGH`` (``LOW:HIGH:log`` for a log scale) for a numeric parameter, ``A|B|…`` for a text one."""
    if name not in TUNABLE:
        raise SpaceError(f"unknown parameter {name!r} (known: {', '.join(sorted(TUNABLE))})")
    if isinstance(TUNABLE[name], str):
        values = tuple(dict.fromkeys(value.strip() for value in text.split("|")))
        return Choice(values)
    parts = text.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "log"):
        raise SpaceError(f"{name}: expected LOW:HIGH or LOW:HIGH:log, got {text!r}")
    try:
        low, high = float(parts[0]), float(parts[1])
    except ValueError:
        raise SpaceError(f"{name}: LOW and HIGH must be numbers, got {text!r}") from None
    domain = Range(low, high, log=len(parts) == 3)
    check_domain(name, domain)
    return domain


def check_domain(name: str, domain: Domain) -> None:
    if isinstance(domain, Choice):
        if not domain.values:
            raise SpaceError(f"{name}: no values to choose from")
        return
    if not (math.isfinite(domain.low) and math.isfinite(domain.high)) or domain.low >= domain.high:
        raise SpaceError(f"{name}: empty range {domain.low:g}..{domain.high:g} (LOW must be below HIGH)")
    if domain.log and domain.low <= 0:
        raise SpaceError(f"{name}: a log range needs LOW above 0, got {domain.low:g}")
    if is_integer(name) and (domain.low != int(domain.low) or domain.high != int(domain.high)):
        raise SpaceError(f"{name}: an integer parameter needs integer bounds, got {domain.describe()}")


def build_space(overrides: list[str] | None = None, only: list[str] | None = None) -> dict[str, Domain]:
    """The default space, with ``NAME=DOMAIN`` overrides (which may add any tunable parameter), restricted to
    the names in ``only`` when given."""
    space = dict(DEFAULT_SPACE)
    for item in overrides or []:
        name, sep, text = item.partition("=")
        if not sep:
            raise SpaceError(f"expected NAME=LOW:HIGH or NAME=A|B, got {item!r}")
        space[name.strip()] = parse_domain(name.strip(), text)
    if only:
        unknown = [name for name in only if name not in space]
        if unknown:
            known = ", ".join(sorted(set(space) | set(TUNABLE)))
            raise SpaceError(f"unknown parameter {unknown[0]!r} (known: {known})")
        space = {name: space[name] for name in only}
    if not space:
        raise SpaceError("the search space is empty")
    return space


def clearml_parameters(space: dict[str, Domain]) -> list[Any]:
    """The space as ClearML's parameter ranges, named ``xgboost/<name>`` as the training task has them."""
    from clearml.automation import (
        DiscreteParameterRange,
        LogUniformParameterRange,
        UniformIntegerParameterRange,
        UniformParameterRange,
    )

    ranges: list[Any] = []
    for name, domain in space.items():
        full_name = f"{SECTION}/{name}"
        if isinstance(domain, Choice):
            ranges.append(DiscreteParameterRange(full_name, values=list(domain.values)))
        elif is_integer(name):
            ranges.append(
                UniformIntegerParameterRange(
                    full_name, min_value=int(domain.low), max_value=int(domain.high), include_max_value=True
                )
            )
        elif domain.log:
            # ClearML's log range takes exponents; Optuna then draws the value on a log scale
            ranges.append(
                LogUniformParameterRange(
                    full_name, min_value=math.log10(domain.low), max_value=math.log10(domain.high)
                )
            )
        else:
            ranges.append(UniformParameterRange(full_name, min_value=domain.low, max_value=domain.high))
    return ranges


def describe(space: dict[str, Domain]) -> dict[str, str]:
    """One line per parameter, for the optimizer task and the console."""
    return {name: domain.describe() for name, domain in space.items()}


def typed_params(values: dict[str, Any]) -> dict[str, Any]:
    """Parameter values as read back from a task (strings) in the types of the training defaults."""
    typed: dict[str, Any] = {}
    for name, value in values.items():
        if name not in TUNABLE:
            continue
        default = TUNABLE[name]
        if isinstance(default, int) and not isinstance(default, bool):
            typed[name] = int(float(value))
        else:
            typed[name] = type(default)(value)
    return typed
