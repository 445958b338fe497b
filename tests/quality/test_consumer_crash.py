"""The consumer process killed with SIGKILL mid-stream and restarted: no prediction lost, none stored twice;
a replay from the beginning stores nothing; retention deletes what is older than configured."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa

import global_config
from asteroid.quality import store
from asteroid.quality.config import BROKER_ENV, DATABASE_URL_ENV, QualityConfig
from asteroid.quality.consumer import PredictionConsumer
from asteroid.serving import contract, prediction_forwarder, prediction_log
from tests.backend.backend_harness import wait_for

TOPIC = "crash_predictions"


def publish(broker: str, first: int, count: int, predicted_at: float | None = None) -> list[str]:
    """One message per request, as the hook's forwarder sends a lone request."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=broker, acks="all", linger_ms=20)
    ids = [f"{index:032x}-0" for index in range(first, first + count)]
    for request_id in ids:
        answered = prediction_log.Answered(
            predicted_at or time.time(), {"endpoint": "asteroid/1", "id": "m", "version": "1"},
            ["absolute_magnitude"], np.array([[20.0]]), [0.25], [False], [request_id], [None], [None],
        )  # fmt: skip
        producer.send(TOPIC, value=prediction_forwarder.pack_message(answered.encode_blocks()))
    producer.flush()
    producer.close()
    return ids


def start_consumer(broker: str, database_url: str) -> subprocess.Popen:
    env = {
        **os.environ,
        BROKER_ENV: broker,
        DATABASE_URL_ENV: database_url,
        contract.PREDICTIONS_TOPIC_ENV: TOPIC,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "asteroid.quality", "consume"],
        cwd=global_config.ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stored_ids(database_url: str) -> list[str]:
    return store.request_ids(database_url)


def test_kill_9_and_restart_lose_nothing_and_store_nothing_twice(broker: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'quality.db'}"
    sent = publish(broker, 0, 6000)
    consumer = start_consumer(broker, url)
    try:
        wait_for(lambda: store.count_predictions(url) > 0, "the consumer to store its first batch", 60.0)
        consumer.send_signal(signal.SIGKILL)
        consumer.wait(timeout=10)
        at_kill = store.count_predictions(url)
        sent += publish(broker, 6000, 1000)  # arrives while no consumer runs
        consumer = start_consumer(broker, url)
        wait_for(lambda: store.count_predictions(url) >= len(sent), f"{len(sent)} stored predictions", 60.0)
    finally:
        consumer.send_signal(signal.SIGTERM)
        consumer.wait(timeout=20)
    ids = stored_ids(url)
    assert sorted(ids) == sorted(sent)  # primary key: a duplicate could not even be stored
    assert 0 < at_kill <= len(sent)
    with store.engine(url).connect() as connection:
        offsets = store.stored_offsets(connection, TOPIC)
    assert sum(offsets.values()) == len(sent)  # every message accounted for exactly once

    # a replay from the beginning (offsets lost) stores nothing new
    with store.engine(url).begin() as connection:
        connection.execute(sa.delete(store.OFFSETS))
    config = QualityConfig(database_url=url, broker=broker, predictions_topic=TOPIC)
    replay = PredictionConsumer(config)
    stats = replay.run(max_idle_polls=4)
    assert stats.consumed == len(sent) and stats.stored == 0
    assert store.count_predictions(url) == len(sent)


def test_retention_deletes_older_predictions(broker: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'quality.db'}"
    now = 1_900_000_000.0
    old = publish(broker, 0, 5, predicted_at=now - 31 * 86400)
    recent = publish(broker, 5, 5, predicted_at=now - 29 * 86400)
    config = QualityConfig(database_url=url, broker=broker, predictions_topic=TOPIC, retention_days=30)
    consumer = PredictionConsumer(config, clock=lambda: now + 1)
    consumer.run(max_idle_polls=4)
    assert len(stored_ids(url)) == 10  # stored before the consumer's next pruning
    consumer = PredictionConsumer(config, clock=lambda: now + 1)
    stats = consumer.run(max_idle_polls=1)
    assert stats.pruned == len(old)
    assert sorted(stored_ids(url)) == sorted(recent)
