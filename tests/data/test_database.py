"""Loading CSVs into SQLite and a real PostgreSQL, rejecting bad rows, and querying by date."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

import global_config
from asteroid import database, sample_data, schema


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'nested' / 'neo.db'}"  # the parent directory does not exist yet
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def loaded_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, sample_csv: Path
) -> str:
    """A database holding the session's sample, loaded once; tests using it must only read."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('loaded') / 'neo.db'}"
    else:
        server = sa.engine.make_url(request.getfixturevalue("postgres_url"))
        engine = sa.create_engine(server, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.exec_driver_sql("CREATE DATABASE neo_loaded")
        engine.dispose()
        url = server.set(database="neo_loaded").render_as_string(hide_password=False)
    report = database.load_csv(sample_csv, url)
    assert report.rows_rejected == 0
    return url


def _expected(frame: pd.DataFrame, query_date: str | None = None) -> pd.DataFrame:
    if query_date is not None:
        frame = frame[frame[schema.DATE_COLUMN] <= query_date]
    return frame.sort_values(schema.DATE_COLUMN, kind="stable").reset_index(drop=True)


def _write_rows(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _corrupt_csv(source: Path, target: Path) -> tuple[Path, dict[int, str]]:
    """The first 20 rows of source with six of them broken; returns line number -> expected reason."""
    with source.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = [next(reader) for _ in range(20)]
    column = header.index
    rows[1][column("Est Dia in KM(min)")] = "-0.5"
    rows[3][column("Close Approach Date")] = "2015-02-30"
    rows[5][column("Relative Velocity km per sec")] = ""
    rows[7][column("Eccentricity")] = "1.0"
    rows[9][column("Hazardous")] = "maybe"
    rows[11] = rows[11][:-1]
    expected = {
        3: "Est Dia in KM(min): must be in [0, 1000]",
        5: "Close Approach Date: invalid date (expected %Y-%m-%d)",
        7: "Relative Velocity km per sec: is missing",
        9: "Eccentricity: must be in [0, 1)",
        11: "Hazardous: not True/False",
        13: "wrong number of fields (expected 40)",
    }
    return _write_rows(target, header, rows), expected


def test_load_report_counts(database_url: str, sample_frame: pd.DataFrame, sample_csv: Path) -> None:
    report = database.load_csv(sample_csv, database_url)
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (
        len(sample_frame),
        len(sample_frame),
        0,
    )
    assert not report.reasons
    assert f"loaded {len(sample_frame)} into {global_config.OBSERVATIONS_TABLE}" in report.summary()
    assert report.as_dict()["rows_loaded"] == len(sample_frame)


def test_round_trip_keeps_values_and_dtypes(loaded_url: str, sample_frame: pd.DataFrame) -> None:
    database_url = loaded_url
    back = database.query_observations(database_url)
    pd.testing.assert_frame_equal(back, _expected(sample_frame))
    assert str(back[schema.LABEL].dtype) == "bool"
    assert back[schema.DATE_COLUMN].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    assert database.count_observations(database_url) == len(sample_frame)
    assert database.count_rejected(database_url) == 0


def test_table_keeps_nasa_column_names_with_key_and_date_index(loaded_url: str) -> None:
    engine = sa.create_engine(loaded_url)
    inspector = sa.inspect(engine)
    columns = [c["name"] for c in inspector.get_columns(global_config.OBSERVATIONS_TABLE)]
    assert columns == [database.ROW_ID, *schema.COLUMN_NAMES]
    assert inspector.get_pk_constraint(global_config.OBSERVATIONS_TABLE)["constrained_columns"] == [
        database.ROW_ID
    ]
    indexed = [i["column_names"] for i in inspector.get_indexes(global_config.OBSERVATIONS_TABLE)]
    assert [schema.DATE_COLUMN] in indexed
    engine.dispose()


def test_bad_rows_are_rejected_with_reasons(database_url: str, sample_csv: Path, tmp_path: Path) -> None:
    path, expected = _corrupt_csv(sample_csv, tmp_path / "corrupt.csv")
    report = database.load_csv(path, database_url)
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (20, 14, 6)
    assert report.reasons == {reason: 1 for reason in expected.values()}
    assert "rejected 6" in report.summary() and "Eccentricity: must be in [0, 1)" in report.summary()
    assert len(database.query_observations(database_url)) == 14

    engine = sa.create_engine(database_url)
    with engine.connect() as connection:
        rejected = pd.read_sql_table(global_config.REJECTED_TABLE, connection)
    engine.dispose()
    assert dict(zip(rejected["line_number"], rejected["reasons"], strict=True)) == expected
    raw = json.loads(rejected.loc[rejected["line_number"] == 9, "raw_values"].iloc[0])
    assert raw["Eccentricity"] == "1.0"
    assert database.count_rejected(database_url) == 6


def test_several_reasons_for_one_row_are_all_kept(tmp_path: Path, sample_csv: Path) -> None:
    with sample_csv.open(newline="") as handle:
        reader = csv.reader(handle)
        header, row = next(reader), next(reader)
    row[header.index("Orbit Uncertainity")] = "12"
    row[header.index("Absolute Magnitude")] = "bright"
    row[header.index("Orbit ID")] = "3.5"
    row[header.index("Equinox")] = "J" * 65
    path = _write_rows(tmp_path / "one.csv", header, [row])
    report = database.load_csv(path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert report.rows_rejected == 1
    assert set(report.reasons) == {
        "Orbit Uncertainity: must be in [0, 9]",
        "Absolute Magnitude: must be a number",
        "Orbit ID: must be a whole number",
        "Equinox: longer than 64 characters",
    }


def test_header_only_file_loads_nothing(tmp_path: Path) -> None:
    path = _write_rows(tmp_path / "header.csv", list(schema.COLUMN_NAMES), [])
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    report = database.load_csv(path, url)
    assert (report.rows_read, report.rows_loaded, report.rows_rejected) == (0, 0, 0)
    assert database.query_observations(url).empty


def test_missing_columns_are_named(tmp_path: Path, sample_frame: pd.DataFrame) -> None:
    path = tmp_path / "missing.csv"
    sample_frame.drop(columns=["Eccentricity", "Hazardous"]).head(5).to_csv(path, index=False)
    with pytest.raises(
        database.SchemaError, match=r"missing 2 required column\(s\): 'Eccentricity', 'Hazardous'"
    ):
        database.load_csv(path, f"sqlite:///{tmp_path / 'db.sqlite'}")


def test_unknown_columns_are_ignored_and_reported(tmp_path: Path, sample_frame: pd.DataFrame) -> None:
    path = tmp_path / "extra.csv"
    sample_frame.head(5).assign(comment="x").to_csv(path, index=False)
    report = database.load_csv(path, f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert report.rows_loaded == 5 and report.ignored_columns == ["comment"]


def test_missing_or_empty_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    with pytest.raises(FileNotFoundError, match=r"nope\.csv"):
        database.load_csv(tmp_path / "nope.csv", url)
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(database.SchemaError, match="empty"):
        database.load_csv(tmp_path / "empty.csv", url)


@pytest.mark.parametrize("query_date", ["1995-01-01", "2003-06-15", "2016-09-08", "1990-01-01"])
def test_query_date_is_inclusive_upper_bound(
    loaded_url: str, sample_frame: pd.DataFrame, query_date: str
) -> None:
    back = database.query_observations(loaded_url, query_date)
    pd.testing.assert_frame_equal(back, _expected(sample_frame, query_date))


@pytest.mark.parametrize("query_date", ["2010-13-01", "2010/01/01", "yesterday", "2010-1-1", ""])
def test_query_date_is_validated(tmp_path: Path, query_date: str) -> None:
    with pytest.raises(ValueError, match="query_date"):
        database.query_observations(f"sqlite:///{tmp_path / 'db.sqlite'}", query_date)


def test_query_before_loading_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(LookupError, match="run load_csv first"):
        database.query_observations(f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert database.count_observations(f"sqlite:///{tmp_path / 'db.sqlite'}") == 0


def test_replace_or_append(tmp_path: Path, sample_frame: pd.DataFrame) -> None:
    path = sample_data.to_nasa_csv(sample_frame.head(30), tmp_path / "small.csv")
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    database.load_csv(path, url)
    database.load_csv(path, url, replace=False)
    assert database.count_observations(url) == 60
    database.load_csv(path, url)
    assert database.count_observations(url) == 30


def test_real_table_loads_without_rejections(
    database_url: str, nasa_csv: Path, nasa_frame: pd.DataFrame
) -> None:
    report = database.load_csv(nasa_csv, database_url)
    assert (report.rows_loaded, report.rows_rejected) == (len(nasa_frame), 0)
    back = database.query_observations(database_url, "2016-09-08")
    pd.testing.assert_frame_equal(back, _expected(nasa_frame))


def test_sqlite_loads_five_thousand_rows_in_one_call(tmp_path: Path) -> None:
    """A table of NASA's size and then some; how fast it loads is measured in benchmarks/, not here."""
    path = sample_data.write_sample_csv(tmp_path / "five_k.csv", n_rows=5000, seed=5)
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    report = database.load_csv(path, url)
    assert (report.rows_loaded, report.rows_rejected) == (5000, 0)
    assert len(database.query_observations(url, "2100-01-01")) == 5000


def test_resolve_explicit_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    existing = tmp_path / "mine.csv"
    existing.write_text("x")
    monkeypatch.delenv("NEO_SOURCE_CSV", raising=False)
    assert database.resolve_source_csv(str(existing))[0] == existing.resolve()
    with pytest.raises(FileNotFoundError, match="explicit argument"):
        database.resolve_source_csv(str(tmp_path / "absent.csv"))
    monkeypatch.setenv("NEO_SOURCE_CSV", str(existing))
    path, description = database.resolve_source_csv(None)
    assert path == existing.resolve() and "NEO_SOURCE_CSV" in description
    monkeypatch.setenv("NEO_SOURCE_CSV", str(tmp_path / "absent.csv"))
    with pytest.raises(FileNotFoundError, match="NEO_SOURCE_CSV"):
        database.resolve_source_csv(None)


def test_resolve_default_then_generated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEO_SOURCE_CSV", raising=False)
    monkeypatch.setattr(global_config, "DATA_DIR", tmp_path / "data")
    monkeypatch.setattr(global_config, "DEFAULT_SOURCE_CSV", tmp_path / "data" / "nasa.csv")
    monkeypatch.setattr(global_config, "SAMPLE_ROWS", 40)
    path, description = database.resolve_source_csv(None)
    assert path == tmp_path / "data" / database.SAMPLE_CSV_NAME
    assert "generated 40 sample rows" in description
    assert len(pd.read_csv(path)) == 40

    (tmp_path / "data" / "nasa.csv").write_text("x")
    path, description = database.resolve_source_csv(None)
    assert path == tmp_path / "data" / "nasa.csv" and "NASA table" in description
