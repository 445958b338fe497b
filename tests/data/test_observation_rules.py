"""Ingestion (`database.load_csv`) and the serving hook's validation (`feature_rows.validate_rows`) accept the
same rows and name the same problems with the same words: on the sample data, on NASA's table when present,
and on a corpus of boundary values of every column the hook reads (each rule's edge, just inside and just
outside, NaN, infinities, text, a missing value, a minimum diameter above the maximum)."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

import global_config
from asteroid import database, feature_rows, observation_rules, schema

MISSING = object()  # an empty CSV cell; a key left out of the request row
# The columns the hook reads (and ingestion checks with them), by NASA's names.
READ_COLUMNS = tuple(
    next(column.name for column in schema.COLUMNS if column.snake == snake)
    for snake in feature_rows.SOURCE_COLUMNS
)
PAIRED = {low: high for low, high in observation_rules.ORDERED_PAIRS}
PAIRED_REVERSED = {high: low for low, high in observation_rules.ORDERED_PAIRS}
# One problem of the hook's message: row 0, the field, the rule, then what was sent.
HOOK_PROBLEM = re.compile(r"row 0: field '(?P<name>[^']+)' (?P<rule>.+?)(?:, got .*| \(or '[^']+'\))?")


def edges(column: schema.ColumnSpec) -> list[Any]:
    """Each bound of the column, the closest floats on either side of it, and for integer columns a
    fraction just inside."""
    values: list[Any] = []
    for bound, outward in ((column.minimum, -math.inf), (column.maximum, math.inf)):
        if bound is None:
            continue
        inward = -outward
        values += [float(bound), np.nextafter(bound, outward), np.nextafter(bound, inward)]
        if column.kind == "int":
            values += [bound + (0.5 if inward > 0 else -0.5), bound + (1 if inward > 0 else -1)]
    return [float(value) for value in values]


def corpus() -> list[tuple[str, dict[str, Any]]]:
    """(case, {column: value}) changes to a valid row; a diameter's partner moves along so that only the
    rule under test can fail, except in the cases about the order itself."""
    cases: list[tuple[str, dict[str, Any]]] = []
    for name in READ_COLUMNS:
        column = schema.COLUMNS_BY_NAME[name]
        for value in [*edges(column), math.nan, -math.inf, math.inf, "abc", "1,5", "True", MISSING]:
            changes = {name: value}
            if isinstance(value, float) and math.isfinite(value):
                if name in PAIRED:
                    changes[PAIRED[name]] = max(value, 0.0)
                elif name in PAIRED_REVERSED:
                    changes[PAIRED_REVERSED[name]] = min(value, 0.0)
            cases.append((f"{name}={value!r}", changes))
    for low, high in observation_rules.ORDERED_PAIRS:
        if low in READ_COLUMNS:
            cases += [
                (f"{low} above {high}", {low: 2.0, high: 1.0}),
                (f"{low} just above {high}", {low: np.nextafter(1.0, 2.0), high: 1.0}),
                (f"{low} equal to {high}", {low: 1.0, high: 1.0}),
            ]
    return cases


def as_text(value: Any) -> str:
    if value is MISSING:
        return ""
    return value if isinstance(value, str) else repr(float(value))


def hook_row(record: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """The record with the changes, as the hook receives it from JSON (NaN and infinities as Python reads
    them: the hook's body parser refuses those constants before validation)."""
    row = dict(record)
    for name, value in changes.items():
        if value is MISSING:
            del row[name]
        else:
            row[name] = value
    return json.loads(json.dumps(row))


def hook_problems(row: dict[str, Any]) -> list[str] | None:
    """None when the hook accepts the row, else its problems as `<column>: <rule>`."""
    try:
        feature_rows.validate_rows([row])
    except ValueError as error:
        message = str(error).removeprefix("invalid input: ")
        problems = []
        for text in message.split("; "):
            match = HOOK_PROBLEM.fullmatch(text)
            assert match, text
            problems.append(f"{match['name']}: {match['rule']}")
        return sorted(problems)
    return None


def ingest(tmp_path: Path, header: list[str], rows: list[list[str]]) -> dict[int, list[str]]:
    """Load rows through `database.load_csv`; the rejection reasons by row index (accepted rows absent)."""
    path = tmp_path / "rows.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    url = f"sqlite:///{tmp_path / 'rows.db'}"
    report = database.load_csv(path, url)
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        rejected = pd.read_sql_table(global_config.REJECTED_TABLE, connection)
    engine.dispose()
    assert report.rows_loaded + len(rejected) == len(rows)
    # the header is line 1, so row i is on line i + 2
    lines_and_reasons = zip(rejected["line_number"], rejected["reasons"], strict=True)
    return {int(line) - 2: sorted(reasons.split("; ")) for line, reasons in lines_and_reasons}


def csv_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        return header, list(reader)


def test_the_corpus_covers_every_rule() -> None:
    cases = corpus()
    assert len(cases) > 10 * len(READ_COLUMNS)
    names = {name for _, changes in cases for name in changes}
    assert set(READ_COLUMNS) <= names


def test_ingestion_and_the_hook_accept_the_same_boundary_rows_and_name_the_same_problems(
    tmp_path: Path, sample_csv: Path
) -> None:
    header, rows = csv_rows(sample_csv)
    base_text = rows[0]
    record = dict(zip(header, base_text, strict=True))
    base_record = {name: float(record[name]) for name in READ_COLUMNS}
    cases = corpus()
    text_rows = []
    for _, changes in cases:
        text = list(base_text)
        for name, value in changes.items():
            text[header.index(name)] = as_text(value)
        text_rows.append(text)
    rejected = ingest(tmp_path, header, text_rows)
    accepted_by_both = rejected_by_both = 0
    for index, (case, changes) in enumerate(cases):
        by_hook = hook_problems(hook_row(base_record, changes))
        by_ingestion = rejected.get(index)
        assert (by_ingestion is None) == (by_hook is None), (case, by_ingestion, by_hook)
        assert by_ingestion == by_hook, case  # the same problems, in the same words
        accepted_by_both += by_hook is None
        rejected_by_both += by_hook is not None
    assert accepted_by_both > len(READ_COLUMNS) and rejected_by_both > 5 * len(READ_COLUMNS)


def test_a_minimum_diameter_above_the_maximum_is_refused_by_both(tmp_path: Path, sample_csv: Path) -> None:
    header, rows = csv_rows(sample_csv)
    row = list(rows[0])
    low, high = observation_rules.ORDERED_PAIRS[0]
    row[header.index(low)], row[header.index(high)] = row[header.index(high)], row[header.index(low)]
    rule = observation_rules.larger_than(high)
    assert ingest(tmp_path, header, [row]) == {0: [f"{low}: {rule}"]}
    record = {name: float(row[header.index(name)]) for name in READ_COLUMNS}
    assert hook_problems(record) == [f"{low}: {rule}"]


def every_row_is_accepted_by_both(tmp_path: Path, csv_path: Path) -> None:
    header, rows = csv_rows(csv_path)
    assert ingest(tmp_path, header, rows) == {}
    records = json.loads(json.dumps(pd.read_csv(csv_path).to_dict(orient="records")))
    feature_rows.validate_rows(records)  # raises on any problem


def test_the_sample_data_is_accepted_by_both(tmp_path: Path, sample_csv: Path) -> None:
    every_row_is_accepted_by_both(tmp_path, sample_csv)


@pytest.mark.slow
def test_nasas_table_is_accepted_by_both(tmp_path: Path, nasa_csv: Path) -> None:
    every_row_is_accepted_by_both(tmp_path, nasa_csv)
