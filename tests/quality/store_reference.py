"""The consumer's store as it was before the column-wise one (commit 575ccc3): a `Prediction` object per row,
its features as `json.dumps` of a dict, SQLAlchemy's executemany of dict rows. What the equivalence test
(tests/quality/test_store_rows.py) and `benchmarks/prediction_log_bench.py --consumer` compare with."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from asteroid.quality import store
from asteroid.serving import contract, prediction_forwarder, prediction_log


@dataclass(frozen=True)
class OldPrediction:
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

    def row(self) -> dict[str, Any]:
        return {
            contract.REQUEST_ID: self.request_id,
            "predicted_at": self.predicted_at,
            "endpoint": self.endpoint,
            "model_id": self.model_id,
            "model_version": self.model_version,
            "neo_reference_id": self.neo_reference_id,
            "close_approach_date": self.close_approach_date,
            "features": json.dumps(self.features),
            contract.PROBABILITY: self.probability,
            "hazardous": self.hazardous,
        }


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def old_predictions(value: bytes) -> list[OldPrediction]:
    predictions = []
    for framed in prediction_forwarder.unpack_message(value):
        block = prediction_log.decode_block(framed)
        names = [str(name) for name in block["feature_names"]]
        columns = [
            block[contract.REQUEST_ID], block["time"], block["neo_reference_id"],
            block["close_approach_date"], block["features"].tolist(), block[contract.PROBABILITY].tolist(),
            block["hazardous"].tolist(),
        ]  # fmt: skip
        for request_id, predicted_at, neo_id, approach, values, probability, hazardous in zip(
            *columns, strict=True
        ):
            predictions.append(
                OldPrediction(
                    request_id=str(request_id),
                    predicted_at=float(predicted_at),
                    endpoint=_text(block.get("endpoint")),
                    model_id=_text(block.get("model_id")),
                    model_version=_text(block.get("model_version")),
                    neo_reference_id=None if neo_id is None else int(neo_id),
                    close_approach_date=_text(approach),
                    features=dict(zip(names, values, strict=True)),
                    probability=probability,
                    hazardous=hazardous,
                )
            )
    return predictions


def old_store_batch(connection: sa.Connection, predictions: list[OldPrediction]) -> int:
    """The predictions inserted unless stored (the offsets part is unchanged, left out); how many."""
    rows = [prediction.row() for prediction in predictions]
    if not rows:
        return 0
    dialects = {"sqlite": sqlite, "postgresql": postgresql}
    statement = dialects[connection.dialect.name].insert(store.PREDICTIONS)
    statement = statement.on_conflict_do_nothing(index_elements=[contract.REQUEST_ID])
    return max(connection.execute(statement, rows).rowcount, 0)
