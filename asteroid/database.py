"""Validate a NASA-format CSV into a SQL database (SQLite or PostgreSQL) and query it back by date.

The numeric columns are checked by `observation_rules`, the rules the serving hook applies to request rows;
dates, booleans and text, which the hook does not read, here.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

import global_config
from asteroid import observation_rules, sample_data, schema

ROW_ID = "row_id"
SAMPLE_CSV_NAME = "sample_asteroids.csv"
_TRUE = {"true", "1"}
_FALSE = {"false", "0"}
_DATE_RE = r"\d{4}-\d{2}-\d{2}"
_DATETIME_RE = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"
_DATE_FORMATS = {"date": (_DATE_RE, schema.DATE_FORMAT), "datetime": (_DATETIME_RE, schema.DATETIME_FORMAT)}
_MAX_TEXT = 64  # length of the SQL string columns (Orbiting Body, Equinox)
_EARLIEST_DATE = "1900-01-01"
_LATEST_DATE = "2100-12-31"
_NUMERIC_COLUMNS = tuple(column for column in schema.COLUMNS if column.kind in ("int", "float"))
_NUMBER_RULES = observation_rules.NumberRules(_NUMERIC_COLUMNS)
_CELL_PROBLEMS = (observation_rules.INFINITE, observation_rules.FRACTIONAL, observation_rules.OUT_OF_RANGE)
_NAN_TEXT = r"[+-]?nan"  # read as NaN, which is a number that is not finite, not an unreadable one
_SQL_TYPES = {
    "int": sa.BigInteger,
    "float": sa.Double,
    "bool": sa.Boolean,
    "date": lambda: sa.String(10),
    "datetime": lambda: sa.String(19),
    "str": lambda: sa.String(_MAX_TEXT),
}


class SchemaError(ValueError):
    """The CSV cannot be loaded at all (missing or duplicated columns, no header)."""


@dataclass
class LoadReport:
    """What `load_csv` did: counts, and why rows were rejected."""

    source: str
    database: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    ignored_columns: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        text = (
            f"read {self.rows_read} rows from {self.source}: loaded {self.rows_loaded} into "
            f"{global_config.OBSERVATIONS_TABLE}, rejected {self.rows_rejected} into "
            f"{global_config.REJECTED_TABLE} ({self.database}, {self.seconds:.2f} s)"
        )
        if self.reasons:
            top = "; ".join(f"{count}× {reason}" for reason, count in self.reasons.most_common(10))
            text += f"\nrejection reasons: {top}"
        if self.ignored_columns:
            text += f"\nignored unknown columns: {', '.join(self.ignored_columns)}"
        return text

    def as_dict(self) -> dict[str, object]:
        """Plain values, e.g. for experiment tracking."""
        return {
            "source": self.source,
            "database": self.database,
            "rows_read": self.rows_read,
            "rows_loaded": self.rows_loaded,
            "rows_rejected": self.rows_rejected,
            "reasons": dict(self.reasons),
            "ignored_columns": list(self.ignored_columns),
        }


# --- tables ------------------------------------------------------------------------------------------


def _tables(metadata: sa.MetaData) -> tuple[sa.Table, sa.Table]:
    observations = sa.Table(
        global_config.OBSERVATIONS_TABLE,
        metadata,
        sa.Column(ROW_ID, sa.Integer, primary_key=True, autoincrement=True),
        *(sa.Column(c.name, _SQL_TYPES[c.kind](), nullable=False) for c in schema.COLUMNS),
    )
    sa.Index(f"ix_{global_config.OBSERVATIONS_TABLE}_close_approach_date", observations.c[schema.DATE_COLUMN])
    rejected = sa.Table(
        global_config.REJECTED_TABLE,
        metadata,
        sa.Column(ROW_ID, sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("line_number", sa.Integer, nullable=False),  # line in the CSV file; the header is line 1
        sa.Column("reasons", sa.Text, nullable=False),
        sa.Column("raw_values", sa.Text, nullable=False),  # JSON object of the row's text as read
        sa.Column("source", sa.Text, nullable=False),
    )
    return observations, rejected


def _engine(database_url: str) -> Engine:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(url)


def _display_url(database_url: str) -> str:
    return make_url(database_url).render_as_string(hide_password=True)


# --- reading and validation --------------------------------------------------------------------------


def _read_text_rows(csv_path: Path) -> tuple[list[str], list[int], list[list[str]]]:
    """Header, and the line number and fields of every non-blank record."""
    with csv_path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header:
            raise SchemaError(f"{csv_path} is empty: expected a header row with the NASA column names")
        lines, rows = [], []
        for row in reader:
            if row:
                lines.append(reader.line_num)
                rows.append([cell.strip() for cell in row])
    return [name.strip() for name in header], lines, rows


def _check_header(header: list[str], csv_path: Path) -> list[str]:
    """Returns the unknown (ignored) columns; raises on missing or duplicated ones."""
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise SchemaError(f"{csv_path} has duplicated column(s): {', '.join(map(repr, duplicated))}")
    missing = [name for name in schema.COLUMN_NAMES if name not in header]
    if missing:
        raise SchemaError(
            f"{csv_path} is missing {len(missing)} required column(s): {', '.join(map(repr, missing))}"
        )
    return [name for name in header if name not in schema.COLUMNS_BY_NAME]


def _validate_numbers(text: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, dict[str, np.ndarray]]]:
    """Float64 values of the numeric columns of a frame of stripped text, and per column {reason: mask of
    failing rows}: the rules of `observation_rules`, which the serving hook applies too."""
    cells = text[[column.name for column in _NUMERIC_COLUMNS]]
    missing = (cells == "").to_numpy()
    values = cells.apply(lambda column: pd.to_numeric(column.where(column != ""), errors="coerce"))
    values = values.astype("float64")
    matrix = values.to_numpy()
    nan_text = cells.apply(lambda column: column.str.fullmatch(_NAN_TEXT, case=False)).to_numpy(dtype=bool)
    unreadable = np.isnan(matrix) & ~missing & ~nan_text
    codes = _NUMBER_RULES.cell_problems(matrix)
    codes[missing | unreadable] = observation_rules.VALID
    problems: dict[str, dict[str, np.ndarray]] = {}
    for index, column in enumerate(_NUMERIC_COLUMNS):
        problems[column.name] = {
            f"{column.name}: {observation_rules.MISSING}": missing[:, index],
            f"{column.name}: {observation_rules.NOT_A_NUMBER}": unreadable[:, index],
            **{
                f"{column.name}: {_NUMBER_RULES.message(code, index)}": codes[:, index] == code
                for code in _CELL_PROBLEMS
            },
        }
    order = _NUMBER_RULES.order_problems(matrix)
    for pair, (low, _) in enumerate(_NUMBER_RULES.pairs):
        name = _NUMERIC_COLUMNS[low].name
        problems[name][f"{name}: {_NUMBER_RULES.order_message(pair)}"] = order[:, pair]
    return values, problems


def _validate_column(text: pd.Series, column: schema.ColumnSpec) -> tuple[pd.Series, dict[str, pd.Series]]:
    """Typed values and {reason: mask of failing rows} for one non-numeric column of stripped text."""
    missing = text == ""
    problems: dict[str, pd.Series] = {f"{column.name}: {observation_rules.MISSING}": missing}
    if column.kind in ("date", "datetime"):
        pattern, fmt = _DATE_FORMATS[column.kind]
        parsed = pd.to_datetime(text.where(text.str.fullmatch(pattern)), format=fmt, errors="coerce")
        problems[f"{column.name}: invalid {column.kind} (expected {fmt})"] = parsed.isna() & ~missing
        outside = (parsed < pd.Timestamp(_EARLIEST_DATE)) | (parsed > pd.Timestamp(_LATEST_DATE))
        problems[f"{column.name}: {column.kind} outside {_EARLIEST_DATE}..{_LATEST_DATE}"] = outside
        return text, problems
    if column.kind == "bool":
        lowered = text.str.lower()
        problems[f"{column.name}: not True/False"] = ~lowered.isin(_TRUE | _FALSE) & ~missing
        return lowered.isin(_TRUE), problems
    problems[f"{column.name}: longer than {_MAX_TEXT} characters"] = text.str.len() > _MAX_TEXT
    return text, problems


def validate_frame(text: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Validate a frame of stripped CSV text in the source schema.

    Returns the typed frame (meaningful only where valid) and, per row, the list of reasons it is
    invalid (empty list = valid), in column order. The numeric columns follow `observation_rules`, as the
    serving hook's request rows do.
    """
    numbers, number_problems = _validate_numbers(text)
    typed: dict[str, pd.Series] = {}
    reasons: list[list[str]] = [[] for _ in range(len(text))]
    for column in schema.COLUMNS:
        if column.name in number_problems:
            typed[column.name], problems = numbers[column.name], number_problems[column.name]
        else:
            typed[column.name], problems = _validate_column(text[column.name], column)
        for reason, mask in problems.items():
            for position in np.flatnonzero(np.asarray(mask, dtype=bool)):
                reasons[position].append(reason)
    return pd.DataFrame(typed, index=text.index), pd.Series(reasons, index=text.index, dtype=object)


