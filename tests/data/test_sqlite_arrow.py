"""A SQLite file is loaded and read through the ADBC driver (Arrow columns bound and built in C); it
stores exactly what SQLAlchemy's own `sqlite3` driver stores — the same values in the same storage classes —
and reads back the batches the other databases give."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pyarrow as pa
import pytest

import global_config
from asteroid import database, dataset_files
from tests.data.test_bulk_load import _awkward_csv

# A URL option only SQLAlchemy's driver reads sends a SQLite file down the `sqlite3` path.
_SQLITE3_OPTION = "?timeout=5"


def _stored(path: Path) -> dict[str, list[tuple[tuple[type, object], ...]]]:
    """Every row of both tables as (Python type, value) pairs: the type tells SQLite's storage class."""
    tables = (global_config.OBSERVATIONS_TABLE, global_config.REJECTED_TABLE)
    with closing(sqlite3.connect(path)) as connection:
        return {
            table: [
                tuple((type(value), value) for value in row)
                for row in connection.execute(f"SELECT * FROM {table} ORDER BY row_id")
            ]
            for table in tables
        }


def _batches(url: str, chunk_rows: int) -> list[pa.RecordBatch]:
    return list(database.iter_observation_batches(url, "2016-09-08", chunk_rows=chunk_rows))


@pytest.fixture(scope="module")
def awkward_csv(tmp_path_factory: pytest.TempPathFactory, sample_csv: Path) -> Path:
    return _awkward_csv(sample_csv, tmp_path_factory.mktemp("awkward") / "awkward.csv")


@pytest.mark.parametrize("csv_name", ["awkward", "sample"])
def test_adbc_stores_the_values_and_storage_classes_sqlite3_stores(
    tmp_path: Path, awkward_csv: Path, sample_csv: Path, csv_name: str
) -> None:
    source = awkward_csv if csv_name == "awkward" else sample_csv
    through_adbc, through_sqlite3 = tmp_path / "adbc.db", tmp_path / "sqlite3.db"
    database.load_csv(source, f"sqlite:///{through_adbc}", chunk_rows=7 if csv_name == "awkward" else 700)
    database.load_csv(source, f"sqlite:///{through_sqlite3}{_SQLITE3_OPTION}", chunk_rows=1000)
    stored = _stored(through_adbc)
    assert stored == _stored(through_sqlite3)
    observations, rejected = stored.values()
    assert len(observations) > 20 and (csv_name == "sample" or len(rejected) == 14)
    assert {kind for row in observations for kind, _ in row} == {int, float, str}


def test_arrow_batches_are_the_dataset_schema_in_chunks(tmp_path: Path, sample_csv: Path) -> None:
    through_adbc = f"sqlite:///{tmp_path / 'neo.db'}"
    database.load_csv(sample_csv, through_adbc)
    batches = _batches(through_adbc, chunk_rows=700)
    assert all(batch.schema == dataset_files.OBSERVATIONS_SCHEMA for batch in batches)
    assert [batch.num_rows for batch in batches[:-1]] == [700] * (len(batches) - 1)
    expected = database.query_observations(through_adbc, "2016-09-08")
    assert sum(batch.num_rows for batch in batches) == len(expected) > 700
    assert pa.Table.from_batches(batches).to_pandas().equals(expected)
    # the same rows read through SQLAlchemy's driver
    same_file = through_adbc + _SQLITE3_OPTION
    assert pa.Table.from_batches(_batches(same_file, chunk_rows=700)).equals(pa.Table.from_batches(batches))


def test_postgresql_gives_the_batches_sqlite_gives(
    tmp_path: Path, sample_csv: Path, postgres_url: str
) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'neo.db'}"
    for url in (sqlite_url, postgres_url):
        database.load_csv(sample_csv, url, chunk_rows=1000)
    from_postgresql = pa.Table.from_batches(_batches(postgres_url, chunk_rows=1000))
    assert from_postgresql.num_rows > 1000
    assert from_postgresql.equals(pa.Table.from_batches(_batches(sqlite_url, chunk_rows=1000)))


def test_a_failed_chunk_write_is_raised_by_the_load(tmp_path: Path, sample_csv: Path) -> None:
    path = tmp_path / "neo.db"
    with closing(sqlite3.connect(path)) as connection:
        connection.execute(f"CREATE TABLE {global_config.OBSERVATIONS_TABLE} (row_id INTEGER PRIMARY KEY)")
        connection.commit()
    with pytest.raises(Exception, match="has no column named Neo Reference ID"):
        database.load_csv(sample_csv, f"sqlite:///{path}", replace=False, chunk_rows=500)


def test_adbc_connections_wait_for_a_lock_as_sqlite3_does(tmp_path: Path) -> None:
    with database.adbc_sqlite(str(tmp_path / "neo.db")) as connection, connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        waits_ms = cursor.fetchone()[0]
    with closing(sqlite3.connect(tmp_path / "neo.db")) as connection:  # the module's default timeout
        assert (
            waits_ms
            == database.SQLITE_BUSY_TIMEOUT_MS
            == connection.execute("PRAGMA busy_timeout").fetchone()[0]
        )
