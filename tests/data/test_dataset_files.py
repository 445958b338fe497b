"""Dataset files: observations streamed from the database to Parquet keep their dtypes and read a column
subset, an earlier release's CSV still reads, and the split made from Parquet is the one made from CSV."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from asteroid import database, dataset_files, features, schema
from asteroid.steps import preprocessing
from asteroid.steps.parameters import PREPROCESSING_DEFAULTS


@pytest.fixture(scope="module")
def sample_url(tmp_path_factory: pytest.TempPathFactory, sample_csv: Path) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'neo.db'}"
    database.load_csv(sample_csv, url)
    return url


def test_observations_round_trip_with_dtypes_a_row_group_per_chunk(sample_url: str, tmp_path: Path) -> None:
    path = tmp_path / "raw.parquet"
    written = dataset_files.write_observations(database.iter_observations(sample_url, chunk_rows=700), path)
    expected = database.query_observations(sample_url)
    assert pq.ParquetFile(path).num_row_groups == -(-len(expected) // 700)
    back = dataset_files.read_observations(path)
    pd.testing.assert_frame_equal(back, expected)
    assert dict(back.dtypes.astype(str)) == {
        name: ("str" if dtype == "str" else dtype) for name, dtype in schema.dtypes().items()
    }
    assert (written.rows, written.hazardous) == (len(expected), int(expected[schema.LABEL].sum()))
    assert written.asteroids == expected[schema.GROUP].nunique()
    pd.testing.assert_frame_equal(written.preview.reset_index(drop=True), expected.head(20))


def test_only_the_columns_asked_for_are_read(sample_url: str, tmp_path: Path) -> None:
    path = tmp_path / "raw.parquet"
    dataset_files.write_observations(database.iter_observations(sample_url), path)
    subset = dataset_files.read_observations(path, features.INPUT_COLUMNS)
    assert list(subset.columns) == list(features.INPUT_COLUMNS)
    assert len(features.INPUT_COLUMNS) < len(schema.COLUMN_NAMES)


def test_raw_csv_of_an_earlier_release_reads_like_parquet(sample_url: str, tmp_path: Path) -> None:
    frame = database.query_observations(sample_url)
    frame.to_csv(tmp_path / "asteroid_observations.csv", index=False)  # what get_data wrote before
    legacy = preprocessing.raw_file(tmp_path)
    assert legacy.name == "asteroid_observations.csv"
    pd.testing.assert_frame_equal(
        dataset_files.read_observations(legacy, features.INPUT_COLUMNS),
        frame[list(features.INPUT_COLUMNS)],
    )
    dataset_files.write_observations([frame], tmp_path / "asteroid_observations.parquet")
    assert preprocessing.raw_file(tmp_path).suffix == ".parquet"  # the newer file wins
    with pytest.raises(FileNotFoundError, match="not a raw dataset version"):
        preprocessing.raw_file(tmp_path / "nowhere")


def _assert_split_as_before(database_url: str, tmp_path: Path) -> None:
    """The split from the streamed Parquet file (only the columns features need) equals the split from the
    whole-table CSV the step wrote and read back before."""
    frame = database.query_observations(database_url, "2016-09-08")
    frame.to_csv(tmp_path / "before.csv", index=False)
    before = preprocessing.build_split(pd.read_csv(tmp_path / "before.csv"), PREPROCESSING_DEFAULTS)
    path = tmp_path / "after.parquet"
    dataset_files.write_observations(
        database.iter_observations(database_url, "2016-09-08", chunk_rows=1000), path
    )
    after = preprocessing.build_split(
        dataset_files.read_observations(path, features.INPUT_COLUMNS), PREPROCESSING_DEFAULTS
    )
    for name, part in before.parts().items():
        pd.testing.assert_frame_equal(after.parts()[name].to_frame(), part.to_frame())
    assert after.summary() == before.summary()


def test_sample_split_is_the_split_made_from_csv(sample_url: str, tmp_path: Path) -> None:
    _assert_split_as_before(sample_url, tmp_path)


def test_nasa_split_is_the_split_made_from_csv(nasa_csv: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nasa.db'}"
    database.load_csv(nasa_csv, url)
    _assert_split_as_before(url, tmp_path)
