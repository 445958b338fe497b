"""The consumer's store as it was before the column-wise one (commit 575ccc3): a `store.Prediction` per row,
its features as `json.dumps` of a dict, SQLAlchemy's executemany of dict rows. What the equivalence test
(tests/quality/test_store_rows.py) and `benchmarks/prediction_log_bench.py --consumer` compare with."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from asteroid.quality import store
from asteroid.serving import contract, prediction_forwarder, prediction_log


def old_row(prediction: store.Prediction) -> dict[str, Any]:
    return {
        contract.REQUEST_ID: prediction.request_id,
        "predicted_at": prediction.predicted_at,
        "endpoint": prediction.endpoint,
        "model_id": prediction.model_id,
        "model_version": prediction.model_version,
        "neo_reference_id": prediction.neo_reference_id,
        "close_approach_date": prediction.close_approach_date,
        "features": json.dumps(prediction.features),
        contract.PROBABILITY: prediction.probability,
        "hazardous": prediction.hazardous,
    }


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def old_predictions(value: bytes) -> list[store.Prediction]:
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
                store.Prediction(
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


def old_store_batch(connection: sa.Connection, predictions: list[store.Prediction]) -> int:
    """The predictions inserted unless stored (the offsets part is unchanged, left out); how many."""
    rows = [old_row(prediction) for prediction in predictions]
    if not rows:
        return 0
    dialects = {"sqlite": sqlite, "postgresql": postgresql}
    statement = dialects[connection.dialect.name].insert(store.PREDICTIONS)
    statement = statement.on_conflict_do_nothing(index_elements=[contract.REQUEST_ID])
    return max(connection.execute(statement, rows).rowcount, 0)
