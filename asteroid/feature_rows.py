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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np

from . import observation_rules, schema

# Largest batch one request may carry; larger batches get a 422 naming the limit. A JSON batch this large is
# bounded first by the inference app's body limit (serving_local/request_limits.py); the Arrow path
# (`validate_columns`) carries 100,000 rows of the model's features in about 9 MB.
MAX_BATCH_ROWS = 100_000
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


def _check_batch_size(rows: int) -> None:
    if rows == 0:
        raise ValueError("the batch is empty: send at least one row")
    if rows > MAX_BATCH_ROWS:
        raise ValueError(f"the batch has {rows} rows; at most {MAX_BATCH_ROWS} are allowed per request")


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
    _check_batch_size(len(rows))
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
    # Problems counted but not written out: a columnar batch's problem of every row is written for the first
    # rows only, as no message lists more (`_per_row`).
    unlisted: int = 0


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


# --- columnar batches (an Arrow table, read by the hook) ---------------------------------------------------


@dataclass(frozen=True)
class ColumnValues:
    """One column of a columnar batch: `numbers` (float64, NaN where `null`) when its type is numeric, else
    `objects(n)`, which returns its first n values as the Python objects a JSON row would hold (read only when
    the column is one the model uses, and only as far as messages need)."""

    numbers: np.ndarray | None = None
    null: np.ndarray | None = None
    objects: Callable[[int], Sequence[Any]] | None = None

    def first_objects(self, count: int) -> Sequence[Any]:
        return self.objects(count) if self.objects else [None] * count


def validate_columns(names: Sequence[str], columns: Sequence[ColumnValues], rows: int) -> np.ndarray:
    """`validate_rows` for a columnar batch (column `names[i]` holds `columns[i]`): the same rules and, for
    the same rows, the same messages in the same order, column by column instead of row by row (a valid
    batch costs no Python work per row)."""
    _check_batch_size(rows)
    if len(names) != len(columns):
        raise ValueError(f"{len(names)} column names for {len(columns)} columns")
    careful = not _fast_columns(names, columns)
    matrix = np.full((rows, len(SOURCE_COLUMNS)), np.nan)
    parsed = _Parsed(matrix, [], reported=np.zeros(matrix.shape, dtype=bool) if careful else None)
    given, computed = _given_columns(names, parsed)
    keys = tuple(_fill_column(column, name, given, columns, parsed, careful) for column, name in
                 enumerate(SOURCE_COLUMNS))  # fmt: skip
    parsed.keys = [keys] * rows
    problems = parsed.problems + _range_problems(parsed)
    problems += _computed_column_problems(parsed, computed, columns, {row for row, _ in problems})
    if problems:
        raise ValueError(_summarise(problems, parsed.unlisted))
    return matrix


def _fast_columns(names: Sequence[str], columns: Sequence[ColumnValues]) -> bool:
    """Whether `_fast_parse` would take the JSON rows these columns hold: one of the two common key sets,
    numbers only (no nulls) in the columns it reads."""
    keys = set(names)
    if len(keys) != len(names):
        return False
    if keys <= _ORIGINAL_KEYS and keys >= _ORIGINAL_NEEDED:
        used = set(_ORIGINAL_KEY_NAMES)
    elif keys == _FEATURE_KEYS:
        used = set(_FEATURE_KEY_NAMES)
    else:
        return False
    return all(
        values.numbers is not None and (values.null is None or not values.null.any())
        for name, values in zip(names, columns, strict=True)
        if name in used
    )


def _per_row(parsed: _Parsed, text: Callable[[int], str]) -> list[tuple[int, str]]:
    """A problem of every row, written for the first `MAX_REPORTED_PROBLEMS` rows: with one in every row, the
    message (the first problems in row order) never reaches a later row, so those are only counted. Without
    this cap a small stream of many empty columns would cost a string per row and column."""
    rows = len(parsed.matrix)
    listed = min(rows, MAX_REPORTED_PROBLEMS)
    parsed.unlisted += rows - listed
    return [(row, text(row)) for row in range(listed)]


