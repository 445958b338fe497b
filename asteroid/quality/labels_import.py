"""Late labels in bulk: `python -m asteroid.quality import labels.csv`.

A CNEOS-style file: one row per asteroid (or per close approach), columns `Neo Reference ID` and `Hazardous`
(NASA's names or snake_case `neo_reference_id`, `hazardous`; True/False, true/false or 1/0), optionally
`Close Approach Date` (YYYY-MM-DD): without a date a row labels every stored prediction of that asteroid,
with one only the predictions of rows that carried that date. Other columns are ignored, so the project's
own NASA CSV is a valid file. Labels are written straight to the database and committed before the command
reports; a row matching no stored prediction is kept as unmatched (for the configured time) and counted.
"""

from __future__ import annotations

import csv
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from asteroid import schema
from asteroid.quality import store
from asteroid.serving import contract

_TRUE = {"true", "1"}
_FALSE = {"false", "0"}
_LOOKUP_CHUNK = 500


@dataclass(frozen=True)
class CatalogueRow:
    line: int
    neo_reference_id: int
    close_approach_date: str  # "" when the file gives none
    hazardous: bool


@dataclass(frozen=True)
class ImportReport:
    rows: int
    labelled_predictions: int
    unmatched_rows: int


def _column(header: list[str], *names: str) -> str | None:
    return next((name for name in names if name in header), None)


def read_catalogue(path: Path) -> list[CatalogueRow]:
    """The file's rows; ValueError naming the line and column of the first bad cell."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        neo = _column(header, schema.GROUP, schema.GROUP_NAME)
        label = _column(header, "Hazardous", "hazardous")
        date = _column(header, schema.DATE_COLUMN, schema.snake_case(schema.DATE_COLUMN))
        missing = [name for name, found in ((schema.GROUP, neo), ("Hazardous", label)) if found is None]
        if missing:
            raise ValueError(f"{path}: the header has no column {missing[0]!r}")
        return [_row(line, values, neo, label, date) for line, values in enumerate(reader, start=2)]


def _row(line: int, values: dict[str, str], neo: str, label: str, date: str | None) -> CatalogueRow:
    text = (values.get(neo) or "").strip()
    if not text.isdigit():
        raise ValueError(f"line {line}, column {neo!r}: {text!r} is not a whole number")
    flag = (values.get(label) or "").strip().lower()
    if flag not in _TRUE | _FALSE:
        raise ValueError(f"line {line}, column {label!r}: {flag!r} is not True/False")
    approach = (values.get(date) or "").strip()[:10] if date else ""
    if approach and not (len(approach) == 10 and approach[4] == "-" and approach[7] == "-"):
        raise ValueError(f"line {line}, column {date!r}: {approach!r} is not a YYYY-MM-DD date")
    return CatalogueRow(line, int(text), approach, flag in _TRUE)


def _predictions_of(connection: sa.Connection, neo_ids: list[int]) -> dict[int, list[tuple[str, str | None]]]:
    """Asteroid -> (request id, close-approach date) of its stored predictions."""
    found: dict[int, list[tuple[str, str | None]]] = {}
    columns = store.PREDICTIONS.c
    for start in range(0, len(neo_ids), _LOOKUP_CHUNK):
        chunk = neo_ids[start : start + _LOOKUP_CHUNK]
        query = sa.select(
            columns.neo_reference_id, columns[contract.REQUEST_ID], columns.close_approach_date
        ).where(columns.neo_reference_id.in_(chunk))
        for neo_id, request_id, approach in connection.execute(query):
            found.setdefault(int(neo_id), []).append((request_id, approach))
    return found


def import_labels(path: Path, database_url: str, now: float | None = None) -> ImportReport:
    """Label the stored predictions of the file's asteroids; one transaction."""
    rows = read_catalogue(path)
    received_at = time.time() if now is None else now
    labels: dict[str, store.LabelRecord] = {}  # one per prediction: a later row of the file wins
    unmatched: list[CatalogueRow] = []
    with store.engine(database_url).begin() as connection:
        predictions = _predictions_of(connection, sorted({row.neo_reference_id for row in rows}))
        for row in rows:
            request_ids = [
                request_id
                for request_id, approach in predictions.get(row.neo_reference_id, [])
                if not row.close_approach_date or approach == row.close_approach_date
            ]
            if not request_ids:
                unmatched.append(row)
            label_id = uuid.uuid4().hex
            for request_id in request_ids:
                labels[request_id] = store.LabelRecord(
                    request_id, row.hazardous, label_id, received_at, "catalogue"
                )
        store.store_labels(connection, labels.values())
        _keep_unmatched(connection, unmatched, received_at)
    return ImportReport(len(rows), len(labels), len(unmatched))


def _keep_unmatched(connection: sa.Connection, rows: list[CatalogueRow], received_at: float) -> None:
    table = store.CATALOGUE_UNMATCHED
    for row in rows:
        key = (table.c.neo_reference_id == row.neo_reference_id) & (
            table.c.close_approach_date == row.close_approach_date
        )
        connection.execute(sa.delete(table).where(key))
        connection.execute(
            sa.insert(table).values(
                neo_reference_id=row.neo_reference_id,
                close_approach_date=row.close_approach_date,
                hazardous=row.hazardous,
                received_at=received_at,
            )
        )
