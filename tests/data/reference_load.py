"""The test oracle for bulk ingestion: what the loader accepted and rejected before it read in chunks (the
whole file through `csv.reader`, every number through `pd.to_numeric`, every date through `pd.to_datetime`),
without a database. The chunked loader must write exactly these rows, line numbers, reasons and raw values."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from asteroid import observation_rules, schema

_NUMERIC = tuple(column for column in schema.COLUMNS if column.kind in ("int", "float"))
_RULES = observation_rules.NumberRules(_NUMERIC)
_CELL_PROBLEMS = (observation_rules.INFINITE, observation_rules.FRACTIONAL, observation_rules.OUT_OF_RANGE)
_FORMATS = {
    "date": (r"\d{4}-\d{2}-\d{2}", schema.DATE_FORMAT),
    "datetime": (r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", schema.DATETIME_FORMAT),
}


@dataclass
class Expected:
    accepted: pd.DataFrame  # the valid rows in file order, in the CSV's dtypes
    rejected: list[tuple[int, str, dict[str, str]]]  # line number, reasons, raw values


def _number_problems(text: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, list[tuple[str, np.ndarray]]]]:
    cells = text[[column.name for column in _NUMERIC]]
    missing = (cells == "").to_numpy()
    values = cells.apply(lambda column: pd.to_numeric(column.where(column != ""), errors="coerce"))
    matrix = values.astype("float64").to_numpy()
    nan_text = cells.apply(lambda c: c.str.fullmatch(r"[+-]?nan", case=False)).to_numpy(dtype=bool)
    unreadable = np.isnan(matrix) & ~missing & ~nan_text
    codes = _RULES.cell_problems(matrix)
    codes[missing | unreadable] = observation_rules.VALID
    order = _RULES.order_problems(matrix)
    problems: dict[str, list[tuple[str, np.ndarray]]] = {}
    for index, column in enumerate(_NUMERIC):
        problems[column.name] = [
            (f"{column.name}: {observation_rules.MISSING}", missing[:, index]),
            (f"{column.name}: {observation_rules.NOT_A_NUMBER}", unreadable[:, index]),
        ]
        problems[column.name] += [
            (f"{column.name}: {_RULES.message(c, index)}", codes[:, index] == c) for c in _CELL_PROBLEMS
        ]
        problems[column.name] += [
            (f"{column.name}: {_RULES.order_message(pair)}", order[:, pair])
            for pair, (low, _) in enumerate(_RULES.pairs)
            if low == index
        ]
    return values.astype("float64"), problems


def _other_problems(text: pd.Series, column: schema.ColumnSpec) -> tuple[pd.Series, list[tuple[str, object]]]:
    missing = text == ""
    problems: list[tuple[str, object]] = [(f"{column.name}: {observation_rules.MISSING}", missing)]
    if column.kind in _FORMATS:
        pattern, fmt = _FORMATS[column.kind]
        parsed = pd.to_datetime(text.where(text.str.fullmatch(pattern)), format=fmt, errors="coerce")
        outside = (parsed < pd.Timestamp("1900-01-01")) | (parsed > pd.Timestamp("2100-12-31"))
        problems += [
            (f"{column.name}: invalid {column.kind} (expected {fmt})", parsed.isna() & ~missing),
            (f"{column.name}: {column.kind} outside 1900-01-01..2100-12-31", outside),
        ]
        return text, problems
    if column.kind == "bool":
        lowered = text.str.lower()
        problems.append(
            (f"{column.name}: not True/False", ~lowered.isin({"true", "1", "false", "0"}) & ~missing)
        )
        return lowered.isin({"true", "1"}), problems
    problems.append((f"{column.name}: longer than 64 characters", text.str.len() > 64))
    return text, problems


def expected_load(csv_path: Path) -> Expected:
    with csv_path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader)]
        lines, rows = [], []
        for row in reader:
            if row:
                lines.append(reader.line_num)
                rows.append([cell.strip() for cell in row])
    width = len(header)
    ragged = [len(row) != width for row in rows]
    text = pd.DataFrame(
        [[""] * width if bad else row for row, bad in zip(rows, ragged, strict=True)], columns=header
    )
    text = text[list(schema.COLUMN_NAMES)].astype(str)
    numbers, number_problems = _number_problems(text)
    reasons: list[list[str]] = [[] for _ in rows]
    typed = {}
    for column in schema.COLUMNS:
        if column.kind in ("int", "float"):
            typed[column.name], problems = numbers[column.name], number_problems[column.name]
        else:
            typed[column.name], problems = _other_problems(text[column.name], column)
        for reason, mask in problems:
            for position in np.flatnonzero(np.asarray(mask, dtype=bool)):
                reasons[position].append(reason)
    for position in np.flatnonzero(ragged):
        reasons[position] = [f"wrong number of fields (expected {width})"]
    invalid = np.array([bool(row) for row in reasons], dtype=bool)
    accepted = pd.DataFrame(typed)[~invalid].astype(schema.dtypes()).reset_index(drop=True)
    rejected = [
        (lines[i], "; ".join(reasons[i]), dict(zip(header, rows[i], strict=False)))
        for i in np.flatnonzero(invalid)
    ]
    return Expected(accepted, rejected)


def tables(database_url: str) -> tuple[pd.DataFrame, list[tuple[int, str, dict[str, str]]]]:
    """The observations (load order, CSV dtypes) and rejected rows a load wrote."""
    import sqlalchemy as sa

    import global_config

    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            observations = pd.read_sql_query(
                f"SELECT * FROM {global_config.OBSERVATIONS_TABLE} ORDER BY row_id", connection
            )
            columns = "line_number, reasons, raw_values"
            rejected = pd.read_sql_query(
                f"SELECT {columns} FROM {global_config.REJECTED_TABLE} ORDER BY row_id", connection
            )
    finally:
        engine.dispose()
    accepted = observations[list(schema.COLUMN_NAMES)].astype(schema.dtypes())
    records = [
        (int(line), str(reasons), json.loads(raw))
        for line, reasons, raw in zip(
            rejected["line_number"], rejected["reasons"], rejected["raw_values"], strict=True
        )
    ]
    return accepted, records
