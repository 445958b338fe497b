"""The prediction log's tables in the project's SQL database (SQLite by default, PostgreSQL through
`NEO_DATABASE_URL`), beside the observations of asteroid/database.py and created by this module.

- `quality_predictions`: one row per answered row, keyed by its request id. Inserting a prediction that is
  already stored does nothing, so a replayed or re-delivered message is stored once.
- `quality_offsets`: per topic partition, the offset of the next message to read. The consumer writes it in
  the same transaction as the predictions it read, so after a crash it resumes exactly after the last stored
  batch (the broker's own group offsets are not used: see asteroid/quality/consumer.py).
"""

from __future__ import annotations

import functools
import json
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
import ujson
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url

from asteroid.serving import contract, prediction_forwarder, prediction_log

METADATA = sa.MetaData()
PREDICTIONS = sa.Table(
    "quality_predictions",
    METADATA,
    sa.Column(contract.REQUEST_ID, sa.String(64), primary_key=True),
    sa.Column("predicted_at", sa.Float, nullable=False, index=True),  # Unix time of the answer
    sa.Column("endpoint", sa.String(128)),
    sa.Column("model_id", sa.String(64)),
    sa.Column("model_version", sa.String(32)),
    sa.Column("neo_reference_id", sa.BigInteger, index=True),
    sa.Column("close_approach_date", sa.String(10)),  # YYYY-MM-DD when the request carried it
    sa.Column("features", sa.Text, nullable=False),  # JSON object: feature name -> value
    sa.Column(contract.PROBABILITY, sa.Float, nullable=False),
    sa.Column("hazardous", sa.Boolean, nullable=False),
)
# The latest label per request id; a label whose request id matches no stored prediction is "unmatched" (kept
# for the configured time: its prediction may not be stored yet).
LABELS = sa.Table(
    "quality_labels",
    METADATA,
    sa.Column(contract.REQUEST_ID, sa.String(64), primary_key=True),
    sa.Column("hazardous", sa.Boolean, nullable=False),
    sa.Column("label_id", sa.String(64), nullable=False),  # the message's id: a re-read changes nothing
    sa.Column("labelled_at", sa.Float, nullable=False, index=True),  # Unix time the label was received
    sa.Column("source", sa.String(16), nullable=False),  # feedback | catalogue
    sa.Column("revisions", sa.Integer, nullable=False, default=0),  # labels that replaced an earlier one
)
# Rows of a catalogue file (`python -m asteroid.quality import`) whose asteroid matched no stored prediction.
CATALOGUE_UNMATCHED = sa.Table(
    "quality_catalogue_unmatched",
    METADATA,
    sa.Column("neo_reference_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("close_approach_date", sa.String(10), primary_key=True),  # "" when the file gave none
    sa.Column("hazardous", sa.Boolean, nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
)
OFFSETS = sa.Table(
    "quality_offsets",
    METADATA,
    sa.Column("topic", sa.String(255), primary_key=True),
    sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("next_offset", sa.BigInteger, nullable=False),
)


class RecordError(ValueError):
    """A message of the predictions topic that is not a prediction record."""


# The columns of `PREDICTIONS` in the order of a row tuple (`prediction_rows`, `Prediction.values`).
COLUMNS = tuple(PREDICTIONS.c.keys())
_DECODING_ERRORS = (ValueError, TypeError, KeyError, AttributeError, struct.error)
_MODEL_KEYS = ("endpoint", "model_id", "model_version")  # a block's header fields of its model
_UNPADDED_EXPONENT = re.compile(r"e-(\d)(?=[,\]])")  # in ujson's text of a matrix
_CHUNK_ROWS = 10_000  # rows per PostgreSQL statement: one round trip each, a bounded query text


@dataclass(frozen=True)
class Prediction:
    request_id: str
    predicted_at: float
    endpoint: str | None
    model_id: str | None
    model_version: str | None
    neo_reference_id: int | None
    close_approach_date: str | None
    features: dict[str, float]
    probability: float
    hazardous: bool

    @classmethod
    def from_message(cls, value: bytes) -> list[Prediction]:
        """The predictions a message of the hook's forwarder carries (`prediction_rows`, which the consumer
        stores without an object per row)."""
        return [cls(*row[:7], json.loads(row[7]), *row[8:]) for row in prediction_rows(value)]

    def values(self) -> tuple[Any, ...]:
        """The prediction as a row of `PREDICTIONS` (in `COLUMNS` order)."""
        return (
            self.request_id, self.predicted_at, self.endpoint, self.model_id, self.model_version,
            self.neo_reference_id, self.close_approach_date, json.dumps(self.features), self.probability,
            self.hazardous,
        )  # fmt: skip


def prediction_rows(value: bytes) -> list[tuple[Any, ...]]:
    """The rows of `PREDICTIONS` (in `COLUMNS` order) a message of the hook's forwarder carries: what
    `Prediction.from_message(value)` gives as `values()`, built column-wise from each block."""
    try:
        rows: list[tuple[Any, ...]] = []
        for block in _blocks(value):
            rows += _rows_of_block(block)
        return rows
    except _DECODING_ERRORS as exc:
        raise RecordError(f"not a prediction record: {exc!r}") from None


def _blocks(value: bytes) -> list[dict[str, Any]]:
    return [prediction_log.decode_block(block) for block in prediction_forwarder.unpack_message(value)]


def _rows_of_block(block: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The block (`prediction_log.decode_block`) as rows, column by column."""
    request_ids = [str(request_id) for request_id in block[contract.REQUEST_ID]]
    endpoints, model_ids, versions = ([_text(block.get(key))] * len(request_ids) for key in _MODEL_KEYS)
    columns = (
        request_ids, [float(time) for time in block["time"]], endpoints, model_ids, versions,
        [None if neo_id is None else int(neo_id) for neo_id in block["neo_reference_id"]],
        [None if date is None else str(date) for date in block["close_approach_date"]],
        features_json([str(name) for name in block["feature_names"]], block["features"]),
        block[contract.PROBABILITY].tolist(), block["hazardous"].tolist(),
    )  # fmt: skip
    return list(zip(*columns, strict=True))


def features_json(names: list[str], matrix: np.ndarray) -> list[str]:
    """Each row of `matrix` as the text `json.dumps(dict(zip(names, row)))` gives, a third of its time:
    ujson writes the numbers of the whole matrix at once (the shortest digits that read back as the same
    float, as Python's repr: CPython's own float repr was most of json.dumps' time), then a template of the
    names takes each row's. ujson writes a one-digit negative exponent unpadded (`1e-5`, Python `1e-05`),
    and a name given twice keeps one value in a dict: the template is not for such names."""
    values = matrix.tolist()
    if not values or not names or len(set(names)) != len(names):
        return [json.dumps(dict(zip(names, row, strict=True))) for row in values]
    if matrix.shape[1] != len(names):
        raise ValueError(f"{matrix.shape[1]} features for {len(names)} names")
    numbers = ujson.dumps(values)
    if "e-" in numbers:
        numbers = _UNPADDED_EXPONENT.sub(r"e-0\1", numbers)
    template = _template(tuple(names))
    return [template % tuple(row.split(",")) for row in numbers[2:-2].split("],[")]


@functools.lru_cache(maxsize=64)
def _template(names: tuple[str, ...]) -> str:
    fields = ", ".join(json.dumps(name).replace("%", "%%") + ": %s" for name in names)
    return "{" + fields + "}"


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def engine(database_url: str) -> Engine:
    """An engine on the database, its quality tables created when missing."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    created = sa.create_engine(url)
    METADATA.create_all(created)
    return created


def _insert(connection: sa.Connection, table: sa.Table) -> Any:
    dialect = connection.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise ValueError(f"the quality tables support SQLite and PostgreSQL, not {dialect}")


def store_batch(
    connection: sa.Connection, predictions: Iterable[Prediction], next_offsets: Mapping[tuple[str, int], int]
) -> int:
    """`store_rows` of the predictions."""
    return store_rows(connection, [prediction.values() for prediction in predictions], next_offsets)


def store_rows(
    connection: sa.Connection, rows: list[tuple[Any, ...]], next_offsets: Mapping[tuple[str, int], int]
) -> int:
    """Insert the rows of `PREDICTIONS` (`prediction_rows`) whose request id is not yet stored and advance the
    partitions' offsets, in the caller's transaction; the number of rows inserted. The rows go to the
    driver as they are: SQLAlchemy's executemany of dict rows cost about twice the driver's own."""
    inserted = 0
    if rows:
        dialect = connection.dialect.name
        if dialect == "sqlite":
            inserted = connection.exec_driver_sql(_sqlite_insert(), rows).rowcount
        elif dialect == "postgresql":
            inserted = sum(_insert_postgresql(connection, rows[start : start + _CHUNK_ROWS])
                           for start in range(0, len(rows), _CHUNK_ROWS))  # fmt: skip
        else:
            raise ValueError(f"the quality tables support SQLite and PostgreSQL, not {dialect}")
    for (topic, partition), offset in next_offsets.items():
        statement = _insert(connection, OFFSETS).values(topic=topic, partition=partition, next_offset=offset)
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=["topic", "partition"], set_={"next_offset": statement.excluded.next_offset}
            )
        )
    return max(inserted, 0)


def _column_list() -> str:
    return ", ".join(f'"{name}"' for name in COLUMNS)


@functools.cache
def _sqlite_insert() -> str:
    placeholders = ", ".join("?" for _ in COLUMNS)
    return (
        f"INSERT INTO {PREDICTIONS.name} ({_column_list()}) VALUES ({placeholders})"
        f' ON CONFLICT ("{contract.REQUEST_ID}") DO NOTHING'
    )


@functools.cache
def _postgresql_insert() -> str:
    """One statement for many rows: the columns as arrays, `unnest` makes them rows again (executemany
    would be a round trip a row; the rows inserted are its row count)."""
    dialect = postgresql.dialect()
    arrays = ", ".join(f"%s::{column.type.compile(dialect)}[]" for column in PREDICTIONS.columns)
    return (
        f"INSERT INTO {PREDICTIONS.name} ({_column_list()}) SELECT * FROM unnest({arrays})"
        f' ON CONFLICT ("{contract.REQUEST_ID}") DO NOTHING'
    )


def _insert_postgresql(connection: sa.Connection, rows: Sequence[tuple[Any, ...]]) -> int:
    columns = tuple(list(column) for column in zip(*rows, strict=True))
    return connection.exec_driver_sql(_postgresql_insert(), columns).rowcount


def stored_offsets(connection: sa.Connection, topic: str) -> dict[int, int]:
    """Partition -> offset of the next message to read, for the partitions stored so far."""
    query = sa.select(OFFSETS.c.partition, OFFSETS.c.next_offset).where(OFFSETS.c.topic == topic)
    return {int(partition): int(offset) for partition, offset in connection.execute(query)}


def prune(connection: sa.Connection, older_than: float) -> int:
    """Delete the predictions answered before `older_than` (Unix time); how many."""
    return connection.execute(sa.delete(PREDICTIONS).where(PREDICTIONS.c.predicted_at < older_than)).rowcount


def count_predictions(database_url: str) -> int:
    with engine(database_url).connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(PREDICTIONS)).scalar_one())


