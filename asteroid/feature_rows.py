"""The one feature computation that training and the serving hook share, and the validation of request rows.

Standard library and numpy only, and only relative imports of `schema` and `observation_rules` (whose rules
ingestion applies too, with the same messages): `make serve` ships these modules beside the clearml-serving
hook (`preprocess_serving.py`), so a stock clearml-serving container needs nothing of this repository
installed, and training and serving cannot compute features differently.

Layout: a *source matrix* has one column per `SOURCE_COLUMNS` entry (the measured columns the features are
made of, snake_case); `compute_features` turns source columns into the model's features in `schema.FEATURES`
order, the computed ones (`schema.COMPUTED_FEATURES`) included. Training calls it on the database's columns,
the hook on validated request rows.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np

from . import observation_rules, schema

# Largest batch one request may carry; larger batches get a 422 naming the limit.
MAX_BATCH_ROWS = 10_000
# How many problems one error message lists before it says how many more there are.
MAX_REPORTED_PROBLEMS = 10


def _source_columns() -> tuple[str, ...]:
    columns: list[str] = []
    for feature in schema.INPUT_FEATURES:
        sources = schema.DERIVED_FEATURES.get(feature)
        names = [schema.snake_case(name) for name in sources] if sources else [feature]
        columns.extend(name for name in names if name not in columns)
    return tuple(columns)


SOURCE_COLUMNS: tuple[str, ...] = _source_columns()
_SPECS: dict[str, schema.ColumnSpec] = {column.snake: column for column in schema.COLUMNS}
# Derived feature -> (index of its low, index of its high source column).
_DERIVED_INDEX: dict[str, tuple[int, int]] = {
    name: (SOURCE_COLUMNS.index(schema.snake_case(low)), SOURCE_COLUMNS.index(schema.snake_case(high)))
    for name, (low, high) in schema.DERIVED_FEATURES.items()
}


def compute_features(columns: Mapping[str, Any]) -> dict[str, Any]:
    """Model features in `schema.FEATURES` order from snake_case source columns (arrays or Series).

    A derived feature is the mean of its two source columns (e.g. `est_dia_km_avg`); the computed features
    come from the others (`computed_features`).
    """
    features: dict[str, Any] = {}
    for name in schema.INPUT_FEATURES:
        sources = schema.DERIVED_FEATURES.get(name)
        if sources:
            low, high = (columns[schema.snake_case(column)] for column in sources)
            features[name] = (low + high) / 2.0
        else:
            features[name] = columns[name]
    features.update(computed_features(features))
    return {name: features[name] for name in schema.FEATURES}


def computed_features(features: Mapping[str, Any]) -> dict[str, Any]:
    """The computed features (`schema.COMPUTED_FEATURES`) from the others, e.g. of a feature table whose MOID
    or H was changed: `in_cneos_cell` is 1.0 inside the CNEOS rule's cell, else 0.0."""
    inside = schema.cneos_rule(features["minimum_orbit_intersection"], features["absolute_magnitude"])
    return {schema.CNEOS_CELL: inside.astype(np.float64)}


def feature_matrix(sources: np.ndarray) -> np.ndarray:
    """The (rows × features) matrix, `schema.FEATURES` order, from a (rows × `SOURCE_COLUMNS`) matrix."""
    columns = {name: sources[:, index] for index, name in enumerate(SOURCE_COLUMNS)}
    matrix = np.empty((len(sources), len(schema.FEATURES)), dtype=np.float64)
    for index, values in enumerate(compute_features(columns).values()):
        matrix[:, index] = values  # cheaper than np.column_stack for the one-row requests that dominate
    return matrix


# --- request rows ---------------------------------------------------------------------------------------

# Every key a row may carry: NASA's column names, their snake_case forms and the derived feature names.
_ALIASES: dict[str, str] = {
    **{column.name: column.snake for column in schema.COLUMNS},
    **{column.snake: column.snake for column in schema.COLUMNS},
    **{name: name for name in schema.DERIVED_FEATURES},
}
_ORIGINAL_NAMES = {column.snake: column.name for column in schema.COLUMNS}
# Two key sets take a fast path: NASA's original names (the example client posts whole CSV rows) and exactly
# the snake_case feature names (what the model sees).
_ORIGINAL_KEYS = frozenset(column.name for column in schema.COLUMNS)
_ORIGINAL_NEEDED = frozenset(_ORIGINAL_NAMES[name] for name in SOURCE_COLUMNS)
_get_original = operator.itemgetter(*(_ORIGINAL_NAMES[name] for name in SOURCE_COLUMNS))
_FEATURE_KEYS = frozenset(schema.INPUT_FEATURES)


