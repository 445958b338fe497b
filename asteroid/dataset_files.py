"""The files inside dataset versions: observations and split parts as typed, columnar Parquet, written a chunk
at a time and read a column subset at a time; the CSV files of versions made by earlier releases still read.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from asteroid import schema

_ARROW_TYPES = {
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "str": pa.string(),
    "date": pa.string(),
    "datetime": pa.string(),
}
OBSERVATIONS_SCHEMA = pa.schema(
    [pa.field(c.name, _ARROW_TYPES[c.kind], nullable=False) for c in schema.COLUMNS]
)
PREVIEW_ROWS = 20


@dataclass
class ObservationsWritten:
    """What `write_observations` wrote: counts for the step's report, and the first rows."""

    rows: int = 0
    hazardous: int = 0
    preview: pd.DataFrame = field(default_factory=pd.DataFrame)
    _asteroids: list[np.ndarray] = field(default_factory=list)

    @property
    def asteroids(self) -> int:
        return int(np.unique(np.concatenate(self._asteroids)).size) if self._asteroids else 0


def write_observations(frames: Iterable[pd.DataFrame], path: str | Path) -> ObservationsWritten:
    """Write frames in NASA's 40 columns (the database's dtypes) to one Parquet file, a row group per frame,
    holding one frame at a time."""
    return write_observation_batches(
        (
            pa.RecordBatch.from_pandas(frame, schema=OBSERVATIONS_SCHEMA, preserve_index=False)
            for frame in frames
        ),
        path,
    )


def write_observation_batches(batches: Iterable[pa.RecordBatch], path: str | Path) -> ObservationsWritten:
    """Write record batches in `OBSERVATIONS_SCHEMA` to one Parquet file, a row group per batch, holding one
    batch at a time."""
    written = ObservationsWritten()
    head: list[pa.RecordBatch] = []
    with pq.ParquetWriter(str(path), OBSERVATIONS_SCHEMA) as writer:
        for batch in batches:
            if not batch.num_rows:
                continue
            writer.write_batch(batch)
            if written.rows < PREVIEW_ROWS:
                head.append(batch.slice(0, PREVIEW_ROWS - written.rows))
            written.rows += batch.num_rows
            written.hazardous += int(pc.sum(batch.column(schema.LABEL)).as_py())
            written._asteroids.append(np.unique(batch.column(schema.GROUP).to_numpy()))
    if head:
        written.preview = pa.Table.from_batches(head).to_pandas()
    return written


def read_observations(path: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The observations of a raw dataset file (Parquet, or an earlier release's CSV), only `columns` (all when
    None), in the database's dtypes."""
    path = Path(path)
    names = list(columns) if columns is not None else list(schema.COLUMN_NAMES)
    if path.suffix == ".csv":
        return pd.read_csv(path, usecols=names)[names]
    return pd.read_parquet(path, columns=names)


def write_table(frame: pd.DataFrame, path: str | Path) -> Path:
    """One frame (e.g. a split part) as a Parquet file, column names and dtypes kept."""
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), str(path))
    return Path(path)


def read_table(path: str | Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """A frame `write_table` wrote, or the CSV an earlier release wrote in its place (same name, .csv)."""
    path = Path(path)
    if path.is_file():
        return pd.read_parquet(path, columns=list(columns) if columns is not None else None)
    legacy = path.with_suffix(".csv")
    if legacy.is_file():
        if columns is None:
            return pd.read_csv(legacy)
        return pd.read_csv(legacy, usecols=list(columns))[list(columns)]
    raise FileNotFoundError(f"neither {path.name} nor {legacy.name} in {path.parent}")