def _given_columns(
    names: Sequence[str], parsed: _Parsed
) -> tuple[dict[str, tuple[str, int]], list[tuple[str, int]]]:
    """Source column -> (key, position) of the column carrying it, and the computed features' columns;
    every row's problems with the names themselves, in the order `_parse_row` finds them."""
    given: dict[str, tuple[str, int]] = {}
    computed: list[tuple[str, int]] = []
    problems = parsed.problems
    for position, key in enumerate(names):
        name = _ALIASES.get(key)
        if key in schema.COMPUTED_FEATURES:
            computed.append((key, position))
        elif name is None:
            problems += _per_row(parsed, lambda row, key=key: f"row {row}: unknown field {key!r}")
        elif name in given:
            first = given[name][0]
            problems += _per_row(
                parsed,
                lambda row, n=name, a=first, b=key: (
                    f"row {row}: field {n!r} is given twice ({a!r} and {b!r})"
                ),
            )
        else:
            given[name] = (key, position)
    for derived, (low_index, high_index) in _DERIVED_INDEX.items():
        low, high = SOURCE_COLUMNS[low_index], SOURCE_COLUMNS[high_index]
        if derived in given and (low in given or high in given):
            text = f"give either {derived!r} or {low!r} and {high!r}, not both"
            problems += _per_row(parsed, lambda row, text=text: f"row {row}: {text}")
        elif derived in given:
            given[low] = given[high] = given[derived]
    return given, computed


def _fill_column(
    column: int,
    name: str,
    given: dict[str, tuple[str, int]],
    columns: Sequence[ColumnValues],
    parsed: _Parsed,
    careful: bool,
) -> str:
    """Put one source column into `parsed.matrix`, recording what `_parse_row` would of its cells; returns
    the key that carried it."""
    rows = len(parsed.matrix)
    if name not in given:
        original = _ORIGINAL_NAMES[name]
        text = f"field {original!r} {observation_rules.MISSING} (or {name!r})"
        parsed.problems.extend(_per_row(parsed, lambda row: f"row {row}: {text}"))
        parsed.reported[:, column] = True
        return name
    key, position = given[name]
    values = columns[position]
    if values.numbers is None:
        objects = values.first_objects(min(rows, MAX_REPORTED_PROBLEMS))
        parsed.problems.extend(
            _per_row(parsed, lambda row: f"row {row}: field {key!r} {_as_number(objects[row])[1]}")
        )
        parsed.reported[:, column] = True
        return key
    parsed.matrix[:, column] = values.numbers
    if not careful:
        return key
    null = values.null if values.null is not None else np.zeros(rows, dtype=bool)
    with np.errstate(invalid="ignore"):
        bad = null | ~np.isfinite(values.numbers)
    for row in np.flatnonzero(bad).tolist():
        value = None if null[row] else float(values.numbers[row])
        parsed.problems.append((row, f"row {row}: field {key!r} {_as_number(value)[1]}"))
    parsed.reported[bad, column] = True
    return key


def _computed_column_problems(
    parsed: _Parsed, computed: list[tuple[str, int]], columns: Sequence[ColumnValues], skipped: set[int]
) -> list[tuple[int, str]]:
    """`_computed_problems` for computed-feature columns: only rows without other problems are checked."""
    if not computed or parsed.unlisted:  # unlisted problems: every row has one
        return []
    rows = len(parsed.matrix)
    checked = np.ones(rows, dtype=bool)
    checked[list(skipped)] = False
    with np.errstate(invalid="ignore"):
        features = feature_matrix(parsed.matrix)
    problems: list[tuple[int, str]] = []
    for key, position in computed:
        values = columns[position]
        expected = features[:, schema.FEATURES.index(key)]
        if values.numbers is None:  # a problem in every checked row: the first ones written (see `_per_row`)
            listed = np.flatnonzero(checked)[:MAX_REPORTED_PROBLEMS].tolist()
            parsed.unlisted += int(checked.sum()) - len(listed)
            objects = values.first_objects(listed[-1] + 1 if listed else 0)
            problems += [(row, f"row {row}: field {key!r} {_as_number(objects[row])[1]}") for row in listed]
            continue
        null = values.null if values.null is not None else np.zeros(rows, dtype=bool)
        with np.errstate(invalid="ignore"):
            wrong = checked & (null | ~np.isfinite(values.numbers) | (values.numbers != expected))
        for row in np.flatnonzero(wrong).tolist():
            number = None if null[row] else float(values.numbers[row])
            problem = _as_number(number)[1]
            text = (f"{problem}" if problem else f"is {number:g}, but the row's other fields give "
                    f"{expected[row]:g} (the hook computes it; leave it out)")  # fmt: skip
            problems.append((row, f"row {row}: field {key!r} {text}"))
    return problems


def _summarise(problems: list[tuple[int, str]], unlisted: int = 0) -> str:
    texts = [text for _, text in sorted(problems, key=lambda item: item[0])]
    shown = "; ".join(texts[:MAX_REPORTED_PROBLEMS])
    more = len(texts) + unlisted - MAX_REPORTED_PROBLEMS
    return f"invalid input: {shown}" + (f"; and {more} more problem(s)" if more > 0 else "")