def _feature_form_key(source: str) -> str:
    """The feature-form key that carries a source column: the derived feature for its sources, else itself."""
    for derived, indexes in _DERIVED_INDEX.items():
        if source in (SOURCE_COLUMNS[index] for index in indexes):
            return derived
    return source


_get_feature_form = operator.itemgetter(*(_feature_form_key(name) for name in SOURCE_COLUMNS))

_RULES = observation_rules.NumberRules([_SPECS[name] for name in SOURCE_COLUMNS])
_NUMBER_TYPES = frozenset({int, float})


def validate_rows(rows: Sequence[Any]) -> np.ndarray:
    """Validated request rows as a (rows × `SOURCE_COLUMNS`) float64 matrix.

    A row is a JSON object whose keys are NASA's column names, their snake_case forms, or the snake_case
    feature names (a derived feature such as `est_dia_km_avg` may stand in for its two source columns; a
    computed one such as `in_cneos_cell` may be given, and must then equal what the hook computes).
    Columns the model does not use (`Name`, dates, `Orbiting Body`, `Hazardous`, ...) are ignored; any other
    key is an error. Raises `ValueError` naming the row index and the field (as the row spelled it) of every
    problem, the first `MAX_REPORTED_PROBLEMS` of them: missing or unknown field, a computed field that
    disagrees with the others, a value that is not a number, NaN or infinity, a value outside its physical
    range, a minimum diameter above the maximum, an empty or oversized batch.
    """
    if len(rows) == 0:
        raise ValueError("the batch is empty: send at least one row")
    if len(rows) > MAX_BATCH_ROWS:
        raise ValueError(f"the batch has {len(rows)} rows; at most {MAX_BATCH_ROWS} are allowed per request")
    parsed = _fast_parse(rows) or _careful_parse(rows)
    problems = parsed.problems + _range_problems(parsed)
    problems += _computed_problems(parsed, {row for row, _ in problems})
    if problems:
        raise ValueError(_summarise(problems))
    return parsed.matrix


@dataclass
class _Parsed:
    matrix: np.ndarray  # rows × SOURCE_COLUMNS; NaN where a value was missing or not a number
    keys: list[tuple[str, ...]]  # per row, the key that carried each source column
    problems: list[tuple[int, str]] = field(default_factory=list)
    reported: np.ndarray | None = None  # cells whose problem is already in `problems`
    computed: list[tuple[int, str, Any]] = field(
        default_factory=list
    )  # (row, key, value) of computed features


_ORIGINAL_KEY_NAMES = tuple(_ORIGINAL_NAMES[name] for name in SOURCE_COLUMNS)
_FEATURE_KEY_NAMES = tuple(_feature_form_key(name) for name in SOURCE_COLUMNS)


def _fast_parse(rows: Sequence[Any]) -> _Parsed | None:
    """Rows in one of the two common key sets, all plain numbers; None sends them to `_careful_parse`."""
    values, keys = [], []
    for row in rows:
        if type(row) is not dict:
            return None
        row_keys = row.keys()
        if row_keys <= _ORIGINAL_KEYS and row_keys >= _ORIGINAL_NEEDED:
            values.append(_get_original(row))
            keys.append(_ORIGINAL_KEY_NAMES)
        elif row_keys == _FEATURE_KEYS:
            values.append(_get_feature_form(row))
            keys.append(_FEATURE_KEY_NAMES)
        else:
            return None
    if not set(map(type, chain.from_iterable(values))) <= _NUMBER_TYPES:
        return None
    try:
        matrix = np.array(values, dtype=np.float64).reshape(len(values), len(SOURCE_COLUMNS))
    except (OverflowError, ValueError):
        return None
    return _Parsed(matrix, keys)


def _careful_parse(rows: Sequence[Any]) -> _Parsed:
    """Row by row and field by field, collecting every problem."""
    matrix = np.full((len(rows), len(SOURCE_COLUMNS)), np.nan)
    parsed = _Parsed(matrix, [], reported=np.zeros(matrix.shape, dtype=bool))
    for index, row in enumerate(rows):
        parsed.keys.append(_parse_row(index, row, parsed))
    return parsed


