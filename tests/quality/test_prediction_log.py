"""Request ids on every answer, and the prediction log from the hook (clearml-serving's real XGBoost engine)
through the real broker into SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from asteroid import features, schema
from asteroid.quality import store
from asteroid.quality.config import QualityConfig
from asteroid.quality.consumer import PredictionConsumer
from asteroid.serving import contract
from tests.backend.backend_harness import wait_for
from tests.serving.conftest import serve

REQUEST_ID_PATTERN = re.compile(r"^[0-9a-f]{32}-\d+$")


def hook_module(engine: Any) -> Any:
    return sys.modules[type(engine._preprocess).__module__]


@pytest.fixture
def logging_engine(engine: Any, broker: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The engine whose hook publishes to `broker` on a topic of its own."""
    module = hook_module(engine)
    log = module.prediction_log.PredictionLog(broker, "test_predictions")
    monkeypatch.setattr(module, "PREDICTION_LOG", log)
    yield engine
    log.close()


def test_single_and_batch_answers_carry_a_request_id_per_row(engine: Any, sample_records: list[dict]) -> None:
    single, _ = serve(engine, sample_records[0])
    batch, _ = serve(engine, {"rows": sample_records[:50]})
    ids = [single[contract.REQUEST_ID]] + [row[contract.REQUEST_ID] for row in batch["predictions"]]
    assert all(REQUEST_ID_PATTERN.match(request_id) for request_id in ids)
    assert len(set(ids)) == 51
    # a batch's rows share the request's random part and are numbered in request order
    assert [request_id.split("-")[1] for request_id in ids[1:]] == [str(index) for index in range(50)]


def test_the_switch_turns_publishing_off(engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    prediction_log = hook_module(engine).prediction_log
    monkeypatch.setenv(contract.BROKER_ENV, "127.0.0.1:1")
    assert prediction_log.PredictionLog.from_env().broker == "127.0.0.1:1"
    monkeypatch.setenv(contract.PREDICTION_LOG_ENV, "off")
    log = prediction_log.PredictionLog.from_env()
    log.record(None)  # not even looked at
    assert not log.enabled and log._forwarder is None


def stored_rows(database_url: str) -> dict[str, dict[str, Any]]:
    with store.engine(database_url).connect() as connection:
        rows = connection.execute(sa.select(store.PREDICTIONS)).mappings().all()
    return {row[contract.REQUEST_ID]: dict(row) for row in rows}


def consume_until(config: QualityConfig, expected: int) -> None:
    consumer = PredictionConsumer(config)

    def stored_enough() -> bool:
        consumer.run(max_idle_polls=1)
        return store.count_predictions(config.database_url) >= expected

    wait_for(stored_enough, f"{expected} predictions in the database", 60.0)


def check_log_end_to_end(
    engine: Any, broker: str, database_url: str, sample_frame: pd.DataFrame, sample_records: list[dict]
) -> None:
    single, _ = serve(engine, sample_records[0])
    snake_row = json.loads(features.build_features(sample_frame.head(1))[0].to_json(orient="records"))[0]
    without_id, _ = serve(engine, snake_row)
    batch, _ = serve(engine, {"rows": sample_records[:300]})
    answers = [single, without_id, *batch["predictions"]]
    config = QualityConfig(database_url=database_url, broker=broker, predictions_topic="test_predictions")
    consume_until(config, len(answers))

    rows = stored_rows(database_url)
    assert set(rows) == {answer[contract.REQUEST_ID] for answer in answers}
    for answer in answers:
        row = rows[answer[contract.REQUEST_ID]]
        assert row[contract.PROBABILITY] == answer[contract.PROBABILITY]
        assert row["hazardous"] is answer["hazardous"]
        assert (row["endpoint"], row["model_id"], row["model_version"]) == ("asteroid/1", "model-1", "1")
    expected_ids = [sample_records[0][schema.GROUP], None, *(r[schema.GROUP] for r in sample_records[:300])]
    assert [rows[answer[contract.REQUEST_ID]]["neo_reference_id"] for answer in answers] == expected_ids
    matrix = features.build_features(sample_frame.head(300))[0]
    stored = json.loads(rows[batch["predictions"][7][contract.REQUEST_ID]]["features"])
    assert list(stored) == list(schema.FEATURES)
    np.testing.assert_allclose(list(stored.values()), matrix.iloc[7].to_numpy(dtype=float), rtol=1e-12)


def test_the_log_reaches_sqlite_through_the_broker(
    logging_engine: Any, broker: str, tmp_path: Path, sample_frame: pd.DataFrame, sample_records: list[dict]
) -> None:
    url = f"sqlite:///{tmp_path / 'quality.db'}"
    check_log_end_to_end(logging_engine, broker, url, sample_frame, sample_records)


def test_the_log_reaches_postgresql_through_the_broker(
    logging_engine: Any,
    broker: str,
    postgres_url: str,
    sample_frame: pd.DataFrame,
    sample_records: list[dict],
) -> None:
    with sa.create_engine(postgres_url).begin() as connection:
        store.METADATA.drop_all(connection)
    check_log_end_to_end(logging_engine, broker, postgres_url, sample_frame, sample_records)
