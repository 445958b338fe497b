"""The consumer's column-wise store (`store.prediction_rows`, `store.store_rows`) stores every column as the
former store did (tests/quality/store_reference.py) for the same messages, on SQLite and PostgreSQL, and
inserts a replayed batch once."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa

from asteroid.quality import store
from asteroid.serving import contract, prediction_forwarder, prediction_log
from tests.quality.store_reference import old_predictions, old_store_batch

NAMES = ["absolute_magnitude", 'with "quotes" \\ and %r %s %%', "ünïcode é", "in_cneos_cell"]
SPECIAL = [math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, 1.7976931348623157e308, 0.1 + 0.2, 1e22, -1e-7]
MODEL = {"endpoint": "asteroid/1", "id": "m" * 32, "version": "3"}


def answered(rows: int, first: int, at: float, names: list[str] = NAMES) -> prediction_log.Answered:
    grid = np.random.default_rng(first).normal(0, 1e3, (rows, len(names)))
    count = min(len(SPECIAL), grid.size)
    grid.flat[np.linspace(0, grid.size - 1, count).astype(int)] = SPECIAL[:count]
    return prediction_log.Answered(
        at, MODEL, names, grid, [index / (rows + 1) for index in range(rows)],
        [index % 2 == 1 for index in range(rows)], [f"{first:030x}-{index}" for index in range(rows)],
        [None if index % 3 == 0 else 2_000_000 + first + index for index in range(rows)],
        [None if index % 2 == 0 else "2026-12-07" for index in range(rows)],
    )  # fmt: skip


def with_one_time(block: bytes) -> bytes:
    """The block with the header's older time form: one number for all its rows."""
    (length,) = prediction_log.HEADER.unpack_from(block, 0)
    header = json.loads(block[prediction_log.HEADER.size : prediction_log.HEADER.size + length])
    (time, _), *others = header["time"]
    assert not others, "one request per block for the older form"
    encoded = json.dumps({**header, "time": time}).encode()
    return prediction_log.HEADER.pack(len(encoded)) + encoded + block[prediction_log.HEADER.size + length :]


def messages() -> list[bytes]:
    """Single-row and multi-row blocks, both time forms, another model with names given twice."""
    singles = prediction_log.encode_requests(
        [answered(1, first, 1_900_000_000.25 + first) for first in range(30)]
    )
    batch = prediction_log.encode_requests([answered(700, 100, 1_900_000_001.0)])  # more than one block
    old_form = [with_one_time(block) for block, _ in prediction_log.encode_requests([answered(5, 200, 7.5)])]
    other = prediction_log.Answered(
        8.0, {"endpoint": None, "id": None, "version": 4}, ["a", "a", "b"], np.array([[1.0, 2.0, math.nan]]),
        [0.5], [True], ["twice-0"], [None], [None],
    )  # fmt: skip
    rest = prediction_log.encode_requests([other])
    assert len(batch) > 1 and len(singles) == 1
    return [
        prediction_forwarder.pack_message([block for block, _ in singles]),
        prediction_forwarder.pack_message([block for block, _ in batch]),
        prediction_forwarder.pack_message(old_form + [block for block, _ in rest]),
    ]


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'quality.db'}"
    url = request.getfixturevalue("postgres_url")
    clear(url)
    return url


def clear(url: str) -> None:
    with sa.create_engine(url).begin() as connection:
        store.METADATA.drop_all(connection)


def stored(url: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The rows as the database holds them (the driver's values) and as SQLAlchemy reads them."""
    with store.engine(url).connect() as connection:
        raw = connection.exec_driver_sql(
            f"SELECT * FROM {store.PREDICTIONS.name} ORDER BY {contract.REQUEST_ID}"
        ).all()
        typed = connection.execute(
            sa.select(store.PREDICTIONS).order_by(store.PREDICTIONS.c[contract.REQUEST_ID])
        ).all()
    return [tuple(row) for row in raw], [tuple(row) for row in typed]


def test_every_column_is_stored_as_the_former_store_stored_it(database_url: str) -> None:
    values = messages()
    with store.engine(database_url).begin() as connection:
        old_inserted = sum(old_store_batch(connection, old_predictions(value)) for value in values)
    before = stored(database_url)
    if database_url.startswith("sqlite"):
        database_url = database_url.replace("quality.db", "column-wise.db")
    else:
        clear(database_url)
    rows = [row for value in values for row in store.prediction_rows(value)]
    with store.engine(database_url).begin() as connection:
        inserted = store.store_rows(connection, rows, {("topic", 0): 3})
    after = stored(database_url)

    assert inserted == old_inserted == len(rows) == 30 + 700 + 5 + 1
    assert after == before
    raw = {row[0]: row for row in after[0]}
    assert raw["twice-0"][7] == '{"a": 2.0, "b": NaN}' and raw["twice-0"][2:5] == (None, None, "4")
    assert raw[f"{200:030x}-0"][1] == 7.5
    assert {row[5] for row in after[1]} >= {None, 2_000_101}
    assert {row[6] for row in after[1]} == {None, "2026-12-07"}
    assert sum("NaN" in row[7] for row in after[0]) == 30 + 1 + 1 + 1  # the special floats of each request
    assert any("e-07" in row[7] for row in after[0])


def test_a_replayed_batch_inserts_nothing_and_the_offsets_advance_with_it(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "_CHUNK_ROWS", 64)  # PostgreSQL: a batch in several statements, counts summed
    rows = [row for value in messages() for row in store.prediction_rows(value)]
    with store.engine(database_url).begin() as connection:
        assert store.store_rows(connection, rows[:100], {("topic", 0): 1}) == 100
    with store.engine(database_url).begin() as connection:
        assert store.store_rows(connection, rows, {("topic", 0): 2, ("topic", 1): 5}) == len(rows) - 100
    with store.engine(database_url).begin() as connection:
        assert store.store_rows(connection, rows, {("topic", 0): 3}) == 0
        assert store.stored_offsets(connection, "topic") == {0: 3, 1: 5}
    assert store.count_predictions(database_url) == len(rows)


def test_the_features_text_is_what_json_writes_and_reads_back() -> None:
    """Special floats, every bit pattern (random), every magnitude, and names JSON must escape."""
    generator = np.random.default_rng(11)
    bits = generator.integers(0, 2**64, 20 * 6000, dtype=np.uint64).view(np.float64)
    magnitudes = generator.random(20 * 6000) * 10.0 ** generator.integers(-330, 308, 20 * 6000).astype(float)
    matrix = np.concatenate([[SPECIAL * 2], bits.reshape(-1, 20), magnitudes.reshape(-1, 20)])
    names = [f"f{index} %r {chr(0x263A + index)}" for index in range(19)] + ['"quoted" \\ \n']
    texts = store.features_json(names, matrix)
    assert texts == [json.dumps(dict(zip(names, row, strict=True))) for row in matrix.tolist()]
    back = np.array([list(json.loads(text).values()) for text in texts])
    numbers = ~np.isnan(matrix)  # a NaN's payload is not JSON
    np.testing.assert_array_equal(np.isnan(back), ~numbers)
    np.testing.assert_array_equal(back[numbers].view(np.uint64), matrix[numbers].view(np.uint64))  # every bit


def test_a_message_that_is_not_a_record_is_rejected() -> None:
    with pytest.raises(store.RecordError):
        store.prediction_rows(prediction_forwarder.pack_message([b"\x05\x00\x00\x00{bad}"]))