def _bulk_insert(connection: sa.Connection, table: sa.Table, frame: pd.DataFrame) -> None:
    """Insert a frame whose columns are table columns, bypassing per-row SQLAlchemy work where the
    driver has a fast bulk path (per-row parameter processing dominated the load time)."""
    names = list(frame.columns)
    # tolist() gives native Python scalars, which every DBAPI driver accepts.
    rows = list(zip(*(frame[name].tolist() for name in names), strict=True))
    quote = connection.dialect.identifier_preparer.quote
    insert = f"INSERT INTO {quote(table.name)} ({', '.join(quote(name) for name in names)}) VALUES "
    if connection.dialect.driver == "pysqlite":
        connection.exec_driver_sql(insert + f"({', '.join('?' * len(names))})", rows)
    elif connection.dialect.driver == "psycopg2":
        # COPY is PostgreSQL's bulk path. str() of a float is its shortest round-trip form, so values
        # arrive exactly; booleans arrive as True/False, which PostgreSQL accepts.
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        buffer.seek(0)
        columns = ", ".join(quote(name) for name in names)
        cursor = connection.connection.cursor()  # the DBAPI connection, inside this transaction
        try:
            cursor.copy_expert(f"COPY {quote(table.name)} ({columns}) FROM STDIN WITH (FORMAT csv)", buffer)
        finally:
            cursor.close()
    else:
        connection.execute(table.insert(), [dict(zip(names, row, strict=True)) for row in rows])


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype(schema.dtypes())


