"""Chunked ingestion writes what the whole-file loader wrote: the same accepted rows, the same rejected rows
with the same line numbers, reasons and raw values, whatever the chunk size (tests/data/reference_load.py)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd
import pytest

from asteroid import database, schema
from tests.data.reference_load import expected_load, tables


def _assert_same_load(csv_path: Path, database_url: str, chunk_rows: int) -> database.LoadReport:
    expected = expected_load(csv_path)
    report = database.load_csv(csv_path, database_url, chunk_rows=chunk_rows)
    accepted, rejected = tables(database_url)
    pd.testing.assert_frame_equal(accepted, expected.accepted)
    assert rejected == expected.rejected
    assert (report.rows_loaded, report.rows_rejected) == (len(expected.accepted), len(expected.rejected))
    return report


def _line(cells: list[str], ending: str) -> str:
    text = io.StringIO()
    csv.writer(text, lineterminator=ending).writerow(cells)
    return text.getvalue()


def _awkward_csv(source: Path, target: Path) -> Path:
    """Sample rows with everything the reader must treat as `csv.reader` does: blank and whitespace-only
    lines, CRLF endings, padded cells, quoted fields (commas and newlines inside, one spanning chunks),
    non-ASCII text, NaN and infinity written out, unreadable numbers, rows too short and too long, an unknown
    column, and values broken in the ways validation names."""
    with source.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = [next(reader) for _ in range(40)]
    column = header.index
    header.append("Comment")
    for row in rows:
        row.append("")
    edits = {
        1: ("Absolute Magnitude", "  21.5  "),
        2: ("Orbiting Body", "Ea\nrth"),
        3: ("Comment", "seen, twice"),
        5: ("Eccentricity", "nan"),
        6: ("Semi Major Axis", "inf"),
        7: ("Inclination", "1e999"),
        8: ("Mean Motion", "fast"),
        9: ("Orbit ID", "0x10"),
        10: ("Orbiting Body", "Érde"),
        11: ("Est Dia in KM(min)", "9.5"),
        12: ("Close Approach Date", "2015-02-30"),
        13: ("Hazardous", "maybe"),
        14: ("Orbit Uncertainity", "+3"),
        15: ("Perihelion Arg", ".5"),
        16: ("Equinox", "J" * 65),
        17: ("Comment", "a\n\nmultiline note"),
        18: ("Relative Velocity km per sec", ""),
    }
    for index, (name, value) in edits.items():
        rows[index][column(name)] = value
    rows[20] = rows[20][:-3]
    rows[21] = [*rows[21], "extra"]
    rows[22] = [""] * len(header)
    parts = [_line(header, "\n")]
    for index, row in enumerate(rows):
        if index in (4, 19):
            parts.append("\n")
        if index == 25:
            parts.append("   \n")
        parts.append(_line(row, "\r\n" if index % 3 == 0 else "\n"))
    target.write_text("".join(parts), encoding="utf-8", newline="")
    return target


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 7, 10_000])
def test_awkward_file_loads_as_before(tmp_path: Path, sample_csv: Path, chunk_rows: int) -> None:
    path = _awkward_csv(sample_csv, tmp_path / "awkward.csv")
    report = _assert_same_load(path, f"sqlite:///{tmp_path / 'neo.db'}", chunk_rows)
    assert report.rows_rejected == 14 and report.rows_loaded == 27
    assert report.ignored_columns == ["Comment"]


def test_awkward_file_loads_as_before_into_postgresql(
    tmp_path: Path, sample_csv: Path, postgres_url: str
) -> None:
    path = _awkward_csv(sample_csv, tmp_path / "awkward.csv")
    _assert_same_load(path, postgres_url, chunk_rows=7)


def test_sample_loads_as_before_in_several_chunks(tmp_path: Path, sample_csv: Path) -> None:
    report = _assert_same_load(sample_csv, f"sqlite:///{tmp_path / 'neo.db'}", chunk_rows=500)
    assert report.rows_read == 3000


def test_nasa_table_loads_as_before_in_several_chunks(tmp_path: Path, nasa_csv: Path) -> None:
    report = _assert_same_load(nasa_csv, f"sqlite:///{tmp_path / 'neo.db'}", chunk_rows=1000)
    assert report.rows_read == 4687


def test_progress_is_told_after_each_chunk(tmp_path: Path, sample_csv: Path) -> None:
    seen: list[tuple[int, float]] = []
    database.load_csv(
        sample_csv,
        f"sqlite:///{tmp_path / 'neo.db'}",
        chunk_rows=500,
        progress=lambda report, fraction: seen.append((report.rows_read, fraction)),
    )
    rows = [read for read, _ in seen]
    assert len(seen) >= 4 and rows == sorted(rows) and rows[0] == 500
    assert 0 < seen[0][1] < seen[-1][1] <= 1.0


def test_one_chunk_tells_no_progress(tmp_path: Path, sample_csv: Path) -> None:
    seen: list[int] = []
    database.load_csv(
        sample_csv, f"sqlite:///{tmp_path / 'neo.db'}", progress=lambda report, _: seen.append(1)
    )
    assert seen == []
    assert database.count_observations(f"sqlite:///{tmp_path / 'neo.db'}") > 0


def test_query_dtypes_unchanged(tmp_path: Path, sample_csv: Path) -> None:
    url = f"sqlite:///{tmp_path / 'neo.db'}"
    database.load_csv(sample_csv, url, chunk_rows=500)
    assert dict(database.query_observations(url).dtypes.astype(str)) == {
        name: ("str" if dtype == "str" else dtype) for name, dtype in schema.dtypes().items()
    }
