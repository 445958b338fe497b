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
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

import global_config
from asteroid import csv_chunks, dataset_files, observation_rules, sample_data, schema

ROW_ID = "row_id"
SAMPLE_CSV_NAME = "sample_asteroids.csv"
_TRUE = {"true", "1"}
_FALSE = {"false", "0"}
_DATE_RE = r"\d{4}-\d{2}-\d{2}"
_DATETIME_RE = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"
_DATE_FORMATS = {"date": (_DATE_RE, schema.DATE_FORMAT), "datetime": (_DATETIME_RE, schema.DATETIME_FORMAT)}
SQLITE_BUSY_TIMEOUT_MS = 5000  # sqlite3.connect's default timeout (5.0 s), which SQLAlchemy keeps
_MAX_TEXT = 64  # length of the SQL string columns (Orbiting Body, Equinox)
_EARLIEST_DATE = "1900-01-01"
_LATEST_DATE = "2100-12-31"
_NUMERIC_COLUMNS = tuple(column for column in schema.COLUMNS if column.kind in ("int", "float"))
_NUMBER_RULES = observation_rules.NumberRules(_NUMERIC_COLUMNS)
_CELL_PROBLEMS = (observation_rules.INFINITE, observation_rules.FRACTIONAL, observation_rules.OUT_OF_RANGE)
_NAN_TEXT = r"[+-]?nan"  # read as NaN, which is a number that is not finite, not an unreadable one
_PLAIN_NUMBER = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
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


def _date_index(observations: sa.Table) -> sa.Index:
    """The index of the date queries: made once the rows are in, faster than kept up row by row."""
    return sa.Index(f"ix_{observations.name}_close_approach_date", observations.c[schema.DATE_COLUMN])


def make_engine(database_url: str) -> Engine:
    """An engine on the database; a SQLite file's folder is created when missing."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(url)


def _display_url(database_url: str) -> str:
    return make_url(database_url).render_as_string(hide_password=True)


# --- reading and validation --------------------------------------------------------------------------


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


def _parse_number_column(text: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float64 values of one column of stripped text, and where cells are missing and where unreadable.

    Plain decimal numbers (nearly every cell) are cast by Arrow, which rounds as `float()` and pandas do; any
    other text (`inf`, `nan`, words) by `pd.to_numeric`, NaN text counting as a number that is not finite.
    """
    cells = pa.array(text)
    missing = pc.equal(cells, "").to_numpy(zero_copy_only=False)
    values = np.full(len(text), np.nan)
    plain = _cast_plain_numbers(cells, missing, values)
    unreadable = np.zeros(len(text), dtype=bool)
    other = ~plain & ~missing
    if other.any():
        odd = text[other]
        parsed = pd.to_numeric(odd, errors="coerce").astype("float64").to_numpy()
        values[other] = parsed
        nan_text = odd.str.fullmatch(_NAN_TEXT, case=False).to_numpy(dtype=bool)
        unreadable[other] = np.isnan(parsed) & ~nan_text
    return values, missing, unreadable