# --- loading -----------------------------------------------------------------------------------------


def load_csv(csv_path: str | Path, database_url: str, *, replace: bool = True) -> LoadReport:
    """Validate every row of a NASA-format CSV and write valid rows and rejected rows (with reasons).

    With replace=True both tables are recreated; otherwise rows are appended.
    """
    started = time.perf_counter()
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"source CSV not found: {csv_path}")
    header, lines, rows = _read_text_rows(csv_path)
    ignored = _check_header(header, csv_path)
    report = LoadReport(source=str(csv_path), database=_display_url(database_url), ignored_columns=ignored)
    report.rows_read = len(rows)

    width = len(header)
    ragged = np.array([len(row) != width for row in rows], dtype=bool)
    cells = [[""] * width if bad else row for row, bad in zip(rows, ragged, strict=True)]
    text = pd.DataFrame(cells, columns=header, dtype=str)
    text = text[list(schema.COLUMN_NAMES)]
    typed, reasons = validate_frame(text)
    for i in np.flatnonzero(ragged):
        reasons.iat[i] = [f"wrong number of fields (expected {width})"]
    invalid = np.array([bool(row_reasons) for row_reasons in reasons], dtype=bool)

    valid = _typed(typed[~invalid])
    rejected_records = []
    for i in np.flatnonzero(invalid):
        report.reasons.update(reasons.iat[i])
        rejected_records.append(
            {
                "line_number": lines[i],
                "reasons": "; ".join(reasons.iat[i]),
                "raw_values": json.dumps(dict(zip(header, rows[i], strict=False)), ensure_ascii=False),
                "source": str(csv_path),
            }
        )

    engine = _engine(database_url)
    try:
        observations, rejected = _tables(sa.MetaData())
        with engine.begin() as connection:
            if replace:
                rejected.drop(connection, checkfirst=True)
                observations.drop(connection, checkfirst=True)
            observations.metadata.create_all(connection, checkfirst=True)
            if len(valid):
                _bulk_insert(connection, observations, valid)
            if rejected_records:
                connection.execute(rejected.insert(), rejected_records)
    finally:
        engine.dispose()
    report.rows_loaded = len(valid)
    report.rows_rejected = len(rejected_records)
    report.seconds = time.perf_counter() - started
    return report


