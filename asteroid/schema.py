"""The NASA close-approach table: its 40 columns, their types and valid ranges, and the model features."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import numpy as np

Kind = Literal["int", "float", "str", "date", "datetime", "bool"]

_PANDAS_DTYPES: dict[str, str] = {"int": "int64", "float": "float64", "bool": "bool"}

DATE_FORMAT = "%Y-%m-%d"
DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"

# CNEOS: potentially hazardous = MOID <= 0.05 au and absolute magnitude H <= 22.0.
CNEOS_MOID_MAX_AU = 0.05
CNEOS_H_MAX = 22.0
# Default probability at or above which the model calls an asteroid hazardous: training's `threshold`
# parameter, which the model then carries to serving and monitoring (asteroid/serving/contract.py).
HAZARD_THRESHOLD = 0.5


@dataclass(frozen=True)
class ColumnSpec:
    """One source column: name, kind and valid range (None = unbounded)."""

    name: str
    kind: Kind
    minimum: float | None = None
    maximum: float | None = None
    min_inclusive: bool = True
    max_inclusive: bool = True

    @property
    def dtype(self) -> str:
        """The pandas dtype `pd.read_csv` gives this column (dates stay strings)."""
        return _PANDAS_DTYPES.get(self.kind, "str")

    @property
    def snake(self) -> str:
        return snake_case(self.name)

    def range_text(self) -> str:
        """The valid range in interval notation, e.g. `[0, 1)`."""
        low = "-inf" if self.minimum is None else f"{self.minimum:g}"
        high = "inf" if self.maximum is None else f"{self.maximum:g}"
        left = "[" if self.min_inclusive and self.minimum is not None else "("
        right = "]" if self.max_inclusive and self.maximum is not None else ")"
        return f"{left}{low}, {high}{right}"


def _float(name: str, low: float | None, high: float | None, **kwargs: bool) -> ColumnSpec:
    return ColumnSpec(name, "float", low, high, **kwargs)


def _int(name: str, low: float | None, high: float | None) -> ColumnSpec:
    return ColumnSpec(name, "int", low, high)


# Ranges are physical plausibility bounds, deliberately wider than any real NEO, so they catch
# corruption (negative sizes, hyperbolic orbits, unit mix-ups) without rejecting real rows.
_KM_MAX = 1000.0  # larger than Ceres
_MISS_AU_MAX = 100.0
_AU_KM = 149_597_870.7
COLUMNS: tuple[ColumnSpec, ...] = (
    _int("Neo Reference ID", 1, 99_999_999),
    _int("Name", 1, 99_999_999),
    _float("Absolute Magnitude", 5.0, 40.0),
    _float("Est Dia in KM(min)", 0.0, _KM_MAX),
    _float("Est Dia in KM(max)", 0.0, _KM_MAX),
    _float("Est Dia in M(min)", 0.0, _KM_MAX * 1000),
    _float("Est Dia in M(max)", 0.0, _KM_MAX * 1000),
    _float("Est Dia in Miles(min)", 0.0, _KM_MAX * 0.621371),
    _float("Est Dia in Miles(max)", 0.0, _KM_MAX * 0.621371),
    _float("Est Dia in Feet(min)", 0.0, _KM_MAX * 3280.84),
    _float("Est Dia in Feet(max)", 0.0, _KM_MAX * 3280.84),
    ColumnSpec("Close Approach Date", "date"),
    _int("Epoch Date Close Approach", -2_208_988_800_000, 4_102_444_800_000),  # ms, 1900..2100
    _float("Relative Velocity km per sec", 0.0, 100.0),
    _float("Relative Velocity km per hr", 0.0, 360_000.0),
    _float("Miles per hour", 0.0, 223_700.0),
    _float("Miss Dist.(Astronomical)", 0.0, _MISS_AU_MAX),
    _float("Miss Dist.(lunar)", 0.0, _MISS_AU_MAX * 390),
    _float("Miss Dist.(kilometers)", 0.0, _MISS_AU_MAX * _AU_KM),
    _float("Miss Dist.(miles)", 0.0, _MISS_AU_MAX * _AU_KM * 0.621372),
    ColumnSpec("Orbiting Body", "str"),
    _int("Orbit ID", 0, 100_000),
    ColumnSpec("Orbit Determination Date", "datetime"),
    _int("Orbit Uncertainity", 0, 9),  # MPC condition code U
    _float("Minimum Orbit Intersection", 0.0, _MISS_AU_MAX),
    _float("Jupiter Tisserand Invariant", -20.0, 100.0),
    _float("Epoch Osculation", 2_400_000.5, 2_600_000.5),  # Julian date
    _float("Eccentricity", 0.0, 1.0, max_inclusive=False),  # bound (elliptical) orbits only
    _float("Semi Major Axis", 0.0, 1000.0, min_inclusive=False),
    _float("Inclination", 0.0, 180.0),
    _float("Asc Node Longitude", 0.0, 360.0),
    _float("Orbital Period", 0.0, 1e7, min_inclusive=False),  # days
    _float("Perihelion Distance", 0.0, 1000.0, min_inclusive=False),
    _float("Perihelion Arg", 0.0, 360.0),
    _float("Aphelion Dist", 0.0, 2000.0, min_inclusive=False),
    _float("Perihelion Time", 2_400_000.5, 2_600_000.5),  # Julian date
    _float("Mean Anomaly", 0.0, 360.0),
    _float("Mean Motion", 0.0, 360.0, min_inclusive=False),  # degrees per day
    ColumnSpec("Equinox", "str"),
    ColumnSpec("Hazardous", "bool"),
)
COLUMN_NAMES: tuple[str, ...] = tuple(column.name for column in COLUMNS)
COLUMNS_BY_NAME: dict[str, ColumnSpec] = {column.name: column for column in COLUMNS}

LABEL = "Hazardous"
GROUP = "Neo Reference ID"
DATE_COLUMN = "Close Approach Date"


def snake_case(name: str) -> str:
    """`Miss Dist.(kilometers)` -> `miss_dist_kilometers`; valid as a Prometheus metric name."""
    snake = re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()
    if not snake:
        raise ValueError(f"cannot make a snake_case name from {name!r}")
    return f"_{snake}" if snake[0].isdigit() else snake


LABEL_NAME = snake_case(LABEL)  # "hazardous"
GROUP_NAME = snake_case(GROUP)  # "neo_reference_id"

# Derived features: name -> the source columns it averages.
DERIVED_FEATURES: dict[str, tuple[str, str]] = {
    "est_dia_km_avg": ("Est Dia in KM(min)", "Est Dia in KM(max)"),
}

# 1.0 where the CNEOS rule calls the row hazardous (MOID <= 0.05 au and H <= 22.0), else 0.0. Computed from
# MOID and H by `feature_rows` in training and serving alike; a request never carries it. With it the trees
# split at the thresholds themselves, wherever the training rows next to them happen to lie (README "Model
# quality": every loss against the rule was a split placed in a gap between training values).
CNEOS_CELL = "in_cneos_cell"
# Orbital and physical columns only, then the computed one: no ids, dates (Epoch Osculation and Perihelion
# Time are Julian dates), constants (Orbiting Body, Equinox), bookkeeping (Orbit ID) or redundant unit copies.
FEATURES: tuple[str, ...] = (
    "absolute_magnitude",
    "est_dia_km_avg",
    "relative_velocity_km_per_sec",
    "miss_dist_astronomical",
    "orbit_uncertainity",
    "minimum_orbit_intersection",
    "jupiter_tisserand_invariant",
    "eccentricity",
    "semi_major_axis",
    "inclination",
    "asc_node_longitude",
    "orbital_period",
    "perihelion_distance",
    "perihelion_arg",
    "aphelion_dist",
    "mean_anomaly",
    "mean_motion",
    CNEOS_CELL,
)
COMPUTED_FEATURES: tuple[str, ...] = (CNEOS_CELL,)
# The features a request may carry by their own names: every feature but the computed ones.
INPUT_FEATURES: tuple[str, ...] = tuple(name for name in FEATURES if name not in COMPUTED_FEATURES)


def cneos_rule(moid_au: object, absolute_magnitude: object) -> np.ndarray:
    """CNEOS definition of a potentially hazardous asteroid, elementwise (bool array)."""
    moid = np.asarray(moid_au, dtype=float)
    h = np.asarray(absolute_magnitude, dtype=float)
    return (moid <= CNEOS_MOID_MAX_AU) & (h <= CNEOS_H_MAX)


def dtypes() -> dict[str, str]:
    """Column name -> pandas dtype, as `pd.read_csv` reads nasa.csv."""
    return {column.name: column.dtype for column in COLUMNS}


def source_column(feature: str) -> str:
    """The original column a (non-derived) feature comes from."""
    for column in COLUMNS:
        if column.snake == feature:
            return column.name
    raise KeyError(f"{feature!r} is not a snake_case source column name")