def _cast_plain_numbers(cells: pa.Array, missing: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Where the cells are plain decimal numbers, their values written into `values`.

    A column whose every present cell Arrow casts is cast at once, and its finite values are exactly its plain
    numbers: Arrow reads no other text as a finite number (`inf` and `nan` go the other way). Matching the
    plain-number pattern first, needed only when some cell does not cast, was half of the validation's CPU.
    """
    present = ~missing
    try:
        parsed = pc.cast(cells.filter(present) if missing.any() else cells, pa.float64()).to_numpy()
    except pa.ArrowInvalid:
        plain = pc.match_substring_regex(cells, _PLAIN_NUMBER).to_numpy(zero_copy_only=False)
        if plain.any():
            values[plain] = pc.cast(cells.filter(plain), pa.float64()).to_numpy()
        return plain
    finite = np.isfinite(parsed)
    plain = np.zeros(len(cells), dtype=bool)
    plain[np.flatnonzero(present)[finite]] = True
    values[plain] = parsed[finite]
    return plain


def _validate_numbers(text: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, dict[str, np.ndarray]]]:
    """Float64 values of the numeric columns of a frame of stripped text, and per column {reason: mask of
    failing rows}: the rules of `observation_rules`, which the serving hook applies too."""
    parsed = [_parse_number_column(text[column.name]) for column in _NUMERIC_COLUMNS]
    matrix = np.column_stack([values for values, _, _ in parsed])
    missing = np.column_stack([mask for _, mask, _ in parsed])
    unreadable = np.column_stack([mask for _, _, mask in parsed])
    values = pd.DataFrame(matrix, columns=[column.name for column in _NUMERIC_COLUMNS], index=text.index)
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
        # Each distinct text parsed once: a million close approaches fall on a few thousand dates.
        codes, distinct = pd.factorize(text)
        distinct = pd.Series(distinct, dtype=str)
        parsed_distinct = pd.to_datetime(
            distinct.where(distinct.str.fullmatch(pattern)), format=fmt, errors="coerce"
        )
        parsed = pd.Series(parsed_distinct.to_numpy()[codes], index=text.index)
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

    Returns the typed frame (meaningful only where valid) and, for each invalid row (indexed as in `text`;
    valid rows are absent), the list of reasons it is invalid, in column order. The numeric columns follow
    `observation_rules`, as the serving hook's request rows do.
    """
    numbers, number_problems = _validate_numbers(text)
    typed: dict[str, pd.Series] = {}
    failing: list[tuple[str, np.ndarray]] = []  # (reason, mask) of the rules some row fails, in column order
    invalid = np.zeros(len(text), dtype=bool)
    for column in schema.COLUMNS:
        if column.name in number_problems:
            typed[column.name], problems = numbers[column.name], number_problems[column.name]
        else:
            typed[column.name], problems = _validate_column(text[column.name], column)
        for reason, mask in problems.items():
            values = np.asarray(mask, dtype=bool)
            if values.any():
                failing.append((reason, values))
                invalid |= values
    # Reason lists for the invalid rows only: a list per row of a million-row file cost more than the rules.
    positions = np.flatnonzero(invalid)
    reasons: dict[int, list[str]] = {int(position): [] for position in positions}
    for reason, values in failing:
        for position in np.flatnonzero(values):
            reasons[int(position)].append(reason)
    return pd.DataFrame(typed, index=text.index), pd.Series(
        list(reasons.values()), index=text.index[positions], dtype=object
    )


def _bulk_insert(connection: sa.Connection, table: sa.Table, frame: pd.DataFrame) -> None:
    """Insert a frame whose columns are table columns, bypassing per-row SQLAlchemy work where the
    driver has a fast bulk path (per-row parameter processing dominated the load time)."""
    names = list(frame.columns)
    # tolist() gives native Python scalars, which every DBAPI driver accepts.
    rows = zip(*(frame[name].tolist() for name in names), strict=True)  # consumed once, tuple by tuple
    quote = connection.dialect.identifier_preparer.quote
    insert = f"INSERT INTO {quote(table.name)} ({', '.join(quote(name) for name in names)}) VALUES "
    if connection.dialect.driver == "pysqlite":
        # the driver's executemany takes the tuples as they are made (SQLAlchemy's wants them all in a list)
        cursor = connection.connection.cursor()  # the DBAPI connection, inside this transaction
        try:
            cursor.executemany(insert + f"({', '.join('?' * len(names))})", rows)
        finally:
            cursor.close()
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


ChunkWriter = Callable[[pd.DataFrame, list[dict[str, object]]], None]


def _sqlite_file(database_url: str) -> str | None:
    """The file of a SQLite database URL, for the ADBC driver to open as SQLAlchemy's driver does; None for
    another database, an in-memory one, or a URL with options only SQLAlchemy's driver reads."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.query or url.database in (None, "", ":memory:"):
        return None
    return None if url.database.startswith("file:") else url.database


@contextmanager
def adbc_sqlite(path: str) -> Iterator[Any]:
    """An ADBC (DBAPI) connection to a SQLite file that waits for another connection's lock as long as
    SQLAlchemy's `sqlite3` connections do, rather than failing at once as the driver's own would."""
    from adbc_driver_sqlite import dbapi  # imported here: 0.35 s of start-up that only bulk work needs

    with dbapi.connect(path) as connection:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.fetchall()
        yield connection


@contextmanager
def _chunk_writer(
    engine: Engine, database_url: str, observations: sa.Table, rejected: sa.Table
) -> Iterator[ChunkWriter]:
    """A function writing one chunk's valid rows and rejected-row records in one transaction.

    Into a SQLite file through the ADBC driver, which binds the Arrow columns in C (`sqlite3`'s executemany
    binding 41 Python values per row was the load's ceiling); otherwise through SQLAlchemy's connection
    (COPY for PostgreSQL). Both store each column in the storage class SQLAlchemy's driver gives it.
    """
    path = _sqlite_file(database_url)
    if path is None:

        def write(valid: pd.DataFrame, rejected_records: list[dict[str, object]]) -> None:
            with engine.begin() as connection:
                if len(valid):
                    _bulk_insert(connection, observations, valid)
                if rejected_records:
                    connection.execute(rejected.insert(), rejected_records)

        yield write
        return
    # One thread writes a chunk while the caller reads and validates the next: the driver lets go of the GIL
    # while SQLite inserts. A chunk's write waits for the one before, so chunks commit in order.
    with adbc_sqlite(path) as connection, ThreadPoolExecutor(1, thread_name_prefix="sqlite-load") as writer:

        def insert(valid: pd.DataFrame, rejected_records: list[dict[str, object]]) -> None:
            try:
                with connection.cursor() as cursor:
                    if len(valid):
                        arrow = pa.Table.from_pandas(valid, preserve_index=False)
                        cursor.adbc_ingest(observations.name, arrow, mode="append")
                    if rejected_records:
                        records = pa.Table.from_pylist(rejected_records)
                        cursor.adbc_ingest(rejected.name, records, mode="append")
            except BaseException:
                connection.rollback()
                raise
            connection.commit()

        pending: list[Future[None]] = []

        def write(valid: pd.DataFrame, rejected_records: list[dict[str, object]]) -> None:
            if pending:
                pending.pop().result()  # raises what the previous chunk's write raised
            pending.append(writer.submit(insert, valid, rejected_records))

        yield write
        if pending:
            pending.pop().result()


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype(schema.dtypes())


# --- loading -----------------------------------------------------------------------------------------


ProgressCallback = Callable[[LoadReport, float], None]


def print_progress(report: LoadReport, fraction: float) -> None:
    """A line per chunk on stderr: rows so far, how far into the file, the rate."""
    rate = report.rows_read / report.seconds if report.seconds else 0.0
    print(
        f"  {report.rows_read:,} rows read ({fraction:.0%} of the file), {report.rows_loaded:,} loaded, "
        f"{report.rows_rejected:,} rejected, {rate:,.0f} rows/s",
        file=sys.stderr,
        flush=True,
    )


def load_csv(
    csv_path: str | Path,
    database_url: str,
    *,
    replace: bool = True,
    chunk_rows: int = csv_chunks.DEFAULT_CHUNK_ROWS,
    progress: ProgressCallback | None = None,
) -> LoadReport:
    """Validate every row of a NASA-format CSV and write valid rows and rejected rows (with reasons).

    The file is read, validated and written `chunk_rows` lines at a time, one transaction per chunk, so memory
    stays bounded whatever its size; `progress` is called after each chunk of a file of several chunks. With
    replace=True both tables are recreated; otherwise rows are appended.
    """
    started = time.perf_counter()
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"source CSV not found: {csv_path}")
    try:
        chunks = csv_chunks.CsvChunks(csv_path, chunk_rows)
    except csv_chunks.EmptyFile as exc:
        raise SchemaError(f"{exc} with the NASA column names") from None
    engine = make_engine(database_url)
    try:
        with chunks:
            ignored = _check_header(chunks.header, csv_path)
            report = LoadReport(
                source=str(csv_path), database=_display_url(database_url), ignored_columns=ignored
            )
            observations, rejected = _tables(sa.MetaData())
            with engine.begin() as connection:
                if replace:
                    rejected.drop(connection, checkfirst=True)
                    observations.drop(connection, checkfirst=True)
                observations.metadata.create_all(connection, checkfirst=True)
            with _chunk_writer(engine, database_url, observations, rejected) as write:
                for number, (chunk, fraction) in enumerate(csv_chunks.read_ahead(chunks)):
                    write(*_validate_chunk(chunk, chunks.header, report))
                    report.seconds = time.perf_counter() - started
                    if progress is not None and (number or fraction < 1):
                        progress(report, fraction)
            with engine.begin() as connection:
                _date_index(observations).create(connection, checkfirst=True)
    finally:
        engine.dispose()
    report.seconds = time.perf_counter() - started
    return report


def _validate_chunk(
    chunk: csv_chunks.Chunk, header: list[str], report: LoadReport
) -> tuple[pd.DataFrame, list[dict[str, object]]]:
    """The chunk's valid rows, typed, and the records of its rejected rows; counts go into the report."""
    text = chunk.text[list(schema.COLUMN_NAMES)]
    typed, reasons = validate_frame(text)
    by_position = dict(zip(text.index.get_indexer(reasons.index).tolist(), reasons, strict=True))
    for position in chunk.ragged:
        by_position[position] = [f"wrong number of fields (expected {len(header)})"]
    invalid = np.zeros(len(text), dtype=bool)
    invalid[list(by_position)] = True
    rejected_records = []
    for position in sorted(by_position):
        report.reasons.update(by_position[position])
        raw = dict(zip(header, chunk.fields(position), strict=False))
        rejected_records.append(
            {
                "line_number": int(chunk.lines[position]),
                "reasons": "; ".join(by_position[position]),
                "raw_values": json.dumps(raw, ensure_ascii=False),
                "source": report.source,
            }
        )
    valid = _typed(typed[~invalid])
    report.rows_read += len(chunk)
    report.rows_loaded += len(valid)
    report.rows_rejected += len(rejected_records)
    return valid, rejected_records


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


def iter_observation_batches(
    database_url: str, query_date: str | None = None, chunk_rows: int = csv_chunks.DEFAULT_CHUNK_ROWS
) -> Iterator[pa.RecordBatch]:
    """`iter_observations` as Arrow record batches in `dataset_files.OBSERVATIONS_SCHEMA`.

    A SQLite file is read through the ADBC driver, which builds Arrow columns in C: `sqlite3` made 40 Python
    objects per row, most of a million-row read's CPU. Other databases are read as `iter_observations` reads.
    """
    path = _sqlite_file(database_url)
    if path is None:
        for frame in iter_observations(database_url, query_date, chunk_rows):
            yield pa.RecordBatch.from_pandas(
                frame, schema=dataset_files.OBSERVATIONS_SCHEMA, preserve_index=False
            )
        return
    sql = _observations_query(database_url, query_date)
    from adbc_driver_sqlite import StatementOptions  # imported here: 0.35 s of start-up only reading needs

    with adbc_sqlite(path) as connection, connection.cursor() as cursor:
        cursor.adbc_statement.set_options(**{StatementOptions.BATCH_ROWS.value: str(chunk_rows)})
        cursor.execute(sql)
        for batch in cursor.fetch_record_batch():
            if batch.num_rows:
                yield _observations_batch(batch)


def _observations_batch(batch: pa.RecordBatch) -> pa.RecordBatch:
    """A batch the SQLite driver typed by storage class (booleans are integers) in the dataset's types."""
    target = dataset_files.OBSERVATIONS_SCHEMA
    return pa.RecordBatch.from_arrays(
        [column.cast(field.type) for column, field in zip(batch.columns, target, strict=True)], schema=target
    )


def _observations_query(database_url: str, query_date: str | None) -> str:
    """The SQL of the observations up to query_date (validated here), ordered by date and then load order;
    LookupError when nothing was loaded."""
    if query_date is not None:
        query_date = validate_query_date(query_date)
    engine = make_engine(database_url)
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
        return str(statement.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True}))
    finally:
        engine.dispose()


