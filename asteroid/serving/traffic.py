"""Request rows for the serving endpoint: real rows (database or CSV) as the original example's client sent
them (every one of the 40 columns, `row.to_dict()`), and drifted rows with a physically consistent shift.

Drift: each shift changes one measured quantity and every column derived from it, so a drifted row is still a
valid observation — what a change in the survey feeding the model (a new telescope, another search region)
would bring, not corrupted data:

- `absolute_magnitude`: H − 1.5 mag (brighter, hence larger objects); the estimated diameters scale by
  10^(1.5/5) ≈ 2.0 (D ∝ 10^(−H/5)) in every unit.
- `relative_velocity_km_per_sec`: × 1.4, in km/s, km/h and mph alike.
- `miss_dist_astronomical`: × 0.5 (closer approaches), in au, lunar distances, km and miles alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import global_config
from asteroid import database, schema

H_SHIFT_MAG = -1.5
VELOCITY_FACTOR = 1.4
MISS_DISTANCE_FACTOR = 0.5
DIAMETER_COLUMNS = tuple(column.name for column in schema.COLUMNS if column.name.startswith("Est Dia in "))
VELOCITY_COLUMNS = ("Relative Velocity km per sec", "Relative Velocity km per hr", "Miles per hour")
MISS_DISTANCE_COLUMNS = tuple(
    column.name for column in schema.COLUMNS if column.name.startswith("Miss Dist.")
)


def _brighter(frame: pd.DataFrame) -> None:
    frame["Absolute Magnitude"] = frame["Absolute Magnitude"] + H_SHIFT_MAG
    frame[list(DIAMETER_COLUMNS)] = frame[list(DIAMETER_COLUMNS)] * 10 ** (-H_SHIFT_MAG / 5)


def _faster(frame: pd.DataFrame) -> None:
    frame[list(VELOCITY_COLUMNS)] = frame[list(VELOCITY_COLUMNS)] * VELOCITY_FACTOR


def _closer(frame: pd.DataFrame) -> None:
    frame[list(MISS_DISTANCE_COLUMNS)] = frame[list(MISS_DISTANCE_COLUMNS)] * MISS_DISTANCE_FACTOR


# Feature -> the shift applied to a frame of NASA-named columns (in place).
DRIFTS: dict[str, Callable[[pd.DataFrame], None]] = {
    "absolute_magnitude": _brighter,
    "relative_velocity_km_per_sec": _faster,
    "miss_dist_astronomical": _closer,
}
DEFAULT_DRIFT = ("absolute_magnitude", "relative_velocity_km_per_sec")
# Shift -> the model features it drifts: the diameters follow the absolute magnitude. The brighter asteroids
# also land inside the CNEOS cell more often (`in_cneos_cell` 16 % -> 23-24 % of rows), a PSI of 0.03-0.04,
# below the warning.
AFFECTED_FEATURES: dict[str, tuple[str, ...]] = {
    "absolute_magnitude": ("absolute_magnitude", "est_dia_km_avg"),
    "relative_velocity_km_per_sec": ("relative_velocity_km_per_sec",),
    "miss_dist_astronomical": ("miss_dist_astronomical",),
}


def affected_features(shifts: tuple[str, ...]) -> list[str]:
    """The model features these shifts change, sorted."""
    return sorted({feature for shift in shifts for feature in AFFECTED_FEATURES[shift]})


def load_rows(source_csv: str | Path | None = None) -> pd.DataFrame:
    """Rows in NASA's 40 columns: from a CSV when given, else from the project's database."""
    if source_csv:
        path = Path(source_csv)
        if not path.is_file():
            raise FileNotFoundError(f"no CSV at {path}")
        return pd.read_csv(path, dtype=schema.dtypes())
    try:
        return database.query_observations(global_config.DATABASE_URL)
    except LookupError as exc:
        raise LookupError(f"{exc} (or pass --source-csv)") from exc


def drifted(frame: pd.DataFrame, features: tuple[str, ...] = DEFAULT_DRIFT) -> pd.DataFrame:
    """A copy of the rows with the named shifts applied (see the module docstring)."""
    unknown = [name for name in features if name not in DRIFTS]
    if unknown:
        raise ValueError(f"no drift defined for {unknown}; choose from {sorted(DRIFTS)}")
    shifted = frame.copy()
    for name in features:
        DRIFTS[name](shifted)
    return shifted


def to_records(frame: pd.DataFrame) -> list[dict]:
    """JSON-ready row objects (numpy scalars become plain numbers, missing values null)."""
    return json.loads(frame.to_json(orient="records", date_format="iso"))


def _drawn_batches(records: list[dict], batch: int, count: int, seed: int) -> list[list[dict]]:
    if not records:
        raise ValueError("no rows to send")
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    rng = np.random.default_rng(seed)
    return [[records[i] for i in rng.integers(0, len(records), size=batch)] for _ in range(count)]


def request_bodies(records: list[dict], batch: int, count: int, seed: int = 0) -> list[bytes]:
    """`count` JSON bodies drawn from the records: one row each, or `{"rows": [...]}` of `batch` rows."""
    return [
        json.dumps(picked[0] if batch == 1 else {"rows": picked}).encode()
        for picked in _drawn_batches(records, batch, count, seed)
    ]


def arrow_ipc(table: Any) -> bytes:
    """A pyarrow table as an Apache Arrow IPC stream (`contract.ARROW_STREAM`)."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def arrow_request_bodies(records: list[dict], batch: int, count: int, seed: int = 0) -> list[bytes]:
    """`request_bodies` as Arrow streams, one column per field: `count` bodies of `batch` rows (a single row
    is a batch of one)."""
    import pyarrow as pa

    return [arrow_ipc(pa.Table.from_pylist(picked)) for picked in _drawn_batches(records, batch, count, seed)]
