"""The rules an observation's numeric values must follow, and their messages: one definition that ingestion
(`database.py`, every numeric column of a CSV) and the serving hook (`feature_rows.py`, the columns a request
row carries) both apply, to a matrix of values, so that a row one of them accepts the other accepts too.

Per cell, the first rule that fails is its problem: a finite number, a whole number for integer columns,
inside the column's physical range (`schema.COLUMNS`). Across cells: each minimum diameter at most its
maximum (`ORDERED_PAIRS`). The caller says how a value got into the matrix (CSV text, JSON) and reports what
could not be read as a number (`MISSING`, `NOT_A_NUMBER`); it frames each message with where the value came
from: ingestion as `<column>: <rule>`, the hook as `row <i>: field '<key>' <rule>, got <value>`.

numpy and a relative import of `schema` only: `serving/hook_package.py` ships it in the hook's folder, so
that a stock clearml-serving container needs nothing of this repository installed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from . import schema

MISSING = "is missing"
NOT_A_NUMBER = "must be a number"
NOT_FINITE = "must be a finite number"
NOT_WHOLE = "must be a whole number"

# The first of each pair must not be larger than the second.
ORDERED_PAIRS: tuple[tuple[str, str], ...] = (
    ("Est Dia in KM(min)", "Est Dia in KM(max)"),
    ("Est Dia in M(min)", "Est Dia in M(max)"),
    ("Est Dia in Miles(min)", "Est Dia in Miles(max)"),
    ("Est Dia in Feet(min)", "Est Dia in Feet(max)"),
)

# A cell's problem: the first rule it fails, in this order.
VALID, INFINITE, FRACTIONAL, OUT_OF_RANGE = 0, 1, 2, 3


def out_of_range(column: schema.ColumnSpec) -> str:
    return f"must be in {column.range_text()}"


def larger_than(high: str) -> str:
    return f"must not be larger than {high!r}"


def _inside(bound: float | None, inclusive: bool, unbounded: float) -> float:
    """The bound itself when inclusive, else the closest float on the valid side of it."""
    if bound is None:
        return unbounded
    return float(bound) if inclusive else float(np.nextafter(bound, -unbounded))


class NumberRules:
    """The rules of a fixed list of numeric columns, applied to (rows × columns) float matrices of them.

    NaN cells count as not finite: callers that put NaN where a value was missing or unreadable, and have
    reported that already, ignore those cells' codes.
    """

    def __init__(self, columns: Sequence[schema.ColumnSpec]) -> None:
        self.columns = tuple(columns)
        # A value is too low when below `_lowest` and too high when above `_highest`: an exclusive bound moves
        # to the next float inside (x <= b exactly when x < nextafter(b, inf)).
        self._lowest = np.array([_inside(c.minimum, c.min_inclusive, -math.inf) for c in self.columns])
        self._highest = np.array([_inside(c.maximum, c.max_inclusive, math.inf) for c in self.columns])
        self._integral = np.array([c.kind == "int" for c in self.columns])
        index = {column.name: i for i, column in enumerate(self.columns)}
        # (low, high) column indexes of the ordered pairs whose both columns are in this list
        self.pairs: tuple[tuple[int, int], ...] = tuple(
            (index[low], index[high]) for low, high in ORDERED_PAIRS if low in index and high in index
        )

    def cell_problems(self, matrix: np.ndarray) -> np.ndarray:
        """Per cell, the code of its problem (`VALID` when none), as a matrix of the same shape."""
        codes = np.zeros(matrix.shape, dtype=np.int8)  # VALID
        with np.errstate(invalid="ignore"):
            outside = (matrix < self._lowest) | (matrix > self._highest)
            fractional = self._integral & (np.floor(matrix) != matrix)
            finite = np.isfinite(matrix)
        if finite.all() and not outside.any() and not fractional.any():
            return codes  # the common case, cheaply
        codes[outside] = OUT_OF_RANGE
        codes[fractional] = FRACTIONAL
        codes[~finite] = INFINITE
        return codes

    def message(self, code: int, column: int) -> str:
        """The rule a cell with this problem code fails, e.g. `must be in [0, 1)`."""
        if code == INFINITE:
            return NOT_FINITE
        if code == FRACTIONAL:
            return NOT_WHOLE
        return out_of_range(self.columns[column])

    def order_problems(self, matrix: np.ndarray) -> np.ndarray:
        """(rows × `pairs`) bool: where a pair's first value is larger than its second (NaN never is)."""
        problems = np.zeros((len(matrix), len(self.pairs)), dtype=bool)
        with np.errstate(invalid="ignore"):
            for index, (low, high) in enumerate(self.pairs):
                problems[:, index] = matrix[:, low] > matrix[:, high]
        return problems

    def order_message(self, pair: int) -> str:
        """The rule a row breaking this pair fails, said of the pair's first column."""
        return larger_than(self.columns[self.pairs[pair][1]].name)
