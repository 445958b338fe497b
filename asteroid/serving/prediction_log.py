"""The hook's side of the prediction log: every answered row goes to a Kafka topic, off the request path.

The hook calls `PredictionLog.record()` once per request with references to what it already computed (the
feature matrix, the probabilities, the request ids): one `SimpleQueue.put`, nothing else on the request
thread. A daemon thread of the process drains the queue, packs the requests waiting there as columns into
JSON messages of up to `MAX_ROWS_PER_MESSAGE` rows and hands them to kafka-python's producer, which batches
them (`linger_ms`) on its own sender thread. The broker is clearml-serving's own (`contract.BROKER_ENV`,
which its inference app reads too); without it, or with `contract.PREDICTION_LOG_ENV=off`, nothing is
published.

When the broker is unreachable the queue would grow without bound: past `MAX_PENDING` requests new ones are
dropped and counted (`dropped`), so a broker outage never costs the endpoint its memory. The log is for
measuring quality, not an audit trail; the consumer (asteroid/quality/) makes its storage exact (idempotent
by request id).

This file travels in the hook folder (asteroid/serving/hook_package.py): standard library, kafka-python
(clearml-serving's own dependency) and the release contract only.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

try:  # deployed in the hook folder: the contract travels beside this file
    from . import contract
except ImportError:  # imported from a checkout or the installed project
    from asteroid.serving import contract

MAX_PENDING = 10_000  # requests queued for the sender thread before new ones are dropped
LINGER_MS = 50  # the producer waits this long to fill a batch
DRAIN_MAX = 500  # requests the sender thread formats before it yields to the producer
# Rows per message: one Kafka message per request (let alone per row) cost the single worker up to two thirds
# of its batch throughput in kafka-python's per-message work (benchmarks/serving_bench.py, numpy_nolog).
MAX_ROWS_PER_MESSAGE = 1000


def new_request_ids(rows: int) -> list[str]:
    """One id per row: a random UUID per request, the row's index after it (`<32 hex>-<row>`)."""
    base = uuid.uuid4().hex
    return [f"{base}-{index}" for index in range(rows)]


@dataclass(frozen=True)
class Answered:
    """One answered request, as the hook hands it over: references, formatted later off the request path."""

    time: float
    model: dict[str, Any]
    feature_names: Sequence[str]
    features: Any  # numpy matrix, one row per answered row
    probabilities: Sequence[float]
    hazardous: Sequence[bool]
    request_ids: Sequence[str]
    neo_reference_ids: Sequence[int | None]
    close_approach_dates: Sequence[str | None]

    def block(self) -> dict[str, Any]:
        """The request as columns (lists encode far faster than one object per row), the feature matrix as
        bytes."""
        return {
            "time": self.time,
            "endpoint": self.model.get("endpoint"),
            "model_id": self.model.get("id"),
            "model_version": self.model.get("version"),
            "feature_names": list(self.feature_names),
            contract.REQUEST_ID: list(self.request_ids),
            "neo_reference_id": list(self.neo_reference_ids),
            "close_approach_date": list(self.close_approach_dates),
            # raw little-endian float64, row-major, base64: formatting 18 floats a row as JSON text cost large
            # batches a third of their throughput (benchmarks/serving_bench.py, numpy vs numpy_nolog)
            "features": base64.b64encode(np.ascontiguousarray(self.features, dtype="<f8").tobytes()).decode(),
            contract.PROBABILITY: list(self.probabilities),
            "hazardous": list(self.hazardous),
        }


def messages(answered: Sequence[Answered]) -> list[tuple[bytes, bytes]]:
    """(key, value) messages of `{"requests": [block, ...]}` holding at most `MAX_ROWS_PER_MESSAGE` rows each
    (a larger request alone); keyed by the first request id."""
    found: list[tuple[bytes, bytes]] = []
    blocks: list[dict[str, Any]] = []
    rows = 0
    for item in answered:
        if blocks and rows + len(item.request_ids) > MAX_ROWS_PER_MESSAGE:
            found.append(_message(blocks))
            blocks, rows = [], 0
        blocks.append(item.block())
        rows += len(item.request_ids)
    if blocks:
        found.append(_message(blocks))
    return found


def _message(blocks: list[dict[str, Any]]) -> tuple[bytes, bytes]:
    key = str(blocks[0][contract.REQUEST_ID][0]).encode()
    return key, json.dumps({"requests": blocks}).encode()


def predictions_topic() -> str:
    return os.environ.get(contract.PREDICTIONS_TOPIC_ENV) or contract.PREDICTIONS_TOPIC


class PredictionLog:
    """Publishes answered requests to the predictions topic from a background thread (thread-safe)."""

    def __init__(self, broker: str | None, topic: str, producer_factory: Any = None) -> None:
        self.broker = broker
        self.topic = topic
        self.dropped = 0
        self._pending: queue.SimpleQueue[Answered] = queue.SimpleQueue()
        self._producer_factory = producer_factory or _kafka_producer
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> PredictionLog:
        switch = os.environ.get(contract.PREDICTION_LOG_ENV, "on").strip().lower()
        enabled = switch not in ("off", "0", "false")
        broker = os.environ.get(contract.BROKER_ENV) if enabled else None
        return cls(broker or None, predictions_topic())

    @property
    def enabled(self) -> bool:
        return self.broker is not None

    def record(self, answered: Answered) -> None:
        """Queue one answered request (returns at once)."""
        if not self.enabled:
            return
        if self._pending.qsize() >= MAX_PENDING:
            self.dropped += 1
            return
        self._pending.put(answered)
        if self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:  # started on first use: after uvicorn forked its workers
                self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        producer = None
        while True:
            answered = [self._pending.get()]
            while len(answered) < DRAIN_MAX and not self._pending.empty():
                answered.append(self._pending.get())
            try:
                producer = producer or self._producer_factory(self.broker)
                for key, value in messages(answered):
                    producer.send(self.topic, key=key, value=value)
            except Exception as exc:  # a broken broker must not kill the thread: count and go on
                self.dropped += len(answered)
                print(f"prediction log: {len(answered)} request(s) not published: {exc}", flush=True)
                time.sleep(1.0)  # back off from a broker that refuses


def _kafka_producer(broker: str) -> Any:
    from kafka import KafkaProducer

    return KafkaProducer(bootstrap_servers=broker, linger_ms=LINGER_MS, acks=1, retries=5)