# --- querying ----------------------------------------------------------------------------------------


def validate_query_date(query_date: str) -> str:
    """Return query_date if it is a real calendar date written YYYY-MM-DD, else raise ValueError."""
    if not isinstance(query_date, str) or not re.fullmatch(_DATE_RE, query_date.strip()):
        raise ValueError(f"query_date must be a date written YYYY-MM-DD like 2010-12-31, got {query_date!r}")
    try:
        date.fromisoformat(query_date.strip())
    except ValueError as exc:
        raise ValueError(f"query_date {query_date!r} is not a valid calendar date: {exc}") from exc
    return query_date.strip()


def query_observations(database_url: str, query_date: str | None = None) -> pd.DataFrame:
    """Observations with `Close Approach Date` <= query_date (all if None), in the CSV's 40 columns and
    dtypes, ordered by date and then load order."""
    if query_date is not None:
        query_date = validate_query_date(query_date)
    engine = _engine(database_url)
    try:
        observations, _ = _tables(sa.MetaData())
        if not sa.inspect(engine).has_table(observations.name):
            raise LookupError(
                f"table {observations.name!r} not found in {_display_url(database_url)}; run load_csv first"
            )
        date_column = observations.c[schema.DATE_COLUMN]
        statement = sa.select(*(observations.c[name] for name in schema.COLUMN_NAMES)).order_by(
            date_column, observations.c[ROW_ID]
        )
        if query_date is not None:
            # ISO dates sort as text, and only validated dates are stored.
            statement = statement.where(date_column <= query_date)
        with engine.connect() as connection:
            rows = connection.execute(statement).all()
    finally:
        engine.dispose()
    return _typed(pd.DataFrame(rows, columns=list(schema.COLUMN_NAMES)))


def _count(database_url: str, rejected_table: bool) -> int:
    engine = _engine(database_url)
    try:
        table = _tables(sa.MetaData())[1 if rejected_table else 0]
        if not sa.inspect(engine).has_table(table.name):
            return 0
        with engine.connect() as connection:
            return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
    finally:
        engine.dispose()


def count_observations(database_url: str) -> int:
    """Rows in the observations table (0 if it does not exist yet)."""
    return _count(database_url, rejected_table=False)


def count_rejected(database_url: str) -> int:
    """Rows in the rejected-rows table (0 if it does not exist yet)."""
    return _count(database_url, rejected_table=True)


# --- choosing the source -----------------------------------------------------------------------------


def resolve_source_csv(explicit: str | None = None) -> tuple[Path, str]:
    """The CSV to load and a sentence describing it.

    Order: `explicit`, else env NEO_SOURCE_CSV (either must exist); else global_config.DEFAULT_SOURCE_CSV
    if present; else freshly generated sample data in DATA_DIR/sample_asteroids.csv.
    """
    chosen, origin = explicit, "the explicit argument"
    if not chosen:
        chosen, origin = os.environ.get("NEO_SOURCE_CSV") or None, "NEO_SOURCE_CSV"
    if chosen:
        path = Path(chosen).expanduser().resolve()
        if not path.is_file():
            raise FileNotFoundError(f"source CSV from {origin} does not exist: {path}")
        return path, f"CSV from {origin}: {path}"
    default = Path(global_config.DEFAULT_SOURCE_CSV)
    if default.is_file():
        return default, f"NASA table at {default}"
    target = Path(global_config.DATA_DIR) / SAMPLE_CSV_NAME
    sample_data.write_sample_csv(target, global_config.SAMPLE_ROWS, global_config.SAMPLE_SEED)
    return target, (
        f"no source CSV (set NEO_SOURCE_CSV or put nasa.csv at {default}): generated "
        f"{global_config.SAMPLE_ROWS} sample rows (seed {global_config.SAMPLE_SEED}) into {target}"
    )