def _parse_row(index: int, row: Any, parsed: _Parsed) -> tuple[str, ...]:
    """Fill the row's cells of `parsed.matrix`; returns the key that carried each source column."""
    where = f"row {index}"
    problems = parsed.problems
    if not isinstance(row, dict):
        problems.append(
            (index, f"{where}: must be a JSON object of the asteroid's fields, got {_json_type(row)}")
        )
        parsed.reported[index, :] = True
        return _ORIGINAL_KEY_NAMES
    given: dict[str, tuple[str, Any]] = {}
    for key, value in row.items():
        name = _ALIASES.get(key) if isinstance(key, str) else None
        if key in schema.COMPUTED_FEATURES:
            parsed.computed.append((index, key, value))
        elif name is None:
            problems.append((index, f"{where}: unknown field {key!r}"))
        elif name in given:
            problems.append(
                (index, f"{where}: field {name!r} is given twice ({given[name][0]!r} and {key!r})")
            )
        else:
            given[name] = (key, value)
    for derived, (low_index, high_index) in _DERIVED_INDEX.items():
        low, high = SOURCE_COLUMNS[low_index], SOURCE_COLUMNS[high_index]
        if derived in given and (low in given or high in given):
            problems.append((index, f"{where}: give either {derived!r} or {low!r} and {high!r}, not both"))
        elif derived in given:
            given[low] = given[high] = given[derived]
    keys = []
    for column, name in enumerate(SOURCE_COLUMNS):
        if name not in given:
            original = _ORIGINAL_NAMES[name]
            problems.append((index, f"{where}: field {original!r} {observation_rules.MISSING} (or {name!r})"))
            parsed.reported[index, column] = True
            keys.append(name)
            continue
        key, value = given[name]
        keys.append(key)
        number, problem = _as_number(value)
        if problem:
            problems.append((index, f"{where}: field {key!r} {problem}"))
            parsed.reported[index, column] = True
        else:
            parsed.matrix[index, column] = number
    return tuple(keys)


def _as_number(value: Any) -> tuple[float, str | None]:
    if type(value) not in _NUMBER_TYPES:
        return math.nan, f"{observation_rules.NOT_A_NUMBER}, got {_json_type(value)}"
    try:
        number = float(value)
    except OverflowError:
        return math.nan, "is too large a number"
    if not math.isfinite(number):
        return number, f"{observation_rules.NOT_FINITE}, got {value}"
    return number, None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, str):
        return f"string {value[:40]!r}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def _range_problems(parsed: _Parsed) -> list[tuple[int, str]]:
    """Problems of the numeric cells by `observation_rules`: finite, whole, in range, minimum ≤ maximum."""
    matrix = parsed.matrix
    codes = _RULES.cell_problems(matrix)
    if parsed.reported is not None:
        codes[parsed.reported] = observation_rules.VALID
    order = _RULES.order_problems(matrix)
    if not codes.any() and not order.any():
        return []
    problems: list[tuple[int, str]] = []
    for row, column in zip(*np.nonzero(codes), strict=True):
        rule = _RULES.message(codes[row, column], column)
        key = parsed.keys[row][column]
        problems.append((int(row), f"row {row}: field {key!r} {rule}, got {matrix[row, column]:g}"))
    for row, pair in zip(*np.nonzero(order), strict=True):
        low, high = _RULES.pairs[pair]
        low_key, high_key = parsed.keys[row][low], parsed.keys[row][high]
        rule = observation_rules.larger_than(high_key)
        got = f"{matrix[row, low]:g} > {matrix[row, high]:g}"
        problems.append((int(row), f"row {row}: field {low_key!r} {rule}, got {got}"))
    return problems


def _computed_problems(parsed: _Parsed, rows_with_problems: set[int]) -> list[tuple[int, str]]:
    """A computed feature a row carries (e.g. a row of the model's own features) must be what the hook
    computes from the row's other fields; rows with other problems are not checked."""
    problems: list[tuple[int, str]] = []
    for row, key, value in parsed.computed:
        if row in rows_with_problems:
            continue
        number, problem = _as_number(value)
        expected = float(feature_matrix(parsed.matrix[row : row + 1])[0, schema.FEATURES.index(key)])
        if problem:
            problems.append((row, f"row {row}: field {key!r} {problem}"))
        elif number != expected:
            problems.append(
                (
                    row,
                    f"row {row}: field {key!r} is {number:g}, but the row's other fields give {expected:g} "
                    "(the hook computes it; leave it out)",
                )
            )
    return problems


def _summarise(problems: list[tuple[int, str]]) -> str:
    texts = [text for _, text in sorted(problems, key=lambda item: item[0])]
    shown = "; ".join(texts[:MAX_REPORTED_PROBLEMS])
    more = len(texts) - MAX_REPORTED_PROBLEMS
    return f"invalid input: {shown}" + (f"; and {more} more problem(s)" if more > 0 else "")