def request_ids(database_url: str) -> list[str]:
    with engine(database_url).connect() as connection:
        return [row[0] for row in connection.execute(sa.select(PREDICTIONS.c[contract.REQUEST_ID]))]


@dataclass(frozen=True)
class LabelRecord:
    request_id: str
    hazardous: bool
    label_id: str
    labelled_at: float
    source: str

    @classmethod
    def from_message(cls, value: bytes) -> LabelRecord:
        """The label a message of the feedback topic carries (asteroid/quality/feedback.py)."""
        try:
            record = json.loads(value)
            hazardous = record["hazardous"]
            if not isinstance(hazardous, bool):
                raise TypeError(f"hazardous is {hazardous!r}")
            return cls(
                request_id=str(record[contract.REQUEST_ID]),
                hazardous=hazardous,
                label_id=str(record["label_id"]),
                labelled_at=float(record["time"]),
                source="feedback",
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise RecordError(f"not a label record: {exc!r}") from None


def store_labels(connection: sa.Connection, labels: Iterable[LabelRecord]) -> None:
    """Insert each label, or replace the request id's earlier label and count a revision; a label already
    stored (same `label_id`, e.g. a re-read message) changes nothing. In the caller's transaction."""
    for label in labels:
        statement = _insert(connection, LABELS).values(
            **{contract.REQUEST_ID: label.request_id},
            hazardous=label.hazardous,
            label_id=label.label_id,
            labelled_at=label.labelled_at,
            source=label.source,
            revisions=0,
        )
        connection.execute(
            statement.on_conflict_do_update(
                index_elements=[contract.REQUEST_ID],
                set_={
                    "hazardous": statement.excluded.hazardous,
                    "label_id": statement.excluded.label_id,
                    "labelled_at": statement.excluded.labelled_at,
                    "source": statement.excluded.source,
                    "revisions": LABELS.c.revisions + 1,
                },
                where=LABELS.c.label_id != statement.excluded.label_id,
            )
        )


def _matched() -> Any:
    request_id = contract.REQUEST_ID
    return sa.exists().where(PREDICTIONS.c[request_id] == LABELS.c[request_id])


def prune_unmatched(connection: sa.Connection, older_than: float) -> int:
    """Delete labels matching no prediction received before `older_than`, and such catalogue rows."""
    labels = connection.execute(
        sa.delete(LABELS).where(LABELS.c.labelled_at < older_than, ~_matched())
    ).rowcount
    rows = connection.execute(
        sa.delete(CATALOGUE_UNMATCHED).where(CATALOGUE_UNMATCHED.c.received_at < older_than)
    ).rowcount
    return labels + rows


@dataclass(frozen=True)
class QualityCounts:
    """Labelled predictions of one endpoint and model version, with the confusion counts."""

    endpoint: str
    model_version: str
    predictions: int
    labelled: int
    true_positives: int
    false_positives: int
    true_negatives: int
    false_negatives: int
    label_delay_seconds_sum: float  # sum over labelled predictions of (labelled_at - predicted_at)

    @property
    def correct(self) -> int:
        return self.true_positives + self.true_negatives


def quality_counts(connection: sa.Connection, labelled_since: float | None = None) -> list[QualityCounts]:
    """Per endpoint and model version, over the stored predictions; with `labelled_since` (Unix time), only
    the labels received since then count as labels."""
    predicted, actual = PREDICTIONS.c.hazardous, LABELS.c.hazardous
    labelled = LABELS.c[contract.REQUEST_ID].is_not(None)

    def count(condition: Any) -> Any:
        return sa.func.sum(sa.case((condition, 1), else_=0))

    query = (
        sa.select(
            PREDICTIONS.c.endpoint,
            PREDICTIONS.c.model_version,
            sa.func.count(),
            count(labelled),
            count(sa.and_(labelled, predicted, actual)),
            count(sa.and_(labelled, predicted, ~actual)),
            count(sa.and_(labelled, ~predicted, ~actual)),
            count(sa.and_(labelled, ~predicted, actual)),
            sa.func.coalesce(sa.func.sum(LABELS.c.labelled_at - PREDICTIONS.c.predicted_at), 0.0),
        )
        .select_from(PREDICTIONS.outerjoin(LABELS, _label_join(labelled_since)))
        .group_by(PREDICTIONS.c.endpoint, PREDICTIONS.c.model_version)
        .order_by(PREDICTIONS.c.endpoint, PREDICTIONS.c.model_version)
    )
    return [
        QualityCounts(str(row[0]), str(row[1]), *(int(value or 0) for value in row[2:8]), float(row[8]))
        for row in connection.execute(query)
    ]


def _label_join(labelled_since: float | None) -> Any:
    joined = PREDICTIONS.c[contract.REQUEST_ID] == LABELS.c[contract.REQUEST_ID]
    return joined if labelled_since is None else sa.and_(joined, LABELS.c.labelled_at >= labelled_since)


@dataclass(frozen=True)
class LabelCounts:
    unmatched: int  # labels by request id matching no stored prediction
    catalogue_unmatched: int  # catalogue rows matching no stored prediction
    revisions: int  # labels that replaced an earlier label of the same prediction


def label_counts(connection: sa.Connection) -> LabelCounts:
    unmatched = connection.execute(sa.select(sa.func.count()).select_from(LABELS).where(~_matched()))
    catalogue = connection.execute(sa.select(sa.func.count()).select_from(CATALOGUE_UNMATCHED))
    revisions = connection.execute(sa.select(sa.func.coalesce(sa.func.sum(LABELS.c.revisions), 0)))
    return LabelCounts(int(unmatched.scalar_one()), int(catalogue.scalar_one()), int(revisions.scalar_one()))