def iter_observations(
    database_url: str, query_date: str | None = None, chunk_rows: int = csv_chunks.DEFAULT_CHUNK_ROWS
) -> Iterator[pd.DataFrame]:
    """Observations with `Close Approach Date` <= query_date (all if None), in the CSV's 40 columns and
    dtypes, ordered by date and then load order: streamed from the server in frames of `chunk_rows` rows."""
    if _sqlite_file(database_url) is not None:
        for batch in iter_observation_batches(database_url, query_date, chunk_rows):
            yield batch.to_pandas()
        return
    # The driver's own cursor yields plain tuples: SQLAlchemy's row objects cost a third of the read.
    sql = _observations_query(database_url, query_date)
    engine = make_engine(database_url)
    try:
        # PostgreSQL streams from a named (server-side) cursor only; SQLite's cursor steps as it is read.
        named = {"name": "neo_observations_stream"} if engine.dialect.driver == "psycopg2" else {}
        with engine.connect() as connection:
            cursor = connection.connection.cursor(**named)
            try:
                cursor.execute(sql)
                while rows := cursor.fetchmany(chunk_rows):
                    yield _frame_of_rows(rows)
            finally:
                cursor.close()
    finally:
        engine.dispose()


def _frame_of_rows(rows: Sequence[Sequence[object]]) -> pd.DataFrame:
    """Rows in the CSV's 40 columns, in its dtypes, built a column at a time (pandas looks at each row object
    given a list of rows, which cost more than fetching them)."""
    dtypes = schema.dtypes()
    return pd.DataFrame(
        {
            name: pd.array(values, dtype="str")
            if dtypes[name] == "str"
            else np.array(values, dtype=dtypes[name])
            for name, values in zip(schema.COLUMN_NAMES, zip(*rows, strict=True), strict=True)
        }
    )


def query_observations(database_url: str, query_date: str | None = None) -> pd.DataFrame:
    """All of `iter_observations` in one frame."""
    frames = list(iter_observations(database_url, query_date))
    if not frames:
        return _typed(pd.DataFrame(columns=list(schema.COLUMN_NAMES)))
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _count(database_url: str, rejected_table: bool) -> int:
    engine = make_engine(database_url)
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
